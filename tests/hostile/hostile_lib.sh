# Helpers shared by the tests/hostile scripts, on top of tests/lib/lib.sh
# (source that first and call t_init). Not a test itself.
#
#   h_log_count NAME WORD...        lines of NAME's log holding every WORD
#                                   (whole space-separated words, like
#                                   t_count_log, but without a python start
#                                   per call)
#   h_assert_log NAME OP COUNT WORD...
#                                   waits up to 5 s for the count, like
#                                   t_assert_log

h_log_count() {
    local f=$T_DIR/$1.log
    shift
    awk -v ws="$*" '
        BEGIN { n = split(ws, w, " ") }
        { s = " " $0 " "; ok = 1
          for (i = 1; i <= n; i++) if (index(s, " " w[i] " ") == 0) { ok = 0; break }
          if (ok) c++ }
        END { print c + 0 }' "$f" 2>/dev/null || echo 0
}

h_assert_log() {
    local name=$1 op=$2 want=$3 n i
    shift 3
    for ((i = 0; i < 50; i++)); do
        n=$(h_log_count "$name" "$@")
        t_cmp "$n" "$op" "$want" && break
        sleep 0.1
    done
    t_cmp "$n" "$op" "$want" || t_fail "$name log: $n lines with '$*', expected $op $want"
    t_log "ok: $name log has $n lines with '$*'"
}
