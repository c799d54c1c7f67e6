# Shared helpers for the system tests (tests/sip, tests/proto, tests/e2e,
# tests/fault) and the benchmarks.
#
# Source it from a test script, then:
#   t_init NAME                 temp dir, cleanup trap, binaries checked
#   t_start_stack [CP FLAGS]    free ports, imsplit-cp + T_WORKERS imsplit-up,
#                               ready
#   t_sipp_uas NAME XML [ARGS]  controlling side (UAS) in the background
#   t_sipp_uac NAME XML [ARGS]  IM client (UAC) in the background
#   t_sipp_wait NAME SECONDS    wait (bounded) and record its exit code
#   t_expect_sipp_ok NAME...    every named sipp exited 0
#   assertions: t_assert_metric, t_wait_metric, t_assert_log, ...
#   t_finish                    assert_no_leaks, stop the stack, check exits
#
# Faults and scale-out (tests/fault, bench/workers.sh):
#   t_start_cp [CP FLAGS]       only the CP (t_start_stack = this + workers)
#   t_restart_cp                the CP again, same ports and flags, after
#                               t_kill cp (a new CP epoch)
#   t_start_worker I            worker up-I (again, after t_kill up-I: same
#                               id, metrics port and namespace, new epoch)
#   t_kill NAME [SIG]           signal a process (default KILL); after KILL
#                               a daemon is "gone" until started again: not
#                               a crash for t_check_daemons, and t_finish
#                               neither checks its leaks nor its exit code
#   t_ctl_workers               "ID STATE SESSIONS LEGS MSRP EPOCH" rows
#   t_ctl_worker ID COLUMN      one of them (state, sessions, legs, msrp, ...)
#   t_ctl_sessions_on ID        sessions the CP lists on worker ID
#   t_worker_of_path PATH       which up-N owns an MSRP path
#   t_scenario XML KEY=VAL...   copy of a scenario with @KEY@ filled in
#   t_netns_create NS...        network namespaces, deleted by the cleanup
#
# Ground rules the helpers keep: everything listens on 127.0.0.1 (or T_HOST,
# below) with ports the kernel just handed out; every wait has a bound; the
# cleanup trap signals only the PIDs this test started (T_PIDS), never
# processes found by name. On failure the logs of every process are
# printed; the temp dir is kept when IMSPLIT_KEEP_TEST_DIR=1 or the test
# failed. A test that exits 77 is skipped (ctest SKIP_RETURN_CODE).
#
# Environment: IMSPLIT_BUILD_DIR (binaries), IMSPLIT_SRC_DIR (scenarios),
# T_TRANSPORT=udp|tcp (SIP transport of both sipps and the next hop),
# T_WORKERS (default 2), SIPP (default sipp), IMSPLIT_VALGRIND=1 (the
# daemons and imsplit-ctl under valgrind's memcheck, see "valgrind" below).
#
# Addresses and namespaces (defaults: everything on 127.0.0.1 in the test's
# own network namespace): T_HOST is the address of the CP (SIP, control
# channel, metrics), of both sipps and of the MSRP peers; T_NS the network
# namespace they run in. T_UP_HOST[i-1] and T_UP_NS[i-1] are the same for
# worker up-i (default T_HOST, T_NS). T_UP_ARGS are extra flags for every
# worker. Every helper that talks to a process (curl, ss, imsplit-ctl) runs
# in that process's namespace.

set -euo pipefail

# Debian's own tools first: the helpers below run python3 many times inside
# timed windows, and a python3 shim (pyenv and the like) ahead in PATH can
# cost half a second per start. scripts/deps.sh installs Debian's python3.
PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH

