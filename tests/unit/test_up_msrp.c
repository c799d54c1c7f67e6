/* up_msrp: the relay on a real libuv loop and real loopback TCP, without a
 * CP (LegEvents go nowhere). Peers are plain non-blocking sockets driven
 * from the test between turns of the loop. Every test ends by releasing
 * its legs, closing everything and proving the loop has nothing left. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <signal.h>
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

#include "im_clock.h"
#include "im_log.h"
#include "up_context.h"
#include "up_leg.h"
#include "up_metrics.h"
#include "up_msrp.h"
#include "up_timer.h"

#define SID 0x5eed000000000001ull

typedef struct {
    int fd;
    char *in; /* everything received, NUL-terminated */
    size_t in_len;
    size_t in_cap;
    bool eof;
    bool paused; /* not read: its socket fills up */
} peer_t;

typedef struct {
    uv_loop_t loop;
    up_context_t ctx;
    up_leg_t *a; /* client leg */
    up_leg_t *b; /* controlling leg */
    peer_t pa, pb;
} env_t;

static const char *PATH_A = "msrp://10.1.1.1:7001/peerA;tcp";
static const char *PATH_B = "msrp://10.2.2.2:7002/peerB;tcp";

static void s_env_init(env_t *e, uint32_t leg_buffer, uint32_t max_msg,
                       uint32_t txn_ms, uint32_t idle_ms)
{
    memset(e, 0, sizeof(*e));
    e->pa.fd = e->pb.fd = -1;
    assert_int_equal(uv_loop_init(&e->loop), 0);
    up_context_t *ctx = &e->ctx;
    char err[128];
    char *argv[] = {(char *)"test", NULL};
    assert_int_equal(up_config_load(&ctx->cfg, 1, argv, err, sizeof(err)), 0);
    ctx->cfg.msrp = "127.0.0.1:0";
    ctx->cfg.leg_buffer = leg_buffer;
    ctx->cfg.max_msg = max_msg;
    ctx->cfg.txn_timeout_ms = txn_ms;
    ctx->cfg.leg_idle_ms = idle_ms;
    ctx->loop = &e->loop;
    ctx->wheel = im_wheel_new(im_clock_ms());
    ctx->timers = up_timer_driver_new(&e->loop, ctx->wheel);
    ctx->metrics = up_metrics_new();
    assert_non_null(ctx->timers);
    assert_non_null(ctx->metrics);
    ctx->msrp = up_msrp_new(ctx);
    assert_non_null(ctx->msrp);
    const up_leg_ops_t ops = {up_msrp_conn_close, up_msrp_leg_released};
    ctx->legs = up_legs_new(100, 2048, leg_buffer + UP_MSRP_BUFFER_SLACK,
                            &ops, ctx->msrp);
    assert_non_null(ctx->legs);
    bool created;
    assert_int_equal(up_legs_allocate(ctx->legs, SID, UP_DIR_CLIENT, 1,
                                      "call-1", ctx->advertise,
                                      ctx->msrp_port, &e->a, &created),
                     0);
    assert_int_equal(up_legs_allocate(ctx->legs, SID, UP_DIR_CONTROLLING, 1,
                                      "call-1", ctx->advertise,
                                      ctx->msrp_port, &e->b, &created),
                     0);
}

static int64_t s_metric(env_t *e, im_metric_t *m)
{
    up_metrics_sync(e->ctx.metrics, e->ctx.legs);
    return im_metric_get(m);
}

static void s_turn(env_t *e)
{
    uv_run(&e->loop, UV_RUN_NOWAIT);
}

static void s_peer_read(peer_t *p)
{
    for (;;) {
        if (p->in_cap - p->in_len < 65537) {
            p->in_cap = p->in_cap ? p->in_cap * 2 : 131072;
            p->in = realloc(p->in, p->in_cap);
            assert_non_null(p->in);
        }
        ssize_t n = recv(p->fd, p->in + p->in_len, p->in_cap - p->in_len - 1,
                         0);
        if (n > 0) {
            p->in_len += (size_t)n;
            p->in[p->in_len] = '\0';
            continue;
        }
        if (n == 0)
            p->eof = true;
        if (p->in)
            p->in[p->in_len] = '\0';
        return;
    }
}

/* One turn of the loop, then both peers read what came. */
static void s_step(env_t *e)
{
    s_turn(e);
    if (e->pa.fd >= 0 && !e->pa.paused)
        s_peer_read(&e->pa);
    if (e->pb.fd >= 0 && !e->pb.paused)
        s_peer_read(&e->pb);
}

/* Turns the loop until `done` holds or ms pass. */
static bool s_run_until(env_t *e, bool (*done)(env_t *, void *), void *arg,
                        int ms)
{
    uint64_t end = im_clock_ms() + (uint64_t)ms;
    while (im_clock_ms() < end) {
        s_step(e);
        if (done && done(e, arg))
            return true;
        usleep(500);
    }
    return done ? done(e, arg) : true;
}

static void s_run_ms(env_t *e, int ms)
{
    (void)s_run_until(e, NULL, NULL, ms);
}

static int s_connect_fd(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    return fd;
}

