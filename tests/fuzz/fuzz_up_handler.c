/* fuzz_up_handler: the worker's command handler (up_handler) fed frames
 * from the control channel, in sequences, as the worker receives them.
 *
 * Each input is one session of a worker with a CP: a fresh result cache
 * (and timing wheel, after an input that moved time on), and the
 * registration state machine started as the daemon starts it
 * (up_handler_start: a Register is sent). The libuv loop, the control path
 * (a ZeroMQ DEALER connected to a ROUTER of this program on an abstract
 * unix socket, which reads and checks all the worker sends), the MSRP
 * listener (127.0.0.1, port 0), the leg table, the LegEvent store and the
 * metrics live across inputs, and are proven empty after each one: no
 * leg, no connection, no pending LegEvent, no armed timer.
 *
 * Input: byte 0 holds flags; bit 0 registers the worker before the first
 * record, as a RegisterAck from CP epoch S_CP_EPOCH would. Then records,
 * each a 2-byte big-endian header H:
 * - H < 0x8000: a frame of H bytes (fewer if the input ends first), handed
 *   to up_handler_frame() exactly as up_path does on receipt (frames follow
 *   each other without a loop turn, as up_path hands over what one wake-up
 *   finds waiting);
 * - H >= 0x8000 with (H >> 8) & 0x7f == 1: the loop turns once
 *   (UV_RUN_NOWAIT), which delivers the outcome of the connects ConnectLeg
 *   started;
 * - any other H >= 0x8000: time passes, (H & 0xff) * 100 ms: the wheel
 *   moves on that far and fires what is due (register resends, heartbeats
 *   and the CP liveness check, LegEvent resends, connect timeouts), the
 *   clock readings the handler compares against (last message from the
 *   CP, registering since) move back by as much, and the loop turns.
 * The worker numbers what it sends on from one input to the next; a
 * LegEventAck that decodes gets the number of the last message sent
 * before the input added to its reply_to (and is packed again), so that
 * reply_to=N in an input answers the N-th message the worker sent in it,
 * the Register being the first.
 *
 * No packet leaves the machine: connect() is replaced in this program and
 * refuses every IPv4 and IPv6 address (ECONNREFUSED, which libuv reports
 * on the next loop turn), so a ConnectLeg towards any peer path ends in a
 * LegEvent CONNECT_FAILED, whatever address the input names.
 *
 * Logs are written at debug level, so that every log statement's arguments
 * are evaluated, into /dev/null (IMSPLIT_FUZZ_LOG=1 keeps them on stderr).
 *
 * Besides what the sanitizers catch, the target aborts when
 * - legs outnumber the capacity, or a worker that is stopping (drained)
 *   still holds legs after the frame that stopped it;
 * - a message the worker sends does not decode, or does not carry the
 *   worker's node id and epoch;
 * - after the input, once every leg is released and the loop has turned,
 *   a leg, a connection, a zombie leg, a LegEvent or an armed timer is
 *   left. */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_NODE "up-f"
#define S_CP_ID "cp"
#define S_CP_EPOCH 1717000000123ull
#define S_EPOCH 0x5eedull
#define S_CAPACITY 8
#define S_CACHE_MAX 32
#define S_LEGEVENT_BASE_MS 1000
#define S_RECORDS_MAX 256

/* ---- no packet leaves: connect() refuses IP addresses ---------------- */

typedef int s_connect_fn(int, __CONST_SOCKADDR_ARG, socklen_t);
/* libc's connect(), looked up before any other thread starts. */
static s_connect_fn *s_real_connect;

int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    const struct sockaddr *sa = addr.__sockaddr__;
    if (!sa || sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        errno = ECONNREFUSED;
        return -1;
    }
    if (!s_real_connect) {
        errno = ENOSYS;
        return -1;
    }
    return s_real_connect(fd, addr, len);
}

/* ---- the worker -------------------------------------------------------- */

static struct {
    bool ready;
    uv_loop_t loop;
    up_context_t ctx;
    uint64_t base_seq; /* the worker's last seq before this input */
    void *zctx;        /* the CP end: a ROUTER reading what is sent */
    void *sink;
} S;

/* ctx->stop as main.c does it: release, Deregister, nothing more runs. */
static void s_on_stop(up_context_t *ctx, const char *reason)
{
    ctx->stopping = true;
    up_handler_release_all(ctx, reason);
    up_handler_stop(ctx, reason);
}

/* The seq of the worker's last message: one more is sent to learn it. */
static uint64_t s_last_seq(void)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__Heartbeat hb = IMSPLIT__V1__HEARTBEAT__INIT;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    up_sent_t sent = {0};
    (void)up_path_send(S.ctx.path, &env, &sent);
    S_CHECK(sent.bytes && sent.seq);
    uint64_t seq = sent.seq;
    up_sent_clear(&sent);
    return seq;
}

/* Reads what the worker sent, up to the message numbered seq (bounded in
 * time: what has not arrived by then is read after the next input). Every
 * message must decode and come from this worker. */