IMSPLIT_SRC_DIR=${IMSPLIT_SRC_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
IMSPLIT_BUILD_DIR=${IMSPLIT_BUILD_DIR:-$IMSPLIT_SRC_DIR/build}
T_CP_BIN=$IMSPLIT_BUILD_DIR/cp/imsplit-cp
T_UP_BIN=$IMSPLIT_BUILD_DIR/up/imsplit-up
T_CTL_BIN=$IMSPLIT_BUILD_DIR/tools/imsplit-ctl
T_SCEN_DIR=$IMSPLIT_SRC_DIR/tests/sip
SIPP=${SIPP:-sipp}
T_TRANSPORT=${T_TRANSPORT:-udp}
T_WORKERS=${T_WORKERS:-2}
T_HOST=${T_HOST:-127.0.0.1}
T_NS=${T_NS:-}
[[ -v T_UP_HOST ]] || T_UP_HOST=()
[[ -v T_UP_NS ]] || T_UP_NS=()
[[ -v T_UP_ARGS ]] || T_UP_ARGS=()

T_NAME=""
T_DIR=""
T_PIDS=()              # every process this test started, in start order
declare -gA T_PID_OF=() # process name (cp, up-1, uas, ...) -> pid
declare -gA T_RC_OF=()  # process name -> exit code once reaped
T_CP_PID=""
T_UP_NAMES=()
T_DONE=0
T_CP_ARGS=()           # the flags of the last t_start_cp, for t_restart_cp
declare -gA T_GONE=()   # daemon name -> 1 while killed on purpose (t_kill)
declare -gA T_KILL_TS=() # daemon name -> epoch seconds just before t_kill
T_NETNS=()             # namespaces t_netns_create made, deleted at cleanup

# IMSPLIT_VALGRIND=1: every imsplit-cp, imsplit-up and imsplit-ctl the
# helpers start (t_spawn, t_ctl) runs under valgrind's memcheck (t_vg_cmd);
# a report with an error or a leak fails the test (t_vg_check). Everything
# is then 10-50 times slower, so T_SLOW (IMSPLIT_VALGRIND_SLOW, default 10;
# 1 without valgrind) multiplies every wait bound of these helpers, and
# tests scale their timing tolerances with it.
if [[ ${IMSPLIT_VALGRIND:-0} == 1 ]]; then
    T_VALGRIND=1 T_SLOW=${IMSPLIT_VALGRIND_SLOW:-10}
else
    T_VALGRIND=0 T_SLOW=1
fi
T_VG_EXIT=97       # exit code of a process in which memcheck found errors
T_VG_REPORTED=0    # t_vg_check printed errors already
T_VG_CMD=()        # set by t_vg_cmd

# Ports, filled by t_start_stack.
T_SIP_PORT="" T_UAS_PORT="" T_UAC_PORT="" T_CTL_PORT="" T_CP_METRICS_PORT=""
T_CTL_EP=""
T_UP_METRICS_PORTS=()

# ---- messages ---------------------------------------------------------------

t_now() { date +%s.%N; }

t_log() { printf '[%s] %s: %s\n' "$(date +%H:%M:%S.%3N)" "$T_NAME" "$*"; }

t_fail() {
    printf '[%s] %s: FAIL: %s\n' "$(date +%H:%M:%S.%3N)" "$T_NAME" "$*" >&2
    exit 1
}

# ---- life cycle -------------------------------------------------------------

t_init() {
    T_NAME=$1
    local bin
    for bin in "$T_CP_BIN" "$T_UP_BIN" "$T_CTL_BIN"; do
        [[ -x $bin ]] || { echo "$T_NAME: missing binary $bin (build first)" >&2; exit 1; }
    done
    command -v "$SIPP" >/dev/null || { echo "$T_NAME: $SIPP not found" >&2; exit 1; }
    command -v curl >/dev/null || { echo "$T_NAME: curl not found" >&2; exit 1; }
    command -v python3 >/dev/null || { echo "$T_NAME: python3 not found" >&2; exit 1; }
    if ((T_VALGRIND)) && ! command -v valgrind >/dev/null; then
        echo "$T_NAME: IMSPLIT_VALGRIND=1 but valgrind not found" >&2
        exit 1
    fi
    T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/imsplit-$T_NAME.XXXXXX")
    trap t_cleanup EXIT
    # Turn signals into an ordinary exit so the EXIT trap does the cleanup.
    trap 'exit 130' INT
    trap 'exit 143' TERM
    case $T_TRANSPORT in
        udp | tcp) ;;
        *) t_fail "T_TRANSPORT must be udp or tcp, not '$T_TRANSPORT'" ;;
    esac
    t_log "temp dir $T_DIR, transport $T_TRANSPORT"
}

# Is this pid still running? A child that exited but was not reaped yet is
# a zombie, for which kill -0 still succeeds, hence the state check.
t_alive() {
    local pid=$1 stat
    # The process may go between any two looks: a failed read means gone.
    { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Fails the test at once if a daemon of the stack died: waiting out every
# remaining timeout first would only hide the crash behind sipp errors.
t_check_daemons() {
    ((T_DONE == 0)) || return 0
    local name pid
    for name in cp "${T_UP_NAMES[@]}"; do
        [[ -z ${T_GONE[$name]:-} ]] || continue
        pid=${T_PID_OF[$name]:-}
        [[ -n $pid && -z ${T_RC_OF[$name]:-} ]] || continue
        if ! t_alive "$pid"; then
            local rc=0
            wait "$pid" 2>/dev/null || rc=$?
            T_RC_OF[$name]=$rc
            t_fail "$name (pid $pid) died during the test (exit $rc)"
        fi
    done
}

# Waits up to $2 seconds (x T_SLOW) for process NAME to exit, reaps it and
# stores its exit code in T_RC_OF[NAME]. Returns 1 if it is still running.
# Meanwhile a daemon crash fails the test (t_check_daemons).
t_wait_exit() {
    local name=$1 secs=$2 pid=${T_PID_OF[$1]:-}
    [[ -n $pid ]] || return 0
    [[ -n ${T_RC_OF[$name]:-} ]] && return 0
    local i max=$((secs * 20 * T_SLOW))
    for ((i = 0; i < max; i++)); do
        t_alive "$pid" || break
        case $name in cp | up-*) ;; *) ((i % 10)) || t_check_daemons ;; esac
        sleep 0.05
    done
    t_alive "$pid" && return 1
    local rc=0
    wait "$pid" 2>/dev/null || rc=$?
    T_RC_OF[$name]=$rc
    return 0
}

# Stops process NAME: signal (default TERM), up to SECS seconds (x T_SLOW),
# then KILL.
t_stop() {
    local name=$1 sig=${2:-TERM} secs=${3:-5} pid=${T_PID_OF[$1]:-}
    [[ -n $pid ]] || return 0
    [[ -n ${T_RC_OF[$name]:-} ]] && return 0
    if t_alive "$pid"; then
        kill -s "$sig" "$pid" 2>/dev/null || true
        # A process held by SIGSTOP acts on nothing but KILL until resumed.
        kill -s CONT "$pid" 2>/dev/null || true
        if ! t_wait_exit "$name" "$secs"; then
            t_log "$name (pid $pid) ignored SIG$sig for $((secs * T_SLOW))s, killing it"
            kill -s KILL "$pid" 2>/dev/null || true
            t_wait_exit "$name" 5 || true
            T_RC_OF[$name]=killed
        fi
    else
        t_wait_exit "$name" 1 || true
    fi
}

