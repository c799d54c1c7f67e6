# Helpers for the protocol tests (tests/proto) that play one side of the
# CP-UP protocol with `imsplit-ctl worker|cp --script FILE`. Source it after
# lib.sh:
#
#   t_ctl_spawn NAME CMD...         like t_spawn, but stdout (one JSON line
#                                   per message) to NAME.out, stderr to
#                                   NAME.log
#   t_ctl_fake_cp NAME PORT SCRIPT [ARGS]
#                                   imsplit-ctl cp bound to 127.0.0.1:PORT,
#                                   returns once it listens
#   t_ctl_fake_worker NAME ID SCRIPT [ARGS]
#                                   imsplit-ctl worker ID connected to the
#                                   CP at T_CTL_EP
#   t_ctl_start_up NAME CTL_EP METRICS_PORT
#                                   a real imsplit-up (no real CP around):
#                                   its metrics are read with t_metric NAME
#   t_ctl_start_cp [CP FLAGS]       the real CP without workers, serving
#                                   metrics
#   t_ctl_done NAME SECS            waits for a fake peer to end its script;
#                                   fails the test unless it exited 0
#   t_ctl_py NAME EXPR              a Python expression over NAME.out (see
#                                   below), printed
#   t_ctl_check NAME EXPR WHAT      fails the test with WHAT unless EXPR is
#                                   true
#   t_ctl_finish_up                 ends a test that has workers but no real
#                                   CP: leak check, TERM, exit 0
#
# Script files live next to the tests (tests/proto/*.ctl); scripts read
# their parameters from the environment (${SID}), so tests export them.

T_PROTO_DIR=$IMSPLIT_SRC_DIR/tests/proto

t_ctl_spawn() {
    local name=$1
    shift
    "$@" >"$T_DIR/$name.out" 2>"$T_DIR/$name.log" &
    local pid=$!
    T_PIDS+=("$pid")
    T_PID_OF[$name]=$pid
}

t_ctl_fake_cp() {
    local name=$1 port=$2 script=$3
    shift 3
    t_ctl_spawn "$name" "$T_CTL_BIN" cp --bind "tcp://127.0.0.1:$port" \
        --script "$script" "$@"
    t_wait_listen "$port" tcp 10 || t_fail "fake CP $name does not listen on $port"
}

t_ctl_fake_worker() {
    local name=$1 id=$2 script=$3
    shift 3
    t_ctl_spawn "$name" "$T_CTL_BIN" worker --ctl "$T_CTL_EP" --id "$id" \
        --script "$script" "$@"
}

t_ctl_start_up() {
    local name=$1 ep=$2 mport=$3
    T_UP_NAMES+=("$name")
    T_UP_METRICS_PORTS[$((${name#up-} - 1))]=$mport
    t_spawn "$name" "$T_UP_BIN" --cp "$ep" --id "$name" --msrp 127.0.0.1:0 \
        --metrics "127.0.0.1:$mport" --log-level debug
    local i code
    for ((i = 0; i < 200; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
            "http://127.0.0.1:$mport/metrics" 2>/dev/null || true)
        [[ $code == 200 ]] && return 0
        t_alive "${T_PID_OF[$name]}" || t_fail "$name exited during start-up"
        sleep 0.05
    done
    t_fail "$name serves no metrics after 10 s"
}

t_ctl_start_cp() {
    T_WORKERS=0
    t_start_cp "$@"
    local i code
    for ((i = 0; i < 200; i++)); do
        t_alive "$T_CP_PID" || t_fail "imsplit-cp exited during start-up"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
            "http://127.0.0.1:$T_CP_METRICS_PORT/metrics" 2>/dev/null || true)
        [[ $code == 200 ]] && break
        sleep 0.05
    done
    [[ $code == 200 ]] || t_fail "CP serves no metrics after 10 s"
    t_log "CP up: sip 127.0.0.1:$T_SIP_PORT ctl $T_CTL_EP metrics $T_CP_METRICS_PORT"
}

t_ctl_done() {
    local name=$1 secs=$2 rc
    if ! t_wait_exit "$name" "$secs"; then
        t_stop "$name" KILL 2
        t_fail "$name still running its script after ${secs}s"
    fi
    rc=${T_RC_OF[$name]}
    if [[ $rc != 0 ]]; then
        grep -v '^# ' "$T_DIR/$name.log" | tail -n 8 >&2 || true
        t_fail "$name: script failed (exit $rc, see above)"
    fi
    t_log "ok: $name ran its script to the end"
}

# The expression sees L (every JSON line of NAME.out) and:
#   ins(body) / outs(body) / drops(body)  envelopes received / sent
#                                         (resends included) / dropped,
#                                         oldest first (body None: all)
#   b(env)                                the body message of an envelope
t_ctl_py() {
    python3 - "$T_DIR/$1.out" "$2" <<'PY'
import json, sys
path, expr = sys.argv[1], sys.argv[2]
L = []
for line in open(path, encoding="utf-8", errors="replace"):
    line = line.strip()
    if line.startswith("{"):
        L.append(json.loads(line))
def recs(d, body=None):
    return [r["env"] for r in L if r.get("dir") == d and r.get("env")
            and (body is None or r["env"].get("body") == body)]
def ins(body=None): return recs("in", body)
def outs(body=None): return recs("out", body)
def drops(body=None): return recs("drop", body)
def b(env): return env[env["body"]]
print(eval(expr))
PY
}

t_ctl_check() {
    local name=$1 expr=$2 what=$3 v
    v=$(t_ctl_py "$name" "$expr") || t_fail "$what: cannot evaluate: $expr"
    [[ $v == True ]] || t_fail "$what ($expr is $v)"
    t_log "ok: $what"
}

t_ctl_finish_up() {
    local name rc i ok
    for ((i = 0; i < 100; i++)); do
        ok=1
        for name in "${T_UP_NAMES[@]}"; do
            t_cmp "$(t_metric "$name" imsplit_up_legs_active)" -eq 0 || ok=0
            t_cmp "$(t_metric "$name" imsplit_up_sockets_open)" -eq 0 || ok=0
            t_cmp "$(t_metric "$name" imsplit_up_buffer_bytes)" -eq 0 || ok=0
        done
        ((ok)) && break
        sleep 0.05
    done
    ((ok)) || t_fail "legs, sockets or buffers left on the workers"
    for name in "${T_UP_NAMES[@]}"; do t_stop "$name" TERM 5; done
    for name in "${T_UP_NAMES[@]}"; do
        rc=${T_RC_OF[$name]:-unknown}
        [[ $rc == 0 ]] || t_fail "$name exited $rc on SIGTERM (expected 0)"
    done
    T_DONE=1
    t_log "PASS"
}