/* Sends everything, turning the loop while the socket is full. */
static void s_send(env_t *e, peer_t *p, const char *data, size_t len)
{
    size_t off = 0;
    uint64_t end = im_clock_ms() + 10000;
    while (off < len) {
        ssize_t n = send(p->fd, data + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        assert_true(im_clock_ms() < end);
        s_step(e);
        usleep(200);
    }
}

static void s_sendf(env_t *e, peer_t *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_sendf(env_t *e, peer_t *p, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    s_send(e, p, buf, (size_t)n);
}

static size_t s_count(const peer_t *p, const char *needle)
{
    size_t n = 0;
    const char *s = p->in;
    while (s && (s = strstr(s, needle)) != NULL) {
        n++;
        s++;
    }
    return n;
}

typedef struct {
    peer_t *p;
    const char *needle;
    size_t times;
} wait_t;

static bool s_has(env_t *e, void *arg)
{
    (void)e;
    wait_t *w = arg;
    return s_count(w->p, w->needle) >= w->times;
}

static bool s_wait_for(env_t *e, peer_t *p, const char *needle, size_t times,
                       int ms)
{
    wait_t w = {p, needle, times};
    return s_run_until(e, s_has, &w, ms);
}

static void s_clear(peer_t *p)
{
    p->in_len = 0;
    if (p->in)
        p->in[0] = '\0';
}

/* Peer `p` connects and binds leg `leg` with an empty SEND. */
static void s_bind(env_t *e, peer_t *p, up_leg_t *leg, const char *from)
{
    p->fd = s_connect_fd(e->ctx.msrp_port);
    s_sendf(e, p,
            "MSRP bind%04d SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
            "Message-ID: bind\r\nByte-Range: 1-0/0\r\n-------bind%04d$\r\n",
            (int)(leg->dir), leg->path, from, (int)(leg->dir));
    assert_true(s_wait_for(e, p, " 200 OK", 1, 3000));
    assert_non_null(leg->conn);
    s_clear(p);
}

/* Both legs know their peer paths and both peers are bound. */
static void s_env_up(env_t *e)
{
    assert_int_equal(up_leg_set_peer_path(e->a, PATH_A), 0);
    assert_int_equal(up_leg_set_peer_path(e->b, PATH_B), 0);
    s_bind(e, &e->pa, e->a, PATH_A);
    s_bind(e, &e->pb, e->b, PATH_B);
    up_msrp_leg_ready(e->ctx.msrp, e->a);
    up_msrp_leg_ready(e->ctx.msrp, e->b);
}

static void s_env_done(env_t *e)
{
    up_context_t *ctx = &e->ctx;
    up_legs_release_all(ctx->legs, NULL, NULL);
    up_metrics_sync(ctx->metrics, ctx->legs);
    /* Released legs hold nothing, at once. */
    assert_int_equal(up_legs_buffer_bytes(ctx->legs), 0);
    assert_int_equal(up_legs_sockets(ctx->legs), 0);
    up_msrp_close(ctx->msrp);
    up_timer_driver_close(ctx->timers);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(up_legs_zombies(ctx->legs), 0);
    assert_int_equal(up_msrp_loose(ctx->msrp), 0);
    up_msrp_destroy(&ctx->msrp);
    up_legs_destroy(&ctx->legs);
    up_timer_driver_destroy(&ctx->timers);
    im_wheel_destroy(&ctx->wheel);
    up_metrics_destroy(&ctx->metrics);
    /* Nothing is left alive in the loop. */
    assert_int_equal(uv_loop_close(&e->loop), 0);
    if (e->pa.fd >= 0)
        close(e->pa.fd);
    if (e->pb.fd >= 0)
        close(e->pb.fd);
    free(e->pa.in);
    free(e->pb.in);
}

/* The value of header `name` in the first frame of `text` after `from`. */
static void s_header(const char *text, const char *name, char *out,
                     size_t size)
{
    out[0] = '\0';
    char key[64];
    snprintf(key, sizeof(key), "\r\n%s: ", name);
    const char *p = text ? strstr(text, key) : NULL;
    if (!p)
        return;
    p += strlen(key);
    const char *end = strstr(p, "\r\n");
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* ---- tests -------------------------------------------------------------- */

static void test_relay_both_ways(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 65536, 1 << 20, 30000, 0);
    s_env_up(&e);
    up_metrics_t *mt = e.ctx.metrics;

    s_sendf(&e, &e.pa,
            "MSRP a1b2c3d4 SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
            "Message-ID: msg-1\r\nByte-Range: 1-5/5\r\n"
            "Success-Report: yes\r\nFailure-Report: yes\r\n"
            "X-Custom: kept\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
            "-------a1b2c3d4$\r\n",
            e.a->path, PATH_A);
    assert_true(s_wait_for(&e, &e.pb, "$\r\n", 1, 3000));
    /* Per hop: A got the worker's own 200, from A's leg path. */
    assert_true(s_wait_for(&e, &e.pa, "MSRP a1b2c3d4 200 OK\r\n", 1, 3000));
    char v[256];
    s_header(e.pa.in, "To-Path", v, sizeof(v));
    assert_string_equal(v, PATH_A);
    s_header(e.pa.in, "From-Path", v, sizeof(v));
    assert_string_equal(v, e.a->path);

    /* Forwarded: paths rewritten for the hop, new tid, the rest kept. */
    const char *f = e.pb.in;
    assert_true(strncmp(f, "MSRP ", 5) == 0);
    char tid[64];
    assert_int_equal(sscanf(f, "MSRP %63s SEND\r\n", tid), 1);
    assert_string_not_equal(tid, "a1b2c3d4");
    assert_int_equal(strlen(tid), 16);
    s_header(f, "To-Path", v, sizeof(v));
    assert_string_equal(v, PATH_B);
    s_header(f, "From-Path", v, sizeof(v));
    assert_string_equal(v, e.b->path);
    s_header(f, "Message-ID", v, sizeof(v));
    assert_string_equal(v, "msg-1");
    s_header(f, "Byte-Range", v, sizeof(v));
    assert_string_equal(v, "1-5/5");
    s_header(f, "Success-Report", v, sizeof(v));
    assert_string_equal(v, "yes");
    s_header(f, "X-Custom", v, sizeof(v));
    assert_string_equal(v, "kept");
    char end[128];
    snprintf(end, sizeof(end), "\r\n\r\nhello\r\n-------%s$\r\n", tid);
    assert_non_null(strstr(f, end));
    assert_int_equal(s_count(&e.pb, "MSRP "), 1);

    /* B's peer answers the hop: consumed, A hears nothing more. */
    s_clear(&e.pa);
    s_sendf(&e, &e.pb,
            "MSRP %s 200 OK\r\nTo-Path: %s\r\nFrom-Path: %s\r\n-------%s$\r\n",
            tid, e.b->path, PATH_B, tid);
    s_run_ms(&e, 100);
    assert_int_equal(e.pa.in_len, 0);
    assert_int_equal(e.b->ntxns, 0);

    /* The other way, in two chunks, the second one '+' then '$'. */
    s_clear(&e.pb);
    s_sendf(&e, &e.pb,
            "MSRP zz000001 SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
            "Message-ID: m2\r\nByte-Range: 1-3/6\r\nContent-Type: text/plain"
            "\r\n\r\nabc\r\n-------zz000001+\r\n"
            "MSRP zz000002 SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
            "Message-ID: m2\r\nByte-Range: 4-6/6\r\nContent-Type: text/plain"
            "\r\n\r\ndef\r\n-------zz000002$\r\n",
            e.b->path, PATH_B, e.b->path, PATH_B);
    assert_true(s_wait_for(&e, &e.pa, "$\r\n", 1, 3000));
    assert_int_equal(s_count(&e.pa, " SEND\r\n"), 2);
    assert_non_null(strstr(e.pa.in, "\r\n\r\nabc\r\n-------"));
    assert_non_null(strstr(e.pa.in, "\r\n\r\ndef\r\n-------"));
    assert_int_equal(s_count(&e.pa, "+\r\n"), 1);
    s_header(e.pa.in, "To-Path", v, sizeof(v));
    assert_string_equal(v, PATH_A);
    assert_true(s_wait_for(&e, &e.pb, " 200 OK\r\n", 2, 3000));

    assert_int_equal(s_metric(&e, mt->msrp_frames_relayed_total), 3);
    assert_true(s_metric(&e, mt->msrp_bytes_relayed_total) > 300);
    assert_int_equal(s_metric(&e, mt->frames_dropped_total), 0);
    assert_int_equal(e.a->counters.msgs_in, 2); /* bind + 1 */
    assert_int_equal(e.a->counters.msgs_out, 2);
    assert_int_equal(e.b->counters.msgs_in, 3);
    assert_int_equal(e.b->counters.msgs_out, 1);
    assert_true(e.a->counters.bytes_in > 100);
    assert_true(e.b->counters.bytes_out > 100);
    s_env_done(&e);
}

static void s_send_a(env_t *e, const char *tid, const char *extra,
                     const char *body)
{
    if (body)
        s_sendf(e, &e->pa,
                "MSRP %s SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
                "Message-ID: id-%s\r\nByte-Range: 1-%zu/%zu\r\n%s"
                "Content-Type: text/plain\r\n\r\n%s\r\n-------%s$\r\n",
                tid, e->a->path, PATH_A, tid, strlen(body), strlen(body),
                extra, body, tid);
    else
        s_sendf(e, &e->pa,
                "MSRP %s REPORT\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
                "Message-ID: id-%s\r\nByte-Range: 1-5/5\r\n%s"
                "Status: 000 200 OK\r\n-------%s$\r\n",
                tid, e->a->path, PATH_A, tid, extra, tid);
}

/* The tid of the last SEND or REPORT the peer received. */
static void s_last_tid(const peer_t *p, char *tid, size_t size)
{
    const char *last = NULL, *s = p->in;
    while (s && (s = strstr(s, "MSRP ")) != NULL) {
        const char *sp = strchr(s + 5, ' ');
        if (sp && (strncmp(sp, " SEND\r\n", 7) == 0 ||
                   strncmp(sp, " REPORT\r\n", 9) == 0))
            last = s;
        s++;
    }
    tid[0] = '\0';
    if (last)
        assert_int_equal(sscanf(last, "MSRP %63s", tid), 1);
    (void)size;
}

static void test_report_forwarded(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 65536, 1 << 20, 30000, 0);
    s_env_up(&e);
    s_send_a(&e, "rep00001", "", NULL);
    assert_true(s_wait_for(&e, &e.pb, " REPORT\r\n", 1, 3000));
    assert_true(s_wait_for(&e, &e.pb, "$\r\n", 1, 3000));
    char v[256];
    s_header(e.pb.in, "To-Path", v, sizeof(v));
    assert_string_equal(v, PATH_B);
    s_header(e.pb.in, "Status", v, sizeof(v));
    assert_string_equal(v, "000 200 OK");
    s_header(e.pb.in, "Message-ID", v, sizeof(v));
    assert_string_equal(v, "id-rep00001");
    /* REPORTs are never answered. */
    s_run_ms(&e, 50);
    assert_int_equal(e.pa.in_len, 0);
    assert_int_equal(e.b->ntxns, 0);
    s_env_done(&e);
}

static void test_release_gives_481(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 65536, 1 << 20, 30000, 0);
    s_env_up(&e);
    up_metrics_t *mt = e.ctx.metrics;
    s_send_a(&e, "pre00001", "", "before");
    assert_true(s_wait_for(&e, &e.pb, "$\r\n", 1, 3000));
    assert_true(s_wait_for(&e, &e.pa, " 200 OK", 1, 3000));
    s_clear(&e.pa);
    /* The forwarded SEND is still unanswered when B goes. */
    assert_int_equal(e.b->ntxns, 1);
    up_leg_counters_t cb;
    assert_int_equal(up_legs_release(e.ctx.legs, SID, UP_DIR_CONTROLLING,
                                     &cb),
                     0);
    assert_true(cb.bytes_in > 0 && cb.bytes_out > 0);
    assert_int_equal(cb.msgs_in, 1);
    assert_int_equal(cb.msgs_out, 1);
    assert_int_equal(s_metric(&e, mt->frames_dropped_total), 1);
    assert_true(s_run_until(&e, NULL, NULL, 100));
    assert_true(e.pb.eof);
    e.b = NULL;

    /* The surviving direction answers per hop that the session is gone. */
    s_send_a(&e, "aft00001", "", "after");
    assert_true(s_wait_for(&e, &e.pa, "MSRP aft00001 481 ", 1, 3000));
    s_send_a(&e, "rep00002", "", NULL); /* dropped, not answered */
    s_send_a(&e, "aft00002", "Failure-Report: no\r\n", "quiet");
    s_send_a(&e, "aft00003", "", "loud");
    assert_true(s_wait_for(&e, &e.pa, "MSRP aft00003 481 ", 1, 3000));
    assert_int_equal(s_count(&e.pa, "MSRP "), 2);
    assert_int_equal(s_metric(&e, mt->frames_dropped_total), 5);
    assert_int_equal(s_metric(&e, mt->buffer_bytes), 0);
    assert_int_equal(s_metric(&e, mt->sockets_open), 1);
    s_env_done(&e);
}

