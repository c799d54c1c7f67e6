/* fuzz_handler_seeds UP_DIR CP_DIR: writes the seed corpora of
 * fuzz_up_handler (into UP_DIR) and fuzz_cp_handler (into CP_DIR): short
 * conversations between a CP and a worker in the record format each target
 * reads (see the top of fuzz_up_handler.c and fuzz_cp_handler.c). Built
 * with IMSPLIT_FUZZ; rerun it after a change to proto/imsplit.proto or to
 * either format:
 *   cd tests/fuzz/corpus && ../../../build-fuzz/tests/fuzz/fuzz_handler_seeds \
 *       fuzz_up_handler fuzz_cp_handler
 *
 * A seed is written as lines:
 *   flags N                      byte 0 of the input
 *   frame [PEER] BODY [FIELD=VALUE ...]
 *                                an envelope (FIELD: a path of the body, or
 *                                a header field: seq, reply_to, sender_id,
 *                                sender_epoch, major); the header is the
 *                                peer's (the CP towards a worker; the
 *                                worker or imsplit-ctl towards the CP), seq
 *                                counting from 1 per peer
 *   same                         the last frame again, byte for byte
 *   raw [PEER] HEX               a frame of these bytes
 *   time N                       time passes, N * 100 ms
 *   turn                         (worker) the loop turns once
 *   new                          (CP) an INVITE is accepted: a session
 *   event N NAME [controlling] [STATUS]
 *                                (CP) SIP event NAME for session N
 * PEER (CP only): up-1, up-2, ctl, up-9, or @ID for a routing id of any
 * length. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "im_proto.h"

#define S_CP_EPOCH "1717000000123"
#define S_LINES 40

typedef struct {
    const char *name;
    const char *lines[S_LINES];
} s_seed_t;

/* ---- fuzz_up_handler ---------------------------------------------------- */

#define S_SID "session_id=0x1000"
#define S_PATH "peer_path=msrp://192.0.2.1:7394/p1;tcp"

