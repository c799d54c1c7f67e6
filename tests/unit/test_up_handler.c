/* up_handler: the worker's side of the CP-UP protocol on a real libuv loop
 * and a real ZeroMQ channel. The test plays the CP with a ROUTER on an ipc
 * endpoint of its own (no TCP port to clash with), registers the worker,
 * then checks at-least-once commands (result cache), idempotent AllocateLeg
 * and ConnectLeg, paged Inventory, LegEvent resends, Drain and the socket
 * replacement on CP silence. Every test ends by closing everything and
 * proving the loop has nothing left alive. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>
#include <zmq.h>

#include "im_clock.h"
#include "im_log.h"
#include "im_proto.h"
#include "up_cache.h"
#include "up_context.h"
#include "up_handler.h"
#include "up_leg.h"
#include "up_legevent.h"
#include "up_metrics.h"
#include "up_msrp.h"
#include "up_path.h"
#include "up_timer.h"

#define NODE "up-t"
#define CP_ID "cp-t"
#define CP_EPOCH 0xc0ffee01ull
#define WAIT_MS 2000

#define DIR_CLIENT IMSPLIT__V1__DIRECTION__DIRECTION_CLIENT
#define DIR_CONTROLLING IMSPLIT__V1__DIRECTION__DIRECTION_CONTROLLING

typedef struct {
    uv_loop_t loop;
    up_context_t ctx;
    void *zctx;
    void *router;
    char sock[96];
    char endpoint[128];
    uint64_t cp_epoch;
    int stops;
    char stop_reason[32];
} env_t;

/* A message the test CP received: the envelope and its exact bytes. */
typedef struct {
    im_env_t *env;
    uint8_t *raw;
    size_t len;
} msg_t;

static void s_msg_free(msg_t *m)
{
    im_proto_free(m->env);
    free(m->raw);
    memset(m, 0, sizeof(*m));
}

/* ctx->stop as main.c does it: release, Deregister, nothing more runs. */
static void s_on_stop(up_context_t *ctx, const char *reason)
{
    env_t *e = (env_t *)((char *)ctx - offsetof(env_t, ctx));
    e->stops++;
    snprintf(e->stop_reason, sizeof(e->stop_reason), "%s", reason);
    ctx->stopping = true;
    up_handler_release_all(ctx, reason);
    up_handler_stop(ctx, reason);
}

static void s_turn(env_t *e)
{
    uv_run(&e->loop, UV_RUN_NOWAIT);
}

/* Turns the loop and reads the ROUTER until a message other than a
 * Heartbeat arrives or ms pass. Returns false on timeout. */
static bool s_recv(env_t *e, msg_t *out, int ms)
{
    memset(out, 0, sizeof(*out));
    uint64_t until = im_clock_ms() + (uint64_t)ms;
    while (im_clock_ms() < until) {
        s_turn(e);
        zmq_pollitem_t item = {e->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 5) <= 0)
            continue;
        char id[64];
        int idn = zmq_recv(e->router, id, sizeof(id), ZMQ_DONTWAIT);
        assert_true(idn > 0);
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        assert_true(zmq_msg_recv(&msg, e->router, ZMQ_DONTWAIT) >= 0);
        size_t len = zmq_msg_size(&msg);
        im_env_t *env = NULL;
        assert_int_equal(
            im_proto_unpack(zmq_msg_data(&msg), len, &env, NULL, 0),
            IM_PROTO_OK);
        assert_string_equal(env->sender_id, NODE);
        if (env->body_case == IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT) {
            im_proto_free(env);
            zmq_msg_close(&msg);
            continue;
        }
        out->env = env;
        out->len = len;
        out->raw = malloc(len);
        assert_non_null(out->raw);
        memcpy(out->raw, zmq_msg_data(&msg), len);
        zmq_msg_close(&msg);
        return true;
    }
    return false;
}

static void s_expect(env_t *e, msg_t *out, int body_case)
{
    assert_true(s_recv(e, out, WAIT_MS));
    assert_int_equal(out->env->body_case, body_case);
}

