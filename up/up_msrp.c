#include "up_msrp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "im_config.h"
#include "im_log.h"
#include "im_msrp_uri.h"
#include "im_proto.h"
#include "up_build.h"
#include "up_frame.h"
#include "up_metrics.h"
#include "up_timer.h"

/* Connections no leg owns, beyond which new ones are refused. */
#define UP_MSRP_LOOSE_MAX 4096
/* Unsent bytes a peer may leave queued (it does not read our answers). */
#define UP_MSRP_WRITE_BACKLOG_MAX (256 * 1024)
/* How long a 481 may take to leave before the connection is cut. */
#define UP_MSRP_REJECT_MS 2000
#define UP_MSRP_TID_LEN 16

typedef enum {
    C_UNBOUND = 0, /* accepted, waiting for the first SEND */
    C_CONNECTING,  /* outgoing, owned by its leg */
    C_BOUND,       /* owned by its leg */
    C_REJECTING,   /* answered 481, flushing before the close */
    C_CLOSING,     /* uv_close called; only callbacks with ECANCELED left */
} s_conn_state_t;

struct up_conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_shutdown_t shutdown;
    up_msrp_t *m;
    /* The owning leg. Kept through C_CLOSING when the leg was released,
     * so the close callback can tell the table the leg may go; NULL when
     * unbound or when the leg let the connection go (detach). */
    up_leg_t *leg;
    s_conn_state_t state;
    up_frame_t frame;
    uint8_t *tmp; /* unbound only: bytes up to the first header block */
    size_t tmp_len;
    uint64_t pre_bytes; /* read before the connection had a leg */
    im_timer_t timer;   /* bind, connect or reject deadline */
    struct up_conn *prev_loose;
    struct up_conn *next_loose;
    bool loose;
    uint64_t id;
    char peer[64];
};

struct up_msrp {
    up_context_t *ctx;
    uv_tcp_t listener;
    bool listener_open;
    bool closed;
    bool free_on_close;
    up_conn_t *loose;
    size_t nloose;
    uint64_t next_id;
};

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
    char data[];
} s_write_t;

static void s_process(up_conn_t *c);

static up_context_t *s_ctx(const up_conn_t *c)
{
    return c->m->ctx;
}

static void s_sync(up_conn_t *c)
{
    up_metrics_sync(s_ctx(c)->metrics, s_ctx(c)->legs);
}

/* ---- connection lifetime ---------------------------------------------- */

static void s_loose_add(up_msrp_t *m, up_conn_t *c)
{
    c->loose = true;
    c->prev_loose = NULL;
    c->next_loose = m->loose;
    if (m->loose)
        m->loose->prev_loose = c;
    m->loose = c;
    m->nloose++;
}

static void s_loose_del(up_msrp_t *m, up_conn_t *c)
{
    if (!c->loose)
        return;
    if (c->prev_loose)
        c->prev_loose->next_loose = c->next_loose;
    else
        m->loose = c->next_loose;
    if (c->next_loose)
        c->next_loose->prev_loose = c->prev_loose;
    c->prev_loose = c->next_loose = NULL;
    c->loose = false;
    m->nloose--;
}

static void s_on_closed(uv_handle_t *h)
{
    up_conn_t *c = h->data;
    up_msrp_t *m = c->m;
    up_leg_t *leg = c->leg;
    free(c->tmp);
    free(c);
    if (leg)
        up_legs_conn_closed(m->ctx->legs, leg);
}

/* Every path out of a connection ends here. */
static void s_close(up_conn_t *c)
{
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    up_timer_cancel(s_ctx(c)->timers, &c->timer);
    s_loose_del(c->m, c);
    uv_close((uv_handle_t *)&c->tcp, s_on_closed);
}

void up_msrp_conn_close(up_conn_t *conn, void *arg)
{
    (void)arg;
    if (conn)
        s_close(conn);
}

/* A connection no leg owns is turned away without an answer. */
static void s_drop(up_conn_t *c, const char *why)
{
    im_metric_inc(s_ctx(c)->metrics->msrp_rejected_total);
    IM_LOG_INFO("event=msrp_conn_closed conn=%" PRIu64 " peer=%s why=%s "
                "bytes=%" PRIu64 " node=%s",
                c->id, c->peer, why, c->pre_bytes, s_ctx(c)->cfg.id);
    s_close(c);
}

