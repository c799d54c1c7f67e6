# Fake CP against a real imsplit-up: duplicate commands must be answered
# from the worker's result cache, a changed AllocateLeg refused.
# Environment: SID (session id), HB_MS (heartbeat interval).
expect register as REG within=10000
reply REG register_ack cp_epoch=$EPOCH heartbeat_ms=$HB_MS liveness=5
auto-heartbeat on

send allocate_leg session_id=$SID direction=client call_id=c1 as A
expect allocate_leg_result reply_to=$A.seq status=STATUS_OK path=* as A1
log first allocation: $A1.path

# The identical bytes again: the same result, from the cache.
resend A
expect allocate_leg_result reply_to=$A.seq status=OK session_id=$SID direction=client path=$A1.path as A2

# Same leg, other parameters: refused, the leg left as it is.
send allocate_leg session_id=$SID direction=client call_id=c2 as B
expect allocate_leg_result reply_to=$B.seq status=CONFLICT

send release_leg session_id=$SID direction=client reason=BYE_2XX cause=PEER_BYE as R
expect release_leg_result reply_to=$R.seq status=OK session_id=$SID direction=client as R1
resend R
expect release_leg_result reply_to=$R.seq status=OK session_id=$SID direction=client as R2
expect-none release_leg_result within=300
log released once: first $R1.status, duplicate $R2.status