/* Nothing but Heartbeats for ms. */
static void s_expect_none(env_t *e, int ms)
{
    msg_t m;
    bool got = s_recv(e, &m, ms);
    if (got)
        fprintf(stderr, "unexpected body %s\n",
                im_proto_body_name((int)m.env->body_case));
    s_msg_free(&m);
    assert_false(got);
}

static void s_turn_for(env_t *e, int ms)
{
    uint64_t until = im_clock_ms() + (uint64_t)ms;
    while (im_clock_ms() < until) {
        s_turn(e);
        usleep(2000);
    }
}

/* Sends env (body set, reply_to as the caller set it) as the test CP. */
static void s_send(env_t *e, im_env_t *env, uint64_t seq)
{
    env->major = IM_PROTO_MAJOR;
    env->minor = IM_PROTO_MINOR;
    env->sender_id = (char *)CP_ID;
    env->sender_epoch = e->cp_epoch;
    env->seq = seq;
    uint8_t *bytes = NULL;
    size_t len = 0;
    assert_int_equal(im_proto_pack(env, &bytes, &len), 0);
    assert_int_equal(zmq_send(e->router, NODE, strlen(NODE), ZMQ_SNDMORE),
                     (int)strlen(NODE));
    assert_int_equal(zmq_send(e->router, bytes, len, 0), (int)len);
    free(bytes);
}

static void s_register_ack(env_t *e, uint32_t hb_ms, uint32_t liveness)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__RegisterAck body = IMSPLIT__V1__REGISTER_ACK__INIT;
    body.cp_epoch = e->cp_epoch;
    body.heartbeat_ms = hb_ms;
    body.liveness = liveness;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_REGISTER_ACK;
    env.register_ack = &body;
    s_send(e, &env, 1);
}

static void s_registered(env_t *e, uint32_t hb_ms, uint32_t liveness)
{
    msg_t m;
    s_expect(e, &m, IMSPLIT__V1__ENVELOPE__BODY_REGISTER);
    assert_string_equal(m.env->register_->node_id, NODE);
    s_msg_free(&m);
    s_register_ack(e, hb_ms, liveness);
    uint64_t until = im_clock_ms() + WAIT_MS;
    while (e->ctx.reg_state != UP_REG_REGISTERED && im_clock_ms() < until)
        s_turn_for(e, 5);
    assert_int_equal(e->ctx.reg_state, UP_REG_REGISTERED);
    assert_int_equal(e->ctx.cp_epoch, e->cp_epoch);
}

static void s_env_init(env_t *e, uint32_t capacity, uint32_t event_base_ms)
{
    memset(e, 0, sizeof(*e));
    e->cp_epoch = CP_EPOCH;
    snprintf(e->sock, sizeof(e->sock), "/tmp/imsplit-test-up-handler-%d.sock",
             (int)getpid());
    snprintf(e->endpoint, sizeof(e->endpoint), "ipc://%s", e->sock);
    unlink(e->sock);
    e->zctx = zmq_ctx_new();
    assert_non_null(e->zctx);
    e->router = zmq_socket(e->zctx, ZMQ_ROUTER);
    assert_non_null(e->router);
    int one = 1, zero = 0;
    /* Like the CP: a worker's new socket takes over its routing id. */
    assert_int_equal(
        zmq_setsockopt(e->router, ZMQ_ROUTER_HANDOVER, &one, sizeof(one)), 0);
    assert_int_equal(zmq_setsockopt(e->router, ZMQ_LINGER, &zero, sizeof(zero)),
                     0);
    assert_int_equal(zmq_bind(e->router, e->endpoint), 0);

    assert_int_equal(uv_loop_init(&e->loop), 0);
    up_context_t *ctx = &e->ctx;
    char err[128];
    char *argv[] = {(char *)"test", NULL};
    assert_int_equal(up_config_load(&ctx->cfg, 1, argv, err, sizeof(err)), 0);
    ctx->cfg.cp = e->endpoint;
    ctx->cfg.id = NODE;
    ctx->cfg.msrp = "127.0.0.1:0";
    ctx->cfg.capacity = capacity;
    ctx->epoch = im_clock_epoch();
    ctx->loop = &e->loop;
    ctx->wheel = im_wheel_new(im_clock_ms());
    ctx->timers = up_timer_driver_new(&e->loop, ctx->wheel);
    ctx->metrics = up_metrics_new();
    ctx->cache =
        up_cache_new(ctx->cfg.result_cache_max, ctx->cfg.result_cache_ms);
    assert_non_null(ctx->timers);
    assert_non_null(ctx->metrics);
    assert_non_null(ctx->cache);
    ctx->msrp = up_msrp_new(ctx);
    assert_non_null(ctx->msrp);
    const up_leg_ops_t ops = {up_msrp_conn_close, up_msrp_leg_released};
    ctx->legs = up_legs_new(capacity, 2048, 65536 + UP_MSRP_BUFFER_SLACK, &ops,
                            ctx->msrp);
    assert_non_null(ctx->legs);
    ctx->legevents = up_legevents_new(ctx, 64, event_base_ms);
    assert_non_null(ctx->legevents);
    ctx->path = up_path_new(ctx);
    assert_non_null(ctx->path);
    ctx->stop = s_on_stop;
    assert_int_equal(up_handler_start(ctx), 0);
    s_registered(e, 1000, 3);
}