static void s_sink_until(uint64_t seq)
{
    uint64_t until = im_clock_ms() + 200;
    for (;;) {
        zmq_pollitem_t item = {S.sink, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 1) <= 0) {
            if (im_clock_ms() >= until)
                return;
            continue;
        }
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        S_CHECK(zmq_msg_recv(&id, S.sink, ZMQ_DONTWAIT) >= 0);
        S_CHECK(zmq_msg_more(&id));
        S_CHECK(zmq_msg_recv(&body, S.sink, ZMQ_DONTWAIT) >= 0);
        S_CHECK(!zmq_msg_more(&body));
        im_env_t *env = NULL;
        char why[160];
        im_proto_err_t err = im_proto_unpack(
            zmq_msg_data(&body), zmq_msg_size(&body), &env, why, sizeof(why));
        if (err != IM_PROTO_OK)
            fprintf(fuzz_err ? fuzz_err : stderr, "worker sent: %s\n", why);
        S_CHECK(err == IM_PROTO_OK);
        S_CHECK(strcmp(env->sender_id, S_NODE) == 0);
        S_CHECK(env->sender_epoch == S_EPOCH);
        bool last = env->seq == seq;
        im_proto_free(env);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
        if (last)
            return;
    }
}

static void s_init(void)
{
    up_context_t *ctx = &S.ctx;
    s_real_connect = (s_connect_fn *)dlsym(RTLD_NEXT, "connect");
    S_CHECK(s_real_connect);
    if (!getenv("IMSPLIT_FUZZ_LOG")) {
        fuzz_err = stderr;
        FILE *null = fopen("/dev/null", "w");
        S_CHECK(null);
        stderr = null;
    }
    im_log_init("up", IM_LOG_LEVEL_DEBUG);
    S_CHECK(uv_loop_init(&S.loop) == 0);
    char err[256];
    char *argv[] = {(char *)"fuzz_up_handler", NULL};
    S_CHECK(up_config_load(&ctx->cfg, 1, argv, err, sizeof(err)) == 0);
    /* An abstract unix socket (no file), bound by the ROUTER below. */
    static char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "ipc://@imsplit-fuzz-up-%d",
             (int)getpid());
    ctx->cfg.cp = endpoint;
    S.zctx = zmq_ctx_new();
    S.sink = S.zctx ? zmq_socket(S.zctx, ZMQ_ROUTER) : NULL;
    S_CHECK(S.sink);
    int one = 1, zero = 0;
    /* A replaced DEALER (up_path_reconnect) takes over the routing id. */
    S_CHECK(zmq_setsockopt(S.sink, ZMQ_ROUTER_HANDOVER, &one, sizeof(one)) ==
            0);
    S_CHECK(zmq_setsockopt(S.sink, ZMQ_LINGER, &zero, sizeof(zero)) == 0);
    S_CHECK(zmq_bind(S.sink, endpoint) == 0);
    ctx->cfg.id = S_NODE;
    ctx->cfg.msrp = "127.0.0.1:0";
    ctx->cfg.capacity = S_CAPACITY;
    ctx->cfg.result_cache_max = S_CACHE_MAX;
    ctx->epoch = S_EPOCH;
    ctx->loop = &S.loop;
    ctx->metrics = up_metrics_new();
    S_CHECK(ctx->metrics);
    /* The MSRP listener and the legevent store need the timer driver. */
    ctx->wheel = im_wheel_new(im_clock_ms());
    ctx->timers = up_timer_driver_new(&S.loop, ctx->wheel);
    S_CHECK(ctx->wheel && ctx->timers);
    ctx->msrp = up_msrp_new(ctx);
    S_CHECK(ctx->msrp);
    const up_leg_ops_t ops = {up_msrp_conn_close, up_msrp_leg_released};
    ctx->legs = up_legs_new(S_CAPACITY, 2048, 65536 + UP_MSRP_BUFFER_SLACK,
                            &ops, ctx->msrp);
    ctx->legevents = up_legevents_new(ctx, 64, S_LEGEVENT_BASE_MS);
    S_CHECK(ctx->legs && ctx->legevents);
    ctx->path = up_path_new(ctx);
    S_CHECK(ctx->path);
    ctx->stop = s_on_stop;
    S.ready = true;
    S.base_seq = s_last_seq();
    s_sink_until(S.base_seq);
}

/* A fresh result cache (and wheel, if the last one was dropped);
 * registering. */