static const s_seed_t s_up[] = {
    {"register_then_heartbeat",
     {"flags 0",
      "frame register_ack reply_to=1 cp_epoch=" S_CP_EPOCH
      " heartbeat_ms=500 liveness=4",
      "frame heartbeat",
      "frame register_ack cp_epoch=" S_CP_EPOCH " heartbeat_ms=2000",
      /* Out of bounds: clamped. */
      "frame register_ack cp_epoch=" S_CP_EPOCH " heartbeat_ms=1 liveness=1000",
      "frame register_ack cp_epoch=" S_CP_EPOCH " heartbeat_ms=4000000000"}},
    {"allocate_connect_release",
     {"flags 1", "frame allocate_leg " S_SID " direction=client call_id=c1@h",
      "frame allocate_leg " S_SID " direction=controlling call_id=c1@h",
      "frame connect_leg " S_SID " direction=client " S_PATH " setup=passive",
      "frame connect_leg " S_SID " direction=controlling " S_PATH
      " setup=active",
      "turn",
      "frame release_leg " S_SID " direction=client reason=bye_2xx "
      "cause=peer_bye",
      "frame release_leg " S_SID " direction=controlling reason=bye_2xx"}},
    {"duplicates_and_conflicts",
     {"flags 1", "frame allocate_leg " S_SID " direction=client call_id=c1",
      "same", "frame allocate_leg " S_SID " direction=client call_id=c2 seq=1",
      "frame allocate_leg " S_SID " direction=client call_id=c2",
      "frame allocate_leg " S_SID " direction=client call_id=c1",
      /* Connecting: the same path again is a repeat, another one a
       * conflict; once the connect failed, a new one goes. */
      "frame connect_leg " S_SID " direction=client " S_PATH, "same",
      "frame connect_leg " S_SID " direction=client " S_PATH,
      "frame connect_leg " S_SID
      " direction=client peer_path=msrp://192.0.2.9:1/q;tcp",
      "turn",
      "frame connect_leg " S_SID
      " direction=client peer_path=msrp://192.0.2.9:1/q;tcp",
      "turn", "frame release_leg " S_SID " direction=client", "same",
      "frame release_leg " S_SID " direction=client"}},
    {"connect_unknown_and_bad_paths",
     {"flags 1", "frame connect_leg " S_SID " direction=client " S_PATH,
      "frame allocate_leg " S_SID " direction=client",
      "frame connect_leg " S_SID " direction=client peer_path=nonsense",
      "frame connect_leg " S_SID
      " direction=client peer_path=msrps://192.0.2.1:7394/p1;tcp",
      "frame connect_leg " S_SID
      " direction=client peer_path=msrp://[2001:db8::1]:7394/p1;tcp"}},
    {"leg_event_ack",
     /* Register 1, allocate result 2, connect result 3, LegEvent 4. */
     {"flags 1", "frame allocate_leg " S_SID " direction=client",
      "frame connect_leg " S_SID " direction=client " S_PATH, "turn",
      "frame leg_event_ack reply_to=4 " S_SID " direction=client",
      "frame leg_event_ack reply_to=4 " S_SID " direction=client",
      "frame release_leg " S_SID " direction=client"}},
    {"leg_event_resent",
     {"flags 1", "frame allocate_leg " S_SID " direction=controlling",
      "frame connect_leg " S_SID " direction=controlling " S_PATH, "turn",
      "time 10", "frame heartbeat", "time 20", "frame heartbeat", "time 30",
      "frame heartbeat", "time 40", "frame heartbeat", "time 60"}},
    {"audit_and_drain",
     {"flags 1", "frame allocate_leg session_id=1 direction=client",
      "frame allocate_leg session_id=2 direction=controlling", "frame audit",
      "frame drain node_id=up-f",
      "frame allocate_leg session_id=3 direction=client",
      "frame release_leg session_id=1 direction=client",
      "frame release_leg session_id=2 direction=controlling",
      "frame heartbeat"}},
    {"drain_other_node_and_empty",
     {"flags 1", "frame drain node_id=up-x", "frame drain"}},
    {"capacity",
     {"flags 1", "frame allocate_leg session_id=1 direction=client",
      "frame allocate_leg session_id=2 direction=client",
      "frame allocate_leg session_id=3 direction=client",
      "frame allocate_leg session_id=4 direction=client",
      "frame allocate_leg session_id=5 direction=client",
      "frame allocate_leg session_id=6 direction=client",
      "frame allocate_leg session_id=7 direction=client",
      "frame allocate_leg session_id=8 direction=client",
      "frame allocate_leg session_id=9 direction=client", "frame audit"}},
    {"cp_restarts",
     {"flags 1", "frame allocate_leg " S_SID " direction=client",
      "frame connect_leg " S_SID " direction=client " S_PATH, "turn",
      "frame allocate_leg session_id=7 direction=client sender_epoch=99",
      "frame heartbeat sender_epoch=99",
      "frame register_ack sender_epoch=99 cp_epoch=99",
      "frame allocate_leg " S_SID " direction=client sender_epoch=99",
      "frame heartbeat"}},
    {"cp_silent",
     {"flags 1", "frame allocate_leg " S_SID " direction=client", "time 50",
      "time 50", "frame allocate_leg session_id=2 direction=client",
      "frame register_ack cp_epoch=" S_CP_EPOCH, "time 5"}},
    {"cp_errors",
     {"flags 1", "frame error code=ERROR_NOT_REGISTERED message=who?",
      "frame error code=ERROR_MALFORMED", "frame register node_id=up-f",
      "frame register_ack cp_epoch=0", "frame heartbeat major=2", "raw 0801",
      "raw ffffffff",
      "frame leg_event_ack reply_to=77 " S_SID " direction=client"}},
};

/* ---- fuzz_cp_handler ---------------------------------------------------- */

#define S_PATH1 "path=msrp://127.0.0.1:2855/w1;tcp"
#define S_C "session_id=0x1000 direction=client"
#define S_K "session_id=0x1000 direction=controlling"

