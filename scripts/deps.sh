#!/usr/bin/env bash
# Installs what imsplit needs to build, run and test on Debian 12 (bookworm).
# Idempotent: when every package is already installed it does nothing, so
# run.sh and test.sh can call it on every start. Installing needs root.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config
    libsofia-sip-ua-dev libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
    libcmocka-dev libmicrohttpd-dev libuv1-dev
    sip-tester curl python3 iproute2 socat procps ca-certificates
)

missing=()
for p in "${PACKAGES[@]}"; do
    # dpkg -s also lists removed-but-configured packages; only "install ok
    # installed" means usable.
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    echo "deps: all ${#PACKAGES[@]} packages installed"
    exit 0
fi

if ((EUID != 0)); then
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: run as root (sudo $0) to install them" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when they are absent or older than a day:
# a fresh container has none, a workstation usually has recent ones.
lists=/var/lib/apt/lists
if [[ -z $(find "$lists" -maxdepth 1 -name '*_Packages*' -mtime -1 -print -quit 2>/dev/null) ]]; then
    echo "deps: apt-get update"
    apt-get update
fi
echo "deps: installing ${missing[*]}"
apt-get install -y --no-install-recommends "${missing[@]}"