t_dump_logs() {
    local f
    [[ -n $T_DIR && -d $T_DIR ]] || return 0
    for f in "$T_DIR"/*.log "$T_DIR"/*.err "$T_DIR"/*.out; do
        [[ -s $f ]] || continue
        printf '\n===== %s (end) =====\n' "$f" >&2
        tail -c 8000 "$f" | tail -n 60 >&2
        echo >&2
    done
}

t_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    local name
    # sipps first (they may still be talking to the CP), then the CP (which
    # ends its sessions on TERM), then the workers.
    for name in "${!T_PID_OF[@]}"; do
        case $name in cp | up-*) ;; *) t_stop "$name" KILL 2 ;; esac
    done
    t_stop cp TERM 8
    for name in "${T_UP_NAMES[@]}"; do t_stop "$name" TERM 5; done
    t_netns_delete_all
    # Reports of processes stopped only now, or of a test that failed
    # before t_finish looked at them.
    if ((rc != 77 && T_VG_REPORTED == 0)); then
        t_vg_check || { ((rc == 0)) && rc=1; }
    fi
    if ((rc == 77)); then
        echo "$T_NAME: SKIPPED" >&2
        rm -rf -- "$T_DIR"
    elif ((rc != 0)) || ((T_DONE == 0)); then
        ((rc == 0)) && rc=1
        t_dump_logs
        echo "$T_NAME: FAILED (exit $rc); files kept in $T_DIR" >&2
    elif [[ ${IMSPLIT_KEEP_TEST_DIR:-0} == 1 ]]; then
        echo "$T_NAME: files kept in $T_DIR"
    else
        rm -rf -- "$T_DIR"
    fi
    exit "$rc"
}

# Starts a background process NAME with stdout+stderr to $T_DIR/NAME.log,
# in namespace T_NS (under memcheck if IMSPLIT_VALGRIND=1 and it is one of
# imsplit's binaries, its report in NAME.vg). A name used before (a
# restart) first moves the earlier process's log to NAME.1.log, NAME.2.log,
# ... (and NAME.vg to NAME.1.vg, ...); its exit code is forgotten.
t_spawn() {
    t_spawn_ns "$T_NS" "$@"
}

# t_spawn_ns NS NAME CMD...: t_spawn in network namespace NS ("" = the
# test's own). `ip netns exec` execs the command, so the pid is its own.
t_spawn_ns() {
    local ns=$1 name=$2
    shift 2
    if [[ -e $T_DIR/$name.log ]]; then
        local k=1
        while [[ -e $T_DIR/$name.$k.log ]]; do k=$((k + 1)); done
        mv -- "$T_DIR/$name.log" "$T_DIR/$name.$k.log"
    fi
    if [[ -e $T_DIR/$name.vg ]]; then
        local k=1
        while [[ -e $T_DIR/$name.$k.vg ]]; do k=$((k + 1)); done
        mv -- "$T_DIR/$name.vg" "$T_DIR/$name.$k.vg"
    fi
    unset 'T_RC_OF[$name]' 'T_GONE[$name]'
    t_vg_cmd "$T_DIR/$name.vg" "$@"
    if [[ -n $ns ]]; then
        ip netns exec "$ns" "${T_VG_CMD[@]}" >"$T_DIR/$name.log" 2>&1 &
    else
        "${T_VG_CMD[@]}" >"$T_DIR/$name.log" 2>&1 &
    fi
    local pid=$!
    T_PIDS+=("$pid")
    T_PID_OF[$name]=$pid
}

# t_in_ns NS CMD...: runs CMD in network namespace NS ("" = the test's).
t_in_ns() {
    local ns=$1
    shift
    if [[ -n $ns ]]; then ip netns exec "$ns" "$@"; else "$@"; fi
}

# ---- valgrind -----------------------------------------------------------------

# t_vg_cmd REPORT CMD...: sets T_VG_CMD to CMD, or, with IMSPLIT_VALGRIND=1
# and CMD one of imsplit-cp, imsplit-up, imsplit-ctl, to CMD under memcheck
# writing its report to REPORT (%p there: the pid). Leaks of the kinds
# "definitely" and "indirectly" lost count as errors; the process then
# exits T_VG_EXIT. tests/valgrind/valgrind.supp is used if it exists.
t_vg_cmd() {
    local report=$1
    shift
    T_VG_CMD=("$@")
    ((T_VALGRIND)) || return 0
    case $1 in "$T_CP_BIN" | "$T_UP_BIN" | "$T_CTL_BIN") ;; *) return 0 ;; esac
    T_VG_CMD=(valgrind --tool=memcheck --leak-check=full
        "--show-leak-kinds=definite,indirect"
        "--errors-for-leak-kinds=definite,indirect"
        "--error-exitcode=$T_VG_EXIT" --track-fds=no --num-callers=30
        "--log-file=$report")
    local supp=$IMSPLIT_SRC_DIR/tests/valgrind/valgrind.supp
    [[ -f $supp ]] && T_VG_CMD+=(--suppressions="$supp")
    T_VG_CMD+=("$@")
}

# t_vg_check: returns 0 if every memcheck report in $T_DIR (*.vg) is clean:
# no error and no definitely or indirectly lost byte. Otherwise prints the
# offending reports and returns 1. A report without its summary (the
# process was killed, or still runs) counts the error records it has.
t_vg_check() {
    ((T_VALGRIND)) || return 0
    [[ -n $T_DIR && -d $T_DIR ]] || return 0
    local f verdict bad=0
    for f in "$T_DIR"/*.vg; do
        [[ -e $f ]] || continue
        verdict=$(awk '
            / ERROR SUMMARY: / {
                done = 1
                for (i = 1; i < NF; i++) if ($i == "SUMMARY:") errs = $(i + 1) + 0
            }
            / (definitely|indirectly) lost: / {
                v = $0; sub(/.* lost: /, "", v); gsub(/,/, "", v); lost += v + 0
            }
            /^==[0-9]+== +at 0x/ { records++ }
            END {
                bad = done ? errs > 0 || lost > 0 : records > 0
                if (bad)
                    printf "%s errors, %d bytes lost, %d stacks", done ? errs : "?", lost, records
                else
                    printf "clean%s", done ? "" : " (no summary: killed)"
            }' "$f")
        if [[ $verdict != clean* ]]; then
            bad=1
            printf '\n===== memcheck: %s: %s =====\n' "$f" "$verdict" >&2
            sed -n '/Parent PID/,$p' "$f" | grep -v '^==[0-9]*== *$' | head -n 150 >&2
        fi
    done
    if ((bad)); then
        T_VG_REPORTED=1
        return 1
    fi
    return 0
}

# ---- ports --------------------------------------------------------------------

# Prints N distinct loopback ports that are free for both TCP and UDP right
# now (the SIP port serves both). The sockets stay open until all N are
# chosen so the kernel cannot hand out the same port twice.
t_free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
n = int(sys.argv[1])
held, ports = [], []
for _ in range(200):
    if len(ports) == n:
        break
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        t.close(); u.close()
        continue
    held += [t, u]
    ports.append(p)
if len(ports) != n:
    sys.exit("could not find %d free ports" % n)
print(" ".join(map(str, ports)))
PY
}

# Waits until something listens on PORT (udp|tcp) in namespace NS
# (default T_NS), up to SECS (x T_SLOW).
t_wait_listen() {
    local port=$1 proto=$2 secs=${3:-10} ns=${4-$T_NS} i flag=-ltn
    [[ $proto == udp ]] && flag=-lun
    for ((i = 0; i < secs * 20 * T_SLOW; i++)); do
        t_in_ns "$ns" ss -H "$flag" "sport = :$port" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    return 1
}

# ---- the stack -----------------------------------------------------------------

t_sipp_transport_flag() { [[ $T_TRANSPORT == tcp ]] && echo t1 || echo u1; }

# Starts imsplit-cp and T_WORKERS workers and waits until the CP reports
# all of them live. Extra arguments go to imsplit-cp (they may override the
# defaults, which come first).
t_start_stack() {
    t_start_cp "$@"
    local i
    for ((i = 1; i <= T_WORKERS; i++)); do
        t_start_worker "$i" nowait
    done
    t_wait_ready
    t_log "stack up: sip $T_HOST:$T_SIP_PORT ctl $T_CTL_EP" \
        "metrics cp=$T_CP_METRICS_PORT up=${T_UP_METRICS_PORTS[*]}" \
        "next hop $(t_next_hop)"
}

t_next_hop() {
    local hop=sip:$T_HOST:$T_UAS_PORT
    [[ $T_TRANSPORT == tcp ]] && hop+=";transport=tcp"
    echo "$hop"
}

# Picks every port of the stack (once per test) and starts imsplit-cp with
# the default flags, then the given ones (which may override them). Does
# not wait for workers.
t_start_cp() {
    if [[ -z $T_SIP_PORT ]]; then
        local n=$((5 + T_WORKERS)) ports
        ports=$(t_free_ports "$n") || t_fail "no free ports"
        read -r -a ports <<<"$ports"
        T_SIP_PORT=${ports[0]} T_UAS_PORT=${ports[1]} T_UAC_PORT=${ports[2]}
        T_CTL_PORT=${ports[3]} T_CP_METRICS_PORT=${ports[4]}
        T_CTL_EP=tcp://$T_HOST:$T_CTL_PORT
        T_UP_METRICS_PORTS=("${ports[@]:5}")
    fi
    T_CP_ARGS=("$@")
    t_spawn cp "$T_CP_BIN" \
        --sip "udp:$T_HOST:$T_SIP_PORT" --sip "tcp:$T_HOST:$T_SIP_PORT" \
        --ctl "$T_CTL_EP" --next-hop "$(t_next_hop)" \
        --metrics "$T_HOST:$T_CP_METRICS_PORT" \
        --heartbeat-ms 200 --liveness 5 --log-level info "$@"
    T_CP_PID=${T_PID_OF[cp]}
}

# Starts the CP again after t_kill cp (or a stop): same ports, same flags,
# a new epoch. Waits until it is ready and every worker not gone is live.
t_restart_cp() {
    [[ -n ${T_RC_OF[cp]:-} ]] || t_fail "t_restart_cp: the CP is still running"
    t_start_cp "${T_CP_ARGS[@]}"
    t_wait_ready
    t_log "CP restarted (pid $T_CP_PID)"
}

# t_start_worker I [nowait]: starts worker up-I (1-based) in its namespace
# with its metrics port; used again after t_kill up-I (same id, new epoch).
# Unless "nowait", waits until the CP counts every worker not gone as live.
t_start_worker() {
    local i=$1 name=up-$1
    ((i >= 1 && i <= T_WORKERS)) || t_fail "t_start_worker: no worker $i of $T_WORKERS"
    [[ -z ${T_PID_OF[$name]:-} || -n ${T_RC_OF[$name]:-} ]] ||
        t_fail "t_start_worker: $name is still running"
    local host ns mport=${T_UP_METRICS_PORTS[$((i - 1))]}
    host=$(t_host_of "$name")
    ns=$(t_ns_of "$name")
    local known=0 n
    for n in "${T_UP_NAMES[@]}"; do [[ $n == "$name" ]] && known=1; done
    ((known)) || T_UP_NAMES+=("$name")
    t_spawn_ns "$ns" "$name" "$T_UP_BIN" --cp "$T_CTL_EP" --id "$name" \
        --msrp "$host:0" --metrics "$host:$mport" "${T_UP_ARGS[@]}"
    [[ ${2:-} == nowait ]] && return 0
    t_wait_metric cp 'imsplit_cp_workers{state="live"}' -eq "$(t_workers_expected)" 10 ||
        t_fail "$name did not become live at the CP"
    t_log "$name started (pid ${T_PID_OF[$name]})"
}

# Number of workers that should be live: all but those killed on purpose.
t_workers_expected() {
    local n=0 name
    for name in "${T_UP_NAMES[@]}"; do [[ -n ${T_GONE[$name]:-} ]] || n=$((n + 1)); done
    echo "$n"
}

# t_kill NAME [SIG]: sends SIG (default KILL) to process NAME of this test
# (a daemon or a sipp; STOP and CONT too) and records the time just before
# it in T_KILL_TS[NAME]. KILL waits until it is gone and marks it gone:
# t_check_daemons and t_finish leave it alone until t_start_worker or
# t_restart_cp starts it again.
t_kill() {
    local name=$1 sig=${2:-KILL} pid=${T_PID_OF[$1]:-}
    [[ -n $pid ]] && t_alive "$pid" || t_fail "t_kill: $name is not running"
    T_KILL_TS[$name]=$(t_now)
    kill -s "$sig" "$pid"
    if [[ $sig == KILL || $sig == 9 ]]; then
        T_GONE[$name]=1
        t_wait_exit "$name" 5 || t_fail "$name (pid $pid) survived SIGKILL"
    fi
    t_log "sent SIG$sig to $name (pid $pid)"
}

t_wait_ready() {
    local i code want
    for ((i = 0; i < 200 * T_SLOW; i++)); do
        t_alive "$T_CP_PID" || t_fail "imsplit-cp exited during start-up"
        code=$(t_in_ns "$T_NS" curl -s -o /dev/null -w '%{http_code}' --max-time "$T_SLOW" \
            "http://$T_HOST:$T_CP_METRICS_PORT/readyz" 2>/dev/null || true)
        [[ $code == 200 ]] && break
        sleep 0.05
    done
    [[ $code == 200 ]] || t_fail "CP /readyz not 200 after $((10 * T_SLOW)) s (last: ${code:-none})"
    want=$(t_workers_expected)
    t_wait_metric cp 'imsplit_cp_workers{state="live"}' -eq "$want" 10 ||
        t_fail "not all $want workers live"
}

# ---- sipp ------------------------------------------------------------------------

# Common sipp flags: loopback, one socket, no keyboard, traces in $T_DIR.
# -timeout bounds sipp itself; t_sipp_wait bounds it again from outside,
# since sipp only honours -timeout between calls' retransmissions.
t_sipp_common() {
    local name=$1
    printf '%s\n' -i "$T_HOST" -t "$(t_sipp_transport_flag)" -nostdin \
        -timeout 120s -timeout_error \
        -trace_err -error_file "$T_DIR/$name.err" \
        -trace_logs -log_file "$T_DIR/$name.events"
    if [[ ${T_SIPP_TRACE_MSG:-1} == 1 ]]; then
        printf '%s\n' -trace_msg -message_file "$T_DIR/$name.msg"
    fi
}

# A scenario name is looked up in tests/sip; a path with a slash is used as
# it is (tests/fault/..., or a t_scenario copy).
t_scen_path() {
    if [[ $1 == */* ]]; then echo "$1"; else echo "$T_SCEN_DIR/$1"; fi
}

