#!/bin/bash
# Entrypoint of the imsplit image (installed as /usr/local/bin/imsplit).
#
#   imsplit cp [FLAGS]       imsplit-cp
#   imsplit up [FLAGS]       imsplit-up
#   imsplit ctl [ARGS]       imsplit-ctl, pointed at this container's CP (in
#                            the CP's container) or at IMSPLIT_CP (in a
#                            worker's)
#   imsplit health [H:P [PATH]]
#                            exit 0 if the daemon's /healthz (or PATH)
#                            answers 200 (the image's HEALTHCHECK; H:P
#                            defaults to the daemon's --metrics)
#   imsplit sipp [ARGS]      sipp bound to this container's address (the
#                            sipp image); first, with SIPP_WAIT_HOSTS=N1,N2
#                            it waits until those names resolve, with
#                            SIPP_WAIT_READY=HOST:PORT until that /readyz
#                            answers 200 (60 s at most each)
#   imsplit CMD [ARGS]       runs CMD (e.g. bash)
#
# The daemons read flags and IMSPLIT_* variables themselves (a flag wins);
# this script only fills in container defaults for the variables left unset,
# so that a bare `imsplit cp` / `imsplit up` works on a container network:
#   cp   IMSPLIT_SIP       udp:ADDR:5060,tcp:ADDR:5060 (ADDR: this
#                          container's address, which the CP also writes
#                          into Via and Contact)
#        IMSPLIT_CTL       tcp://0.0.0.0:5600
#        IMSPLIT_METRICS   0.0.0.0:9100
#   up   IMSPLIT_CP        tcp://cp:5600
#        IMSPLIT_ID        the container's hostname (unique per container and
#                          kept across its restarts)
#        IMSPLIT_MSRP      0.0.0.0:2855
#        IMSPLIT_ADVERTISE ADDR, the address written into MSRP paths: the one
#                          peers on the container network reach this worker at
#        IMSPLIT_METRICS   0.0.0.0:9100
# The daemon is exec'd: it is PID 1 and gets podman's SIGTERM itself (both
# daemons stop gracefully on it).
set -euo pipefail

# This container's own IPv4 address: what its hostname resolves to (the
# runtime writes it into /etc/hosts), else the first global address.
own_addr() {
    local a
    a=$(getent ahostsv4 "$(hostname)" 2>/dev/null | awk '$1 !~ /^127\./ { print $1; exit }')
    if [[ -z $a ]]; then
        a=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -v -e '^127\.' -e ':' -e '^$' | head -n1 || true)
    fi
    [[ -n $a ]] || {
        echo "imsplit: cannot find this container's address; set it explicitly" >&2
        return 1
    }
    echo "$a"
}

# The value of --NAME in the given arguments ("--NAME V" or "--NAME=V"),
# empty if absent.
flag_value() {
    local name=$1
    shift
    while (($#)); do
        case $1 in
            --"$name") echo "${2:-}"; return 0 ;;
            --"$name"=*) echo "${1#*=}"; return 0 ;;
        esac
        shift
    done
}

has_flag() { [[ -n $(flag_value "$@") ]]; }

# Where health looks for /healthz: the daemon's --metrics as started.
metrics_file=${TMPDIR:-/tmp}/imsplit-metrics

remember_metrics() {
    local m
    m=$(flag_value metrics "$@")
    m=${m:-${IMSPLIT_METRICS:-}}
    [[ -z $m ]] || echo "$m" >"$metrics_file" 2>/dev/null || true
}

# HOST:PORT of a listener -> an address to reach it from inside the container.
local_target() {
    local addr=$1 host port
    port=${addr##*:}
    host=${addr%:*}
    host=${host#[}
    host=${host%]}
    case $host in "" | 0.0.0.0 | "*") host=127.0.0.1 ;; "::") host=::1 ;; esac
    echo "$host $port"
}

