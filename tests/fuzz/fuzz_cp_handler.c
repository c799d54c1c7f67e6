/* fuzz_cp_handler: the CP's handler of control-channel messages
 * (cp_handler, cp_workers, cp_path's command store, the session machine)
 * fed frames from workers and operators, in sequences, as the CP receives
 * them.
 *
 * The CP context is the daemon's without its SIP side: su_root (never run),
 * timing wheel, metrics, worker pool, session table and the control path
 * (cp_path: the ROUTER, bound on an abstract unix socket), with the
 * heartbeat and audit timers started (cp_handler_start; audits every 5 s).
 * No NTA agent is created. This program connects three DEALERs to that
 * ROUTER with the routing ids "up-1", "up-2" and "ctl", so that what the
 * CP sends them is routable (cp_path_command keeps only commands it could
 * route), reads what they receive and checks it. Frames are handed to
 * cp_handler_frame() directly, as cp_path does on receipt, with a routing
 * id of the input's choosing. The sessions, the workers and the pending
 * commands of an input are gone before the next one (as if each worker had
 * left), so inputs do not depend on each other.
 *
 * The SIP side is replaced: this program defines cp_sip_dispatch() (so
 * cp_sip.o is not linked) and drives the real session machine
 * (cp_session_dispatch) with actions that send the worker commands as
 * cp_sip does (AllocateLeg, ConnectLeg on answer, ReleaseLeg) and only
 * pretend the SIP ones (INVITE, answer, BYE, CANCEL). Sessions are created
 * as an accepted INVITE creates them (placed with cp_pool_pick, both legs
 * allocated), and SIP-side events (answer, ACK, BYE, timers, ...) are
 * records of the input. Not covered here: cp_sip.c itself (SIP messages,
 * SDP rewriting, RFC 4028 timers), which fuzz_sip and fuzz_sdp reach in
 * part and the system tests drive.
 *
 * Input: byte 0 holds flags; bits 0 and 1 register "up-1" (epoch S_W1) and
 * "up-2" (epoch S_W2) before the first record, with Register frames as the
 * workers send them. Then records, each with a 2-byte big-endian header H:
 * - H < 0x8000: a frame of H bytes (fewer if the input ends first) after a
 *   peer byte P: P < 0x80 names "up-1", "up-2", "ctl" or "up-9" (nothing
 *   connected: the CP's answers are unroutable) by P & 3; P >= 0x80 is
 *   followed by a routing id of P & 0x7f bytes (0 and 64 or more are
 *   refused as such);
 * - H >= 0x8000: op (H >> 8) & 0x7f, argument A = H & 0xff:
 *   op 0 (and unknown ops): time passes, A * 100 ms: the wheel moves on
 *   (command resends, commands given up, worker liveness) and the workers'
 *   last_seen_ms move back as much;
 *   op 1: a SIP INVITE is accepted: a new session, ids S_FIRST_SID on;
 *   op 2: a SIP event for session S_FIRST_SID + A, described by one more
 *   byte E: event s_sip_events[(E & 0x0f) % n], direction E bit 4, status
 *   s_statuses[E >> 5].
 * The CP numbers its messages on from one input to the next; every frame
 * that decodes gets the seq of the CP's last message before the input
 * added to its reply_to (when not 0) and is packed again, so that
 * reply_to=N in an input answers the N-th message the CP sent in it.
 *
 * Logs are written at debug level, so that every log statement's arguments
 * are evaluated, into /dev/null. IMSPLIT_FUZZ_LOG=1 keeps them on stderr
 * and adds every message the CP sent, numbered as above ("# to up-1: #3
 * {...}"), which is how the seeds' reply_to values were found.
 *
 * Besides what the sanitizers catch, the target aborts when
 * - a message the CP sends does not decode, or does not carry its node id
 *   and epoch;
 * - a session in the table is CLOSED (closed sessions leave the table), or
 *   the table's count disagrees with what it holds;
 * - a worker's audit in flight (audit_seq) is not a pending Audit in the
 *   command store: a result of another kind answered it, and the worker
 *   would never be audited again;
 * - after the input, once every session is freed and every worker removed
 *   (as its Deregister would), a command is still pending or a timer other
 *   than the path's recheck is armed. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>
#include <zmq.h>

#include "cp_build.h"
#include "cp_context.h"
#include "cp_handler.h"
#include "cp_metrics.h"
#include "cp_path.h"
#include "cp_pool.h"
#include "cp_session.h"
#include "cp_sip.h"
#include "cp_timer.h"
#include "cp_workers.h"
#include "im_clock.h"
#include "im_log.h"
#include "im_proto.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_CP_EPOCH 1717000000123ull
#define S_W1 0x1111ull
#define S_W2 0x2222ull
#define S_FIRST_SID 0x1000ull
#define S_MAX_SESSIONS 16
#define S_RECORDS_MAX 256
#define S_NPEERS 3 /* connected DEALERs */