static void test_failure_reports(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 65536, 1 << 20, 300, 0);
    s_env_up(&e);
    up_metrics_t *mt = e.ctx.metrics;
    char tid[64], v[256];

    /* No answer from the next hop within the timeout: REPORT 408. */
    s_send_a(&e, "tmo00001", "", "ping");
    assert_true(s_wait_for(&e, &e.pb, "$\r\n", 1, 3000));
    assert_true(s_wait_for(&e, &e.pa, " REPORT\r\n", 1, 3000));
    assert_true(s_wait_for(&e, &e.pa, "-------", 2, 3000));
    const char *rep = strstr(e.pa.in, " REPORT\r\n");
    s_header(rep, "Status", v, sizeof(v));
    assert_string_equal(v, "000 408 Request Timeout");
    s_header(rep, "To-Path", v, sizeof(v));
    assert_string_equal(v, PATH_A);
    s_header(rep, "From-Path", v, sizeof(v));
    assert_string_equal(v, e.a->path);
    s_header(rep, "Message-ID", v, sizeof(v));
    assert_string_equal(v, "id-tmo00001");
    s_header(rep, "Byte-Range", v, sizeof(v));
    assert_string_equal(v, "1-4/4");
    assert_int_equal(s_metric(&e, mt->msrp_txn_timeouts_total), 1);

    /* An error answer from the next hop: REPORT with its code. */
    s_clear(&e.pa);
    s_clear(&e.pb);
    s_send_a(&e, "err00001", "", "bad type");
    assert_true(s_wait_for(&e, &e.pb, "$\r\n", 1, 3000));
    s_last_tid(&e.pb, tid, sizeof(tid));
    s_sendf(&e, &e.pb,
            "MSRP %s 415 Unsupported\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
            "-------%s$\r\n",
            tid, e.b->path, PATH_B, tid);
    assert_true(s_wait_for(&e, &e.pa, "Status: 000 415 ", 1, 3000));

    /* Failure-Report: no: no 200, no REPORT, nothing tracked. */
    s_clear(&e.pa);
    s_clear(&e.pb);
    s_send_a(&e, "frno0001", "Failure-Report: no\r\n", "fire and forget");
    assert_true(s_wait_for(&e, &e.pb, "$\r\n", 1, 3000));
    assert_int_equal(e.b->ntxns, 0);
    /* partial: no 200 either, but an error comes back as a REPORT. */
    s_send_a(&e, "frpa0001", "Failure-Report: partial\r\n", "maybe");
    assert_true(s_wait_for(&e, &e.pb, "$\r\n", 2, 3000));
    assert_int_equal(e.b->ntxns, 1);
    s_last_tid(&e.pb, tid, sizeof(tid));
    s_sendf(&e, &e.pb,
            "MSRP %s 481 Gone\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
            "-------%s$\r\n",
            tid, e.b->path, PATH_B, tid);
    assert_true(s_wait_for(&e, &e.pa, "Status: 000 481 ", 1, 3000));
    assert_int_equal(s_count(&e.pa, " 200 OK"), 0);
    /* partial that succeeds: the wait ends quietly. */
    s_send_a(&e, "frpa0002", "Failure-Report: partial\r\n", "fine");
    s_run_ms(&e, 500);
    assert_int_equal(e.b->ntxns, 0);
    assert_int_equal(s_count(&e.pa, " REPORT\r\n"), 1);
    assert_int_equal(s_metric(&e, mt->msrp_reports_sent_total), 3);
    s_env_done(&e);
}

