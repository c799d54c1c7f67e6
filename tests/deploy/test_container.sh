#!/usr/bin/env bash
# The container image and the compose file, for real, with podman: builds
# deploy/Dockerfile (the imsplit image and its sipp stage), starts the CP and
# 3 workers with deploy/compose.yaml, and then, across containers:
#
#  1. start-up: the CP is ready with 3 live workers; every daemon runs as the
#     image's unprivileged user and passes the image's health check; each
#     worker registered under its container hostname and advertises its own
#     container address for MSRP, which another container can connect to.
#  2. seed flow (the compose file's sipp services): 3 sessions, one on each
#     worker; each session timer expires, the CP sends BYE on both legs, and
#     both directions are released on the worker; the client succeeds.
#  3. scale-in by a drain while sessions are live: 6 more calls, one a
#     second, each ended by its session timer 13 s after set-up; once 3 are
#     up, `imsplit-ctl drain` of a worker holding one. The worker gets no new
#     leg, stays up while its session lasts, leaves by itself with exit
#     status 0 after its last leg is released, and its container is
#     removed; every call of both sipps succeeds and every session ends by
#     its timer (none was cut).
#  4. the end: no leg, socket, session or pending release left on the CP or
#     on either remaining worker, and the CP exits 0 on podman's SIGTERM.
#
# Not part of ctest's default run: scripts/test.sh --container runs it (as
# root; it calls scripts/container-setup.sh to install podman and make the
# Debian base images when missing). Everything it starts carries its own
# compose project name and is removed on exit, failure or not.
#
# Environment: IMSPLIT_CT_SETUP=0 skips scripts/container-setup.sh;
# IMSPLIT_CT_KEEP=1 keeps the log directory of a passing run;
# IMSPLIT_CT_CONTEXT=DIR builds the image from DIR (a checkout holding
# deploy/ and the sources) instead of this source tree.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CONTEXT=${IMSPLIT_CT_CONTEXT:-$SRC}
NAME=test_container
P=imsplitct$$
NET=${P}_default
IMAGE=localhost/imsplit:latest
SIPP_IMAGE=localhost/imsplit-sipp:latest
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/imsplit-container.XXXXXX")
T0=$(date +%s.%N)
PASSED=0
DONE=0

log() { printf '[%s] %s: %s\n' "$(date +%H:%M:%S.%3N)" "$NAME" "$*"; }
fail() {
    printf '[%s] %s: FAIL: %s\n' "$(date +%H:%M:%S.%3N)" "$NAME" "$*" >&2
    exit 1
}
ok() {
    PASSED=$((PASSED + 1))
    log "ok: $*"
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }'; }

if ((EUID != 0)); then
    echo "$NAME: needs root (podman, network namespaces, apt); skipped" >&2
    exit 77
fi

# ---- podman and compose ---------------------------------------------------------

# Open files per container: podman's default (1048576) is refused where the
# host's hard limit is lower.
NOFILE=$(ulimit -Hn)
[[ $NOFILE == unlimited || $NOFILE -gt 65536 ]] && NOFILE=65536
ULIMITS=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=32768:32768)
export IMSPLIT_NOFILE=$NOFILE

# The CP grants at most 20 s. The controlling sipp answers 20 and serves
# both phases (9 calls): recreated, it would have a new address, and the CP
# keeps the DNS answer for "ctrl" for its TTL (a day with aardvark-dns). The
# seed flow's client asks for 6 (expiry 4 s after set-up), the drain's for
# 20 (expiry 13.3 s after set-up).
export IMSPLIT_SESSION_EXPIRES=20 IMSPLIT_MIN_SE=2 IMSPLIT_LOG_LEVEL=info

compose() {
    timeout 300 podman-compose -f "$SRC/deploy/compose.yaml" -p "$P" "$@" \
        >>"$LOGDIR/compose.log" 2>&1
}