static const char *const s_peers[4] = {"up-1", "up-2", "ctl", "up-9"};

static const cp_sess_event_t s_sip_events[] = {
    CP_EV_ANSWERED,      CP_EV_REJECTED,       CP_EV_CLIENT_ACK,
    CP_EV_CLIENT_NO_ACK, CP_EV_CLIENT_CANCEL,  CP_EV_BYE_RECEIVED,
    CP_EV_TIMER_EXPIRED, CP_EV_REFRESH_FAILED, CP_EV_BYE_DONE,
    CP_EV_SHUTDOWN,      CP_EV_FAILED,
};
static const int s_statuses[8] = {200, 408, 481, 486, 500, 503, 0, 422};

static struct {
    bool ready;
    cp_context_t ctx;
    void *zctx;              /* the workers' end */
    void *dealers[S_NPEERS]; /* routing ids s_peers[0..2] */
    uint64_t base_seq;       /* the CP's last seq before this input */
    cp_session_t *graveyard; /* closed, freed after the record */
    unsigned calls;
} S;

/* ---- the SIP side, pretended --------------------------------------------- */

static int s_op_allocate(void *c, cp_session_t *s, cp_dir_t dir)
{
    return cp_build_allocate(c, s, dir) ? 0 : -EHOSTUNREACH;
}

static int s_op_invite(void *c, cp_session_t *s)
{
    (void)c;
    (void)s;
    return 0;
}

/* The 200 to the client goes (pretended); both legs are connected. */
static int s_op_answer(void *c, cp_session_t *s)
{
    if (!s->legs[CP_DIR_CLIENT].path)
        return -EINVAL;
    cp_build_connect(c, s, CP_DIR_CLIENT);
    cp_build_connect(c, s, CP_DIR_CONTROLLING);
    return 0;
}

static void s_op_reject(void *c, cp_session_t *s, int status)
{
    (void)c;
    (void)s;
    (void)status;
}

static void s_op_cancel(void *c, cp_session_t *s)
{
    (void)c;
    (void)s;
}

static int s_op_bye(void *c, cp_session_t *s, cp_dir_t dir, bool with_reason)
{
    (void)c;
    (void)s;
    (void)dir;
    (void)with_reason;
    return 0;
}

/* As cp_sip's: only to a worker that is there. */
static int s_op_release(void *c, cp_session_t *s, cp_dir_t dir, int reason)
{
    return cp_workers_release_leg(c, s, dir, reason);
}

static void s_op_stop_timers(void *c, cp_session_t *s)
{
    (void)c;
    (void)s;
}

/* As cp_sip's: out of the table and the worker's count at once, freed
 * later (after the record here, from a timer there). */
static void s_op_closed(void *c, cp_session_t *s)
{
    s->state = CP_SESS_CLOSED;
    cp_workers_session_closed(c, s);
    s->hnext = S.graveyard;
    S.graveyard = s;
}

static const cp_session_ops_t s_ops = {
    .allocate = s_op_allocate,
    .invite = s_op_invite,
    .answer = s_op_answer,
    .reject = s_op_reject,
    .cancel = s_op_cancel,
    .bye = s_op_bye,
    .release = s_op_release,
    .stop_timers = s_op_stop_timers,
    .closed = s_op_closed,
};