/* Register and audit: with flags 1, up-1's RegisterAck is 1 and its Audit
 * 2; with flags 3, up-2's are 3 and 4. A session's AllocateLegs follow,
 * client first. */
static const s_seed_t s_cp[] = {
    {"register_audit_heartbeat",
     {"flags 0",
      "frame up-1 register node_id=up-1 msrp_address=127.0.0.1:2855 "
      "capacity=10",
      "frame up-1 heartbeat legs_active=0",
      "frame up-1 inventory reply_to=2 "
      "last=true",
      "frame up-1 heartbeat draining=true", "frame ctl query kind=workers"}},
    {"session_up_and_down",
     {"flags 1", "frame up-1 inventory reply_to=2 last=true", "new",
      "frame up-1 allocate_leg_result reply_to=3 status=ok " S_C " " S_PATH1,
      "frame up-1 allocate_leg_result reply_to=4 status=ok " S_K " " S_PATH1,
      "event 0 answered",
      "frame up-1 connect_leg_result reply_to=5 status=ok " S_C,
      "frame up-1 connect_leg_result reply_to=6 status=conflict " S_K,
      "event 0 client_ack", "event 0 bye_received",
      "frame up-1 release_leg_result reply_to=7 status=ok " S_C
      " counters.bytes_in=5 counters.msgs_out=1",
      "same", "event 0 bye_done controlling 200",
      "frame up-1 release_leg_result reply_to=8 status=not_found " S_K,
      "frame ctl query kind=sessions", "frame ctl query kind=workers"}},
    {"allocate_failures",
     {"flags 3", "new", "new",
      /* 0x1000 on up-2 (5, 6), 0x1001 on up-1 (7, 8). */
      "frame up-2 allocate_leg_result reply_to=5 status=no_capacity "
      "session_id=0x1000 direction=client",
      "frame up-1 allocate_leg_result reply_to=7 status=ok "
      "session_id=0x1001 direction=client " S_PATH1,
      "frame up-1 allocate_leg_result reply_to=8 status=ok "
      "session_id=0x1001 direction=controlling",
      "frame up-2 allocate_leg_result reply_to=6 status=ok "
      "session_id=0x1000 direction=controlling " S_PATH1,
      "frame up-1 allocate_leg_result reply_to=99 status=ok "
      "session_id=0x77 direction=client " S_PATH1,
      "event 1 rejected controlling 486"}},
    {"leg_event_ends_session",
     {"flags 1", "new",
      "frame up-1 allocate_leg_result reply_to=3 status=ok "
      "session_id=0x1000 direction=client " S_PATH1,
      "frame up-1 allocate_leg_result reply_to=4 status=ok "
      "session_id=0x1000 direction=controlling " S_PATH1,
      "event 0 answered", "event 0 client_ack", "frame ctl query kind=sessions",
      "frame up-1 leg_event session_id=0x1000 direction=controlling "
      "kind=idle",
      "same", "frame ctl query kind=sessions",
      "frame up-1 leg_event session_id=0x1000 direction=client "
      "kind=peer_closed",
      "frame up-1 leg_event session_id=0x1000 direction=client "
      "kind=connect_failed",
      "frame up-2 leg_event session_id=0x1000 direction=client "
      "kind=peer_closed"}},
    {"audit_mismatch",
     {"flags 1", "frame up-1 inventory reply_to=2 last=true", "new",
      "frame up-1 allocate_leg_result reply_to=3 status=ok " S_C " " S_PATH1,
      "frame up-1 allocate_leg_result reply_to=4 status=ok " S_K " " S_PATH1,
      "event 0 answered", "event 0 client_ack",
      "frame up-1 connect_leg_result reply_to=5 status=ok " S_C,
      "frame up-1 connect_leg_result reply_to=6 status=ok " S_K, "time 25",
      "frame up-1 heartbeat", "time 26", "frame up-1 heartbeat",
      /* Heartbeats 7 to 9, the periodic Audit 10; the release of 0xdead
       * 11. */
      "frame up-1 inventory reply_to=10 part=0 last=false "
      "legs.0.session_id=0x1000 legs.0.direction=client",
      "frame up-1 inventory reply_to=10 part=1 last=true "
      "legs.0.session_id=0xdead legs.0.direction=controlling",
      "frame up-1 release_leg_result reply_to=11 status=ok "
      "session_id=0xdead direction=controlling",
      "frame up-1 inventory reply_to=10 last=true"}},
    /* Once, a result of another kind completed the command it named: an
     * Audit answered so was never answered again, and the worker never
     * audited again; an AllocateLeg answered by a ConnectLegResult left
     * its session allocating for good. */
    {"crash_result_answers_audit",
     {"flags 1", "frame up-1 release_leg_result reply_to=2 status=ok " S_C,
      "frame up-1 heartbeat", "frame up-1 inventory reply_to=2 last=true"}},
    {"results_of_another_kind",
     {"flags 1", "new",
      "frame up-1 connect_leg_result reply_to=3 status=ok " S_C,
      "frame up-1 drain_result reply_to=4 status=ok",
      "frame up-1 allocate_leg_result reply_to=3 status=ok " S_C " " S_PATH1,
      "frame up-1 allocate_leg_result reply_to=4 status=ok " S_K " " S_PATH1,
      "event 0 answered",
      "frame up-1 allocate_leg_result reply_to=5 status=ok " S_C " " S_PATH1,
      "frame up-1 release_leg_result reply_to=6 status=ok " S_K,
      "frame up-1 inventory reply_to=5 last=true"}},
    {"worker_restarts_and_dies",
     {"flags 3", "new", "new",
      "frame up-1 register node_id=up-1 sender_epoch=5 capacity=10",
      "frame up-1 heartbeat", "time 40", "frame up-2 heartbeat",
      "frame up-2 register node_id=up-2 "
      "capacity=10",
      "new"}},
    {"deregister_with_sessions",
     {"flags 1", "new",
      "frame up-1 allocate_leg_result reply_to=3 status=ok "
      "session_id=0x1000 direction=client " S_PATH1,
      "frame up-1 deregister reason=drained", "frame up-1 heartbeat",
      "frame up-1 release_leg_result reply_to=5 status=ok " S_C}},
    {"drain_by_operator",
     {"flags 3", "frame ctl drain node_id=up-2",
      "frame up-2 drain_result reply_to=5 status=ok",
      "frame ctl drain "
      "node_id=up-7",
      "new", "frame ctl query kind=workers"}},
    {"commands_given_up",
     {"flags 1", "new", "time 10", "frame up-1 heartbeat", "time 20",
      "frame up-1 heartbeat", "time 25", "frame up-1 heartbeat", "time 25",
      "frame up-1 heartbeat", "time 25", "frame up-1 heartbeat", "time 25",
      "frame up-1 heartbeat", "time 25"}},
    {"peer_errors",
     {"flags 1", "frame @ heartbeat",
      "frame @0123456789012345678901234567890123456789012345678901234567890123"
      " heartbeat",
      "frame up-9 heartbeat",
      "frame up-1 allocate_leg session_id=1 "
      "direction=client",
      "frame up-1 error code=ERROR_MALFORMED message=bad",
      "frame up-2 register node_id=up-3", "frame ctl query kind=0",
      "frame up-1 heartbeat major=2", "raw up-1 0a00", "raw up-1 ffff"}},
};