static void s_env_done(env_t *e)
{
    up_context_t *ctx = &e->ctx;
    if (!ctx->stopping) {
        ctx->stopping = true;
        up_handler_release_all(ctx, "test_done");
        up_handler_stop(ctx, NULL);
    }
    up_msrp_close(ctx->msrp);
    up_path_close(ctx->path);
    up_timer_driver_close(ctx->timers);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(up_legs_zombies(ctx->legs), 0);
    assert_int_equal(up_msrp_loose(ctx->msrp), 0);
    up_path_destroy(&ctx->path);
    up_msrp_destroy(&ctx->msrp);
    up_legs_destroy(&ctx->legs);
    up_legevents_destroy(&ctx->legevents);
    up_cache_destroy(&ctx->cache);
    up_timer_driver_destroy(&ctx->timers);
    im_wheel_destroy(&ctx->wheel);
    up_metrics_destroy(&ctx->metrics);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    zmq_close(e->router);
    zmq_ctx_term(e->zctx);
    unlink(e->sock);
}

/* ---- commands the test CP sends ------------------------------------------ */

static void s_allocate(env_t *e, uint64_t seq, uint64_t sid, int dir,
                       const char *call_id)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__AllocateLeg body = IMSPLIT__V1__ALLOCATE_LEG__INIT;
    body.session_id = sid;
    body.direction = dir;
    body.call_id = (char *)call_id;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG;
    env.allocate_leg = &body;
    s_send(e, &env, seq);
}

static void s_connect(env_t *e, uint64_t seq, uint64_t sid, int dir,
                      const char *peer_path, const char *setup)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__ConnectLeg body = IMSPLIT__V1__CONNECT_LEG__INIT;
    body.session_id = sid;
    body.direction = dir;
    body.peer_path = (char *)peer_path;
    body.setup = (char *)setup;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG;
    env.connect_leg = &body;
    s_send(e, &env, seq);
}

static void s_release(env_t *e, uint64_t seq, uint64_t sid, int dir)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__ReleaseLeg body = IMSPLIT__V1__RELEASE_LEG__INIT;
    body.session_id = sid;
    body.direction = dir;
    body.reason = IMSPLIT__V1__RELEASE_REASON__RELEASE_BYE_2XX;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG;
    env.release_leg = &body;
    s_send(e, &env, seq);
}

static void s_drain(env_t *e, uint64_t seq, const char *node)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__Drain body = IMSPLIT__V1__DRAIN__INIT;
    body.node_id = (char *)node;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_DRAIN;
    env.drain = &body;
    s_send(e, &env, seq);
}

static void s_audit(env_t *e, uint64_t seq)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__Audit body = IMSPLIT__V1__AUDIT__INIT;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_AUDIT;
    env.audit = &body;
    s_send(e, &env, seq);
}

static void s_leg_event_ack(env_t *e, uint64_t seq, uint64_t reply_to,
                            uint64_t sid, int dir)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__LegEventAck body = IMSPLIT__V1__LEG_EVENT_ACK__INIT;
    body.session_id = sid;
    body.direction = dir;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT_ACK;
    env.leg_event_ack = &body;
    env.reply_to = reply_to;
    s_send(e, &env, seq);
}

