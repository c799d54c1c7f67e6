/* fuzz_proto_seeds DIR: writes the seed corpus of fuzz_proto into DIR, one
 * packed envelope per file: every body type the CP and the workers
 * exchange, filled as they fill it, plus the frames im_proto_unpack must
 * refuse (other major version, no body, missing leg fields). Built with
 * IMSPLIT_FUZZ; rerun it after a change to proto/imsplit.proto:
 *   build-fuzz/tests/fuzz/fuzz_proto_seeds tests/fuzz/corpus/fuzz_proto */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "im_proto.h"

/* One seed: a name and the fields of its envelope, as imsplit-ctl scripts
 * write them (im_proto_set_field paths). */
typedef struct {
    const char *name;
    const char *fields[12];
} s_seed_t;

#define S_HDR(sender) "sender_id=" sender, "sender_epoch=1717000000123", "seq=7"

static const s_seed_t s_seeds[] = {
    {"register",
     {S_HDR("up-1"), "register.node_id=up-1",
      "register.msrp_address=127.0.0.1:2855", "register.capacity=100000",
      "register.legs_active=3"}},
    {"register_ack",
     {S_HDR("cp"), "reply_to=1", "register_ack.cp_epoch=99",
      "register_ack.heartbeat_ms=1000", "register_ack.liveness=3"}},
    {"heartbeat",
     {S_HDR("up-1"), "heartbeat.legs_active=2", "heartbeat.sockets_open=4",
      "heartbeat.buffer_bytes=65536", "heartbeat.draining=true"}},
    {"allocate_leg",
     {S_HDR("cp"), "allocate_leg.session_id=0x1a2b3c4d5e6f7081",
      "allocate_leg.direction=client",
      "allocate_leg.call_id=3848276298220188511@10.0.0.1"}},
    {"allocate_leg_result",
     {S_HDR("up-1"), "reply_to=5", "allocate_leg_result.status=ok",
      "allocate_leg_result.session_id=0x1a2b3c4d5e6f7081",
      "allocate_leg_result.direction=controlling",
      "allocate_leg_result.path=msrp://127.0.0.1:2855/aB3dE5fG7hJ9kL1m;tcp"}},
    {"connect_leg",
     {S_HDR("cp"), "connect_leg.session_id=0x1a2b3c4d5e6f7081",
      "connect_leg.direction=client",
      "connect_leg.peer_path=msrp://192.0.2.1:7394/x1;tcp "
      "msrp://198.51.100.2:2855/y2;tcp",
      "connect_leg.setup=passive"}},
    {"connect_leg_result",
     {S_HDR("up-1"), "reply_to=6", "connect_leg_result.status=no_capacity",
      "connect_leg_result.session_id=17",
      "connect_leg_result.direction=client"}},
    {"release_leg",
     {S_HDR("cp"), "release_leg.session_id=17",
      "release_leg.direction=controlling",
      "release_leg.reason=session_timer_expired",
      "release_leg.cause=peer_bye"}},
    {"release_leg_result",
     {S_HDR("up-1"), "reply_to=9", "release_leg_result.status=not_found",
      "release_leg_result.session_id=17", "release_leg_result.direction=client",
      "release_leg_result.counters.bytes_in=1024",
      "release_leg_result.counters.bytes_out=2048",
      "release_leg_result.counters.msgs_in=3",
      "release_leg_result.counters.msgs_out=4"}},
    {"leg_event",
     {S_HDR("up-1"), "leg_event.session_id=17", "leg_event.direction=client",
      "leg_event.kind=peer_closed", "leg_event.counters.bytes_in=10"}},
    {"leg_event_ack",
     {S_HDR("cp"), "leg_event_ack.session_id=17",
      "leg_event_ack.direction=controlling"}},
    {"audit", {S_HDR("cp"), "audit={}"}},
    {"inventory",
     {S_HDR("up-1"), "reply_to=11", "inventory.legs.0.session_id=17",
      "inventory.legs.0.direction=client", "inventory.legs.1.session_id=18",
      "inventory.legs.1.direction=controlling", "inventory.part=1",
      "inventory.last=true"}},
    {"drain", {S_HDR("ctl"), "drain.node_id=up-2"}},
    {"drain_result", {S_HDR("cp"), "reply_to=2", "drain_result.status=ok"}},
    {"error",
     {S_HDR("cp"), "error.code=ERROR_NOT_REGISTERED",
      "error.message=register first"}},
    {"deregister", {S_HDR("up-1"), "deregister.reason=drained"}},
    {"query", {S_HDR("ctl"), "query.kind=QUERY_SESSIONS"}},
    {"query_result",
     {S_HDR("cp"), "reply_to=1", "query_result.workers.0.node_id=up-1",
      "query_result.workers.0.state=WORKER_LIVE",
      "query_result.workers.0.msrp_address=[::1]:2855",
      "query_result.workers.0.sessions=2",
      "query_result.sessions.0.session_id=17",
      "query_result.sessions.0.call_id=abc@host",
      "query_result.sessions.0.state=established",
      "query_result.sessions.0.client_se=1800"}},
    /* Refused by im_proto_unpack. */
    {"bad_major", {"major=2", S_HDR("up-1"), "heartbeat.legs_active=1"}},
    {"bad_no_body", {S_HDR("up-1")}},
    {"bad_no_sender", {"heartbeat.legs_active=1"}},
    {"bad_leg_direction", {S_HDR("cp"), "release_leg.session_id=17"}},
    {"bad_inventory_leg",
     {S_HDR("up-1"), "inventory.legs.0.session_id=0",
      "inventory.legs.0.direction=client"}},
};

static int s_write(const char *dir, const s_seed_t *seed)
{
    im_env_t *env = im_env_new();
    if (!env)
        return -ENOMEM;
    char err[256];
    for (size_t i = 0; i < 12 && seed->fields[i]; i++) {
        char path[128];
        const char *f = seed->fields[i];
        size_t n = strcspn(f, "=");
        if (n >= sizeof(path) || !f[n]) {
            fprintf(stderr, "%s: bad field \"%s\"\n", seed->name, f);
            im_proto_free(env);
            return -EINVAL;
        }
        memcpy(path, f, n);
        path[n] = '\0';
        if (im_proto_set_field(&env->base, path, f + n + 1, err, sizeof(err)) <
            0) {
            fprintf(stderr, "%s: %s\n", seed->name, err);
            im_proto_free(env);
            return -EINVAL;
        }
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = im_proto_pack(env, &buf, &len);
    im_proto_free(env);
    if (rc < 0)
        return rc;
    char file[4096];
    snprintf(file, sizeof(file), "%s/%s.bin", dir, seed->name);
    FILE *fp = fopen(file, "wb");
    if (!fp || fwrite(buf, 1, len, fp) != len) {
        fprintf(stderr, "%s: %s\n", file, strerror(errno));
        if (fp)
            fclose(fp);
        free(buf);
        return -EIO;
    }
    free(buf);
    return fclose(fp) == 0 ? 0 : -EIO;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 64;
    }
    for (size_t i = 0; i < sizeof(s_seeds) / sizeof(s_seeds[0]); i++)
        if (s_write(argv[1], &s_seeds[i]) < 0)
            return 1;
    return 0;
}