# t_sipp_uas NAME SCENARIO [sipp args]: the controlling side on T_UAS_PORT,
# one call unless -m is given. Returns once it listens.
t_sipp_uas() {
    local name=$1 scen=$2
    shift 2
    local -a common
    mapfile -t common < <(t_sipp_common "$name")
    t_spawn "$name" "$SIPP" -sf "$(t_scen_path "$scen")" -p "$T_UAS_PORT" \
        "${common[@]}" -m 1 "$@"
    t_wait_listen "$T_UAS_PORT" "$T_TRANSPORT" 10 ||
        t_fail "sipp $name does not listen on $T_UAS_PORT/$T_TRANSPORT"
}

# t_sipp_uac NAME SCENARIO [sipp args]: the IM client, towards the CP.
t_sipp_uac() {
    local name=$1 scen=$2
    shift 2
    local -a common
    mapfile -t common < <(t_sipp_common "$name")
    t_spawn "$name" "$SIPP" -sf "$(t_scen_path "$scen")" -p "$T_UAC_PORT" \
        "${common[@]}" -m 1 "$@" "$T_HOST:$T_SIP_PORT"
}

# t_scenario FILE KEY=VALUE...: writes $T_DIR/<basename of FILE> with every
# @KEY@ replaced by VALUE and prints its path. For what sipp cannot take as
# a -key, such as a <recv> timeout.
t_scenario() {
    local src out kv
    src=$(t_scen_path "$1")
    out=$T_DIR/$(basename "$src")
    shift
    cp -- "$src" "$out"
    for kv in "$@"; do
        KEY=${kv%%=*} VAL=${kv#*=} python3 - "$out" <<'PY'
import os, sys
p = sys.argv[1]
s = open(p, encoding="utf-8").read()
s = s.replace("@%s@" % os.environ["KEY"], os.environ["VAL"])
open(p, "w", encoding="utf-8").write(s)
PY
    done
    grep -q '@[A-Z_]*@' "$out" && t_fail "t_scenario: $out still has a @KEY@"
    echo "$out"
}

# t_sipp_wait NAME SECS: waits for sipp NAME to finish; kills it after SECS.
t_sipp_wait() {
    local name=$1 secs=$2
    if ! t_wait_exit "$name" "$secs"; then
        t_log "sipp $name still running after ${secs}s"
        t_stop "$name" KILL 2
    fi
}

# Fails unless every named sipp exited 0 (all its calls succeeded).
t_expect_sipp_ok() {
    local name rc
    for name in "$@"; do
        t_sipp_wait "$name" 120
        rc=${T_RC_OF[$name]:-unknown}
        if [[ $rc != 0 ]]; then
            if [[ -s $T_DIR/$name.err ]]; then
                echo "--- $name errors:" >&2
                tail -c 2000 "$T_DIR/$name.err" >&2
                echo >&2
            fi
            t_fail "sipp $name exited $rc (0 means every call succeeded)"
        fi
    done
}

# t_event NAME EV [N]: the [timestamp] (epoch seconds) of the N-th (default
# first) "ev=EV " line sipp NAME logged. Empty if there is none.
t_event() {
    local name=$1 ev=$2 n=${3:-1}
    awk -v ev="ev=$ev" -v n="$n" '
        index($0, ev " ") == 1 { if (++k == n) { print $NF; exit } }' \
        "$T_DIR/$name.events" 2>/dev/null
}

# t_event_field NAME EV KEY: value of KEY=... (up to the next " key=" or the
# end) on the first "ev=EV" line, leading/trailing blanks removed.
t_event_field() {
    local name=$1 ev=$2 key=$3
    python3 - "$T_DIR/$name.events" "$ev" "$key" <<'PY'
import re, sys
path, ev, key = sys.argv[1:]
try:
    lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
except OSError:
    sys.exit(0)
for line in lines:
    if line.startswith("ev=%s " % ev):
        m = re.search(r"(?:^| )%s=(.*?)(?= [a-z_]+=|$)" % re.escape(key), line)
        if m:
            print(m.group(1).strip())
        break
PY
}

# t_event_count NAME EV: number of "ev=EV " lines.
t_event_count() {
    local n
    n=$(grep -c "^ev=$2 " "$T_DIR/$1.events" 2>/dev/null) || true
    echo "${n:-0}"
}

# ---- numbers ---------------------------------------------------------------------

# t_assert_near WHAT ACTUAL EXPECTED TOLERANCE (floats)
t_assert_near() {
    local what=$1 actual=$2 expected=$3 tol=$4
    [[ -n $actual ]] || t_fail "$what: no value"
    if ! awk -v a="$actual" -v e="$expected" -v t="$tol" \
        'BEGIN { d = a - e; if (d < 0) d = -d; exit !(d <= t) }'; then
        t_fail "$what: $actual, expected $expected +- $tol"
    fi
    t_log "ok: $what = $actual (expected $expected +- $tol)"
}

# t_diff_ms A B: (B - A) in milliseconds, 1 decimal.
t_diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

# ---- metrics ---------------------------------------------------------------------

t_metrics_port() {
    case $1 in
        cp) echo "$T_CP_METRICS_PORT" ;;
        up-*) echo "${T_UP_METRICS_PORTS[$((${1#up-} - 1))]}" ;;
        *) echo "$1" ;;
    esac
}

