# Fake worker for the CP's leg audit. Once a session is up it answers an
# audit with an inventory in two pages that (a) lacks the session's
# controlling leg, so the CP must end the session, and (b) lists a leg the
# CP never placed (session 0xdead), which the CP must release with
# RELEASE_AUDIT.
# Environment: MSRP_PORT (the port the paths name; nothing listens there).
send register node_id=$ID msrp_address=127.0.0.1:$MSRP_PORT capacity=10
expect register_ack within=10000
auto-heartbeat on
# The CP audits every worker that registers; nothing is here yet. A
# result of another kind naming the Audit's seq must not end it: the
# inventory still does, and the audits go on.
expect audit as AU0
reply AU0 release_leg_result status=OK session_id=0xbeef direction=client
reply AU0 inventory last=true

expect allocate_leg direction=client as AC within=20000
reply AC allocate_leg_result status=OK path=msrp://127.0.0.1:$MSRP_PORT/c$AC.seq;tcp
expect allocate_leg session_id=$AC.session_id direction=controlling as AK
reply AK allocate_leg_result status=OK path=msrp://127.0.0.1:$MSRP_PORT/k$AK.seq;tcp
expect connect_leg session_id=$AC.session_id direction=client as CC
reply CC connect_leg_result status=OK
expect connect_leg session_id=$AC.session_id direction=controlling as CK
reply CK connect_leg_result status=OK
log session $AC.session_id is up

# An audit sent while the legs were being set up does not judge them; it
# gets the truth. (One audit at a time: it may be the first sent after the
# session was up, too.)
sleep 700
expect audit as AU1 within=3000
reply AU1 inventory leg=$AC.session_id:client leg=$AC.session_id:controlling last=true

# The next audit is surely younger than the session: lie to it.
expect audit seq!=$AU1.seq as AU within=3000
reply AU inventory leg=$AC.session_id:client leg=0xdead:client part=0 last=false
reply AU inventory part=1 last=true
log audit $AU.seq answered without the controlling leg, with 0xdead

expect release_leg session_id=0xdead direction=client reason=RELEASE_AUDIT as RD
reply RD release_leg_result status=OK
# The session ends: BYE on both legs, then both directions released.
expect release_leg session_id=$AC.session_id direction=client as RC within=10000
reply RC release_leg_result status=OK
expect release_leg session_id=$AC.session_id direction=controlling as RK within=10000
reply RK release_leg_result status=NOT_FOUND
expect-none release_leg within=1000