/* The AllocateLegResult answering seq, as received (caller frees). */
static void s_allocate_result(env_t *e, msg_t *m, uint64_t seq, int status)
{
    s_expect(e, m, IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG_RESULT);
    assert_int_equal(m->env->reply_to, seq);
    assert_int_equal(m->env->allocate_leg_result->status, status);
}

static up_leg_t *s_direct_leg(env_t *e, uint64_t sid)
{
    up_leg_t *leg = NULL;
    bool created = false;
    assert_int_equal(up_legs_allocate(e->ctx.legs, sid, UP_DIR_CLIENT,
                                      e->cp_epoch, NULL, e->ctx.advertise,
                                      e->ctx.msrp_port, &leg, &created),
                     0);
    assert_true(created);
    return leg;
}

/* ---- tests --------------------------------------------------------------- */

static void test_duplicate_commands_answered_from_cache(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 100, UP_LEGEVENT_BASE_MS);
    up_metrics_t *mx = e.ctx.metrics;
    msg_t first, again;

    s_allocate(&e, 10, 1, DIR_CLIENT, "call-1");
    s_allocate_result(&e, &first, 10, IMSPLIT__V1__STATUS__STATUS_OK);
    assert_true(strncmp(first.env->allocate_leg_result->path, "msrp://", 7) ==
                0);
    /* The resend gets the very same bytes: same seq, same reply_to. */
    s_allocate(&e, 10, 1, DIR_CLIENT, "call-1");
    s_allocate_result(&e, &again, 10, IMSPLIT__V1__STATUS__STATUS_OK);
    assert_int_equal(again.len, first.len);
    assert_memory_equal(again.raw, first.raw, first.len);
    assert_int_equal(up_legs_count(e.ctx.legs), 1);
    assert_int_equal(im_metric_get(mx->legs_allocated_total), 1);
    assert_int_equal(im_metric_get(mx->commands_duplicate_total), 1);
    s_msg_free(&first);
    s_msg_free(&again);

    /* A resent ReleaseLeg is not applied twice: the cached answer still
     * carries the leg's counters, and the release is counted once. */
    s_release(&e, 11, 1, DIR_CLIENT);
    s_expect(&e, &first, IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT);
    assert_int_equal(first.env->release_leg_result->status,
                     IMSPLIT__V1__STATUS__STATUS_OK);
    s_release(&e, 11, 1, DIR_CLIENT);
    s_expect(&e, &again, IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT);
    assert_int_equal(again.len, first.len);
    assert_memory_equal(again.raw, first.raw, first.len);
    assert_int_equal(im_metric_get(mx->legs_released_total[UP_DIR_CLIENT]), 1);
    assert_int_equal(im_metric_get(mx->commands_duplicate_total), 2);
    s_msg_free(&first);
    s_msg_free(&again);

    /* A new release (new seq) of the released leg: NOT_FOUND, fresh. */
    s_release(&e, 12, 1, DIR_CLIENT);
    s_expect(&e, &first, IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT);
    assert_int_equal(first.env->reply_to, 12);
    assert_int_equal(first.env->release_leg_result->status,
                     IMSPLIT__V1__STATUS__STATUS_NOT_FOUND);
    s_msg_free(&first);

    /* One answer kept per command: the allocation and both releases. */
    assert_int_equal(up_cache_count(e.ctx.cache), 3);
    s_env_done(&e);
}

