# Sourced by the benchmarks: the command line every one of them takes.
#   bench_quick_args "$@"   sets QUICK=1 for --quick, prints the script's
#                           header comment for -h/--help, refuses the rest.
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