static void s_begin(bool registered)
{
    up_context_t *ctx = &S.ctx;
    if (!ctx->wheel) {
        ctx->wheel = im_wheel_new(im_clock_ms());
        ctx->timers = up_timer_driver_new(&S.loop, ctx->wheel);
        S_CHECK(ctx->wheel && ctx->timers);
    }
    /* The wheel catches up with the clock, as the uv timer would have. */
    im_wheel_advance(ctx->wheel, im_clock_ms());
    ctx->cache =
        up_cache_new(ctx->cfg.result_cache_max, ctx->cfg.result_cache_ms);
    S_CHECK(ctx->cache);
    ctx->reg_state = UP_REG_REGISTERING;
    ctx->cp_epoch = 0;
    ctx->last_rx_ms = 0;
    ctx->reg_since_ms = 0;
    ctx->draining = false;
    ctx->stopping = false;
    S_CHECK(up_handler_start(ctx) == 0);
    if (!registered)
        return;
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__RegisterAck ack = IMSPLIT__V1__REGISTER_ACK__INIT;
    ack.cp_epoch = S_CP_EPOCH;
    ack.heartbeat_ms = 1000;
    ack.liveness = 3;
    im_env_init(&env, S_CP_ID, S_CP_EPOCH, 1);
    env.reply_to = 1;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_REGISTER_ACK;
    env.register_ack = &ack;
    uint8_t *bytes = NULL;
    size_t len = 0;
    S_CHECK(im_proto_pack(&env, &bytes, &len) == 0);
    up_handler_frame(ctx, bytes, len);
    free(bytes);
    S_CHECK(ctx->reg_state == UP_REG_REGISTERED);
}

/* One frame, as up_path hands it over; a LegEventAck's reply_to counts
 * from this input's first message (see the top of the file). */
static void s_frame(const uint8_t *p, size_t len)
{
    im_env_t *env = NULL;
    if (im_proto_unpack(p, len, &env, NULL, 0) != IM_PROTO_OK ||
        env->body_case != IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT_ACK ||
        env->reply_to == 0) {
        im_proto_free(env);
        up_handler_frame(&S.ctx, p, len);
        return;
    }
    env->reply_to += S.base_seq;
    uint8_t *bytes = NULL;
    size_t n = 0;
    S_CHECK(im_proto_pack(env, &bytes, &n) == 0);
    im_proto_free(env);
    up_handler_frame(&S.ctx, bytes, n);
    free(bytes);
}

static void s_turn(void)
{
    uv_run(&S.loop, UV_RUN_NOWAIT);
}

static void s_time_passes(uint64_t ms)
{
    up_context_t *ctx = &S.ctx;
    ctx->last_rx_ms = ctx->last_rx_ms > ms ? ctx->last_rx_ms - ms : 0;
    ctx->reg_since_ms = ctx->reg_since_ms > ms ? ctx->reg_since_ms - ms : 0;
    im_wheel_advance(ctx->wheel, im_wheel_now(ctx->wheel) + ms);
}

/* Every leg released, the loop turned until their connections are closed,
 * the cache and wheel gone, what was sent read: nothing may be left. */
static void s_end(void)
{
    up_context_t *ctx = &S.ctx;
    if (!ctx->stopping) {
        ctx->stopping = true;
        up_handler_release_all(ctx, "fuzz_done");
        up_handler_stop(ctx, NULL);
    }
    (void)up_legevents_clear(ctx->legevents);
    S.base_seq = s_last_seq();
    s_sink_until(S.base_seq);
    /* A wheel that time passed on is ahead of the clock: a new one. */
    bool ahead = im_wheel_now(ctx->wheel) > im_clock_ms();
    if (ahead)
        up_timer_driver_close(ctx->timers);
    for (int i = 0; i < 8; i++)
        s_turn();
    up_cache_destroy(&ctx->cache);
    S_CHECK(up_legs_count(ctx->legs) == 0);
    S_CHECK(up_legs_zombies(ctx->legs) == 0);
    S_CHECK(up_legs_sockets(ctx->legs) == 0);
    S_CHECK(up_msrp_loose(ctx->msrp) == 0);
    S_CHECK(up_legevents_pending(ctx->legevents) == 0);
    if (im_wheel_count(ctx->wheel) != 0) {
        fprintf(fuzz_err ? fuzz_err : stderr, "timers left: %zu\n",
                im_wheel_count(ctx->wheel));
        S_CHECK(!"no timer outlives the input");
    }
    if (ahead) {
        up_timer_driver_destroy(&ctx->timers);
        im_wheel_destroy(&ctx->wheel);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!S.ready)
        s_init();
    if (size < 1)
        return 0;
    up_context_t *ctx = &S.ctx;
    s_begin(data[0] & 1);
    size_t off = 1;
    for (unsigned n = 0; n < S_RECORDS_MAX && off + 2 <= size; n++) {
        unsigned h = (unsigned)data[off] << 8 | data[off + 1];
        off += 2;
        if (h & 0x8000) {
            if (((h >> 8) & 0x7f) != 1)
                s_time_passes((uint64_t)(h & 0xff) * 100);
            s_turn();
        } else {
            size_t len = h < size - off ? h : size - off;
            s_frame(data + off, len);
            off += len;
        }
        S_CHECK(up_legs_count(ctx->legs) <= S_CAPACITY);
        if (ctx->stopping)
            S_CHECK(up_legs_count(ctx->legs) == 0);
    }
    s_end();
    return 0;
}