# Address and network namespace of cp / up-N (anything else: the CP's).
t_host_of() {
    case $1 in
        up-*) echo "${T_UP_HOST[$((${1#up-} - 1))]:-$T_HOST}" ;;
        *) echo "$T_HOST" ;;
    esac
}
t_ns_of() {
    case $1 in
        up-*) echo "${T_UP_NS[$((${1#up-} - 1))]:-$T_NS}" ;;
        *) echo "$T_NS" ;;
    esac
}

# t_metrics_body WHO: the /metrics text of cp / up-N.
t_metrics_body() {
    t_in_ns "$(t_ns_of "$1")" curl -s --max-time $((2 * T_SLOW)) \
        "http://$(t_host_of "$1"):$(t_metrics_port "$1")/metrics" 2>/dev/null
}

# t_metric WHO SERIES: value of one series ('name' or 'name{labels}' exactly
# as exported) from cp / up-N; prints "missing" if absent or unreachable.
t_metric() {
    local body
    body=$(t_metrics_body "$1") || {
        echo missing
        return 0
    }
    awk -v s="$2" '
        $1 == s { print $2; found = 1; exit }
        END { if (!found) print "missing" }' <<<"$body"
}

# t_metric_up_sum SERIES: the series summed over all workers (but those
# killed on purpose and not started again).
t_metric_up_sum() {
    local total=0 name v
    for name in "${T_UP_NAMES[@]}"; do
        [[ -z ${T_GONE[$name]:-} ]] || continue
        v=$(t_metric "$name" "$1")
        [[ $v == missing ]] && { echo missing; return 0; }
        total=$(awk -v a="$total" -v b="$v" 'BEGIN { printf "%.0f", a + b }')
    done
    echo "$total"
}