static void test_allocate_same_and_other_parameters(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 100, UP_LEGEVENT_BASE_MS);
    up_metrics_t *mx = e.ctx.metrics;
    msg_t m;

    s_allocate(&e, 1, 2, DIR_CONTROLLING, "call-2");
    s_allocate_result(&e, &m, 1, IMSPLIT__V1__STATUS__STATUS_OK);
    char path[UP_LEG_PATH_MAX];
    snprintf(path, sizeof(path), "%s", m.env->allocate_leg_result->path);
    s_msg_free(&m);

    /* The same leg asked again under a new seq, same Call-ID: the first
     * result, nothing created. */
    s_allocate(&e, 2, 2, DIR_CONTROLLING, "call-2");
    s_allocate_result(&e, &m, 2, IMSPLIT__V1__STATUS__STATUS_OK);
    assert_string_equal(m.env->allocate_leg_result->path, path);
    s_msg_free(&m);
    assert_int_equal(up_legs_count(e.ctx.legs), 1);
    assert_int_equal(im_metric_get(mx->legs_allocated_total), 1);

    /* Another Call-ID for a known leg: refused, the leg left as it is. */
    s_allocate(&e, 3, 2, DIR_CONTROLLING, "call-other");
    s_allocate_result(&e, &m, 3, IMSPLIT__V1__STATUS__STATUS_CONFLICT);
    assert_string_equal(m.env->allocate_leg_result->path, "");
    s_msg_free(&m);
    up_leg_t *leg = up_legs_find(e.ctx.legs, 2, UP_DIR_CONTROLLING);
    assert_non_null(leg);
    assert_string_equal(leg->path, path);
    assert_string_equal(leg->call_id, "call-2");
    assert_int_equal(im_metric_get(mx->leg_conflicts_total), 1);
    assert_int_equal(up_legs_count(e.ctx.legs), 1);
    assert_int_equal(im_metric_get(mx->commands_duplicate_total), 0);
    s_env_done(&e);
}

static int s_listen_local(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Connections accepted on fd within ms (each closed at once). */
static int s_accepted(env_t *e, int fd, int ms, int *keep_fd)
{
    int n = 0;
    uint64_t until = im_clock_ms() + (uint64_t)ms;
    while (im_clock_ms() < until) {
        s_turn(e);
        int c = accept(fd, NULL, NULL);
        if (c >= 0) {
            n++;
            if (keep_fd && *keep_fd < 0)
                *keep_fd = c;
            else
                close(c);
        }
        usleep(2000);
    }
    return n;
}

static void test_connect_same_and_other_path(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 100, UP_LEGEVENT_BASE_MS);
    msg_t m;
    unsigned port = 0;
    int lfd = s_listen_local(&port);
    char peer[128], other[128];
    snprintf(peer, sizeof(peer), "msrp://127.0.0.1:%u/peerA;tcp", port);
    snprintf(other, sizeof(other), "msrp://127.0.0.1:%u/peerB;tcp", port);

    s_allocate(&e, 1, 3, DIR_CONTROLLING, "call-3");
    s_allocate_result(&e, &m, 1, IMSPLIT__V1__STATUS__STATUS_OK);
    s_msg_free(&m);
    s_connect(&e, 2, 3, DIR_CONTROLLING, peer, "passive");
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG_RESULT);
    assert_int_equal(m.env->connect_leg_result->status,
                     IMSPLIT__V1__STATUS__STATUS_OK);
    s_msg_free(&m);
    /* Asked again at once (the connection is still being made) and once
     * it is made: one connection all along. */
    s_connect(&e, 3, 3, DIR_CONTROLLING, peer, "passive");
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG_RESULT);
    assert_int_equal(m.env->connect_leg_result->status,
                     IMSPLIT__V1__STATUS__STATUS_OK);
    s_msg_free(&m);
    int cfd = -1;
    assert_int_equal(s_accepted(&e, lfd, 200, &cfd), 1);
    s_connect(&e, 4, 3, DIR_CONTROLLING, peer, "passive");
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG_RESULT);
    assert_int_equal(m.env->connect_leg_result->status,
                     IMSPLIT__V1__STATUS__STATUS_OK);
    s_msg_free(&m);
    assert_int_equal(s_accepted(&e, lfd, 100, NULL), 0);
    assert_int_equal(up_legs_sockets(e.ctx.legs), 1);

    /* Another peer for a connected leg: refused, the leg keeps its own. */
    s_connect(&e, 5, 3, DIR_CONTROLLING, other, "passive");
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG_RESULT);
    assert_int_equal(m.env->connect_leg_result->status,
                     IMSPLIT__V1__STATUS__STATUS_CONFLICT);
    s_msg_free(&m);
    up_leg_t *leg = up_legs_find(e.ctx.legs, 3, UP_DIR_CONTROLLING);
    assert_string_equal(leg->peer_path, peer);
    assert_int_equal(s_accepted(&e, lfd, 50, NULL), 0);
    assert_int_equal(im_metric_get(e.ctx.metrics->leg_conflicts_total), 1);
    s_env_done(&e);
    close(cfd);
    close(lfd);
}