/* ---- writing ------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} s_buf_t;

static void s_put(s_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void s_put_header(s_buf_t *b, unsigned h)
{
    uint8_t hb[2] = {(uint8_t)(h >> 8), (uint8_t)h};
    s_put(b, hb, 2);
}

static const char *const s_peer_names[4] = {"up-1", "up-2", "ctl", "up-9"};
static const char *const s_peer_epochs[4] = {"4369", "8738", "7", "9"};

/* The peer byte (and raw id) of a CP frame; the peer's index or -1. */
static int s_peer(s_buf_t *b, const char *name)
{
    if (name[0] == '@') {
        size_t n = strlen(name + 1);
        uint8_t p = (uint8_t)(0x80 | n);
        s_put(b, &p, 1);
        s_put(b, name + 1, n);
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, s_peer_names[i]) == 0) {
            uint8_t p = (uint8_t)i;
            s_put(b, &p, 1);
            return i;
        }
    }
    fprintf(stderr, "unknown peer %s\n", name);
    exit(1);
}

static int s_set(im_env_t *env, const char *body, const char *tok)
{
    static const char *const hdr[] = {"seq", "reply_to", "sender_id",
                                      "sender_epoch", "major"};
    char path[160], err[256];
    size_t n = strcspn(tok, "=");
    if (!tok[n] || n >= 64)
        return -EINVAL;
    bool header = false;
    for (size_t i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++)
        header |= strlen(hdr[i]) == n && strncmp(tok, hdr[i], n) == 0;
    snprintf(path, sizeof(path), "%s%s%.*s", header ? "" : body,
             header ? "" : ".", (int)n, tok);
    if (im_proto_set_field(&env->base, path, tok + n + 1, err, sizeof(err)) <
        0) {
        fprintf(stderr, "%s: %s\n", tok, err);
        return -EINVAL;
    }
    return 0;
}

