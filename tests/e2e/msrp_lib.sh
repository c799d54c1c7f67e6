# MSRP helpers for tests/e2e and bench/, on top of tests/lib/lib.sh (source
# that first and call t_init). Not a test itself (no test_ prefix).
#
#   m_init                       checks imsplit-msrp-peer is built
#                                (IMSPLIT_MSRP_PEER overrides its path)
#   m_paths                      picks ports, sets M_CPATH (the client peer's
#                                path, put in the client's SDP offer) and
#                                M_XPORT/M_XPATH (where the controlling peer
#                                listens, put in the controlling answer)
#   m_xpeer NAME ARGS...         controlling peer: listens on M_XPORT with
#                                M_XPATH; returns once it listens
#   m_session UAC_XML UAS_XML SE [UAC ARGS] -- [UAS ARGS]
#                                sipp pair: controlling (uas) answering with
#                                M_XPATH, client (uac) offering M_CPATH; waits
#                                for the client's 200 and sets M_WPATH, the
#                                worker's client-leg path it carried
#   m_cpeer NAME ARGS...         client peer: connects to M_WPATH as M_CPATH
#   m_peer_wait NAME SECS        waits for a peer, fails the test if it hangs
#   m_field NAME KEY             KEY from the peer's summary line
#
# Peers run under t_spawn, so the cleanup trap stops them like the sipps.

T_PEER_BIN=${IMSPLIT_MSRP_PEER:-$IMSPLIT_BUILD_DIR/tools/imsplit-msrp-peer}
M_CPATH="" M_XPORT="" M_XPATH="" M_WPATH=""

m_init() {
    [[ -x $T_PEER_BIN ]] || t_fail "missing $T_PEER_BIN (build the imsplit-msrp-peer target)"
}

m_paths() {
    local ports tag cport
    ports=$(t_free_ports 2) || t_fail "no free ports"
    read -r cport M_XPORT <<<"$ports"
    tag=$(printf '%04x%04x' $RANDOM $RANDOM)
    # The client peer connects out: the port in its path is nominal.
    M_CPATH="msrp://127.0.0.1:$cport/cli$tag;tcp"
    M_XPATH="msrp://127.0.0.1:$M_XPORT/ctl$tag;tcp"
}

m_xpeer() {
    local name=$1
    shift
    t_spawn "$name" "$T_PEER_BIN" --listen "127.0.0.1:$M_XPORT" \
        --local-path "$M_XPATH" "$@"
    t_wait_listen "$M_XPORT" tcp 5 || t_fail "peer $name does not listen on $M_XPORT"
}

m_session() {
    local uac_xml=$1 uas_xml=$2 se=$3
    shift 3
    local -a uac_args=() uas_args=()
    while (($#)) && [[ $1 != -- ]]; do uac_args+=("$1"); shift; done
    (($#)) && shift
    uas_args=("$@")
    t_sipp_uas uas "$uas_xml" -key se "$se" -key xpath "$M_XPATH" "${uas_args[@]}"
    t_sipp_uac uac "$uac_xml" -key se "$se" -key cpath "$M_CPATH" "${uac_args[@]}"
    local i
    M_WPATH=""
    for ((i = 0; i < 200 * T_SLOW; i++)); do
        M_WPATH=$(t_event_field uac answered path)
        [[ -n $M_WPATH ]] && break
        t_check_daemons
        t_alive "${T_PID_OF[uac]}" || break
        sleep 0.05
    done
    [[ -n $M_WPATH ]] || t_fail "the client never got a 200 with the worker's path"
    t_log "session up: client peer $M_CPATH -> worker $M_WPATH;" \
        "controlling peer $M_XPATH <- worker $(t_event_field uas invite path)"
}

m_cpeer() {
    local name=$1
    shift
    t_spawn "$name" "$T_PEER_BIN" --connect "$M_WPATH" --local-path "$M_CPATH" "$@"
}

m_peer_wait() {
    local name=$1 secs=$2
    t_wait_exit "$name" "$secs" || {
        t_stop "$name" TERM 2
        t_fail "peer $name still running after ${secs}s"
    }
    t_log "peer $name exited ${T_RC_OF[$name]}: $(grep -m1 '^sent=' "$T_DIR/$name.log" || echo 'no summary')"
}

m_field() {
    local line
    line=$(grep -m1 '^sent=' "$T_DIR/$1.log" 2>/dev/null) || { echo missing; return 0; }
    awk -v k="$2" '{ for (i = 1; i <= NF; i++) { n = index($i, "=");
        if (substr($i, 1, n - 1) == k) { print substr($i, n + 1); exit } } }' <<<"$line"
}

# m_expect NAME KEY OP VALUE: a peer's summary field compared like t_cmp.
m_expect() {
    local v
    v=$(m_field "$1" "$2")
    t_cmp "$v" "$3" "$4" || t_fail "peer $1: $2=$v, expected $3 $4"
    t_log "ok: peer $1 $2=$v ($3 $4)"
}

# m_small_session SE HOLD_MS: one MSRP session through the stack in which
# each peer sends 5 messages of 1000 bytes and must receive the other's 5,
# with no bad message or error answer; both peers must exit 0.
m_small_session() {
    local se=$1 hold_ms=$2 p
    m_paths
    m_xpeer xpeer --send 5 --size 1000 --expect 5 --expect-size 1000 \
        --send-after-recv --wait-close --timeout-ms 20000
    m_session client_msrp_bye.xml ctrl_msrp.xml "$se" -d "$hold_ms"
    m_cpeer cpeer --send 5 --size 1000 --expect 5 --expect-size 1000 \
        --wait-close --timeout-ms 20000
    m_peer_wait cpeer 25
    m_peer_wait xpeer 10
    t_expect_sipp_ok uac uas
    for p in cpeer xpeer; do
        m_expect $p sent -eq 5
        m_expect $p received -eq 5
        m_expect $p bad -eq 0
        m_expect $p resp_err -eq 0
        [[ ${T_RC_OF[$p]} == 0 ]] || t_fail "peer $p exited ${T_RC_OF[$p]}"
    done
}