static void test_too_large(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 65536, 2048, 30000, 0);
    s_env_up(&e);
    char body[3001];
    memset(body, 'x', 3000);
    body[3000] = '\0';
    /* Announced too large: refused at once, nothing forwarded. */
    s_send_a(&e, "big00001", "", body);
    assert_true(s_wait_for(&e, &e.pa, "MSRP big00001 413 ", 1, 3000));
    assert_int_equal(e.pb.in_len, 0);
    /* Size unknown up front: cut when it grows past the limit. */
    s_sendf(&e, &e.pa,
            "MSRP big00002 SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
            "Message-ID: grow\r\nByte-Range: 1-*/*\r\n"
            "Content-Type: text/plain\r\n\r\n%s\r\n-------big00002+\r\n",
            e.a->path, PATH_A, body);
    assert_true(s_wait_for(&e, &e.pa, "MSRP big00002 413 ", 1, 3000));
    assert_true(s_wait_for(&e, &e.pb, "#\r\n", 1, 3000));
    assert_true(e.pb.in_len < 2048 + 400);
    assert_int_equal(e.b->ntxns, 0); /* no REPORT will follow the 413 */
    /* Later chunks of a refused message are refused too. */
    s_sendf(&e, &e.pa,
            "MSRP big00003 SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
            "Message-ID: grow\r\nByte-Range: 3001-3003/*\r\n"
            "Content-Type: text/plain\r\n\r\nabc\r\n-------big00003$\r\n",
            e.a->path, PATH_A);
    assert_true(s_wait_for(&e, &e.pa, "MSRP big00003 413 ", 1, 3000));
    assert_int_equal(s_count(&e.pb, " SEND\r\n"), 1);
    s_env_done(&e);
}