/* Reads one Audit answer: every part in order, each LegRef once. Returns
 * the parts; *legs counts the LegRefs, `seen` (sid-indexed) marks them. */
static uint32_t s_read_inventory(env_t *e, uint64_t seq, size_t *legs,
                                 uint8_t *seen, size_t seen_n)
{
    uint32_t parts = 0;
    *legs = 0;
    for (;;) {
        msg_t m;
        s_expect(e, &m, IMSPLIT__V1__ENVELOPE__BODY_INVENTORY);
        const Imsplit__V1__Inventory *inv = m.env->inventory;
        assert_int_equal(m.env->reply_to, seq);
        assert_int_equal(inv->part, parts);
        assert_true(inv->n_legs <= 4096);
        for (size_t i = 0; i < inv->n_legs; i++) {
            uint64_t sid = inv->legs[i]->session_id;
            assert_true(sid < seen_n);
            assert_int_equal(seen[sid], 0);
            seen[sid] = 1;
        }
        *legs += inv->n_legs;
        parts++;
        bool last = inv->last;
        s_msg_free(&m);
        if (last)
            return parts;
        assert_true(parts < 100);
    }
}

static void test_audit_in_pages(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 10000, UP_LEGEVENT_BASE_MS);
    enum { N = 8193 };
    uint8_t *seen = calloc(N + 1, 1);
    assert_non_null(seen);
    size_t legs = 0;

    /* No legs: one empty, final part. */
    s_audit(&e, 1);
    assert_int_equal(s_read_inventory(&e, 1, &legs, seen, N + 1), 1);
    assert_int_equal(legs, 0);

    for (uint64_t sid = 1; sid <= 4096; sid++)
        s_direct_leg(&e, sid);
    s_audit(&e, 2);
    assert_int_equal(s_read_inventory(&e, 2, &legs, seen, N + 1), 1);
    assert_int_equal(legs, 4096);

    for (uint64_t sid = 4097; sid <= N; sid++)
        s_direct_leg(&e, sid);
    memset(seen, 0, N + 1);
    s_audit(&e, 3);
    assert_int_equal(s_read_inventory(&e, 3, &legs, seen, N + 1), 3);
    assert_int_equal(legs, N);
    for (uint64_t sid = 1; sid <= N; sid++)
        assert_int_equal(seen[sid], 1);
    /* Audit is not cached: the same seq is answered afresh, in full. */
    memset(seen, 0, N + 1);
    s_audit(&e, 3);
    assert_int_equal(s_read_inventory(&e, 3, &legs, seen, N + 1), 3);
    assert_int_equal(legs, N);
    assert_int_equal(im_metric_get(e.ctx.metrics->commands_duplicate_total), 0);
    free(seen);
    s_env_done(&e);
}

/* LegEvents received within ms, each checked to be `want`'s bytes. */
static int s_count_events(env_t *e, const msg_t *want, int ms)
{
    int n = 0;
    msg_t m;
    uint64_t until = im_clock_ms() + (uint64_t)ms;
    while (im_clock_ms() < until &&
           s_recv(e, &m, (int)(until - im_clock_ms()))) {
        assert_int_equal(m.env->body_case,
                         IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT);
        assert_int_equal(m.len, want->len);
        assert_memory_equal(m.raw, want->raw, want->len);
        s_msg_free(&m);
        n++;
    }
    return n;
}