void cp_sip_dispatch(cp_context_t *ctx, cp_session_t *s, cp_sess_event_t ev,
                     cp_dir_t dir, int status)
{
    cp_session_dispatch(s, ev, dir, status, &s_ops, ctx);
}

static void s_reap(void)
{
    while (S.graveyard) {
        cp_session_t *s = S.graveyard;
        S.graveyard = s->hnext;
        s->hnext = NULL;
        cp_session_free(S.ctx.sessions, &s);
    }
}

static char *s_dup(const char *s)
{
    char *d = strdup(s);
    S_CHECK(d);
    return d;
}

/* What cp_sip does with an INVITE it accepts, less SIP. */
static void s_new_session(void)
{
    cp_context_t *ctx = &S.ctx;
    if (cp_sessions_count(ctx->sessions) >= ctx->cfg.max_sessions)
        return;
    cp_worker_t *w = cp_pool_pick(ctx->pool);
    if (!w)
        return;
    cp_session_t *s = cp_session_new(ctx->sessions);
    S_CHECK(s);
    s->owner = ctx;
    snprintf(s->worker, sizeof(s->worker), "%s", w->id);
    w->sessions++;
    cp_metrics_worker_sync(ctx->metrics, w);
    char call_id[32];
    snprintf(call_id, sizeof(call_id), "fuzz-%u", ++S.calls);
    s->call_id = s_dup(call_id);
    cp_leg_t *cl = &s->legs[CP_DIR_CLIENT];
    cl->peer_path = s_dup("msrp://192.0.2.1:7394/c1;tcp");
    cl->peer_setup = s_dup("active");
    cl->se = ctx->cfg.session_expires;
    cl->st_role = CP_ST_ROLE_PEER_REFRESHES;
    uint64_t id = s->id;
    for (int d = 0; d < CP_DIR_COUNT; d++) {
        s->legs[d].media = CP_MEDIA_ALLOCATING;
        if (s_op_allocate(ctx, s, (cp_dir_t)d) < 0) {
            if (cp_session_dispatch(s, CP_EV_ALLOC_FAILED, (cp_dir_t)d, 0,
                                    &s_ops, ctx) == CP_SESS_CLOSED ||
                !cp_session_find(ctx->sessions, id))
                return;
        }
    }
}

static void s_sip_event(uint64_t id, uint8_t e)
{
    cp_context_t *ctx = &S.ctx;
    cp_session_t *s = cp_session_find(ctx->sessions, id);
    if (!s)
        return;
    size_t n = sizeof(s_sip_events) / sizeof(s_sip_events[0]);
    cp_sess_event_t ev = s_sip_events[(e & 0x0f) % n];
    cp_dir_t dir = (e & 0x10) ? CP_DIR_CONTROLLING : CP_DIR_CLIENT;
    int status = s_statuses[e >> 5];
    if (ev == CP_EV_ANSWERED) {
        /* The controlling side's answer names its path (cp_sip). */
        cp_leg_t *ctrl = &s->legs[CP_DIR_CONTROLLING];
        if (!ctrl->peer_path)
            ctrl->peer_path = s_dup("msrp://198.51.100.2:2855/k1;tcp");
        if (!ctrl->peer_setup)
            ctrl->peer_setup = s_dup("passive");
    }
    cp_sip_dispatch(ctx, s, ev, dir, status);
}

/* ---- the CP -------------------------------------------------------------- */