static void test_malformed_closes(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 65536, 1 << 20, 30000, 0);
    s_env_up(&e);
    up_metrics_t *mt = e.ctx.metrics;
    /* A frame half forwarded when its connection breaks is aborted on the
     * next hop. */
    s_sendf(&e, &e.pa,
            "MSRP cut00001 SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
            "Message-ID: cut\r\nByte-Range: 1-*/*\r\n"
            "Content-Type: text/plain\r\n\r\npartial body",
            e.a->path, PATH_A);
    assert_true(s_wait_for(&e, &e.pb, "partial body", 1, 3000));
    s_sendf(&e, &e.pa, "\r\n-------cut00001");
    s_sendf(&e, &e.pa, "!\r\n"); /* not a flag: still body */
    s_run_ms(&e, 50);
    /* Garbage where a start line must be, after the frame ends. */
    s_sendf(&e, &e.pa, "\r\n-------cut00001$\r\nGET / HTTP/1.1\r\n\r\n");
    assert_true(s_wait_for(&e, &e.pb, "$\r\n", 1, 3000));
    assert_true(s_run_until(&e, NULL, NULL, 100));
    assert_true(e.pa.eof);
    assert_null(e.a->conn);
    assert_int_equal(s_metric(&e, mt->msrp_framing_errors_total), 1);

    s_clear(&e.pb);
    close(e.pa.fd);
    e.pa = (peer_t){.fd = -1, .in = e.pa.in};
    s_bind(&e, &e.pa, e.a, PATH_A);
    s_sendf(&e, &e.pa,
            "MSRP cut00002 SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
            "Message-ID: cut2\r\nByte-Range: 1-*/*\r\n"
            "Content-Type: text/plain\r\n\r\nhalf of it",
            e.a->path, PATH_A);
    assert_true(s_wait_for(&e, &e.pb, "half of it", 1, 3000));
    close(e.pa.fd);
    e.pa.fd = -1;
    assert_true(s_wait_for(&e, &e.pb, "#\r\n", 1, 3000));
    assert_null(e.a->conn);
    assert_int_equal(s_metric(&e, mt->frames_dropped_total), 1);
    s_env_done(&e);
}

static void test_hold_until_ready(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 65536, 1 << 20, 400, 0);
    assert_int_equal(up_leg_set_peer_path(e.a, PATH_A), 0);
    s_bind(&e, &e.pa, e.a, PATH_A);
    /* B's peer connects before B's ConnectLeg: still not ready. */
    s_bind(&e, &e.pb, e.b, PATH_B);
    s_send_a(&e, "hold0001", "", "waits");
    s_run_ms(&e, 100);
    assert_int_equal(e.pa.in_len, 0);
    assert_int_equal(e.pb.in_len, 0);
    assert_int_equal(up_leg_set_peer_path(e.b, PATH_B), 0);
    up_msrp_leg_ready(e.ctx.msrp, e.b);
    assert_true(s_wait_for(&e, &e.pb, "\r\nwaits\r\n", 1, 3000));
    assert_true(s_wait_for(&e, &e.pa, "MSRP hold0001 200 ", 1, 3000));

    /* B's peer goes: requests wait, then get 481 once the wait is over. */
    close(e.pb.fd);
    e.pb.fd = -1;
    s_run_ms(&e, 50);
    assert_null(e.b->conn);
    s_clear(&e.pa);
    uint64_t t0 = im_clock_ms();
    s_send_a(&e, "hold0002", "", "nobody");
    assert_true(s_wait_for(&e, &e.pa, "MSRP hold0002 481 ", 1, 3000));
    assert_true(im_clock_ms() - t0 >= 350);
    /* Unreachable now: no more waiting. */
    t0 = im_clock_ms();
    s_send_a(&e, "hold0003", "", "nobody");
    assert_true(s_wait_for(&e, &e.pa, "MSRP hold0003 481 ", 1, 3000));
    assert_true(im_clock_ms() - t0 < 350);
    s_env_done(&e);
}

static void test_no_interleaving(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 65536, 1 << 20, 30000, 0);
    s_env_up(&e);
    /* B -> A frame open... */
    s_sendf(&e, &e.pb,
            "MSRP open0001 SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
            "Message-ID: o\r\nByte-Range: 1-*/*\r\n"
            "Content-Type: text/plain\r\n\r\nfirst half ",
            e.b->path, PATH_B);
    assert_true(s_wait_for(&e, &e.pa, "first half ", 1, 3000));
    /* ... while A sends: A's 200 must wait for that frame's end-line. */
    s_send_a(&e, "mid00001", "", "meanwhile");
    assert_true(s_wait_for(&e, &e.pb, "meanwhile", 1, 3000));
    s_run_ms(&e, 50);
    assert_null(strstr(e.pa.in, " 200 OK"));
    s_sendf(&e, &e.pb, "second half\r\n-------open0001$\r\n");
    assert_true(s_wait_for(&e, &e.pa, "MSRP mid00001 200 OK", 1, 3000));
    const char *end = strstr(e.pa.in, "second half\r\n-------");
    assert_non_null(end);
    assert_true(strstr(e.pa.in, "MSRP mid00001 200 OK") > end);
    s_env_done(&e);
}