/* The leg's connection is gone (peer closed, error, bad framing): the leg
 * stays for the CP to release, and the CP hears why. */
static void s_lost(up_conn_t *c, int kind, const char *why)
{
    up_context_t *ctx = s_ctx(c);
    up_leg_t *leg = c->leg;
    if (!leg) {
        s_close(c);
        return;
    }
    up_legs_detach_conn(ctx->legs, leg);
    c->leg = NULL;
    s_close(c);
    if (kind == IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED) {
        im_metric_inc(ctx->metrics->leg_connect_failed_total);
        IM_LOG_WARN("event=leg_connect_failed sid=%016" PRIx64 " dir=%s "
                    "node=%s peer=%s why=\"%s\"",
                    leg->session_id, up_dir_name(leg->dir), ctx->cfg.id,
                    c->peer, why);
    } else {
        IM_LOG_INFO("event=leg_peer_closed sid=%016" PRIx64 " dir=%s "
                    "node=%s peer=%s why=\"%s\" bytes_in=%" PRIu64
                    " bytes_out=%" PRIu64,
                    leg->session_id, up_dir_name(leg->dir), ctx->cfg.id,
                    c->peer, why, leg->counters.bytes_in,
                    leg->counters.bytes_out);
    }
    up_metrics_sync(ctx->metrics, ctx->legs);
    (void)up_build_leg_event(ctx, leg, kind);
}

static void s_fail(up_conn_t *c, const char *why)
{
    if (c->leg)
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_PEER_CLOSED, why);
    else
        s_drop(c, why);
}

static void s_on_timer(im_timer_t *t, void *arg)
{
    (void)t;
    up_conn_t *c = arg;
    switch (c->state) {
    case C_UNBOUND:
        s_drop(c, "bind_timeout");
        break;
    case C_CONNECTING:
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED,
               "timeout");
        break;
    case C_REJECTING:
        s_close(c);
        break;
    default:
        break;
    }
}

static up_conn_t *s_conn_new(up_msrp_t *m)
{
    up_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (uv_tcp_init(m->ctx->loop, &c->tcp) < 0) {
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    c->connect.data = c;
    c->shutdown.data = c;
    c->m = m;
    c->id = ++m->next_id;
    up_frame_init(&c->frame);
    im_timer_init(&c->timer, s_on_timer, c);
    snprintf(c->peer, sizeof(c->peer), "-");
    return c;
}

/* ---- writing ---------------------------------------------------------- */

static void s_on_written(uv_write_t *req, int status)
{
    s_write_t *w = (s_write_t *)req;
    up_conn_t *c = req->data;
    free(w);
    if (status < 0 && status != UV_ECANCELED && c->state != C_CLOSING &&
        c->state != C_REJECTING)
        s_fail(c, uv_strerror(status));
}

static int s_write(up_conn_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int s_write(up_conn_t *c, const char *fmt, ...)
{
    if (c->tcp.write_queue_size > UP_MSRP_WRITE_BACKLOG_MAX)
        return -ENOBUFS;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    s_write_t *w = malloc(sizeof(*w) + (size_t)n + 1);
    if (!w)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(w->data, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->buf = uv_buf_init(w->data, (unsigned)n);
    w->req.data = c;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1,
                      s_on_written);
    if (rc < 0) {
        free(w);
        return rc;
    }
    if (c->leg)
        c->leg->counters.bytes_out += (uint64_t)n;
    return 0;
}

/* A per-hop response: To-Path names the previous hop (the first URI of
 * the request's From-Path), From-Path this hop. */
static int s_respond(up_conn_t *c, const up_frame_head_t *h, unsigned code,
                     const char *text, const char *from, size_t from_len)
{
    up_frame_str_t prev = {"", 0};
    (void)up_frame_path_first(h->from_path, &prev);
    return s_write(c,
                   "MSRP %s %03u %s\r\nTo-Path: %.*s\r\nFrom-Path: %.*s\r\n"
                   "-------%s$\r\n",
                   c->frame.tid, code, text, (int)prev.len, prev.ptr,
                   (int)from_len, from, c->frame.tid);
}

static void s_on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    up_conn_t *c = req->data;
    s_close(c);
}

/* Answers the first SEND with an error and closes once it has left (or
 * after UP_MSRP_REJECT_MS if the peer does not take it). */
static void s_reject(up_conn_t *c, const up_frame_head_t *h, unsigned code,
                     const char *text, const char *why)
{
    up_frame_str_t self = {"", 0};
    (void)up_frame_path_last(h->to_path, &self);
    im_metric_inc(s_ctx(c)->metrics->msrp_rejected_total);
    IM_LOG_INFO("event=msrp_conn_rejected conn=%" PRIu64 " peer=%s code=%u "
                "why=%s node=%s",
                c->id, c->peer, code, why, s_ctx(c)->cfg.id);
    if (s_respond(c, h, code, text, self.ptr, self.len) < 0) {
        s_close(c);
        return;
    }
    c->state = C_REJECTING;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, s_on_shutdown) < 0) {
        s_close(c);
        return;
    }
    up_timer_arm_in(s_ctx(c)->timers, &c->timer, UP_MSRP_REJECT_MS);
}