static void s_init(void)
{
    cp_context_t *ctx = &S.ctx;
    if (!getenv("IMSPLIT_FUZZ_LOG")) {
        fuzz_err = stderr;
        FILE *null = fopen("/dev/null", "w");
        S_CHECK(null);
        stderr = null;
    }
    im_log_init("cp", IM_LOG_LEVEL_DEBUG);
    char err[256];
    char *argv[] = {(char *)"fuzz_cp_handler", NULL};
    S_CHECK(cp_config_load(&ctx->cfg, 1, argv, err, sizeof(err)) == 0);
    /* An abstract unix socket: no file, no packet. */
    static char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "ipc://@imsplit-fuzz-cp-%d",
             (int)getpid());
    ctx->cfg.ctl = endpoint;
    ctx->cfg.max_sessions = S_MAX_SESSIONS;
    ctx->cfg.heap_trim_mb = 0;
    ctx->cfg.audit_ms = 5000;
    ctx->epoch = S_CP_EPOCH;
    ctx->st.session_expires = ctx->cfg.session_expires;
    ctx->st.min_se = ctx->cfg.min_se;
    su_init();
    ctx->root = su_root_create(NULL);
    S_CHECK(ctx->root);
    su_root_threading(ctx->root, 0);
    ctx->wheel = im_wheel_new(im_clock_ms());
    ctx->timers = cp_timer_driver_new(ctx->root, ctx->wheel);
    ctx->metrics = cp_metrics_new();
    ctx->pool = cp_pool_new();
    S_CHECK(ctx->wheel && ctx->timers && ctx->metrics && ctx->pool);
    ctx->path = cp_path_new(ctx);
    S_CHECK(ctx->path);

    S.zctx = zmq_ctx_new();
    S_CHECK(S.zctx);
    for (int i = 0; i < S_NPEERS; i++) {
        void *d = zmq_socket(S.zctx, ZMQ_DEALER);
        int zero = 0;
        S_CHECK(d);
        S_CHECK(zmq_setsockopt(d, ZMQ_ROUTING_ID, s_peers[i],
                               strlen(s_peers[i])) == 0);
        S_CHECK(zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof(zero)) == 0);
        S_CHECK(zmq_connect(d, endpoint) == 0);
        S.dealers[i] = d;
    }
    /* Routable once each handshake is done. */
    uint64_t until = im_clock_ms() + 10000;
    for (int i = 0; i < S_NPEERS; i++) {
        for (;;) {
            Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
            Imsplit__V1__Heartbeat hb = IMSPLIT__V1__HEARTBEAT__INIT;
            env.body_case = IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT;
            env.heartbeat = &hb;
            if (cp_path_send(ctx->path, s_peers[i], strlen(s_peers[i]), &env) ==
                0)
                break;
            S_CHECK(im_clock_ms() < until);
            usleep(1000);
        }
    }
    S.ready = true;
}

/* Reads what peer i received, up to the message numbered seq (bounded in
 * time: what has not arrived by then is read after the next input). Every
 * message must decode and come from this CP. */
static void s_read_until(int i, uint64_t seq)
{
    uint64_t until = im_clock_ms() + 200;
    for (;;) {
        zmq_pollitem_t item = {S.dealers[i], 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 1) <= 0) {
            if (im_clock_ms() >= until)
                return;
            continue;
        }
        zmq_msg_t body;
        zmq_msg_init(&body);
        S_CHECK(zmq_msg_recv(&body, S.dealers[i], ZMQ_DONTWAIT) >= 0);
        S_CHECK(!zmq_msg_more(&body));
        im_env_t *env = NULL;
        char why[160];
        im_proto_err_t err = im_proto_unpack(
            zmq_msg_data(&body), zmq_msg_size(&body), &env, why, sizeof(why));
        if (err != IM_PROTO_OK)
            fprintf(fuzz_err ? fuzz_err : stderr, "CP sent %s: %s\n", s_peers[i],
                    why);
        S_CHECK(err == IM_PROTO_OK);
        S_CHECK(strcmp(env->sender_id, S.ctx.cfg.node_id) == 0);
        S_CHECK(env->sender_epoch == S_CP_EPOCH);
        if (!fuzz_err && env->seq > S.base_seq) {
            /* IMSPLIT_FUZZ_LOG: what the CP sent, numbered as an input
             * numbers it. */
            char *json = im_proto_to_json(env);
            fprintf(stderr, "# to %s: #%" PRIu64 " %s\n", s_peers[i],
                    env->seq - S.base_seq, json ? json : "?");
            free(json);
        }
        bool last = env->seq >= seq;
        im_proto_free(env);
        zmq_msg_close(&body);
        if (last)
            return;
    }
}