static void test_split_and_burst(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 65536, 1 << 20, 30000, 0);
    s_env_up(&e);
    /* One frame, one byte per read, with an end-line look-alike. */
    char msg[1024];
    int n = snprintf(msg, sizeof(msg),
                     "MSRP spl00001 SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
                     "Message-ID: s\r\nByte-Range: 1-29/29\r\n"
                     "Content-Type: text/plain\r\n\r\n"
                     "a\r\n-------spl00001x b\r\n-----\r\n-------spl00001$\r\n",
                     e.a->path, PATH_A);
    for (int i = 0; i < n; i++) {
        s_send(&e, &e.pa, msg + i, 1);
        s_turn(&e);
        s_turn(&e);
    }
    assert_true(s_wait_for(&e, &e.pb, "$\r\n", 1, 3000));
    assert_non_null(strstr(e.pb.in,
                           "\r\n\r\na\r\n-------spl00001x b\r\n-----\r\n---"));
    assert_true(s_wait_for(&e, &e.pa, "MSRP spl00001 200 OK", 1, 3000));

    /* A burst of small SENDs in few reads: each relayed and answered. */
    s_clear(&e.pa);
    s_clear(&e.pb);
    enum { N = 500 };
    size_t cap = N * 400, len = 0;
    char *burst = malloc(cap);
    assert_non_null(burst);
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(burst + len, cap - len,
                                "MSRP b%07d SEND\r\nTo-Path: %s\r\n"
                                "From-Path: %s\r\nMessage-ID: m%d\r\n"
                                "Byte-Range: 1-2/2\r\nContent-Type: "
                                "text/plain\r\n\r\nhi\r\n-------b%07d$\r\n",
                                i, e.a->path, PATH_A, i, i);
    s_send(&e, &e.pa, burst, len);
    free(burst);
    assert_true(s_wait_for(&e, &e.pb, "$\r\n", N, 5000));
    assert_true(s_wait_for(&e, &e.pa, " 200 OK\r\n", N, 5000));
    assert_int_equal(s_count(&e.pb, "\r\n\r\nhi\r\n-------"), N);
    s_env_done(&e);
}

/* Many SENDs arriving within one loop turn: their answers are written
 * together at the end of the turn (or of the connection's last read in
 * it), never later, in the order of the requests, and no buffer is left
 * held once the turn is over. */
static void test_answers_per_turn(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 4096, 1 << 20, 30000, 0);
    s_env_up(&e);
    up_metrics_t *mt = e.ctx.metrics;
    enum { N = 1500 };
    size_t cap = (size_t)N * 300, len = 0, off = 0;
    char *burst = malloc(cap);
    assert_non_null(burst);
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(burst + len, cap - len,
                                "MSRP t%07d SEND\r\nTo-Path: %s\r\n"
                                "From-Path: %s\r\nMessage-ID: m%d\r\n"
                                "Byte-Range: 1-2/2\r\nContent-Type: "
                                "text/plain\r\n\r\nok\r\n-------t%07d$\r\n",
                                i, e.a->path, PATH_A, i, i);
    uint64_t end = im_clock_ms() + 10000;
    while (im_clock_ms() < end) {
        if (off < len) {
            ssize_t n = send(e.pa.fd, burst + off, len - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
        }
        s_turn(&e);
        /* Nothing waits past the turn, and the leg's buffer is gone:
         * what the gauge still counts is the connections' own bytes. */
        assert_false(e.a->deferred);
        assert_int_equal(e.a->buf_cap, 0);
        assert_int_equal(s_metric(&e, mt->buffer_bytes),
                         e.a->held + e.b->held);
        s_peer_read(&e.pa);
        s_peer_read(&e.pb);
        if (off == len && s_count(&e.pa, " 200 OK\r\n") == N)
            break;
    }
    assert_int_equal(off, len);
    assert_int_equal(s_count(&e.pb, "\r\n\r\nok\r\n-------"), N);
    assert_int_equal(s_count(&e.pa, " 200 OK\r\n"), N);
    /* In request order. */
    const char *p = e.pa.in;
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof(want), "MSRP t%07d 200 OK\r\n", i);
        p = strstr(p, want);
        assert_non_null(p);
    }
    assert_int_equal(s_metric(&e, mt->frames_dropped_total), 0);
    free(burst);
    s_env_done(&e);
}

static void test_backpressure(void **state)
{
    (void)state;
    enum { LIMIT = 32768, BODY = 24 << 20 };
    env_t e;
    s_env_init(&e, LIMIT, 64u << 20, 30000, 0);
    s_env_up(&e);
    up_metrics_t *mt = e.ctx.metrics;
    size_t cap = BODY + 1024;
    char *msg = malloc(cap);
    assert_non_null(msg);
    int h = snprintf(msg, 1024,
                     "MSRP bp000001 SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
                     "Message-ID: big\r\nByte-Range: 1-%d/%d\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n",
                     e.a->path, PATH_A, BODY, BODY);
    size_t len = (size_t)h;
    for (size_t i = 0; i < BODY; i++)
        msg[len++] = (char)('A' + (i * 7) % 23);
    len += (size_t)snprintf(msg + len, cap - len, "\r\n-------bp000001$\r\n");

    /* B's peer reads nothing: the worker stops reading A and holds at most
     * about one limit; A's socket fills up. */
    e.pb.paused = true;
    size_t off = 0;
    int64_t most = 0;
    uint64_t stalled_since = 0;
    while (off < len) {
        ssize_t n = send(e.pa.fd, msg + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            stalled_since = 0;
        } else {
            if (!stalled_since)
                stalled_since = im_clock_ms();
            if (im_clock_ms() - stalled_since > 300)
                break;
        }
        s_turn(&e);
        int64_t b = s_metric(&e, mt->buffer_bytes);
        if (b > most)
            most = b;
        usleep(100);
    }
    assert_true(off < len); /* back-pressure reached the sender */
    assert_true(most > 0);
    assert_true(most <= LIMIT + 4096 + 64);

    /* B reads again: everything arrives, in order, unchanged. */
    e.pb.paused = false;
    s_send(&e, &e.pa, msg + off, len - off);
    assert_true(s_wait_for(&e, &e.pb, "$\r\n", 1, 20000));
    const char *body = strstr(e.pb.in, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    assert_memory_equal(body, msg + h, BODY);
    assert_memory_equal(body + BODY, "\r\n-------", 9);
    assert_true(s_wait_for(&e, &e.pa, " 200 OK", 1, 3000));
    free(msg);
    s_env_done(&e);
}

static void test_idle_event(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 65536, 1 << 20, 30000, 300);
    s_env_up(&e);
    up_metrics_t *mt = e.ctx.metrics;
    s_run_ms(&e, 100);
    s_send_a(&e, "idl00001", "", "keeps both busy");
    s_run_ms(&e, 150);
    assert_int_equal(s_metric(&e, mt->leg_idle_total), 0);
    s_run_ms(&e, 500);
    assert_int_equal(s_metric(&e, mt->leg_idle_total), 2); /* once each */
    s_run_ms(&e, 400);
    assert_int_equal(s_metric(&e, mt->leg_idle_total), 2);
    /* Traffic re-arms it. */
    s_send_a(&e, "idl00002", "", "again");
    s_run_ms(&e, 700);
    assert_int_equal(s_metric(&e, mt->leg_idle_total), 4);
    s_env_done(&e);
}

