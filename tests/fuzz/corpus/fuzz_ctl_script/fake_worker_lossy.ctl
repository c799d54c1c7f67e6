# Fake worker (the CP's only one) for one SIP session: allocates and
# connects both legs, then loses the first ReleaseLeg of each direction and
# answers the CP's resend, which must be the same command (same seq).
# Environment: MSRP_PORT (the port the paths name; nothing listens there).
send register node_id=$ID msrp_address=127.0.0.1:$MSRP_PORT capacity=10
expect register_ack within=10000
auto-heartbeat on
# The CP audits every worker that registers.
expect audit as AU0
reply AU0 inventory last=true

expect allocate_leg direction=client call_id=* as AC within=20000
reply AC allocate_leg_result status=OK path=msrp://127.0.0.1:$MSRP_PORT/c$AC.seq;tcp
expect allocate_leg session_id=$AC.session_id direction=controlling as AK
reply AK allocate_leg_result status=OK path=msrp://127.0.0.1:$MSRP_PORT/k$AK.seq;tcp
expect connect_leg session_id=$AC.session_id direction=client peer_path=* as CC
reply CC connect_leg_result status=OK
expect connect_leg session_id=$AC.session_id direction=controlling peer_path=* as CK
reply CK connect_leg_result status=OK
log session $AC.session_id up: client path c$AC.seq, controlling k$AK.seq

# The session ends (the client's BYE): each first ReleaseLeg is lost.
drop release_leg session_id=$AC.session_id direction=client as LOST_C within=20000
drop release_leg session_id=$AC.session_id direction=controlling as LOST_K within=10000
expect release_leg session_id=$AC.session_id direction=client seq=$LOST_C.seq as RC within=10000
reply RC release_leg_result status=OK counters.bytes_in=0
expect release_leg session_id=$AC.session_id direction=controlling seq=$LOST_K.seq as RK within=10000
reply RK release_leg_result status=OK counters.bytes_in=0
# Answered: no third ReleaseLeg, for either leg.
expect-none release_leg within=3000