/* Every peer reads all the CP sent it: one more message each marks the
 * end. Returns the last seq. */
static uint64_t s_read_all(void)
{
    uint64_t seq[S_NPEERS];
    for (int i = 0; i < S_NPEERS; i++) {
        Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
        Imsplit__V1__Heartbeat hb = IMSPLIT__V1__HEARTBEAT__INIT;
        env.body_case = IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
        (void)cp_path_send(S.ctx.path, s_peers[i], strlen(s_peers[i]), &env);
        seq[i] = env.seq;
    }
    for (int i = 0; i < S_NPEERS; i++)
        s_read_until(i, seq[i]);
    return seq[S_NPEERS - 1];
}

static void s_begin(void)
{
    cp_context_t *ctx = &S.ctx;
    if (!ctx->wheel) {
        ctx->wheel = im_wheel_new(im_clock_ms());
        ctx->timers = cp_timer_driver_new(ctx->root, ctx->wheel);
        S_CHECK(ctx->wheel && ctx->timers);
    }
    /* The wheel catches up with the clock, as the su_timer would have. */
    im_wheel_advance(ctx->wheel, im_clock_ms());
    ctx->sessions = cp_sessions_new(S_FIRST_SID);
    S_CHECK(ctx->sessions);
    S.base_seq = cp_path_last_seq(ctx->path);
    cp_handler_start(ctx);
}

/* One frame from peer, as cp_path hands it over; reply_to counts from this
 * input's first message (see the top of the file). */
static void s_frame(const char *peer, size_t peer_len, const uint8_t *p,
                    size_t len)
{
    im_env_t *env = NULL;
    if (im_proto_unpack(p, len, &env, NULL, 0) != IM_PROTO_OK ||
        env->reply_to == 0) {
        im_proto_free(env);
        cp_handler_frame(&S.ctx, peer, peer_len, p, len);
        return;
    }
    env->reply_to += S.base_seq;
    uint8_t *bytes = NULL;
    size_t n = 0;
    S_CHECK(im_proto_pack(env, &bytes, &n) == 0);
    im_proto_free(env);
    cp_handler_frame(&S.ctx, peer, peer_len, bytes, n);
    free(bytes);
}

static void s_register(const char *id, uint64_t epoch)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__Register reg = IMSPLIT__V1__REGISTER__INIT;
    reg.node_id = (char *)id;
    reg.msrp_address = (char *)"127.0.0.1:2855";
    reg.capacity = 100;
    im_env_init(&env, id, epoch, 1);
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    uint8_t *bytes = NULL;
    size_t len = 0;
    S_CHECK(im_proto_pack(&env, &bytes, &len) == 0);
    cp_handler_frame(&S.ctx, id, strlen(id), bytes, len);
    free(bytes);
}

static void s_age_one(cp_worker_t *w, void *arg)
{
    uint64_t ms = *(const uint64_t *)arg;
    w->last_seen_ms = w->last_seen_ms > ms ? w->last_seen_ms - ms : 0;
}

/* The wheel moves on; the workers look silent for ms longer. */
static void s_time_passes(uint64_t ms)
{
    cp_context_t *ctx = &S.ctx;
    cp_pool_foreach(ctx->pool, s_age_one, &ms);
    im_wheel_advance(ctx->wheel, im_wheel_now(ctx->wheel) + ms);
}

typedef struct {
    size_t n;
} s_count_t;

static void s_count_session(cp_session_t *s, void *arg)
{
    S_CHECK(s->state != CP_SESS_CLOSED);
    ((s_count_t *)arg)->n++;
}

static void s_check_sessions(void)
{
    s_count_t c = {0};
    cp_sessions_foreach(S.ctx.sessions, s_count_session, &c);
    S_CHECK(c.n == cp_sessions_count(S.ctx.sessions));
}

/* A worker with an audit in flight has that Audit in the command store:
 * only its Inventory, its failure or the worker's loss end it. */