t_cmp() { # VALUE OP EXPECTED with OP one of -eq -ne -lt -le -gt -ge
    [[ $1 != missing && -n $1 ]] || return 1
    awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
        a += 0; b += 0; r = 0
        if (op == "-eq") r = (a == b)
        else if (op == "-ne") r = (a != b)
        else if (op == "-lt") r = (a < b)
        else if (op == "-le") r = (a <= b)
        else if (op == "-gt") r = (a > b)
        else if (op == "-ge") r = (a >= b)
        exit !r
    }'
}

# t_assert_metric WHO SERIES OP VALUE (WHO: cp, up-N, or "up" for the sum)
t_assert_metric() {
    local v
    if [[ $1 == up ]]; then v=$(t_metric_up_sum "$2"); else v=$(t_metric "$1" "$2"); fi
    t_cmp "$v" "$3" "$4" || t_fail "metric $1 $2 = $v, expected $3 $4"
    t_log "ok: $1 $2 = $v ($3 $4)"
}

# t_wait_metric WHO SERIES OP VALUE SECS: polls until true, up to SECS
# (x T_SLOW); returns 1 on timeout (callers decide whether that fails the
# test).
t_wait_metric() {
    local who=$1 series=$2 op=$3 want=$4 secs=$5 v i
    for ((i = 0; i < secs * 20 * T_SLOW; i++)); do
        if [[ $who == up ]]; then v=$(t_metric_up_sum "$series"); else v=$(t_metric "$who" "$series"); fi
        t_cmp "$v" "$op" "$want" && return 0
        t_check_daemons
        sleep 0.05
    done
    t_log "metric $who $series = $v, still not $op $want after $((secs * T_SLOW))s"
    return 1
}