/* ---- reading ---------------------------------------------------------- */

static bool s_value_is(up_frame_str_t v, const char *want)
{
    return v.ptr && v.len == strlen(want) &&
           strncasecmp(v.ptr, want, v.len) == 0;
}

/* A SEND whose Failure-Report is "no" or "partial" gets no 200 (RFC 4975
 * section 7.1.2). */
static bool s_wants_200(const up_frame_head_t *h)
{
    return !s_value_is(h->failure_report, "no") &&
           !s_value_is(h->failure_report, "partial");
}

/* A complete header block on a bound connection. */
static int s_on_head(up_conn_t *c, const up_frame_head_t *h)
{
    up_leg_t *leg = c->leg;
    if (!h->request)
        return 0; /* responses to our own SENDs end here, per hop */
    if (strcmp(h->method, "SEND") == 0) {
        leg->counters.msgs_in++;
        if (!s_wants_200(h))
            return 0;
        return s_respond(c, h, 200, "OK", leg->path, strlen(leg->path));
    }
    if (strcmp(h->method, "REPORT") == 0)
        return 0; /* never answered (RFC 4975 section 7.1.2) */
    return s_respond(c, h, 501, "Not Implemented", leg->path,
                     strlen(leg->path));
}

/* The first header block of an accepted connection names its leg. The
 * bytes after the header block (rest of the frame and beyond) move to the
 * leg's buffer. Returns 0 when the connection is now bound. */
static int s_bind(up_conn_t *c, const up_frame_head_t *h, size_t used)
{
    up_context_t *ctx = s_ctx(c);
    if (!h->request || strcmp(h->method, "SEND") != 0) {
        s_drop(c, "first_frame_not_send");
        return -EPROTO;
    }
    up_frame_str_t last;
    im_msrp_uri_t uri;
    if (!up_frame_path_last(h->to_path, &last) ||
        im_msrp_uri_parse(last.ptr, last.len, &uri) < 0) {
        s_reject(c, h, 400, "Bad Request", "bad_to_path");
        return -EPROTO;
    }
    up_leg_t *leg = up_legs_find_msrp(ctx->legs, uri.session,
                                      strlen(uri.session));
    if (!leg) {
        s_reject(c, h, 481, "Session Does Not Exist", "unknown_session");
        return -ENOENT;
    }
    if (leg->conn) {
        s_reject(c, h, 481, "Session Does Not Exist", "leg_connected");
        return -EBUSY;
    }
    size_t rest = c->tmp_len - used;
    if (up_legs_buf_reserve(ctx->legs, leg, leg->buf_len + rest) < 0) {
        s_reject(c, h, 413, "Request Entity Too Large", "leg_buffer");
        return -ENOBUFS;
    }
    if (up_legs_attach_conn(ctx->legs, leg, c) < 0) {
        s_drop(c, "attach_failed");
        return -EBUSY;
    }
    up_timer_cancel(ctx->timers, &c->timer);
    s_loose_del(c->m, c);
    c->leg = leg;
    c->state = C_BOUND;
    leg->counters.bytes_in += c->pre_bytes;
    leg->counters.msgs_in++;
    IM_LOG_INFO("event=leg_bound sid=%016" PRIx64 " dir=%s node=%s conn=%"
                PRIu64 " peer=%s",
                leg->session_id, up_dir_name(leg->dir), ctx->cfg.id, c->id,
                c->peer);
    int rc = s_wants_200(h)
                 ? s_respond(c, h, 200, "OK", leg->path, strlen(leg->path))
                 : 0;
    memcpy(leg->buf + leg->buf_len, c->tmp + used, rest);
    leg->buf_len += rest;
    free(c->tmp);
    c->tmp = NULL;
    c->tmp_len = 0;
    s_sync(c);
    if (rc < 0) {
        s_fail(c, "write_failed");
        return rc;
    }
    return 0;
}

