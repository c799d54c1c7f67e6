# The reference stack of bench/setup_rate.sh and bench/sessions.sh: Kamailio
# (bench/ref/kamailio.cfg: stateful proxy, dialog + sst session timers)
# with its media anchored on rtpengine (userspace only, ng protocol over
# loopback UDP). Source it, then:
#
#   ref_install                 install kamailio and rtpengine if missing
#   ref_start DIR NEXT_HOP MIN_SE CALLS
#                               start rtpengine instance(s) and kamailio on
#                               free loopback ports, files under DIR; sized
#                               for CALLS calls at once; waits until ready
#   ref_stop                    stop them (TERM, then KILL), by PID
#   ref_alive                   0 if every reference process still runs
#   ref_kam_stat NAME           a Kamailio statistic (e.g.
#                               dialog:active_dialogs), via kamcmd
#   ref_kam_shm_used            bytes of Kamailio shared memory in use
#   ref_rtp_sessions            calls rtpengine holds, over all instances
#   ref_pids                    every PID of the stack: kamailio's main
#                               process and its children, rtpengine's
#   ref_proc_mem PID...         "RSS_KB PSS_KB" summed over the PIDs
#   ref_proc_ticks PID...       utime+stime clock ticks summed over them
#
# After ref_start: REF_SIP_PORT (Kamailio's UDP port on 127.0.0.1),
# REF_KAM_PID (main process), REF_KAM_PIDS (main and children),
# REF_RTP_PIDS, REF_NG_PORTS, REF_RTP_ADDRS (one per rtpengine instance).
#
# rtpengine binds two UDP ports (RTP and RTCP) per media section on each
# side of a call, four descriptors per call, and one process can open no
# more descriptors than RLIMIT_NOFILE allows. ref_start therefore starts
# one rtpengine instance per REF_RTP_CALLS_PER_INSTANCE calls (default:
# 80 % of what the hard limit allows, 3950 with a limit of 20000, at most
# 7000), each with its own media address (127.0.0.2, 127.0.0.3, ...; all of 127/8 is
# local) and ng port; Kamailio's rtpengine module spreads calls over them
# by a CRC32 of the Call-ID and keeps each call on its instance. With a
# limit of L descriptors one instance holds about (L - 100) / 4 calls.
#
# Tunables (environment): REF_KAM_CHILDREN (UDP worker processes, default
# 8, Kamailio's own default), REF_KAM_SHM_MB / REF_KAM_PKG_MB (shared /
# per-process memory, default sized from CALLS), REF_KAM_EXTRA (more
# kamailio options, e.g. "-x tlsf"), REF_RTP_FLAGS (rtpengine_offer/answer
# flags), REF_RTP_THREADS (rtpengine --num-threads, default 2), KAMAILIO,
# RTPENGINE, KAMCMD (binaries).
#
# Ground rules, as in tests/lib/lib.sh: everything listens on loopback
# on ports the kernel just handed out, every wait is bounded, and only
# the PIDs started here are ever signalled.

REF_SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REF_CFG=${REF_CFG:-$REF_SRC_DIR/kamailio.cfg}
KAMAILIO=${KAMAILIO:-/usr/sbin/kamailio}
RTPENGINE=${RTPENGINE:-/usr/bin/rtpengine}
KAMCMD=${KAMCMD:-/usr/sbin/kamcmd}
REF_RTP_CALLS_PER_INSTANCE=${REF_RTP_CALLS_PER_INSTANCE:-}
REF_RTP_FLAGS=${REF_RTP_FLAGS:-replace-origin replace-session-connection}

REF_DIR="" REF_SIP_PORT="" REF_KAM_PID="" REF_CTL=""
REF_KAM_PIDS=() REF_RTP_PIDS=() REF_NG_PORTS=() REF_RTP_ADDRS=()

ref_log() { printf '[%s] ref: %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }

# ---- installation -------------------------------------------------------------

# Installs what the reference and the bench scripts need, when missing.
# The package lists are refreshed only when absent or older than a day
# (as scripts/deps.sh does).
ref_install() {
    local pkgs=(kamailio rtpengine-daemon sip-tester curl python3 procps iproute2)
    local missing=() p st
    for p in "${pkgs[@]}"; do
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ $st == "install ok installed" ]] || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    if ((EUID != 0)); then
        echo "ref: missing packages: ${missing[*]} (run as root to install them)" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mtime -1 -print -quit 2>/dev/null) ]]; then
        ref_log "apt-get update"
        apt-get update >&2
    fi
    ref_log "installing ${missing[*]}"
    apt-get install -y --no-install-recommends "${missing[@]}" >&2
    ref_disable_services
}