/* Packs the frame of a `frame` line: tokens after the peer. */
static int s_frame(char *rest, const char *sender, const char *epoch,
                   unsigned seq, uint8_t **out, size_t *len)
{
    char *save = NULL;
    char *body = strtok_r(rest, " ", &save);
    im_env_t *env = im_env_new();
    char num[32], err[256];
    if (!body || !env)
        return -EINVAL;
    snprintf(num, sizeof(num), "%u", seq);
    int rc =
        im_proto_set_field(&env->base, "sender_id", sender, err, sizeof(err));
    if (rc == 0)
        rc = im_proto_set_field(&env->base, "sender_epoch", epoch, err,
                                sizeof(err));
    if (rc == 0)
        rc = im_proto_set_field(&env->base, "seq", num, err, sizeof(err));
    if (rc == 0)
        rc = im_proto_set_field(&env->base, body, "{}", err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "%s: %s\n", body, err);
    for (char *t = strtok_r(NULL, " ", &save); rc == 0 && t;
         t = strtok_r(NULL, " ", &save))
        rc = s_set(env, body, t);
    if (rc == 0)
        rc = im_proto_pack(env, out, len);
    im_proto_free(env);
    return rc;
}

static const char *const s_events[] = {
    "answered",      "rejected",     "client_ack",    "client_no_ack",
    "client_cancel", "bye_received", "timer_expired", "refresh_failed",
    "bye_done",      "shutdown",     "failed",
};
static const int s_statuses[8] = {200, 408, 481, 486, 500, 503, 0, 422};

static int s_event(s_buf_t *b, char *rest)
{
    char *save = NULL;
    char *n = strtok_r(rest, " ", &save), *name = strtok_r(NULL, " ", &save);
    if (!n || !name)
        return -EINVAL;
    int e = -1;
    for (size_t i = 0; i < sizeof(s_events) / sizeof(s_events[0]); i++)
        if (strcmp(name, s_events[i]) == 0)
            e = (int)i;
    if (e < 0)
        return -EINVAL;
    for (char *t = strtok_r(NULL, " ", &save); t;
         t = strtok_r(NULL, " ", &save)) {
        if (strcmp(t, "controlling") == 0) {
            e |= 0x10;
            continue;
        }
        int st = atoi(t), k = -1;
        for (int i = 0; i < 8; i++)
            if (s_statuses[i] == st)
                k = i;
        if (k < 0)
            return -EINVAL;
        e |= k << 5;
    }
    s_put_header(b, 0x8200 | (unsigned)atoi(n));
    uint8_t eb = (uint8_t)e;
    s_put(b, &eb, 1);
    return 0;
}