static void s_consume(uint8_t *buf, size_t *len, size_t used)
{
    if (used == 0)
        return;
    memmove(buf, buf + used, *len - used);
    *len -= used;
}

/* Runs the framer over what has been read until it needs more. Stops as
 * soon as the connection closes. */
static void s_process(up_conn_t *c)
{
    for (;;) {
        uint8_t *buf;
        size_t *len;
        if (c->state == C_UNBOUND) {
            buf = c->tmp;
            len = &c->tmp_len;
        } else if (c->state == C_BOUND && c->leg) {
            buf = c->leg->buf;
            len = &c->leg->buf_len;
        } else {
            return;
        }
        size_t used = 0;
        up_frame_head_t head;
        up_frame_event_t ev = up_frame_parse(&c->frame, buf, *len, &used,
                                             &head);
        switch (ev) {
        case UP_FRAME_MORE:
            s_consume(buf, len, used);
            return;
        case UP_FRAME_ERROR:
            s_fail(c, c->frame.why ? c->frame.why : "bad_framing");
            return;
        case UP_FRAME_HEAD:
            if (c->state == C_UNBOUND) {
                if (s_bind(c, &head, used) < 0)
                    return;
                break; /* the bytes left over moved to the leg */
            }
            if (s_on_head(c, &head) < 0) {
                s_fail(c, "write_failed");
                return;
            }
            s_consume(buf, len, used);
            break;
        case UP_FRAME_END:
            s_consume(buf, len, used);
            break;
        }
    }
}

static void s_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)suggested;
    up_conn_t *c = h->data;
    *out = uv_buf_init(NULL, 0);
    if (c->state == C_UNBOUND && c->tmp) {
        if (c->tmp_len < UP_MSRP_UNBOUND_MAX)
            *out = uv_buf_init((char *)c->tmp + c->tmp_len,
                               (unsigned)(UP_MSRP_UNBOUND_MAX - c->tmp_len));
        return;
    }
    up_leg_t *leg = c->leg;
    if (c->state != C_BOUND || !leg)
        return;
    if (leg->buf_len == leg->buf_cap) {
        /* Only a header block can fill the buffer (bodies stream
         * through): grow for it, up to --leg-buffer. */
        if (up_legs_buf_reserve(s_ctx(c)->legs, leg, leg->buf_cap + 1) < 0)
            return;
        s_sync(c);
    }
    *out = uv_buf_init((char *)leg->buf + leg->buf_len,
                       (unsigned)(leg->buf_cap - leg->buf_len));
}

static void s_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    up_conn_t *c = s->data;
    if (nread == 0 || c->state == C_CLOSING || c->state == C_REJECTING)
        return;
    if (nread < 0) {
        const char *why = nread == UV_EOF       ? "peer_closed"
                          : nread == UV_ENOBUFS ? "header_too_large"
                                                : uv_strerror((int)nread);
        s_fail(c, why);
        return;
    }
    size_t n = (size_t)nread;
    if (c->state == C_UNBOUND) {
        c->tmp_len += n;
        c->pre_bytes += n;
    } else if (c->leg) {
        c->leg->buf_len += n;
        c->leg->counters.bytes_in += n;
    }
    s_process(c);
}

/* ---- accepting -------------------------------------------------------- */

static void s_peer_name(up_conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) < 0)
        return;
    char host[48] = "";
    unsigned port = 0;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        uv_ip4_name(sin, host, sizeof(host));
        port = ntohs(sin->sin_port);
        snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(sin6, host, sizeof(host));
        port = ntohs(sin6->sin6_port);
        snprintf(c->peer, sizeof(c->peer), "[%s]:%u", host, port);
    }
}