# The packages come with system services (kamailio, rtpengine-daemon);
# the benchmarks run their own instances and want nothing else competing
# for the CPUs. Called right after installing: keeps the packaged services
# from starting at boot and, if the installation started them (it does
# not where policy-rc.d forbids it, as in containers), stops them through
# their own service manager.
ref_disable_services() {
    local svc
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        systemctl disable --now kamailio.service rtpengine-daemon.service >&2 2>/dev/null || true
        return 0
    fi
    for svc in kamailio rtpengine-daemon; do
        [[ -x /etc/init.d/$svc ]] || continue
        update-rc.d "$svc" disable >/dev/null 2>&1 || true
        if /etc/init.d/"$svc" status >/dev/null 2>&1; then
            ref_log "stopping the $svc service the installation started"
            /etc/init.d/"$svc" stop >&2 || true
        fi
    done
}

# ---- processes -------------------------------------------------------------------

ref_pid_alive() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [[ ${st%% *} != Z ]]
}

# Children (recursively) of PID, from /proc/*/stat.
ref_descendants() {
    python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1])
kids = {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        s = open("/proc/%s/stat" % d).read()
    except OSError:
        continue
    ppid = int(s[s.rindex(")") + 2:].split()[1])
    kids.setdefault(ppid, []).append(int(d))
out, todo = [], [root]
while todo:
    for c in kids.get(todo.pop(), []):
        out.append(c)
        todo.append(c)
print(" ".join(map(str, out)))
PY
}

ref_pids() { echo "${REF_KAM_PIDS[*]} ${REF_RTP_PIDS[*]}"; }

ref_alive() {
    local pid
    for pid in "${REF_KAM_PIDS[@]}" "${REF_RTP_PIDS[@]}"; do
        if ! ref_pid_alive "$pid"; then
            ref_log "process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-60)) is gone"
            return 1
        fi
    done
}

# "RSS_KB PSS_KB" summed over the given PIDs (smaps_rollup; RSS counts a
# page shared by several of them once per process, PSS divides it among
# them, so the PSS sum over Kamailio's processes counts its shared memory
# once).
ref_proc_mem() {
    python3 - "$@" <<'PY'
import sys
rss = pss = 0
for pid in sys.argv[1:]:
    try:
        for line in open("/proc/%s/smaps_rollup" % pid):
            k, v = line.split(":", 1)
            if k == "Rss":
                rss += int(v.split()[0])
            elif k == "Pss":
                pss += int(v.split()[0])
    except OSError:
        pass
print(rss, pss)
PY
}