static void s_check_worker(cp_worker_t *w, void *arg)
{
    (void)arg;
    cp_cmd_info_t info;
    S_CHECK(strlen(w->id) < sizeof(w->id));
    if (w->audit_seq == 0)
        return;
    if (!cp_path_peek(S.ctx.path, w->id, w->audit_seq, &info) ||
        info.body_case != IMSPLIT__V1__ENVELOPE__BODY_AUDIT) {
        fprintf(fuzz_err ? fuzz_err : stderr, "%s: audit %" PRIu64 " not pending\n",
                w->id, w->audit_seq - S.base_seq);
        S_CHECK(!"an audit in flight is pending");
    }
}

static void s_free_session(cp_session_t *s, void *arg)
{
    (void)arg;
    cp_session_free(S.ctx.sessions, &s);
}

static void s_first_worker(cp_worker_t *w, void *arg)
{
    cp_worker_t **out = arg;
    if (!*out)
        *out = w;
}

/* Sessions freed, workers removed (as a Deregister removes them), the
 * commands to the peers forgotten, what the peers received read. */
static void s_end(void)
{
    cp_context_t *ctx = &S.ctx;
    cp_handler_stop(ctx);
    s_reap();
    cp_sessions_foreach(ctx->sessions, s_free_session, NULL);
    S_CHECK(cp_sessions_count(ctx->sessions) == 0);
    cp_sessions_destroy(&ctx->sessions);
    for (;;) {
        cp_worker_t *w = NULL;
        cp_pool_foreach(ctx->pool, s_first_worker, &w);
        if (!w)
            break;
        cp_timer_cancel(ctx->timers, &w->liveness);
        cp_path_forget_worker(ctx->path, w->id);
        cp_metrics_worker_remove(ctx->metrics, w->id);
        cp_pool_remove(ctx->pool, w);
    }
    for (int i = 0; i < S_NPEERS; i++)
        cp_path_forget_worker(ctx->path, s_peers[i]);
    S_CHECK(cp_path_pending(ctx->path) == 0);
    S_CHECK(cp_path_pending_releases(ctx->path) == 0);
    if (im_wheel_count(ctx->wheel) > 1) {
        fprintf(fuzz_err ? fuzz_err : stderr, "timers left: %zu\n",
                im_wheel_count(ctx->wheel));
        S_CHECK(!"no timer but the path's recheck outlives the input");
    }
    (void)s_read_all();
    /* A wheel that time passed on is ahead of the clock: a new one. */
    if (im_wheel_now(ctx->wheel) > im_clock_ms()) {
        cp_timer_driver_destroy(&ctx->timers);
        im_wheel_destroy(&ctx->wheel);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!S.ready)
        s_init();
    if (size < 1)
        return 0;
    s_begin();
    if (data[0] & 1)
        s_register(s_peers[0], S_W1);
    if (data[0] & 2)
        s_register(s_peers[1], S_W2);
    size_t off = 1;
    for (unsigned n = 0; n < S_RECORDS_MAX && off + 2 <= size; n++) {
        unsigned h = (unsigned)data[off] << 8 | data[off + 1];
        off += 2;
        if (h & 0x8000) {
            unsigned op = (h >> 8) & 0x7f, arg = h & 0xff;
            if (op == 1) {
                s_new_session();
            } else if (op == 2) {
                if (off >= size)
                    break;
                s_sip_event(S_FIRST_SID + arg, data[off++]);
            } else {
                s_time_passes((uint64_t)arg * 100);
            }
        } else {
            if (off >= size)
                break;
            uint8_t p = data[off++];
            const char *peer = s_peers[p & 3];
            size_t peer_len = strlen(peer);
            if (p & 0x80) {
                peer_len = p & 0x7f;
                if (peer_len > size - off)
                    peer_len = size - off;
                peer = (const char *)data + off;
                off += peer_len;
            }
            size_t len = h < size - off ? h : size - off;
            s_frame(peer, peer_len, data + off, len);
            off += len;
        }
        s_reap();
        s_check_sessions();
        cp_pool_foreach(S.ctx.pool, s_check_worker, NULL);
    }
    s_end();
    return 0;
}