static void test_connect_out(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 65536, 1 << 20, 30000, 0);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ls, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(ls, 4), 0);
    socklen_t sl = sizeof(sin);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sin, &sl), 0);
    char path[128];
    snprintf(path, sizeof(path), "msrp://127.0.0.1:%u/farB;tcp",
             (unsigned)ntohs(sin.sin_port));
    assert_int_equal(up_leg_set_peer_path(e.a, PATH_A), 0);
    s_bind(&e, &e.pa, e.a, PATH_A);
    s_send_a(&e, "con00001", "", "to a passive peer");
    assert_int_equal(up_leg_set_peer_path(e.b, path), 0);
    assert_int_equal(up_msrp_connect(e.ctx.msrp, e.b), 0);
    assert_int_equal(fcntl(ls, F_SETFL, O_NONBLOCK), 0);
    int fd = -1;
    for (int i = 0; i < 2000 && fd < 0; i++) {
        s_turn(&e);
        fd = accept(ls, NULL, NULL);
        usleep(500);
    }
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    e.pb.fd = fd;
    /* The worker's empty SEND binds it, then the held SEND follows. */
    assert_true(s_wait_for(&e, &e.pb, "to a passive peer", 1, 3000));
    char v[256], tid[64];
    assert_int_equal(sscanf(e.pb.in, "MSRP %63s SEND\r\n", tid), 1);
    s_header(e.pb.in, "To-Path", v, sizeof(v));
    assert_string_equal(v, path);
    s_header(e.pb.in, "From-Path", v, sizeof(v));
    assert_string_equal(v, e.b->path);
    s_header(e.pb.in, "Byte-Range", v, sizeof(v));
    assert_string_equal(v, "1-0/0");
    assert_int_equal(s_count(&e.pb, " SEND\r\n"), 2);
    assert_int_equal(e.b->ntxns, 2);
    s_sendf(&e, &e.pb,
            "MSRP %s 200 OK\r\nTo-Path: %s\r\nFrom-Path: %s\r\n-------%s$\r\n",
            tid, e.b->path, path, tid);
    s_run_ms(&e, 50);
    assert_int_equal(e.b->ntxns, 1);
    assert_true(s_wait_for(&e, &e.pa, "MSRP con00001 200 OK", 1, 3000));
    close(ls);
    s_env_done(&e);
}

/* Both peers stream large chunks at each other and pipeline small SENDs
 * meanwhile, through tiny buffers: answers wait behind frames in both
 * directions, and nothing may stall for good. */
static char *s_mixed(const up_leg_t *leg, const char *from, char tag,
                     int rounds, size_t *len_out, int *sends)
{
    size_t cap = (size_t)rounds * (40 * 300 + 70000), len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    char *big = malloc(65537);
    assert_non_null(big);
    memset(big, tag, 65536);
    big[65536] = '\0';
    int n = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 40; i++, n++)
            len += (size_t)snprintf(out + len, cap - len,
                                    "MSRP %c%07d SEND\r\nTo-Path: %s\r\n"
                                    "From-Path: %s\r\nMessage-ID: s%d\r\n"
                                    "Byte-Range: 1-3/3\r\nContent-Type: "
                                    "text/plain\r\n\r\nabc\r\n-------%c%07d$"
                                    "\r\n",
                                    tag, n, leg->path, from, n, tag, n);
        len += (size_t)snprintf(out + len, cap - len,
                                "MSRP %c%07d SEND\r\nTo-Path: %s\r\n"
                                "From-Path: %s\r\nMessage-ID: b%d\r\n"
                                "Byte-Range: 1-65536/65536\r\nContent-Type: "
                                "text/plain\r\n\r\n%s\r\n-------%c%07d$\r\n",
                                tag, n, leg->path, from, n, big, tag, n);
        n++;
    }
    free(big);
    *len_out = len;
    *sends = n;
    return out;
}

