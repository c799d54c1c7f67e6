# Sourced by the benchmarks: the command line every one of them takes, and
# the probes and scenario edits more than one of them needs.
#   bench_quick_args "$@"   sets QUICK=1 for --quick, prints the script's
#                           header comment for -h/--help, refuses the rest.
#   cpu_ticks PID           CPU ticks (user + system) so far, 0 if gone.
#   run_delay_ns PID        ns its main thread waited for a CPU while
#                           runnable (/proc/PID/schedstat), 0 if gone.
#   bench_linger DIR MS NAME...
#                           prints the paths of the scenarios
#                           $BENCH_SIP/NAME.xml with their final 3000 ms
#                           pause replaced by MS (copies in DIR), or the
#                           originals when MS is 3000.
bench_help() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

bench_quick_args() {
    QUICK=0
    local a
    for a in "$@"; do
        case $a in
            --quick) QUICK=1 ;;
            -h | --help) bench_help; exit 0 ;;
            *) echo "usage: $0 [--quick]" >&2; exit 64 ;;
        esac
    done
}

cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}

run_delay_ns() {
    local s
    s=$(cat "/proc/$1/schedstat" 2>/dev/null) || { echo 0; return; }
    awk '{ print $2 }' <<<"$s"
}

bench_linger() {
    local dir=$1 ms=$2 f
    shift 2
    for f in "$@"; do
        if ((ms == 3000)); then
            echo "$BENCH_SIP/$f.xml"
            continue
        fi
        sed "s|<pause milliseconds=\"3000\"/>|<pause milliseconds=\"$ms\"/>|" \
            "$BENCH_SIP/$f.xml" >"$dir/$f.xml"
        if ! grep -q "<pause milliseconds=\"$ms\"/>" "$dir/$f.xml"; then
            echo "bench_linger: $f.xml has no final pause of 3000 ms to replace" >&2
            return 1
        fi
        echo "$dir/$f.xml"
    done
}
