#include "up_path.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "im_log.h"
#include "im_zmq.h"
#include "up_handler.h"
#include "up_metrics.h"

/* Messages handled per wake-up before MSRP connections get a turn. */
#define UP_PATH_DRAIN_BUDGET 1000

struct up_path {
    up_context_t *ctx;
    void *zctx;
    void *dealer;    /* NULL after a failed reconnect */
    im_zmq_curve_t curve; /* keys for every (re)connect, when use_curve */
    bool use_curve;
    uv_poll_t *poll; /* watches dealer's ZMQ_FD; freed by its close callback */
    uv_idle_t recheck;
    bool idle_open;
    bool closed;
    bool draining; /* inside s_drain: sends need no extra check */
    bool free_on_close;
    unsigned closes_pending;
    uint64_t seq;
};

static void s_drain(up_path_t *p);

static void s_on_poll(uv_poll_t *h, int status, int events)
{
    (void)events;
    up_path_t *p = h->data;
    if (status < 0)
        IM_LOG_WARN("event=ctl_poll_error err=\"%s\"", uv_strerror(status));
    s_drain(p);
}

static void s_on_recheck(uv_idle_t *h)
{
    up_path_t *p = h->data;
    uv_idle_stop(&p->recheck);
    s_drain(p);
}

static void s_schedule_recheck(up_path_t *p)
{
    if (p->idle_open && !p->closed)
        uv_idle_start(&p->recheck, s_on_recheck);
}

static void s_protocol_error(up_path_t *p, up_perr_t kind)
{
    up_metrics_protocol_error(p->ctx->metrics, kind);
    IM_LOG_WARN("event=protocol_error kind=%s", up_perr_name(kind));
}

static void s_drain(up_path_t *p)
{
    if (p->draining || p->closed)
        return;
    p->draining = true;
    /* Receives until EAGAIN, without a ZMQ_EVENTS poll(2) per message: a
     * receive that finds nothing has processed ZeroMQ's pending commands,
     * so the fd signals again for whatever arrives next. */
    for (unsigned n = 0; !p->closed; n++) {
        if (n == UP_PATH_DRAIN_BUDGET) {
            /* The fd will not signal again for what is already queued. */
            s_schedule_recheck(p);
            break;
        }
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, p->dealer, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        if (zmq_msg_more(&msg)) {
            /* One frame per message: drop every part of this one. */
            while (zmq_msg_more(&msg)) {
                zmq_msg_close(&msg);
                zmq_msg_init(&msg);
                if (zmq_msg_recv(&msg, p->dealer, ZMQ_DONTWAIT) < 0)
                    break;
            }
            zmq_msg_close(&msg);
            s_protocol_error(p, UP_PERR_EXTRA_FRAMES);
            continue;
        }
        up_handler_frame(p->ctx, zmq_msg_data(&msg), zmq_msg_size(&msg));
        zmq_msg_close(&msg);
    }
    p->draining = false;
}

static void s_free(up_path_t *p)
{
    im_zmq_close(&p->dealer);
    if (p->zctx)
        zmq_ctx_term(p->zctx);
    im_zmq_curve_clear(&p->curve);
    free(p);
}

static void s_closed(up_path_t *p)
{
    if (--p->closes_pending == 0 && p->free_on_close)
        s_free(p);
}

static void s_on_idle_closed(uv_handle_t *h)
{
    s_closed(h->data);
}

static void s_on_poll_closed(uv_handle_t *h)
{
    up_path_t *p = h->data;
    free(h);
    s_closed(p);
}

/* Stops watching the current socket. The poll handle leaves epoll here,
 * before the socket (and its descriptor) can be closed. */
static void s_unwatch(up_path_t *p)
{
    if (!p->poll)
        return;
    uv_poll_stop(p->poll);
    p->closes_pending++;
    uv_close((uv_handle_t *)p->poll, s_on_poll_closed);
    p->poll = NULL;
}

/* Watches the current socket's ZMQ_FD. Returns 0 or -errno (logged). */
static int s_watch(up_path_t *p)
{
    int fd;
    size_t fdlen = sizeof(fd);
    if (zmq_getsockopt(p->dealer, ZMQ_FD, &fd, &fdlen) < 0) {
        int err = errno;
        IM_LOG_ERROR("event=ctl_fd_failed err=\"%s\"", zmq_strerror(err));
        return -err;
    }
    uv_poll_t *poll = malloc(sizeof(*poll));
    if (!poll)
        return -ENOMEM;
    int rc = uv_poll_init(p->ctx->loop, poll, fd);
    if (rc < 0) {
        free(poll);
        IM_LOG_ERROR("event=ctl_poll_failed err=\"%s\"", uv_strerror(rc));
        return rc;
    }
    poll->data = p;
    p->poll = poll;
    rc = uv_poll_start(poll, UV_READABLE, s_on_poll);
    if (rc < 0) {
        IM_LOG_ERROR("event=ctl_poll_failed err=\"%s\"", uv_strerror(rc));
        s_unwatch(p);
        return rc;
    }
    /* Anything queued before the watch started raised no edge. */
    s_schedule_recheck(p);
    return 0;
}