# utime + stime (clock ticks, all threads) summed over the given PIDs.
ref_proc_ticks() {
    local pid total=0 s f
    for pid in "$@"; do
        s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        s=${s##*) }
        read -r -a f <<<"$s"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# ---- ports and the ng protocol ---------------------------------------------------

# N loopback UDP ports free right now, distinct.
ref_free_udp_ports() {
    python3 - "$1" <<'PY'
import socket, sys
n = int(sys.argv[1])
held, ports = [], []
for _ in range(n * 4 + 50):
    if len(ports) == n:
        break
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    p = u.getsockname()[1]
    if p in ports:
        continue
    held.append(u)
    ports.append(p)
if len(ports) != n:
    sys.exit("could not find %d free ports" % n)
print(" ".join(map(str, ports)))
PY
}

# ref_ng PORT COMMAND: sends an ng COMMAND (ping, statistics) to the
# rtpengine instance on PORT; prints "pong", or the number of calls it
# holds for "statistics". Fails after 2 s without an answer.
ref_ng() {
    python3 - "$1" "$2" <<'PY'
import random, re, socket, sys
port, cmd = int(sys.argv[1]), sys.argv[2]
cookie = b"%d" % random.randint(1, 10**9)
body = b"d7:command%d:%se" % (len(cmd), cmd.encode())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(cookie + b" " + body, ("127.0.0.1", port))
r = s.recv(1 << 20)
if not r.startswith(cookie + b" "):
    sys.exit("bad answer")
if cmd == "ping":
    print("pong" if b"4:pong" in r else "error")
else:
    m = re.search(rb"11:sessionsowni(\d+)e", r)
    if not m:
        sys.exit("no sessionsown in the statistics")
    print(int(m.group(1)))
PY
}

ref_rtp_sessions() {
    local port n total=0
    for port in "${REF_NG_PORTS[@]}"; do
        n=$(ref_ng "$port" statistics) || { echo missing; return 0; }
        total=$((total + n))
    done
    echo "$total"
}

ref_kamcmd() { timeout 5 "$KAMCMD" -s "$REF_CTL" "$@"; }

# ref_kam_stat NAME: value of one statistic, e.g. dialog:active_dialogs.
ref_kam_stat() {
    local out
    # kamcmd takes the name without its group and prints "group:name = N".
    out=$(ref_kamcmd stats.get_statistics "${1#*:}" 2>/dev/null) || { echo missing; return 0; }
    awk -F= -v n="$1" '{ gsub(/[ "]/, "", $1); gsub(/[ "]/, "", $2) } $1 == n { print $2; f = 1 } END { if (!f) print "missing" }' <<<"$out"
}

ref_kam_shm_used() {
    local out
    out=$(ref_kamcmd core.shmmem 2>/dev/null) || { echo missing; return 0; }
    awk '$1 == "used:" { print $2; f = 1 } END { if (!f) print "missing" }' <<<"$out"
}

# ---- start and stop ----------------------------------------------------------------

# ref_start DIR NEXT_HOP MIN_SE CALLS
ref_start() {
    local dir=$1 next_hop=$2 min_se=$3 calls=$4
    REF_DIR=$dir
    mkdir -p "$REF_DIR/run"
    # Descriptors: as many as this shell may have (the instances inherit
    # the limit), 4 per call, 20 % spare for an uneven spread; and at most
    # 7000 calls per media address (30000 ports).
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    local per=${REF_RTP_CALLS_PER_INSTANCE:-$((($(ulimit -n) - 200) / 4 * 8 / 10))}
    ((per > 7000)) && per=7000
    ((per >= 100)) || { ref_log "file descriptor limit $(ulimit -n) too low for rtpengine"; return 1; }
    local n_rtp=$(((calls + per - 1) / per))
    ((n_rtp >= 1)) || n_rtp=1
    ((n_rtp <= 200)) || { ref_log "too many rtpengine instances ($n_rtp)"; return 1; }
    local ports
    ports=$(ref_free_udp_ports $((n_rtp + 1))) || return 1
    read -r -a ports <<<"$ports"
    REF_SIP_PORT=${ports[0]}
    REF_NG_PORTS=("${ports[@]:1}")
    REF_RTP_PIDS=() REF_RTP_ADDRS=() REF_KAM_PIDS=()

    local i addr socks=""
    for ((i = 0; i < n_rtp; i++)); do
        addr=127.0.0.$((2 + i))
        REF_RTP_ADDRS+=("$addr")
        socks+="${socks:+ }udp:127.0.0.1:${REF_NG_PORTS[$i]}"
        # No kernel forwarding (--table=-1), no config file, no Redis;
        # calls without any media are kept (no RTP timeouts) and a deleted
        # call frees its ports at once (--delete-delay=0).
        "$RTPENGINE" --config-file=none --foreground --log-stderr --log-level=4 \
            --table=-1 --interface="$addr" --listen-ng="127.0.0.1:${REF_NG_PORTS[$i]}" \
            --port-min=30000 --port-max=59999 --num-threads="${REF_RTP_THREADS:-2}" \
            --timeout=86400 --silent-timeout=86400 --final-timeout=0 --offer-timeout=3600 \
            --delete-delay=0 >"$REF_DIR/rtpengine-$i.log" 2>&1 &
        REF_RTP_PIDS+=($!)
    done

    local ok k
    for ((i = 0; i < n_rtp; i++)); do
        ok=0
        for ((k = 0; k < 50; k++)); do
            ref_pid_alive "${REF_RTP_PIDS[$i]}" || break
            # A ping sent before the ng port is bound waits out its 2 s
            # timeout (no error comes back for it); ping once it is bound.
            if ss -H -lun "sport = :${REF_NG_PORTS[$i]}" 2>/dev/null | grep -q . &&
                [[ $(ref_ng "${REF_NG_PORTS[$i]}" ping 2>/dev/null) == pong ]]; then
                ok=1
                break
            fi
            sleep 0.1
        done
        if ((!ok)); then
            ref_log "rtpengine $i did not answer ping (log: $REF_DIR/rtpengine-$i.log)"
            tail -n 30 "$REF_DIR/rtpengine-$i.log" >&2
            return 1
        fi
    done
    # Shared memory: 16 KiB per call on top of 256 MiB (a dialog with its
    # sst state, transactions and the rtpengine module's Call-ID table
    # take 4-10 KiB).
    local shm=${REF_KAM_SHM_MB:-$((256 + calls / 64))}
    local pkg=${REF_KAM_PKG_MB:-32}
    local hash=4096
    while ((hash < calls && hash < 1048576)); do hash=$((hash * 2)); done
    REF_CTL=unix:$REF_DIR/run/kamailio.ctl
    "$KAMAILIO" ${REF_KAM_EXTRA:-} -DD -E -f "$REF_CFG" -Y "$REF_DIR/run" -P "$REF_DIR/run/kamailio.pid" \
        -m "$shm" -M "$pkg" -n "${REF_KAM_CHILDREN:-8}" -l "udp:127.0.0.1:$REF_SIP_PORT" \
        -A "REF_NEXT_HOP=\"$next_hop\"" -A "REF_NG_SOCKS=\"$socks\"" \
        -A "REF_CTL=\"$REF_CTL\"" -A "REF_MIN_SE=$min_se" \
        -A "REF_RTP_FLAGS=\"$REF_RTP_FLAGS\"" -A "REF_DLG_HASH=$hash" \
        >"$REF_DIR/kamailio.log" 2>&1 &
    REF_KAM_PID=$!
    REF_KAM_PIDS=("$REF_KAM_PID")

    ok=0
    for ((i = 0; i < 200; i++)); do
        ref_pid_alive "$REF_KAM_PID" || break
        if ss -H -lun "sport = :$REF_SIP_PORT" 2>/dev/null | grep -q . &&
            [[ $(ref_kam_stat dialog:active_dialogs) != missing ]]; then
            ok=1
            break
        fi
        sleep 0.05
    done
    if ((!ok)); then
        ref_log "kamailio did not come up (log: $REF_DIR/kamailio.log)"
        tail -n 30 "$REF_DIR/kamailio.log" >&2
        return 1
    fi
    # Kamailio forks its workers during start-up; by now all are there.
    local kids
    kids=$(ref_descendants "$REF_KAM_PID")
    read -r -a kids <<<"$kids"
    REF_KAM_PIDS+=("${kids[@]}")
    ref_log "kamailio (pid $REF_KAM_PID, ${#REF_KAM_PIDS[@]} processes, -m $shm -M $pkg)" \
        "on udp:127.0.0.1:$REF_SIP_PORT, next hop $next_hop;" \
        "$n_rtp rtpengine instance(s) on ${REF_RTP_ADDRS[*]}"
}

# TERM, up to 10 s, then KILL; only the PIDs ref_start recorded.
# ref_trap_exit: on exit the reference goes down with the imsplit stack
# (tests/lib/lib.sh's t_cleanup), whatever ends the run, keeping its exit
# code. Call after t_init.
ref_trap_exit() {
    trap ref__on_exit EXIT
}
ref__on_exit() {
    local rc=$?
    # t_cleanup takes the exit code from $?; under set -e the
    # (exit) that restores it would end the handler instead.
    set +e
    ref_stop
    (exit "$rc")
    t_cleanup
}

ref_stop() {
    local pid i alive
    [[ -n $REF_KAM_PID ]] && kill -TERM "$REF_KAM_PID" 2>/dev/null
    for pid in "${REF_RTP_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for ((i = 0; i < 100; i++)); do
        alive=0
        for pid in "${REF_KAM_PIDS[@]}" "${REF_RTP_PIDS[@]}"; do
            ref_pid_alive "$pid" && alive=1
        done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${REF_KAM_PIDS[@]}" "${REF_RTP_PIDS[@]}"; do
        if ref_pid_alive "$pid"; then
            ref_log "pid $pid ignored SIGTERM for 10 s, killing it"
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    for pid in "$REF_KAM_PID" "${REF_RTP_PIDS[@]}"; do
        [[ -n $pid ]] && wait "$pid" 2>/dev/null
    done
    REF_KAM_PID="" REF_KAM_PIDS=() REF_RTP_PIDS=()
    return 0
}