# http_status HOST PORT PATH: the status code of GET PATH, over bash's
# /dev/tcp (the image has no HTTP client); empty if nothing answers.
http_status() {
    local host=$1 port=$2 path=$3 code=""
    { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 0
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
    read -r -t 2 _ code _ <&3 || true
    exec 3<&-
    echo "$code"
}

health() {
    local addr=${1:-} path=${2:-/healthz} host port code
    [[ -n $addr ]] || addr=$(cat "$metrics_file" 2>/dev/null || true)
    [[ -n $addr ]] || addr=${IMSPLIT_METRICS:-0.0.0.0:9100}
    read -r host port <<<"$(local_target "$addr")"
    code=$(http_status "$host" "$port" "$path")
    [[ $code == 200 ]] || { echo "imsplit: $path on $host:$port answered ${code:-nothing}" >&2; exit 1; }
}

# Waits up to 60 s for each name to resolve (a container just started is
# added to the network's DNS a moment later).
wait_names() {
    local name i
    for name in ${1//,/ }; do
        for ((i = 0; i < 120; i++)); do
            getent hosts "$name" >/dev/null && break
            sleep 0.5
        done
        getent hosts "$name" >/dev/null || { echo "imsplit: $name does not resolve after 60 s" >&2; return 1; }
    done
}

# Waits up to 60 s for GET /readyz on HOST:PORT to answer 200.
wait_ready() {
    local host=${1%:*} port=${1##*:} i
    for ((i = 0; i < 120; i++)); do
        [[ $(http_status "$host" "$port" /readyz) == 200 ]] && return 0
        sleep 0.5
    done
    echo "imsplit: $1/readyz not 200 after 60 s" >&2
    return 1
}

cmd=${1:-cp}
(($#)) && shift

case $cmd in
    cp)
        export IMSPLIT_CTL=${IMSPLIT_CTL:-tcp://0.0.0.0:5600}
        export IMSPLIT_METRICS=${IMSPLIT_METRICS:-0.0.0.0:9100}
        if [[ -z ${IMSPLIT_SIP:-} ]] && ! has_flag sip "$@"; then
            addr=$(own_addr)
            export IMSPLIT_SIP=udp:$addr:5060,tcp:$addr:5060
        fi
        remember_metrics "$@"
        exec imsplit-cp "$@"
        ;;
    up)
        export IMSPLIT_CP=${IMSPLIT_CP:-tcp://cp:5600}
        export IMSPLIT_MSRP=${IMSPLIT_MSRP:-0.0.0.0:2855}
        export IMSPLIT_METRICS=${IMSPLIT_METRICS:-0.0.0.0:9100}
        if [[ -z ${IMSPLIT_ID:-} ]] && ! has_flag id "$@"; then
            IMSPLIT_ID=$(hostname)
            export IMSPLIT_ID
        fi
        if [[ -z ${IMSPLIT_ADVERTISE:-} ]] && ! has_flag advertise "$@"; then
            IMSPLIT_ADVERTISE=$(own_addr)
            export IMSPLIT_ADVERTISE
        fi
        remember_metrics "$@"
        exec imsplit-up "$@"
        ;;
    ctl)
        # In the CP's container IMSPLIT_CTL is the CP's bind address; a
        # wildcard there means "this host". In a worker's, ask its CP.
        ctl=${IMSPLIT_CTL:-${IMSPLIT_CP:-}}
        if [[ -n $ctl ]]; then
            ctl=${ctl/\/\/0.0.0.0:/\/\/127.0.0.1:}
            ctl=${ctl/\/\/\*:/\/\/127.0.0.1:}
            export IMSPLIT_CTL=$ctl
        fi
        exec imsplit-ctl "$@"
        ;;
    health)
        health "$@"
        ;;
    sipp)
        [[ -z ${SIPP_WAIT_HOSTS:-} ]] || wait_names "$SIPP_WAIT_HOSTS"
        [[ -z ${SIPP_WAIT_READY:-} ]] || wait_ready "$SIPP_WAIT_READY"
        if [[ " $* " != *" -i "* ]]; then
            addr=$(own_addr)
            exec sipp -i "$addr" "$@"
        fi
        exec sipp "$@"
        ;;
    -*)
        echo "imsplit: the first argument names what to run (cp, up, ctl, health, sipp), not a flag: $cmd" >&2
        exit 64
        ;;
    *)
        exec "$cmd" "$@"
        ;;
esac
