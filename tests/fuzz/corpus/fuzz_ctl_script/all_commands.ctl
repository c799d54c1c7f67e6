# every command and argument form
set X="a b"
send allocate_leg session_id=0x1234 direction=client call_id="a \"b\" c" as A   # comment
reply A allocate_leg_result status=OK path=msrp://h:1/x;tcp to=up-1 as R
resend A to=up-2
expect allocate_leg_result reply_to=$A.seq path=* as E within=250 from=up-1
expect-none release_leg_result status!=OK within=10
drop release_leg direction=controlling count=2 as D
send inventory leg=17:client leg=18:controlling part=1 last=true as I
expect inventory leg=17:client legs=2 legs.1.direction!=client
flush
flush audit
sleep 10
log  hello $A.seq ${X} $$ $A.body $R.peer $E.epoch
auto-heartbeat on 250
auto-heartbeat off
send heartbeat epoch=5 seq=9 major=1 minor=2 sender_id=$ID