# Containers of this project, running or not.
project_containers() {
    podman ps -a --filter "label=io.podman.compose.project=$P" --format '{{.Names}}' 2>/dev/null
}

cleanup() {
    local rc=$? c cs
    trap - EXIT INT TERM
    set +e
    # One podman stop for all (it stops them in parallel), their logs, then
    # compose down finds nothing running.
    mapfile -t cs < <(project_containers)
    ((${#cs[@]} == 0)) || timeout 60 podman stop -t 10 "${cs[@]}" >/dev/null 2>&1
    for c in "${cs[@]}"; do
        podman logs -t "$c" >"$LOGDIR/$c.log" 2>&1
    done
    compose down -t 10
    for c in $(project_containers); do podman rm -f -t 2 "$c" >/dev/null 2>&1; done
    podman network exists "$NET" 2>/dev/null && podman network rm -f "$NET" >/dev/null 2>&1
    podman network exists "$NET" 2>/dev/null && echo "$NAME: could not remove network $NET" >&2
    if ((rc != 0 || DONE == 0)); then
        ((rc == 0)) && rc=1
        for c in "$LOGDIR"/*.log; do
            [[ -s $c ]] || continue
            printf '\n===== %s (end) =====\n' "$c" >&2
            tail -n 40 "$c" >&2
        done
        echo "$NAME: FAILED (exit $rc) after $(since "$T0") s; logs in $LOGDIR" >&2
        echo "$NAME: $PASSED passed, 1 failed"
    else
        [[ ${IMSPLIT_CT_KEEP:-0} == 1 ]] && echo "$NAME: logs kept in $LOGDIR" || rm -rf -- "$LOGDIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The address of a container on the project network (looked up once).
declare -A ADDR=()
addr_of() {
    [[ -n ${ADDR[$1]:-} ]] ||
        ADDR[$1]=$(podman inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$1" 2>/dev/null)
    echo "${ADDR[$1]}"
}

# metric CONTAINER SERIES: the value from its /metrics, "missing" if absent.
metric() {
    local body
    body=$(curl -s --max-time 2 "http://$(addr_of "$1"):9100/metrics" 2>/dev/null) || {
        echo missing
        return 0
    }
    awk -v s="$2" '$1 == s { print $2; f = 1; exit } END { if (!f) print "missing" }' <<<"$body"
}

# wait_metric CONTAINER SERIES VALUE SECS [ge]: until SERIES == VALUE (or
# >= VALUE), polling for at most SECS.
wait_metric() {
    local c=$1 s=$2 want=$3 secs=$4 op=${5:-eq} v i
    for ((i = 0; i < secs * 5; i++)); do
        v=$(metric "$c" "$s")
        if [[ $op == ge ]]; then
            [[ $v =~ ^[0-9]+$ ]] && ((v >= want)) && return 0
        else
            [[ $v == "$want" ]] && return 0
        fi
        sleep 0.2
    done
    log "$c $s = $v, not $op $want after ${secs}s"
    return 1
}

expect_metric() {
    local v
    v=$(metric "$1" "$2")
    [[ $v == "$3" ]] || fail "$1 $2 = $v, expected $3"
    ok "$1 $2 = $v"
}

# ctl ARGS: imsplit-ctl inside the CP's container.
ctl() { timeout 20 podman exec "$CP" imsplit ctl --timeout 3000 "$@"; }

# "ID STATE SESSIONS LEGS MSRP" per worker the CP knows.
ctl_workers() {
    local json
    json=$(ctl --json workers) || return 1
    python3 -c '
import json, sys
for w in sorted(json.loads(sys.argv[1])["query_result"].get("workers", []), key=lambda w: w["node_id"]):
    print(w["node_id"], w.get("state", "").replace("WORKER_", "").lower(), int(w.get("sessions", 0)),
          int(w.get("legs_active", 0)), w.get("msrp_address", "-"))
' "$json"
}

ctl_worker_col() { # ID COLUMN(2..5)
    ctl_workers | awk -v id="$1" -v c="$2" '$1 == id { print $c; f = 1 } END { if (!f) print "missing" }'
}

# exit_code CONTAINER SECS: waits (bounded) for it to stop; prints its exit
# code, or "running".
exit_code() {
    local c=$1 secs=$2 i st
    for ((i = 0; i < secs * 5; i++)); do
        st=$(podman inspect -f '{{.State.Status}}' "$c" 2>/dev/null) || st=gone
        [[ $st == running || $st == created || $st == configured ]] || break
        sleep 0.2
    done
    if [[ $st == running || $st == created || $st == configured ]]; then
        echo running
    else
        podman inspect -f '{{.State.ExitCode}}' "$c" 2>/dev/null || echo gone
    fi
}

# Epoch seconds of the ts= of every line of a container's log with all the
# given words.
log_times() {
    local c=$1
    shift
    podman logs "$c" 2>&1 | python3 -c '
import datetime, re, sys
words = sys.argv[1:]
for l in sys.stdin:
    if not all((" " + w + " ") in (" " + l.strip() + " ") for w in words):
        continue
    m = re.search(r"(?:^| )ts=(\S+)", l)
    if m:
        print("%.3f" % datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp())
' "$@"
}

# ---- 0. podman, base images, the image ----------------------------------------------

if [[ ${IMSPLIT_CT_SETUP:-1} == 1 ]]; then
    t=$(date +%s.%N)
    bash "$SRC/scripts/container-setup.sh" >"$LOGDIR/setup.log" 2>&1 ||
        { tail -n 30 "$LOGDIR/setup.log" >&2; fail "scripts/container-setup.sh failed"; }
    T_SETUP=$(since "$t")
    log "host set up in ${T_SETUP}s"
fi
for tool in podman podman-compose curl python3 ip; do
    command -v "$tool" >/dev/null || fail "$tool not found (scripts/container-setup.sh installs podman)"
done

t=$(date +%s.%N)
export BUILDAH_FORMAT=docker # keeps the image's HEALTHCHECK
for target in runtime sipp; do
    if [[ $target == runtime ]]; then args=(-t "$IMAGE"); else args=(--target sipp -t "$SIPP_IMAGE"); fi
    timeout 1800 podman build --format docker "${ULIMITS[@]}" -f "$CONTEXT/deploy/Dockerfile" \
        "${args[@]}" "$CONTEXT" >"$LOGDIR/build-$target.log" 2>&1 ||
        { tail -n 40 "$LOGDIR/build-$target.log" >&2; fail "podman build ($target) failed"; }
done
T_BUILD=$(since "$t")
size_mb() { podman image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.1f", $1 / 1e6 }'; }
log "images built in ${T_BUILD}s: $IMAGE $(size_mb "$IMAGE") MB, $SIPP_IMAGE $(size_mb "$SIPP_IMAGE") MB"
hc=$(podman image inspect -f '{{.HealthCheck}}{{.Config.Healthcheck}}' "$IMAGE" 2>/dev/null || true)
[[ $hc == *imsplit*health* ]] || fail "the image has no HEALTHCHECK ($hc)"
ok "the image carries its HEALTHCHECK"

# ---- 1. start-up ------------------------------------------------------------------------

t=$(date +%s.%N)
T_RUN0=$t
compose up -d cp || fail "podman-compose up cp failed (see $LOGDIR/compose.log)"
# netavark 1.4 leaves the network's bridge with the MAC of its lowest port,
# which changes as containers join: a container that cached the gateway's
# MAC (DNS is served there) then talks into the void until its neighbour
# entry is probed again, and the CP's first look-up of "ctrl" fails. With
# only the CP attached and nothing yet sent to the gateway, the bridge's MAC
# is made its own (set explicitly, it no longer follows the ports).
BRIDGE=$(podman network inspect -f '{{.NetworkInterface}}' "$NET") || fail "no network $NET"
BRIDGE_MAC=$(cat "/sys/class/net/$BRIDGE/address")
ip link set dev "$BRIDGE" address "$BRIDGE_MAC" || fail "cannot set the MAC of $BRIDGE"
compose up -d up || fail "podman-compose up up failed (see $LOGDIR/compose.log)"
CP=${P}_cp_1
WORKERS=("${P}_up_1" "${P}_up_2" "${P}_up_3")
CP_ADDR=$(addr_of "$CP")
[[ -n $CP_ADDR ]] || fail "no address for $CP"
for ((i = 0; i < 150; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$CP_ADDR:9100/readyz") == 200 ]] && break
    sleep 0.2
done
wait_metric "$CP" 'imsplit_cp_workers{state="live"}' 3 30 || fail "3 workers not live on the CP"
log "CP $CP_ADDR ready with 3 workers in $(since "$t")s"
ok "CP ready, 3 workers live"

declare -A ID_OF=() CONTAINER_OF=()
for c in "$CP" "${WORKERS[@]}"; do
    uid=$(timeout 20 podman exec "$c" id -u) || fail "podman exec $c failed"
    [[ $uid != 0 ]] || fail "$c runs as root"
    timeout 30 podman healthcheck run "$c" >/dev/null 2>&1 || fail "$c: podman healthcheck run failed"
    [[ $c == "$CP" ]] && continue
    id=$(podman inspect -f '{{.Config.Hostname}}' "$c")
    ID_OF[$c]=$id
    CONTAINER_OF[$id]=$c
    a=$(addr_of "$c")
    [[ $(ctl_worker_col "$id" 2) == live ]] || fail "the CP does not list $c ($id) as live"
    msrp=$(ctl_worker_col "$id" 5)
    [[ $msrp == "$a:2855" ]] || fail "$c ($id) advertises $msrp, expected its own address $a:2855"
done
ok "CP and workers run as uid $uid and are healthy; each worker registered as its hostname and advertises its own address"

# A worker's advertised MSRP address is reachable from another container.
for c in "${WORKERS[@]}"; do
    a=$(addr_of "$c")
    timeout 20 podman run --rm "${ULIMITS[@]}" --network "$NET" "$SIPP_IMAGE" \
        bash -c "exec 3<>/dev/tcp/$a/2855" >>"$LOGDIR/reach.log" 2>&1 ||
        fail "cannot connect to $c's MSRP address $a:2855 from another container"
done
ok "every worker's MSRP address accepts connections from another container"

# ---- 2. the seed flow: session timer expiry -------------------------------------------

t=$(date +%s.%N)
export SIPP_CTRL_SE=20 SIPP_CTRL_CALLS=9
SIPP_SE=6 SIPP_CALLS=3 SIPP_RATE=10 compose up -d ctrl client || true
rc=$(exit_code "${P}_client_1" 60)
[[ $rc == 0 ]] || fail "sipp client (seed flow) exited $rc; 0 means every call succeeded"
[[ $(podman inspect -f '{{.State.Status}}' "${P}_ctrl_1") == running ]] ||
    fail "sipp ctrl stopped during the seed flow (exit $(podman inspect -f '{{.State.ExitCode}}' "${P}_ctrl_1"))"
log "seed flow done in $(since "$t")s"
ok "seed flow: the client's 3 calls succeeded (session timers expired)"
expect_metric "$CP" imsplit_cp_sessions_total 3
expect_metric "$CP" imsplit_cp_session_timer_expired_total 3
expect_metric "$CP" 'imsplit_cp_bye_sent_total{leg="client"}' 3
expect_metric "$CP" 'imsplit_cp_bye_sent_total{leg="controlling"}' 3
wait_metric "$CP" imsplit_cp_sessions_active 0 10 || fail "sessions left on the CP after the seed flow"
expect_metric "$CP" 'imsplit_cp_releases_sent_total{direction="client"}' 3
expect_metric "$CP" 'imsplit_cp_releases_sent_total{direction="controlling"}' 3
for c in "${WORKERS[@]}"; do
    wait_metric "$c" imsplit_up_legs_active 0 10 || fail "legs left on $c after the seed flow"
    expect_metric "$c" imsplit_up_legs_allocated_total 2
    expect_metric "$c" 'imsplit_up_legs_released_total{direction="client"}' 1
    expect_metric "$c" 'imsplit_up_legs_released_total{direction="controlling"}' 1
done
ok "seed flow: one session on each worker, both directions released on each"
podman logs "${P}_client_1" >"$LOGDIR/seed-client.log" 2>&1 || true
podman rm -f "${P}_client_1" >/dev/null

# ---- 3. scale in: drain a worker with a live session ---------------------------------

t=$(date +%s.%N)
SIPP_SE=20 SIPP_CALLS=6 SIPP_RATE=1 compose up -d client || true
wait_metric "$CP" imsplit_cp_sessions_active 3 30 ge || fail "3 sessions not up"
json=$(ctl --json sessions) || fail "imsplit-ctl sessions failed"
W_ID=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["query_result"]["sessions"][0]["worker_id"])' "$json")
W=${CONTAINER_OF[$W_ID]:-}
[[ -n $W ]] || fail "the first session is on '$W_ID', not one of the workers"
DRAIN_TS=$(date +%s.%N)
out=$(ctl drain "$W_ID") || fail "imsplit-ctl drain $W_ID failed"
[[ $out == *draining* ]] || fail "imsplit-ctl drain $W_ID said '$out'"
log "drained $W ($W_ID) with a live session: $out"
[[ $(ctl_worker_col "$W_ID" 2) == draining ]] || fail "the CP does not list $W_ID as draining"
n=$(ctl_worker_col "$W_ID" 3)
[[ $n -ge 1 ]] || fail "no session left on $W_ID right after the drain ($n)"
[[ $(podman inspect -f '{{.State.Status}}' "$W") == running ]] || fail "$W stopped right after the drain"
ok "$W_ID draining with $n live session(s), container still running"

rc=$(exit_code "$W" 40)
[[ $rc == 0 ]] || fail "$W exited '$rc' after the drain, expected 0"
ok "$W left by itself, exit status 0, $(since "$DRAIN_TS")s after the drain"
podman logs "$W" >"$LOGDIR/drained-worker.log" 2>&1 || true
drained=$(log_times "$W" event=drained | tail -n1)
[[ -n $drained ]] || fail "$W logged no event=drained"
allocated_after=$(log_times "$W" event=leg_allocated | awk -v d="$DRAIN_TS" '$1 > d' | wc -l)
[[ $allocated_after == 0 ]] || fail "$W got $allocated_after legs after its drain"
n_alloc=$(log_times "$W" event=leg_allocated | wc -l)
n_rel=$(log_times "$W" event=leg_released | wc -l)
last_rel=$(log_times "$W" event=leg_released | sort -n | tail -n1)
[[ $n_alloc == "$n_rel" ]] || fail "$W allocated $n_alloc legs but released $n_rel"
awk -v r="$last_rel" -v d="$drained" 'BEGIN { exit !(r <= d) }' ||
    fail "$W drained ($drained) before its last leg was released ($last_rel)"
finished=$(podman inspect -f '{{.State.FinishedAt.Unix}}' "$W")
awk -v r="$last_rel" -v f="$finished" 'BEGIN { exit !(f + 1 >= r) }' ||
    fail "$W's container stopped ($finished) before its last leg was released ($last_rel)"
ok "$W took no leg after the drain and left only after releasing all $n_rel of its legs"
cp_log=$(podman logs "$CP" 2>&1)
[[ $cp_log == *"event=worker_left worker=$W_ID "*"reason=drained"* ]] || fail "no event=worker_left for $W_ID in the CP log"

# Scale in: the drained worker's container goes; two workers remain.
podman rm -f "$W" >/dev/null
REMAINING=()
for c in "${WORKERS[@]}"; do [[ $c == "$W" ]] || REMAINING+=("$c"); done
wait_metric "$CP" 'imsplit_cp_workers{state="live"}' 2 10 || fail "2 workers not live after the drain"
[[ $(ctl_worker_col "$W_ID" 2) == missing ]] || fail "the CP still lists $W_ID"
ok "scaled in to 2 workers; the CP no longer lists $W_ID"

for s in client ctrl; do
    rc=$(exit_code "${P}_${s}_1" 60)
    [[ $rc == 0 ]] || fail "sipp $s exited $rc: a call failed or was cut"
done
log "drain phase done in $(since "$t")s"
ok "the drain phase's 6 calls and all 9 of the controlling side succeeded"
expect_metric "$CP" imsplit_cp_sessions_total 9
expect_metric "$CP" imsplit_cp_session_timer_expired_total 9
expect_metric "$CP" 'imsplit_cp_bye_sent_total{leg="client"}' 9
expect_metric "$CP" 'imsplit_cp_bye_sent_total{leg="controlling"}' 9
expect_metric "$CP" imsplit_cp_sessions_worker_lost_total 0
cp_log=$(podman logs "$CP" 2>&1)
n=$(grep -c "event=session_closed .*cause=session_timer_expired" <<<"$cp_log" || true)
m=$(grep -c "event=session_closed " <<<"$cp_log" || true)
[[ $n == 9 && $m == 9 ]] || fail "$m sessions closed, $n of them by their session timer; expected 9 and 9"
ok "every session, those on the drained worker too, ended by its session timer"
total=0
for c in "${REMAINING[@]}"; do
    v=$(metric "$c" imsplit_up_legs_allocated_total)
    total=$((total + v))
done
# 6 seed legs + 12 drain legs in all; the drained worker took 2 in the seed
# flow and n_alloc in all.
[[ $((total + n_alloc)) == 18 ]] ||
    fail "legs allocated: $total on the remaining workers + $n_alloc on $W_ID, expected 18"
ok "all 18 legs accounted for ($total on the remaining workers, $n_alloc on $W_ID)"

# ---- 4. nothing left -------------------------------------------------------------------

wait_metric "$CP" imsplit_cp_sessions_active 0 10 || fail "sessions left on the CP"
wait_metric "$CP" imsplit_cp_releases_pending 0 10 || fail "releases pending on the CP"
for c in "${REMAINING[@]}"; do
    wait_metric "$c" imsplit_up_legs_active 0 10 || fail "legs left on $c"
    expect_metric "$c" imsplit_up_sockets_open 0
    expect_metric "$c" imsplit_up_buffer_bytes 0
done
rows=$(ctl sessions | awk 'NR > 1 && NF > 0' | wc -l)
[[ $rows == 0 ]] || fail "imsplit-ctl sessions lists $rows sessions"
ok "no leg, socket, buffer, session or pending release left"
[[ $(cat "/sys/class/net/$BRIDGE/address") == "$BRIDGE_MAC" ]] || fail "the MAC of $BRIDGE changed"

timeout 30 podman stop -t 10 "$CP" >/dev/null || fail "podman stop $CP failed"
rc=$(podman inspect -f '{{.State.ExitCode}}' "$CP")
[[ $rc == 0 ]] || fail "the CP exited $rc on SIGTERM, expected 0"
ok "the CP exited 0 on SIGTERM"
T_RUN=$(since "$T_RUN0")

DONE=1
log "PASS: setup ${T_SETUP:-skipped}s, image build ${T_BUILD}s, containers ${T_RUN}s, total $(since "$T0")s"
echo "$NAME: $PASSED passed, 0 failed"