static void test_leg_event_until_acked(void **state)
{
    (void)state;
    env_t e;
    /* 20 ms steps: resends at 20, 60, 120, 200 ms, given up at 300 ms. */
    s_env_init(&e, 100, 20);
    up_metrics_t *mx = e.ctx.metrics;
    up_leg_t *leg = s_direct_leg(&e, 7);
    msg_t first;

    /* Acked after a resend: no more copies. */
    up_legevent_send(&e.ctx, leg,
                     IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_PEER_CLOSED);
    s_expect(&e, &first, IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT);
    assert_int_equal(first.env->leg_event->session_id, 7);
    assert_int_equal(up_legevents_pending(e.ctx.legevents), 1);
    msg_t copy;
    s_expect(&e, &copy, IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT);
    assert_int_equal(copy.len, first.len);
    assert_memory_equal(copy.raw, first.raw, first.len);
    s_msg_free(&copy);
    s_leg_event_ack(&e, 50, first.env->seq, 7, DIR_CLIENT);
    s_turn_for(&e, 20);
    assert_int_equal(up_legevents_pending(e.ctx.legevents), 0);
    assert_int_equal(s_count_events(&e, &first, 300), 0);
    assert_true(im_metric_get(mx->leg_events_resent_total) >= 1);
    assert_int_equal(im_metric_get(mx->leg_events_pending), 0);
    /* A second ack for it finds nothing and harms nothing. */
    s_leg_event_ack(&e, 51, first.env->seq, 7, DIR_CLIENT);
    s_turn_for(&e, 20);
    s_msg_free(&first);

    /* Never acked: five sends, then given up. */
    up_legevent_send(&e.ctx, leg, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_IDLE);
    s_expect(&e, &first, IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT);
    assert_int_equal(s_count_events(&e, &first, 1000), UP_LEGEVENT_SENDS - 1);
    assert_int_equal(up_legevents_pending(e.ctx.legevents), 0);
    assert_int_equal(im_metric_get(mx->leg_events_abandoned_total), 1);
    s_msg_free(&first);

    /* A new CP epoch drops what the old one never acknowledged. */
    up_legevent_send(&e.ctx, leg,
                     IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_PEER_CLOSED);
    s_expect(&e, &first, IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT);
    s_msg_free(&first);
    e.cp_epoch++;
    s_register_ack(&e, 1000, 3);
    s_turn_for(&e, 20);
    assert_int_equal(e.ctx.cp_epoch, e.cp_epoch);
    assert_int_equal(up_legevents_pending(e.ctx.legevents), 0);
    /* The leg belonged to the old CP: released with it. */
    assert_int_equal(up_legs_count(e.ctx.legs), 0);
    s_expect_none(&e, 200);
    s_env_done(&e);
}

static void test_drain_leaves_after_last_leg(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 100, UP_LEGEVENT_BASE_MS);
    msg_t m, again;
    s_allocate(&e, 1, 11, DIR_CLIENT, "call-11");
    s_allocate_result(&e, &m, 1, IMSPLIT__V1__STATUS__STATUS_OK);
    s_msg_free(&m);
    s_allocate(&e, 2, 11, DIR_CONTROLLING, "call-11");
    s_allocate_result(&e, &m, 2, IMSPLIT__V1__STATUS__STATUS_OK);
    s_msg_free(&m);

    s_drain(&e, 3, NODE);
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT);
    assert_int_equal(m.env->reply_to, 3);
    assert_int_equal(m.env->drain_result->status,
                     IMSPLIT__V1__STATUS__STATUS_OK);
    assert_true(e.ctx.draining);
    s_drain(&e, 3, NODE);
    s_expect(&e, &again, IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT);
    assert_memory_equal(again.raw, m.raw, m.len);
    s_msg_free(&m);
    s_msg_free(&again);

    /* New legs are refused; known ones still answer. */
    s_allocate(&e, 4, 12, DIR_CLIENT, "call-12");
    s_allocate_result(&e, &m, 4, IMSPLIT__V1__STATUS__STATUS_DRAINING);
    s_msg_free(&m);
    s_allocate(&e, 5, 11, DIR_CLIENT, "call-11");
    s_allocate_result(&e, &m, 5, IMSPLIT__V1__STATUS__STATUS_OK);
    s_msg_free(&m);

    s_release(&e, 6, 11, DIR_CLIENT);
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT);
    s_msg_free(&m);
    assert_int_equal(e.stops, 0);
    /* The last leg: its answer first, then the Deregister, then gone. */
    s_release(&e, 7, 11, DIR_CONTROLLING);
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT);
    assert_int_equal(m.env->reply_to, 7);
    s_msg_free(&m);
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_DEREGISTER);
    assert_string_equal(m.env->deregister->reason, "drained");
    s_msg_free(&m);
    assert_int_equal(e.stops, 1);
    assert_string_equal(e.stop_reason, "drained");
    s_env_done(&e);
}