static void test_both_ways_under_pressure(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 4096, 1 << 20, 30000, 0);
    s_env_up(&e);
    size_t la, lb, oa = 0, ob = 0;
    int na, nb;
    char *sa = s_mixed(e.a, PATH_A, 'a', 20, &la, &na);
    char *sb = s_mixed(e.b, PATH_B, 'b', 20, &lb, &nb);
    uint64_t end = im_clock_ms() + 20000;
    while (im_clock_ms() < end) {
        if (oa < la) {
            ssize_t n = send(e.pa.fd, sa + oa, la - oa, MSG_NOSIGNAL);
            if (n > 0)
                oa += (size_t)n;
        }
        if (ob < lb) {
            ssize_t n = send(e.pb.fd, sb + ob, lb - ob, MSG_NOSIGNAL);
            if (n > 0)
                ob += (size_t)n;
        }
        s_step(&e);
        if (oa == la && ob == lb &&
            s_count(&e.pb, " SEND\r\n") == (size_t)na &&
            s_count(&e.pa, " SEND\r\n") == (size_t)nb &&
            s_count(&e.pa, " 200 OK\r\n") == (size_t)na &&
            s_count(&e.pb, " 200 OK\r\n") == (size_t)nb)
            break;
    }
    assert_int_equal(oa, la);
    assert_int_equal(ob, lb);
    assert_int_equal(s_count(&e.pb, " SEND\r\n"), na);
    assert_int_equal(s_count(&e.pa, " SEND\r\n"), nb);
    assert_int_equal(s_count(&e.pa, " 200 OK\r\n"), na);
    assert_int_equal(s_count(&e.pb, " 200 OK\r\n"), nb);
    assert_int_equal(s_metric(&e, e.ctx.metrics->frames_dropped_total), 0);
    free(sa);
    free(sb);
    s_env_done(&e);
}

/* Mutated traffic from both peers, reconnecting whenever the worker closes
 * a connection: whatever happens, the worker stays consistent (ASan, and
 * s_env_done's checks that everything is released). */
static void s_rebind(env_t *e, peer_t *p, up_leg_t *leg, const char *from)
{
    if (p->fd >= 0 && leg->conn && !p->eof)
        return;
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    p->eof = false;
    s_run_ms(e, 5);
    if (leg->conn)
        return; /* the worker has not seen the close yet */
    s_clear(p);
    s_bind(e, p, leg, from);
}

static void test_random_traffic(void **state)
{
    (void)state;
    env_t e;
    s_env_init(&e, 8192, 4096, 200, 0);
    s_env_up(&e);
    srand(4976);
    const char *shapes[] = {
        "MSRP %s SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\nMessage-ID: m\r\n"
        "Byte-Range: 1-5/5\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        "-------%s$\r\n",
        "MSRP %s SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\nMessage-ID: m\r\n"
        "Byte-Range: 1-*/*\r\nFailure-Report: partial\r\n"
        "Content-Type: text/plain\r\n\r\nchunk\r\n-------%s+\r\n",
        "MSRP %s REPORT\r\nTo-Path: %s\r\nFrom-Path: %s\r\nMessage-ID: m\r\n"
        "Byte-Range: 1-5/5\r\nStatus: 000 200 OK\r\n-------%s$\r\n",
        "MSRP %s 200 OK\r\nTo-Path: %s\r\nFrom-Path: %s\r\n-------%s$\r\n",
        "MSRP %s SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\nMessage-ID: m\r\n"
        "Byte-Range: 1-0/0\r\n-------%s#\r\n",
    };
    for (int iter = 0; iter < 300; iter++) {
        bool from_a = rand() % 3 != 0;
        peer_t *p = from_a ? &e.pa : &e.pb;
        up_leg_t *leg = from_a ? e.a : e.b;
        const char *from = from_a ? PATH_A : PATH_B;
        s_rebind(&e, p, leg, from);
        if (p->fd < 0)
            continue;
        char tid[16], msg[2048];
        snprintf(tid, sizeof(tid), "r%07d", iter);
        int n = snprintf(msg, sizeof(msg), shapes[rand() % 5], tid,
                         leg->path, from, tid);
        for (int k = rand() % 3; k > 0; k--)
            msg[rand() % n] = "\r\n-$+# :x\x01"[rand() % 10];
        size_t off = 0;
        while (off < (size_t)n) {
            size_t k = 1 + (size_t)(rand() % 64);
            if (k > (size_t)n - off)
                k = (size_t)n - off;
            if (send(p->fd, msg + off, k, MSG_NOSIGNAL) < 0)
                break;
            off += k;
            if (rand() % 4 == 0)
                s_step(&e);
        }
        s_step(&e);
        if (rand() % 50 == 0)
            s_run_ms(&e, 250); /* let transactions time out */
        if (rand() % 12 == 0) {
            /* A broken end-line makes the rest of the stream one body:
             * start over now and then, mid-frame or not. */
            close(p->fd);
            p->fd = -1;
        }
    }
    s_run_ms(&e, 300);
    up_metrics_t *mt = e.ctx.metrics;
    if (getenv("TEST_LOG"))
        fprintf(stderr, "relayed=%ld errors=%ld dropped=%ld timeouts=%ld\n",
                (long)s_metric(&e, mt->msrp_frames_relayed_total),
                (long)s_metric(&e, mt->msrp_framing_errors_total),
                (long)s_metric(&e, mt->frames_dropped_total),
                (long)s_metric(&e, mt->msrp_txn_timeouts_total));
    assert_true(s_metric(&e, mt->msrp_frames_relayed_total) > 20);
    assert_true(s_metric(&e, mt->msrp_framing_errors_total) > 0);
    s_env_done(&e);
}

int main(void)
{
    /* As in imsplit-up: a write to a peer that left is an error, not a
     * signal. */
    signal(SIGPIPE, SIG_IGN);
    /* TEST_LOG=debug shows the worker's log lines. */
    im_log_level_t level = IM_LOG_LEVEL_ERROR;
    if (getenv("TEST_LOG"))
        (void)im_log_level_parse(getenv("TEST_LOG"), &level);
    im_log_init("test", level);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_both_ways),
        cmocka_unit_test(test_report_forwarded),
        cmocka_unit_test(test_release_gives_481),
        cmocka_unit_test(test_failure_reports),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_malformed_closes),
        cmocka_unit_test(test_hold_until_ready),
        cmocka_unit_test(test_no_interleaving),
        cmocka_unit_test(test_split_and_burst),
        cmocka_unit_test(test_answers_per_turn),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_idle_event),
        cmocka_unit_test(test_connect_out),
        cmocka_unit_test(test_both_ways_under_pressure),
        cmocka_unit_test(test_random_traffic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