# ---- logs ------------------------------------------------------------------------

# t_count_log NAME WORD...: lines of process NAME's log containing every
# WORD (fixed strings, e.g. event=release_sent direction=client).
t_count_log() {
    local name=$1
    shift
    python3 - "$T_DIR/$name.log" "$@" <<'PY'
import sys
path, words = sys.argv[1], sys.argv[2:]
try:
    lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
except OSError:
    lines = []
print(sum(1 for l in lines if all((" " + w + " ") in (" " + l + " ") for w in words)))
PY
}

# t_log_times NAME WORD...: the ts= of every line of NAME's log containing
# every WORD, as epoch seconds, one per line (daemon logs are logfmt with an
# ISO 8601 ts first).
t_log_times() {
    local name=$1
    shift
    python3 - "$T_DIR/$name.log" "$@" <<'PY'
import datetime, re, sys
path, words = sys.argv[1], sys.argv[2:]
try:
    lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
except OSError:
    lines = []
for l in lines:
    if not all((" " + w + " ") in (" " + l + " ") for w in words):
        continue
    m = re.search(r"(?:^| )ts=(\S+)", l)
    if not m:
        continue
    ts = m.group(1).strip('"')
    if ts.endswith("Z"):
        ts = ts[:-1] + "+00:00"
    try:
        d = datetime.datetime.fromisoformat(ts)
    except ValueError:
        continue
    if d.tzinfo is None:
        d = d.astimezone()
    print("%.6f" % d.timestamp())
PY
}

# t_assert_log NAME OP COUNT WORD...: e.g. t_assert_log cp -eq 1
#   event=release_sent direction=client reason=bye_2xx
# Waits up to 5 s (x T_SLOW) for the count to be reached (logs trail the
# metrics).
t_assert_log() {
    local name=$1 op=$2 want=$3 n i
    shift 3
    for ((i = 0; i < 100 * T_SLOW; i++)); do
        n=$(t_count_log "$name" "$@")
        t_cmp "$n" "$op" "$want" && break
        sleep 0.05
    done
    t_cmp "$n" "$op" "$want" || t_fail "$name log: $n lines with '$*', expected $op $want"
    t_log "ok: $name log has $n lines with '$*'"
}

# ---- imsplit-ctl -----------------------------------------------------------------

# Under valgrind each run has its own report, ctl.PID.vg.
t_ctl() {
    t_vg_cmd "$T_DIR/ctl.%p.vg" "$T_CTL_BIN" --ctl "$T_CTL_EP" --timeout $((2000 * T_SLOW)) "$@"
    t_in_ns "$T_NS" "${T_VG_CMD[@]}"
}

# One row per worker the CP knows, from `imsplit-ctl --json workers`:
# "ID STATE SESSIONS LEGS MSRP EPOCH", STATE live|draining|dead, LEGS as
# the worker's last heartbeat said.
t_ctl_workers() {
    local json
    json=$(t_ctl --json workers) || return 1
    python3 -c '
import json, sys
d = json.loads(sys.argv[1])
for w in sorted(d["query_result"].get("workers", []), key=lambda w: w["node_id"]):
    st = w.get("state", "").replace("WORKER_", "").lower()
    print(w["node_id"], st, int(w.get("sessions", 0)), int(w.get("legs_active", 0)),
          w.get("msrp_address", "-"), w.get("epoch", 0))
' "$json"
}