static void s_on_connection(uv_stream_t *server, int status)
{
    up_msrp_t *m = server->data;
    if (status < 0) {
        IM_LOG_WARN("event=msrp_accept_failed err=\"%s\"",
                    uv_strerror(status));
        return;
    }
    up_conn_t *c = s_conn_new(m);
    if (!c) {
        IM_LOG_ERROR("event=msrp_accept_failed err=out_of_memory");
        return;
    }
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        IM_LOG_WARN("event=msrp_accept_failed err=\"%s\"", uv_strerror(rc));
        s_close(c);
        return;
    }
    s_peer_name(c);
    s_loose_add(m, c);
    if (m->nloose > UP_MSRP_LOOSE_MAX) {
        s_drop(c, "too_many_unbound");
        return;
    }
    c->tmp = malloc(UP_MSRP_UNBOUND_MAX);
    if (!c->tmp) {
        s_drop(c, "out_of_memory");
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    rc = uv_read_start((uv_stream_t *)&c->tcp, s_on_alloc, s_on_read);
    if (rc < 0) {
        s_drop(c, uv_strerror(rc));
        return;
    }
    up_timer_arm_in(m->ctx->timers, &c->timer, UP_MSRP_BIND_MS);
    IM_LOG_DEBUG("event=msrp_conn_accepted conn=%" PRIu64 " peer=%s", c->id,
                 c->peer);
}

/* ---- connecting out --------------------------------------------------- */

static void s_on_connected(uv_connect_t *req, int status)
{
    up_conn_t *c = req->data;
    if (c->state != C_CONNECTING)
        return; /* closed meanwhile: ECANCELED */
    up_leg_t *leg = c->leg;
    if (status < 0 || !leg) {
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED,
               status < 0 ? uv_strerror(status) : "no_leg");
        return;
    }
    up_context_t *ctx = s_ctx(c);
    up_timer_cancel(ctx->timers, &c->timer);
    c->state = C_BOUND;
    (void)uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, s_on_alloc, s_on_read);
    if (rc < 0) {
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED,
               uv_strerror(rc));
        return;
    }
    /* RFC 4975: the side that connects sends a SEND at once, so the other
     * side can bind the connection to its session. No body, so no blank
     * line before the end-line. */
    char tid[UP_MSRP_TID_LEN + 1], mid[UP_MSRP_TID_LEN + 1];
    if (up_leg_random_id(tid, UP_MSRP_TID_LEN) < 0 ||
        up_leg_random_id(mid, UP_MSRP_TID_LEN) < 0) {
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED,
               "no_random");
        return;
    }
    rc = s_write(c,
                 "MSRP %s SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
                 "Message-ID: %s\r\nByte-Range: 1-0/0\r\n-------%s$\r\n",
                 tid, leg->peer_path ? leg->peer_path : "", leg->path, mid,
                 tid);
    if (rc < 0) {
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED,
               uv_strerror(rc));
        return;
    }
    leg->counters.msgs_out++;
    IM_LOG_INFO("event=leg_connected sid=%016" PRIx64 " dir=%s node=%s "
                "conn=%" PRIu64 " peer=%s",
                leg->session_id, up_dir_name(leg->dir), ctx->cfg.id, c->id,
                c->peer);
}

static int s_peer_addr(const char *host, unsigned port,
                       struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -EINVAL;
}

int up_msrp_connect(up_msrp_t *m, up_leg_t *leg)
{
    if (!m || m->closed || !leg)
        return -EINVAL;
    if (leg->conn)
        return 0;
    const char *start;
    size_t len;
    im_msrp_uri_t uri;
    struct sockaddr_storage ss;
    if (!leg->peer_path || im_msrp_path_last(leg->peer_path, &start, &len) < 0 ||
        im_msrp_uri_parse(start, len, &uri) < 0 || uri.secure ||
        s_peer_addr(uri.host, uri.port, &ss) < 0)
        return -EINVAL;
    up_conn_t *c = s_conn_new(m);
    if (!c)
        return -ENOMEM;
    if (strchr(uri.host, ':'))
        snprintf(c->peer, sizeof(c->peer), "[%.44s]:%u", uri.host, uri.port);
    else
        snprintf(c->peer, sizeof(c->peer), "%.48s:%u", uri.host, uri.port);
    up_context_t *ctx = m->ctx;
    if (up_legs_attach_conn(ctx->legs, leg, c) < 0) {
        s_close(c);
        return -EBUSY;
    }
    c->leg = leg;
    c->state = C_CONNECTING;
    up_metrics_sync(ctx->metrics, ctx->legs);
    int rc = uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&ss,
                            s_on_connected);
    if (rc < 0) {
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED,
               uv_strerror(rc));
        return 0;
    }
    up_timer_arm_in(ctx->timers, &c->timer, UP_MSRP_CONNECT_MS);
    IM_LOG_DEBUG("event=leg_connecting sid=%016" PRIx64 " dir=%s peer=%s",
                 leg->session_id, up_dir_name(leg->dir), c->peer);
    return 0;
}