static int s_line(s_buf_t *b, bool cp, const char *line, unsigned seqs[4],
                  s_buf_t *last)
{
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", line);
    char *save = NULL;
    char *cmd = strtok_r(copy, " ", &save);
    char *rest = save ? save : copy + strlen(copy);
    if (!cmd)
        return -EINVAL;
    if (strcmp(cmd, "flags") == 0) {
        uint8_t f = (uint8_t)atoi(rest);
        s_put(b, &f, 1);
        return 0;
    }
    if (strcmp(cmd, "time") == 0) {
        s_put_header(b, 0x8000 | (unsigned)atoi(rest));
        return 0;
    }
    if (!cp && strcmp(cmd, "turn") == 0) {
        s_put_header(b, 0x8100);
        return 0;
    }
    if (cp && strcmp(cmd, "new") == 0) {
        s_put_header(b, 0x8100);
        return 0;
    }
    if (cp && strcmp(cmd, "event") == 0)
        return s_event(b, rest);
    if (strcmp(cmd, "same") == 0) {
        s_put(b, last->p, last->len);
        return 0;
    }
    s_buf_t rec = {0};
    uint8_t *bytes = NULL;
    size_t len = 0;
    int peer = 0;
    if (cp) {
        char *name = strtok_r(NULL, " ", &save);
        if (!name)
            return -EINVAL;
        peer = s_peer(&rec, name);
        rest = save ? save : name + strlen(name);
    }
    if (strcmp(cmd, "raw") == 0) {
        size_t n = strlen(rest) / 2;
        bytes = malloc(n ? n : 1);
        for (size_t i = 0; bytes && i < n; i++)
            sscanf(rest + 2 * i, "%2hhx", &bytes[i]);
        len = n;
    } else if (strcmp(cmd, "frame") == 0) {
        const char *sender = "cp", *epoch = S_CP_EPOCH;
        if (cp) {
            sender = peer >= 0 ? s_peer_names[peer] : "anon";
            epoch = peer >= 0 ? s_peer_epochs[peer] : "1";
        }
        unsigned *seq = &seqs[peer >= 0 ? peer : 3];
        if (s_frame(rest, sender, epoch, ++*seq, &bytes, &len) < 0)
            bytes = NULL;
    }
    if (!bytes || len >= 0x8000) {
        free(rec.p);
        free(bytes);
        return -EINVAL;
    }
    /* The header goes first, before the peer byte. */
    s_put_header(b, (unsigned)len);
    s_put(b, rec.p, rec.len);
    s_put(b, bytes, len);
    last->len = 0;
    s_put_header(last, (unsigned)len);
    s_put(last, rec.p, rec.len);
    s_put(last, bytes, len);
    free(rec.p);
    free(bytes);
    return 0;
}

static int s_write(const char *dir, const s_seed_t *seed, bool cp)
{
    s_buf_t b = {0}, last = {0};
    unsigned seqs[4] = {0};
    for (size_t i = 0; i < S_LINES && seed->lines[i]; i++) {
        if (s_line(&b, cp, seed->lines[i], seqs, &last) < 0) {
            fprintf(stderr, "%s: bad line \"%s\"\n", seed->name,
                    seed->lines[i]);
            free(b.p);
            free(last.p);
            return -EINVAL;
        }
    }
    char file[4096];
    snprintf(file, sizeof(file), "%s/%s.bin", dir, seed->name);
    FILE *fp = fopen(file, "wb");
    int rc = fp && fwrite(b.p, 1, b.len, fp) == b.len ? 0 : -EIO;
    if (fp && fclose(fp) != 0)
        rc = -EIO;
    if (rc < 0)
        fprintf(stderr, "%s: %s\n", file, strerror(errno));
    free(b.p);
    free(last.p);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s UP_DIR CP_DIR\n", argv[0]);
        return 64;
    }
    for (size_t i = 0; i < sizeof(s_up) / sizeof(s_up[0]); i++)
        if (s_write(argv[1], &s_up[i], false) < 0)
            return 1;
    for (size_t i = 0; i < sizeof(s_cp) / sizeof(s_cp[0]); i++)
        if (s_write(argv[2], &s_cp[i], true) < 0)
            return 1;
    return 0;
}
