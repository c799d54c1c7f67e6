#!/usr/bin/env bash
# Prepares a Debian 12 host (root, no Docker engine, no registry of images)
# to build and run imsplit's container image with podman:
#   1. installs podman, runc, podman-compose and debootstrap (apt);
#   2. makes runc podman's OCI runtime in /etc/containers/containers.conf
#      unless a runtime is set there already, and sets default ulimits
#      there that the host allows (nofile at most `ulimit -Hn`);
#   3. builds the base images deploy/Dockerfile starts FROM, debian:bookworm
#      and debian:bookworm-slim, locally with debootstrap from the Debian
#      mirror apt already uses, and imports them into podman under the names
#      a registry would give them (docker.io/library/debian:...), so the
#      Dockerfile builds unchanged. An image already present is kept.
# Idempotent; run it again at will. Environment:
#   IMSPLIT_BASE_MIRROR   Debian mirror (default: the one in apt's sources)
#   IMSPLIT_BASE_REBUILD  1: build the base images again even if present
set -euo pipefail

log() { printf 'container-setup: %s\n' "$*"; }
die() { printf 'container-setup: %s\n' "$*" >&2; exit 1; }

((EUID == 0)) || die "run as root (sudo $0)"

# ---- 1. packages ------------------------------------------------------------
PACKAGES=(podman runc podman-compose debootstrap)
missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mtime -1 -print -quit 2>/dev/null) ]]; then
        log "apt-get update"
        apt-get update
    fi
    log "installing ${missing[*]}"
    # Recommends bring the network stack podman needs for name resolution
    # between containers (netavark, aardvark-dns) and its storage helpers.
    apt-get install -y "${missing[@]}"
else
    log "packages present: ${PACKAGES[*]}"
fi

# ---- 2. OCI runtime -----------------------------------------------------------
conf=/etc/containers/containers.conf
if [[ -f $conf ]] && grep -Eq '^[[:space:]]*runtime[[:space:]]*=' "$conf"; then
    log "$conf sets a runtime already: $(grep -E '^[[:space:]]*runtime[[:space:]]*=' "$conf" | head -n1)"
else
    mkdir -p "$(dirname "$conf")"
    if [[ -f $conf ]] && grep -Eq '^\[engine\]' "$conf"; then
        sed -i '/^\[engine\]/a runtime = "runc"' "$conf"
    else
        printf '\n[engine]\nruntime = "runc"\n' >>"$conf"
    fi
    log "wrote runtime = \"runc\" into $conf"
fi

# ---- 2b. default ulimits ---------------------------------------------------------
# podman asks runc for nofile=1048576 by default, which fails ("error
# setting rlimit type 7") where the host's hard limit is lower (20000 on this
# project's machines). Containers started without --ulimit get the host's
# hard limit (at most 65536) instead.
if grep -Eq '^[[:space:]]*default_ulimits[[:space:]]*=' "$conf"; then
    log "$conf sets default_ulimits already"
else
    nofile=$(ulimit -Hn)
    [[ $nofile == unlimited || $nofile -gt 65536 ]] && nofile=65536
    line="default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=32768:32768\"]"
    if grep -Eq '^\[containers\]' "$conf"; then
        sed -i "/^\[containers\]/a $line" "$conf"
    else
        printf '\n[containers]\n%s\n' "$line" >>"$conf"
    fi
    log "wrote $line into $conf"
fi

# ---- 3. base images -------------------------------------------------------------

# The first URI of apt's sources that serves Debian itself (not security),
# from deb822 .sources files or one-line sources.list entries.
apt_mirror() {
    local f line uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        while read -r line; do
            line=${line#URIs:}
            for uri in $line; do
                [[ $uri == *security* ]] || { echo "$uri"; return 0; }
            done
        done < <(grep -E '^URIs:' "$f")
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        awk '$1 == "deb" {
                for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { u = $i; break }
                if (u !~ /security/) { print u; exit }
            }' "$f" | grep . && return 0
    done
    return 1
}

apt_security_mirror() {
    local u
    u=$(grep -hE '^URIs:.*security' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2; exit}')
    [[ -n $u ]] || u=$(grep -hE '^deb .*security' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '{for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' | head -n1)
    echo "${u:-http://deb.debian.org/debian-security}"
}

FULL=docker.io/library/debian:bookworm
SLIM=docker.io/library/debian:bookworm-slim
rebuild=${IMSPLIT_BASE_REBUILD:-0}

if ((rebuild == 0)) && podman image exists "$FULL" && podman image exists "$SLIM"; then
    log "base images present: $FULL $SLIM"
    exit 0
fi

mirror=${IMSPLIT_BASE_MIRROR:-$(apt_mirror)} || die "no Debian mirror found in apt's sources; set IMSPLIT_BASE_MIRROR"
security=$(apt_security_mirror)
log "mirror $mirror, security $security"

work=$(mktemp -d /var/tmp/imsplit-base.XXXXXX)
trap 'rm -rf -- "$work"' EXIT
root=$work/rootfs

log "debootstrap --variant=minbase bookworm (a minute or two)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed"
}

# As in Debian's own images: apt sources in deb822 form with the updates and
# security suites, no package lists or caches kept, and no daemons started
# by package installs.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root/etc/hostname"
: >"$root/etc/resolv.conf"

import_rootfs() {
    local dir=$1 ref=$2
    tar --numeric-owner --xattrs -C "$dir" -c . |
        podman import --quiet --change 'CMD ["bash"]' \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            - "$ref" >/dev/null
    log "imported $ref ($(podman image inspect --format '{{.Size}}' "$ref" | awk '{printf "%.0f MB", $1 / 1e6}'))"
}

podman image rm -f "$FULL" "$SLIM" >/dev/null 2>&1 || true
import_rootfs "$root" "$FULL"

# The -slim variant as Debian's slim images make it: no documentation, man
# pages or translations, and dpkg told never to install them.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$root"/usr/share/man/* "$root"/usr/share/groff/* "$root"/usr/share/info/* \
    "$root"/usr/share/lintian/* "$root"/usr/share/linda/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
import_rootfs "$root" "$SLIM"
