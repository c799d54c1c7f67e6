#!/usr/bin/env bash
# Installs what imsplit needs to build, run and test on Debian 12 (bookworm):
# Debian packages, then the npm packages of the Kubernetes manifest check
# (deploy/k8s/validate, installed into its node_modules from its lockfile).
# Idempotent: when everything is already installed it does nothing, so
# run.sh and test.sh can call it on every start. Installing Debian packages
# needs root.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

PACKAGES=(
    build-essential cmake pkg-config
    libsofia-sip-ua-dev libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
    libcmocka-dev libmicrohttpd-dev libuv1-dev
    sip-tester curl python3 iproute2 socat procps ca-certificates
    python3-yaml
    clang libclang-rt-14-dev
    valgrind
)

missing=()
for p in "${PACKAGES[@]}"; do
    # dpkg -s also lists removed-but-configured packages; only "install ok
    # installed" means usable.
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done
# Node.js and npm by command, not by package: a Node.js from another
# distribution channel (NodeSource's nodejs bundles npm) serves as well, and
# Debian's npm package would conflict with it.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
fi

if ((${#missing[@]} == 0)); then
    echo "deps: all ${#PACKAGES[@]} packages installed"
elif ((EUID != 0)); then
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: run as root (sudo $0) to install them" >&2
    exit 1
else
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only when they are absent or older than a
    # day: a fresh container has none, a workstation usually has recent ones.
    lists=/var/lib/apt/lists
    if [[ -z $(find "$lists" -maxdepth 1 -name '*_Packages*' -mtime -1 -print -quit 2>/dev/null) ]]; then
        echo "deps: apt-get update"
        apt-get update
    fi
    echo "deps: installing ${missing[*]}"
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The Kubernetes manifest check (tests/deploy/test_k8s_validate.sh) runs
# offline; its schemas come with these npm packages. `npm ls` answers
# offline whether the locked packages are all there; `npm ci` installs
# exactly the lockfile.
validator=$src/deploy/k8s/validate
if npm ls --prefix "$validator" --depth=0 >/dev/null 2>&1; then
    echo "deps: npm packages of deploy/k8s/validate installed"
else
    echo "deps: npm ci in deploy/k8s/validate"
    npm ci --prefix "$validator" --no-audit --no-fund --loglevel=error
fi
