#!/usr/bin/env bash
# Builds imsplit and runs one control plane and two user-plane workers on
# loopback until Ctrl-C:
#   imsplit-cp  SIP udp+tcp 127.0.0.1:5060, workers on tcp://127.0.0.1:5600,
#               next hop sip:127.0.0.1:5070, metrics http://127.0.0.1:9100
#   imsplit-up  up-1 (metrics :9101) and up-2 (metrics :9102)
# The CP logs to this terminal; worker logs go to build/run/.
# Environment: IMSPLIT_SESSION_EXPIRES, IMSPLIT_MIN_SE, IMSPLIT_LOG_LEVEL
# and the other IMSPLIT_* settings are read by the daemons themselves.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DIMSPLIT_TESTS=ON >/dev/null
# Only what runs here; the test binaries are test.sh's business.
cmake --build build -j "$(nproc)" --target imsplit-cp imsplit-up imsplit-ctl

# Job control puts each daemon in its own process group, so Ctrl-C in the
# terminal reaches only this script, which then stops the daemons in order
# (a CP hit by SIGINT and then by our SIGTERM would skip its graceful stop).
set -m

run_dir=$root/build/run
mkdir -p "$run_dir"
pids=()

stop() {
    trap - INT TERM EXIT
    local pid i
    # The CP first: on TERM it ends its sessions (BYE both legs) and waits
    # for the releases before it exits; then the workers.
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    echo "run: stopped"
}
trap stop EXIT
trap 'exit 0' INT TERM

build/cp/imsplit-cp --sip udp:127.0.0.1:5060 --sip tcp:127.0.0.1:5060 \
    --ctl tcp://127.0.0.1:5600 --next-hop sip:127.0.0.1:5070 \
    --metrics 127.0.0.1:9100 &
pids+=($!)
for n in 1 2; do
    build/up/imsplit-up --cp tcp://127.0.0.1:5600 --id "up-$n" \
        --msrp 127.0.0.1:0 --metrics "127.0.0.1:910$n" \
        2>"$run_dir/up-$n.log" &
    pids+=($!)
done

for ((i = 0; i < 100; i++)); do
    curl -sf -o /dev/null --max-time 1 http://127.0.0.1:9100/readyz && break
    sleep 0.1
done

cat <<INFO

imsplit is running (pids ${pids[*]}); Ctrl-C stops it.

  Point the IM Client at     sip:127.0.0.1:5060 (UDP or TCP)
  Controlling IM server at   sip:127.0.0.1:5070 (where the CP sends its INVITEs)
  Metrics                    curl http://127.0.0.1:9100/metrics  (workers :9101, :9102)
  Workers / sessions         build/tools/imsplit-ctl workers   |   ... sessions
  Worker logs                $run_dir/up-1.log, up-2.log

Try it with sipp, in two more terminals (controlling side first):
  sipp -sf tests/sip/ctrl_answer.xml -i 127.0.0.1 -p 5070 -m 1
  sipp -sf tests/sip/client_bye.xml -key se 1800 -d 5000 -i 127.0.0.1 -p 5061 -m 1 127.0.0.1:5060
To watch a session timer expire, start this script with
IMSPLIT_SESSION_EXPIRES=6 IMSPLIT_MIN_SE=2 (sudo -E) and use
  sipp -sf tests/sip/ctrl_expiry.xml -key se 6 -i 127.0.0.1 -p 5070 -m 1
  sipp -sf tests/sip/client_expiry.xml -key se 6 -i 127.0.0.1 -p 5061 -m 1 127.0.0.1:5060

INFO

# Returns when any daemon exits (then the trap stops the others) or on
# Ctrl-C.
wait -n "${pids[@]}" || true
echo "run: a daemon exited; stopping the rest" >&2
exit 1