static void s_close_handles(up_path_t *p)
{
    p->closed = true;
    s_unwatch(p);
    if (p->idle_open) {
        p->idle_open = false;
        uv_idle_stop(&p->recheck);
        p->closes_pending++;
        uv_close((uv_handle_t *)&p->recheck, s_on_idle_closed);
    }
}

static void *s_connect(up_path_t *p)
{
    return im_zmq_dealer_connect_opts(p->zctx, p->ctx->cfg.cp,
                                      p->ctx->cfg.id,
                                      p->use_curve ? &p->curve : NULL);
}

up_path_t *up_path_new(up_context_t *ctx)
{
    up_path_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->ctx = ctx;
    p->zctx = zmq_ctx_new();
    if (!p->zctx)
        goto fail;
    if (ctx->cfg.curve_secret) {
        char err[256];
        if (im_zmq_curve_client_load(&p->curve, ctx->cfg.curve_server_key,
                                     ctx->cfg.curve_secret, err,
                                     sizeof(err)) < 0) {
            IM_LOG_ERROR("event=curve_failed why=\"%s\"", err);
            goto fail;
        }
        p->use_curve = true;
    }
    p->dealer = s_connect(p);
    if (!p->dealer)
        goto fail;
    int rc = uv_idle_init(ctx->loop, &p->recheck);
    if (rc < 0) {
        IM_LOG_ERROR("event=ctl_poll_failed err=\"%s\"", uv_strerror(rc));
        goto fail;
    }
    p->recheck.data = p;
    p->idle_open = true;
    if (s_watch(p) < 0)
        goto fail;
    return p;
fail:
    if (p->idle_open || p->closes_pending) {
        /* Initialised handles belong to the loop until their close runs:
         * the object frees itself then. */
        p->free_on_close = true;
        s_close_handles(p);
        return NULL;
    }
    s_free(p);
    return NULL;
}

void up_path_close(up_path_t *p)
{
    if (p)
        s_close_handles(p);
}

void up_path_destroy(up_path_t **p_p)
{
    if (!p_p || !*p_p)
        return;
    up_path_t *p = *p_p;
    *p_p = NULL;
    s_close_handles(p);
    if (p->closes_pending > 0) {
        /* Called before the loop ran the closes: free from the last one. */
        p->free_on_close = true;
        return;
    }
    s_free(p);
}

void up_sent_clear(up_sent_t *s)
{
    if (!s)
        return;
    free(s->bytes);
    memset(s, 0, sizeof(*s));
}

static int s_send_bytes(up_path_t *p, const uint8_t *bytes, size_t len,
                        const char *what)
{
    int rc = 0;
    if (!p->dealer)
        rc = -ENOTCONN;
    else if (zmq_send(p->dealer, bytes, len, ZMQ_DONTWAIT) < 0)
        rc = -errno;
    if (rc < 0)
        IM_LOG_WARN("event=ctl_send_failed body=%s err=\"%s\"", what,
                    rc == -ENOTCONN ? "no socket" : zmq_strerror(-rc));
    if (!p->draining)
        s_schedule_recheck(p);
    return rc;
}

int up_path_send(up_path_t *p, im_env_t *env, up_sent_t *keep)
{
    if (!p || p->closed)
        return -ESHUTDOWN;
    env->major = IM_PROTO_MAJOR;
    env->minor = IM_PROTO_MINOR;
    env->sender_id = (char *)p->ctx->cfg.id;
    env->sender_epoch = p->ctx->epoch;
    env->seq = ++p->seq;
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (im_proto_pack(env, &bytes, &len) < 0)
        return -ENOMEM;
    int rc =
        s_send_bytes(p, bytes, len, im_proto_body_name((int)env->body_case));
    if (keep) {
        keep->bytes = bytes;
        keep->len = len;
        keep->seq = env->seq;
    } else {
        free(bytes);
    }
    return rc;
}

int up_path_resend(up_path_t *p, const uint8_t *bytes, size_t len)
{
    if (!p || p->closed)
        return -ESHUTDOWN;
    if (!bytes || len == 0)
        return -EINVAL;
    return s_send_bytes(p, bytes, len, "resend");
}

int up_path_reconnect(up_path_t *p)
{
    if (!p || p->closed)
        return -ESHUTDOWN;
    s_unwatch(p);
    im_zmq_close(&p->dealer);
    p->dealer = s_connect(p);
    if (!p->dealer)
        return errno ? -errno : -ENOMEM;
    int rc = s_watch(p);
    if (rc < 0) {
        im_zmq_close(&p->dealer);
        return rc;
    }
    return 0;
}

int up_path_set_linger(up_path_t *p, int linger_ms)
{
    if (!p || !p->dealer)
        return -ENOTCONN;
    if (zmq_setsockopt(p->dealer, ZMQ_LINGER, &linger_ms, sizeof(linger_ms)) !=
        0)
        return -errno;
    return 0;
}