/* ---- listener --------------------------------------------------------- */

static void s_free(up_msrp_t *m)
{
    free(m);
}

static void s_on_listener_closed(uv_handle_t *h)
{
    up_msrp_t *m = h->data;
    m->listener_open = false;
    if (m->free_on_close)
        s_free(m);
}

static int s_listen(up_msrp_t *m)
{
    up_context_t *ctx = m->ctx;
    char host[IM_MSRP_HOST_MAX];
    unsigned port = 0;
    if (im_config_split_hostport(ctx->cfg.msrp, host, sizeof(host), &port) <
            0 ||
        port > 65535) {
        IM_LOG_ERROR("event=msrp_listen_failed addr=%s why=bad_address",
                     ctx->cfg.msrp);
        return -EINVAL;
    }
    struct sockaddr_storage ss;
    if (s_peer_addr(host, port, &ss) < 0) {
        IM_LOG_ERROR("event=msrp_listen_failed addr=%s why=not_numeric",
                     ctx->cfg.msrp);
        return -EINVAL;
    }
    int rc = uv_tcp_init(ctx->loop, &m->listener);
    if (rc < 0)
        return rc;
    m->listener.data = m;
    m->listener_open = true;
    rc = uv_tcp_bind(&m->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->listener, 511, s_on_connection);
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    if (rc == 0)
        rc = uv_tcp_getsockname(&m->listener, (struct sockaddr *)&bound,
                                &blen);
    if (rc < 0) {
        IM_LOG_ERROR("event=msrp_listen_failed addr=%s err=\"%s\"",
                     ctx->cfg.msrp, uv_strerror(rc));
        return rc;
    }
    ctx->msrp_port = bound.ss_family == AF_INET6
                         ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                         : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    snprintf(ctx->advertise, sizeof(ctx->advertise), "%s",
             ctx->cfg.advertise ? ctx->cfg.advertise : host);
    if (strchr(ctx->advertise, ':'))
        snprintf(ctx->msrp_address, sizeof(ctx->msrp_address), "[%s]:%u",
                 ctx->advertise, ctx->msrp_port);
    else
        snprintf(ctx->msrp_address, sizeof(ctx->msrp_address), "%s:%u",
                 ctx->advertise, ctx->msrp_port);
    if (!ctx->cfg.advertise &&
        (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0))
        IM_LOG_WARN("event=config_unroutable option=advertise host=%s "
                    "why=\"wildcard listen address in leg paths\"",
                    host);
    return 0;
}

up_msrp_t *up_msrp_new(up_context_t *ctx)
{
    up_msrp_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->ctx = ctx;
    if (s_listen(m) < 0) {
        if (m->listener_open) {
            /* The handle is the loop's until its close runs. */
            m->free_on_close = true;
            m->closed = true;
            uv_close((uv_handle_t *)&m->listener, s_on_listener_closed);
        } else {
            s_free(m);
        }
        return NULL;
    }
    return m;
}

void up_msrp_close(up_msrp_t *m)
{
    if (!m || m->closed)
        return;
    m->closed = true;
    while (m->loose) {
        up_conn_t *c = m->loose;
        IM_LOG_DEBUG("event=msrp_conn_closed conn=%" PRIu64 " why=shutdown",
                     c->id);
        s_close(c); /* takes it off the list */
    }
    if (m->listener_open)
        uv_close((uv_handle_t *)&m->listener, s_on_listener_closed);
}

void up_msrp_destroy(up_msrp_t **m_p)
{
    if (!m_p || !*m_p)
        return;
    up_msrp_t *m = *m_p;
    *m_p = NULL;
    up_msrp_close(m);
    if (m->listener_open) {
        /* Called before the loop ran the close: free from it. */
        m->free_on_close = true;
        return;
    }
    s_free(m);
}

size_t up_msrp_loose(const up_msrp_t *m)
{
    return m ? m->nloose : 0;
}
