# Fake CP that loses the worker's results: each command is sent, its result
# dropped (never seen by the CP), the identical bytes sent again, and the
# answer to the resend must be the first one (from the worker's cache).
# Environment: SID, HB_MS.
expect register as REG within=10000
reply REG register_ack cp_epoch=$EPOCH heartbeat_ms=$HB_MS liveness=5
auto-heartbeat on

send allocate_leg session_id=$SID direction=client call_id=lossy as AC
drop allocate_leg_result reply_to=$AC.seq as LOST_AC
resend AC
expect allocate_leg_result reply_to=$AC.seq status=OK path=$LOST_AC.path

send allocate_leg session_id=$SID direction=controlling call_id=lossy as AK
drop allocate_leg_result reply_to=$AK.seq as LOST_AK
resend AK
expect allocate_leg_result reply_to=$AK.seq status=OK path=$LOST_AK.path

# The first release's answer is lost; the resend must still say OK.
send release_leg session_id=$SID direction=client reason=BYE_2XX cause=PEER_BYE as RC
drop release_leg_result reply_to=$RC.seq
sleep 100
resend RC
expect release_leg_result reply_to=$RC.seq status=OK

# Lost twice, then answered.
send release_leg session_id=$SID direction=controlling reason=BYE_2XX cause=PEER_BYE as RK
drop release_leg_result reply_to=$RK.seq
resend RK
drop release_leg_result reply_to=$RK.seq
resend RK
expect release_leg_result reply_to=$RK.seq status=OK

# No answer comes twice for one delivery.
expect-none release_leg_result within=300