static void test_drain_with_no_legs_leaves_at_once(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 100, UP_LEGEVENT_BASE_MS);
    msg_t m;
    /* The CP's Drain may name no node; it is for this worker anyway. */
    s_drain(&e, 1, "");
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT);
    assert_int_equal(m.env->drain_result->status,
                     IMSPLIT__V1__STATUS__STATUS_OK);
    s_msg_free(&m);
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_DEREGISTER);
    assert_string_equal(m.env->deregister->reason, "drained");
    s_msg_free(&m);
    assert_int_equal(e.stops, 1);
    s_env_done(&e);
}

static void test_drain_for_another_node(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 100, UP_LEGEVENT_BASE_MS);
    msg_t m;
    s_drain(&e, 1, "up-other");
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT);
    assert_int_equal(m.env->drain_result->status,
                     IMSPLIT__V1__STATUS__STATUS_NOT_FOUND);
    s_msg_free(&m);
    assert_false(e.ctx.draining);
    assert_int_equal(e.stops, 0);
    s_env_done(&e);
}

static void test_silent_cp_gets_a_new_socket(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 100, UP_LEGEVENT_BASE_MS);
    msg_t m;
    s_allocate(&e, 1, 21, DIR_CLIENT, "call-21");
    s_allocate_result(&e, &m, 1, IMSPLIT__V1__STATUS__STATUS_OK);
    s_msg_free(&m);
    /* Fast heartbeats, then the CP says nothing: after 2 x 20 ms the
     * worker replaces its socket and registers again, legs kept. */
    s_register_ack(&e, 20, 2);
    s_turn_for(&e, 10);
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_REGISTER);
    s_msg_free(&m);
    assert_int_equal(e.ctx.reg_state, UP_REG_REGISTERING);
    assert_true(im_metric_get(e.ctx.metrics->cp_reconnects_total) >= 1);
    assert_int_equal(up_legs_count(e.ctx.legs), 1);

    /* The new socket is watched: the worker hears the CP again. */
    s_register_ack(&e, 1000, 3);
    uint64_t until = im_clock_ms() + WAIT_MS;
    while (e.ctx.reg_state != UP_REG_REGISTERED && im_clock_ms() < until)
        s_turn_for(&e, 5);
    assert_int_equal(e.ctx.reg_state, UP_REG_REGISTERED);
    s_allocate(&e, 2, 21, DIR_CONTROLLING, "call-21");
    s_allocate_result(&e, &m, 2, IMSPLIT__V1__STATUS__STATUS_OK);
    s_msg_free(&m);
    assert_int_equal(up_legs_count(e.ctx.legs), 2);
    s_env_done(&e);
}

static void test_shutdown_deregisters(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 100, UP_LEGEVENT_BASE_MS);
    msg_t m;
    s_allocate(&e, 1, 31, DIR_CLIENT, "call-31");
    s_allocate_result(&e, &m, 1, IMSPLIT__V1__STATUS__STATUS_OK);
    s_msg_free(&m);
    s_on_stop(&e.ctx, "shutdown");
    s_expect(&e, &m, IMSPLIT__V1__ENVELOPE__BODY_DEREGISTER);
    assert_string_equal(m.env->deregister->reason, "shutdown");
    s_msg_free(&m);
    assert_int_equal(up_legs_count(e.ctx.legs), 0);
    s_env_done(&e);
}

int main(void)
{
    im_log_init("up", IM_LOG_LEVEL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicate_commands_answered_from_cache),
        cmocka_unit_test(test_allocate_same_and_other_parameters),
        cmocka_unit_test(test_connect_same_and_other_path),
        cmocka_unit_test(test_audit_in_pages),
        cmocka_unit_test(test_leg_event_until_acked),
        cmocka_unit_test(test_drain_leaves_after_last_leg),
        cmocka_unit_test(test_drain_with_no_legs_leaves_at_once),
        cmocka_unit_test(test_drain_for_another_node),
        cmocka_unit_test(test_silent_cp_gets_a_new_socket),
        cmocka_unit_test(test_shutdown_deregisters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