# t_ctl_worker ID COLUMN: one column (state|sessions|legs|msrp|epoch) of
# worker ID's row; "missing" if the CP does not list it.
t_ctl_worker() {
    local rows
    rows=$(t_ctl_workers) || { echo missing; return 0; }
    awk -v id="$1" -v col="$2" '
        BEGIN { c["state"] = 2; c["sessions"] = 3; c["legs"] = 4; c["msrp"] = 5; c["epoch"] = 6 }
        $1 == id { print $(c[col]); found = 1 }
        END { if (!found) print "missing" }' <<<"$rows"
}

# t_worker_of_path PATH: the up-N whose MSRP address (HOST:PORT, as the CP
# lists it) is the authority of an msrp:// PATH; empty if none.
t_worker_of_path() {
    local p=${1#msrp://}
    p=${p%%/*}
    t_ctl_workers | awk -v a="$p" '$5 == a { print $1; exit }'
}

# t_ctl_sessions_on WORKER: sessions the CP lists on WORKER (the CP lists
# at most 1000).
t_ctl_sessions_on() {
    local json
    json=$(t_ctl --json sessions) || return 1
    python3 -c '
import json, sys
d = json.loads(sys.argv[1])
print(sum(1 for s in d["query_result"].get("sessions", []) if s.get("worker_id") == sys.argv[2]))
' "$json" "$1"
}

# Number of data rows `imsplit-ctl sessions` prints (the header excluded).
t_ctl_session_rows() {
    local out
    out=$(t_ctl sessions) || return 1
    printf '%s\n' "$out" | awk 'NR > 1 && NF > 0' | wc -l
}

# ---- the final check -------------------------------------------------------------

# Nothing is left: no legs, sockets or buffered bytes on any worker, no
# session or unacknowledged release in the CP, and imsplit-ctl agrees.
assert_no_leaks() {
    local i ok=0 name
    for ((i = 0; i < 100 * T_SLOW; i++)); do
        ok=1
        for name in "${T_UP_NAMES[@]}"; do
            [[ -z ${T_GONE[$name]:-} ]] || continue
            t_cmp "$(t_metric "$name" imsplit_up_legs_active)" -eq 0 || ok=0
            t_cmp "$(t_metric "$name" imsplit_up_sockets_open)" -eq 0 || ok=0
            t_cmp "$(t_metric "$name" imsplit_up_buffer_bytes)" -eq 0 || ok=0
        done
        t_cmp "$(t_metric cp imsplit_cp_sessions_active)" -eq 0 || ok=0
        t_cmp "$(t_metric cp imsplit_cp_releases_pending)" -eq 0 || ok=0
        ((ok)) && break
        sleep 0.05
    done
    if ((!ok)); then
        for name in cp "${T_UP_NAMES[@]}"; do
            [[ -z ${T_GONE[$name]:-} ]] || continue
            echo "--- $name metrics:" >&2
            t_metrics_body "$name" |
                grep -E '^imsplit_(cp_sessions_active|cp_releases_pending|up_legs_active|up_sockets_open|up_buffer_bytes)' >&2 || true
        done
        t_fail "resources left after $((5 * T_SLOW)) s (see metrics above)"
    fi
    local rows
    rows=$(t_ctl_session_rows) || t_fail "imsplit-ctl sessions failed"
    if [[ $rows != 0 ]]; then
        t_ctl sessions >&2 || true
        t_fail "imsplit-ctl sessions lists $rows sessions, expected none"
    fi
    t_log "ok: no legs, sockets, buffers, sessions or pending releases left"
}

# Ends a passing test: leak check, then a graceful stop of the stack; a
# daemon that does not exit 0 on TERM (crash, sanitizer report, hang)
# fails the test, and so does any memcheck report with an error or a leak
# (IMSPLIT_VALGRIND=1). A daemon killed on purpose and not started again
# has nothing left to check.
t_finish() {
    assert_no_leaks
    local name rc
    [[ -n ${T_GONE[cp]:-} ]] && t_fail "t_finish: the CP was killed and not restarted"
    t_stop cp TERM 8
    for name in "${T_UP_NAMES[@]}"; do t_stop "$name" TERM 5; done
    for name in cp "${T_UP_NAMES[@]}"; do
        if [[ -n ${T_GONE[$name]:-} ]]; then
            t_log "$name was killed by the test and not started again: not checked"
            continue
        fi
        rc=${T_RC_OF[$name]:-unknown}
        [[ $rc == 0 ]] || t_vg_check ||
            t_fail "$name exited $rc on SIGTERM: memcheck found errors (reports above)"
        [[ $rc == 0 ]] || t_fail "$name exited $rc on SIGTERM (expected 0)"
    done
    t_vg_check || t_fail "memcheck found errors or leaks (reports above)"
    T_DONE=1
    t_log "PASS"
}

# ---- network namespaces ----------------------------------------------------------

# t_netns_create NS...: creates the namespaces (lo up in each) and has the
# cleanup delete them, together with every interface moved into them.
# Returns 77 (the ctest skip code) with a message if this host does not
# allow it, so a test can `t_netns_create ... || exit 77`.
t_netns_create() {
    local ns
    for ns in "$@"; do
        if ! ip netns add "$ns" 2>"$T_DIR/netns.err"; then
            t_log "SKIP: cannot create network namespace $ns: $(cat "$T_DIR/netns.err")"
            return 77
        fi
        T_NETNS+=("$ns")
        ip -n "$ns" link set lo up || t_fail "cannot set lo up in $ns"
    done
}

t_netns_delete_all() {
    local ns
    for ns in "${T_NETNS[@]}"; do
        ip netns del "$ns" 2>/dev/null || echo "$T_NAME: could not delete netns $ns" >&2
    done
    T_NETNS=()
}
