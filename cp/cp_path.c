#include "cp_path.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/su_wait.h>
#include <zmq.h>

#include "cp_handler.h"
#include "cp_metrics.h"
#include "cp_timer.h"
#include "im_clock.h"
#include "im_curve.h"
#include "im_log.h"
#include "im_zmq.h"

typedef struct cp_cmd {
    cp_cmd_info_t info;
    uint8_t *bytes;
    size_t len;
    unsigned tries;
    im_timer_t timer;
    cp_path_t *path;
    struct cp_cmd *hnext;
} cp_cmd_t;

struct cp_path {
    cp_context_t *ctx;
    void *zctx;
    im_zap_t *zap; /* CURVE on: admits listed worker keys */
    void *router;
    su_wait_t wait;
    int wait_index;
    uint64_t seq;
    cp_cmd_t **buckets;
    size_t nbuckets;
    size_t count;
    size_t releases;
    bool draining; /* inside s_drain: sends must not recurse into it */
    im_timer_t recheck; /* continues a drain cut short by its budget */
    /* A worker that stops reading fills its queue (--ctl-hwm) and every
     * send to it fails until it is declared dead: one line a second per
     * reason, not one per message. */
    im_log_limit_t send_log[CP_SENDFAIL_COUNT];
};

#define CP_PATH_SEND_LOG_MS 1000

/* Messages handled per wake-up before SIP gets a turn. */
#define CP_PATH_DRAIN_BUDGET 2000

static void s_drain(cp_path_t *p);
static void s_drain_loop(cp_path_t *p);

static size_t s_bucket(const cp_path_t *p, uint64_t seq)
{
    return (size_t)((seq * 0x9E3779B97F4A7C15ull) >> 32) & (p->nbuckets - 1);
}

static int s_on_readable(su_root_magic_t *magic, su_wait_t *w,
                         su_wakeup_arg_t *arg)
{
    (void)magic;
    (void)w;
    s_drain((cp_path_t *)arg);
    return 0;
}

/* The ZMQ_FD is edge-triggered on ZeroMQ's internal state: read until
 * ZMQ_EVENTS says nothing is left, whatever woke us. */
static void s_drain(cp_path_t *p)
{
    if (p->draining)
        return;
    p->draining = true;
    s_drain_loop(p);
    p->draining = false;
}

static void s_on_recheck(im_timer_t *t, void *arg)
{
    (void)t;
    s_drain((cp_path_t *)arg);
}

static void s_drain_loop(cp_path_t *p)
{
    /* Receives until EAGAIN rather than asking ZMQ_EVENTS before each
     * message (a poll(2) each time): a receive that finds nothing has
     * processed ZeroMQ's pending commands, so the fd signals again for
     * whatever arrives next. */
    for (unsigned n = 0;; n++) {
        if (n == CP_PATH_DRAIN_BUDGET) {
            /* The fd will not signal again for what is already queued. */
            cp_timer_arm_in(p->ctx->timers, &p->recheck, 0);
            return;
        }
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, p->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(&body);
            return;
        }
        int more = zmq_msg_more(&id);
        if (!more) {
            IM_LOG_WARN("event=protocol_error kind=no_routing_frame");
            cp_metrics_protocol_error(p->ctx->metrics,
                                      CP_PERR_NO_ROUTING_FRAME);
            zmq_msg_close(&id);
            zmq_msg_close(&body);
            continue;
        }
        zmq_msg_recv(&body, p->router, ZMQ_DONTWAIT);
        /* A peer may send extra frames: drop the whole message. */
        bool extra = zmq_msg_more(&body);
        while (zmq_msg_more(&body)) {
            zmq_msg_close(&body);
            zmq_msg_init(&body);
            if (zmq_msg_recv(&body, p->router, ZMQ_DONTWAIT) < 0)
                break;
        }
        if (extra) {
            IM_LOG_WARN("event=protocol_error kind=extra_frames");
            cp_metrics_protocol_error(p->ctx->metrics, CP_PERR_EXTRA_FRAMES);
        } else {
            cp_handler_frame(p->ctx, zmq_msg_data(&id), zmq_msg_size(&id),
                             zmq_msg_data(&body), zmq_msg_size(&body));
        }
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
}

/* The ROUTER, as a CURVE server behind the ZAP handler when a secret key
 * is configured. Fails closed: with CURVE asked for, any problem with the
 * keys or the handler stops the start. */
static void *s_bind(cp_path_t *p, const cp_config_t *cfg)
{
    if (!cfg->curve_secret)
        return im_zmq_router_bind_hwm(p->zctx, cfg->ctl, NULL,
                                      (int)cfg->ctl_hwm);
    char err[256];
    im_zmq_curve_t curve = {.zap_domain = "imsplit"};
    if (im_curve_key_load(cfg->curve_secret, IM_CURVE_SECRET,
                          &curve.secret_key, err, sizeof(err)) < 0) {
        IM_LOG_ERROR("event=curve_failed why=\"%s\"", err);
        return NULL;
    }
    im_curve_allow_t *allow = im_curve_allow_load(
        cfg->curve_allow.items, cfg->curve_allow.count, err, sizeof(err));
    if (!allow) {
        IM_LOG_ERROR("event=curve_failed why=\"%s\"", err);
        im_curve_key_clear(&curve.secret_key);
        return NULL;
    }
    p->zap = im_zap_start(p->zctx, allow, curve.zap_domain);
    size_t keys = im_curve_allow_count(allow);
    im_curve_allow_destroy(&allow);
    void *router = p->zap ? im_zmq_router_bind_hwm(p->zctx, cfg->ctl, &curve,
                                                   (int)cfg->ctl_hwm)
                          : NULL;
    im_curve_key_clear(&curve.secret_key);
    if (router)
        IM_LOG_INFO("event=curve_on endpoint=%s allowed_keys=%zu", cfg->ctl,
                    keys);
    return router;
}

cp_path_t *cp_path_new(cp_context_t *ctx)
{
    cp_path_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->ctx = ctx;
    p->wait_index = -1;
    im_timer_init(&p->recheck, s_on_recheck, p);
    p->nbuckets = 1024;
    p->buckets = calloc(p->nbuckets, sizeof(*p->buckets));
    p->zctx = zmq_ctx_new();
    if (!p->buckets || !p->zctx)
        goto fail;
    p->router = s_bind(p, &ctx->cfg);
    if (!p->router)
        goto fail;
    int fd;
    size_t fdlen = sizeof(fd);
    if (zmq_getsockopt(p->router, ZMQ_FD, &fd, &fdlen) < 0)
        goto fail;
    if (su_wait_create(&p->wait, fd, SU_WAIT_IN) < 0)
        goto fail;
    p->wait_index = su_root_register(ctx->root, &p->wait, s_on_readable,
                                     (su_wakeup_arg_t *)p, 0);
    if (p->wait_index < 0) {
        su_wait_destroy(&p->wait);
        goto fail;
    }
    return p;
fail:
    cp_path_destroy(&p);
    return NULL;
}

static void s_cmd_free(cp_cmd_t *c)
{
    free(c->bytes);
    free(c);
}

void cp_path_destroy(cp_path_t **p_p)
{
    if (!p_p || !*p_p)
        return;
    cp_path_t *p = *p_p;
    if (p->ctx->timers)
        cp_timer_cancel(p->ctx->timers, &p->recheck);
    if (p->buckets) {
        for (size_t i = 0; i < p->nbuckets; i++) {
            cp_cmd_t *c = p->buckets[i];
            while (c) {
                cp_cmd_t *next = c->hnext;
                cp_timer_cancel(p->ctx->timers, &c->timer);
                s_cmd_free(c);
                c = next;
            }
        }
        free(p->buckets);
    }
    if (p->wait_index >= 0) {
        /* su_root_deregister also destroys the su_wait_t; the fd belongs
         * to ZeroMQ and is closed with the socket. */
        su_root_deregister(p->ctx->root, p->wait_index);
    }
    if (p->router && p->count) {
        /* Commands sent last (releases of abandoned sessions) get a
         * moment to leave; nothing waits for their results. */
        int linger = 500;
        (void)zmq_setsockopt(p->router, ZMQ_LINGER, &linger, sizeof(linger));
    }
    im_zmq_close(&p->router);
    im_zap_stop(&p->zap);
    if (p->zctx)
        zmq_ctx_term(p->zctx);
    free(p);
    *p_p = NULL;
}

static void s_header(cp_path_t *p, im_env_t *env)
{
    env->major = IM_PROTO_MAJOR;
    env->minor = IM_PROTO_MINOR;
    env->sender_id = (char *)p->ctx->cfg.node_id;
    env->sender_epoch = p->ctx->epoch;
    env->seq = ++p->seq;
}

/* A send that ZeroMQ refused: counted, and logged at most once a second
 * per reason. Never blocks: the caller keeps a command for its resend
 * timer, and anything else is lost like a dropped datagram (heartbeats,
 * acks; the protocol resends what matters). */
static void s_send_failed(cp_path_t *p, const void *peer, size_t peer_len,
                          int body_case, int err)
{
    cp_sendfail_t why = err == EAGAIN         ? CP_SENDFAIL_QUEUE_FULL
                        : err == EHOSTUNREACH ? CP_SENDFAIL_UNROUTABLE
                                              : CP_SENDFAIL_OTHER;
    cp_metrics_ctl_send_failed(p->ctx->metrics, why);
    uint64_t suppressed = 0;
    if (!im_log_limit(&p->send_log[why], im_clock_ms(), CP_PATH_SEND_LOG_MS,
                      &suppressed))
        return;
    char id[64];
    size_t n = peer_len < sizeof(id) - 1 ? peer_len : sizeof(id) - 1;
    memcpy(id, peer, n);
    id[n] = '\0';
    char q[96];
    IM_LOG_WARN("event=ctl_send_failed worker=%s why=%s body=%s err=\"%s\" "
                "suppressed=%" PRIu64,
                im_log_quote(q, sizeof(q), id), cp_sendfail_name(why),
                im_proto_body_name(body_case), zmq_strerror(err), suppressed);
}

static int s_send_bytes(cp_path_t *p, const void *peer, size_t peer_len,
                        const uint8_t *bytes, size_t len, int body_case)
{
    int rc = 0;
    if (zmq_send(p->router, peer, peer_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(p->router, bytes, len, ZMQ_DONTWAIT) < 0) {
        rc = -errno;
        s_send_failed(p, peer, peer_len, body_case, -rc);
    }
    /* A send can consume the edge that announced pending input, so input
     * must be looked at again. Not here: draining now could complete (and
     * free) the very command a caller is sending. The next loop turn does
     * it; inside s_drain its own loop receives until EAGAIN anyway. */
    if (!p->draining && !im_timer_armed(&p->recheck))
        cp_timer_arm_in(p->ctx->timers, &p->recheck, 0);
    return rc;
}

int cp_path_send(cp_path_t *p, const void *peer, size_t peer_len,
                 im_env_t *env)
{
    s_header(p, env);
    uint8_t *bytes;
    size_t len;
    if (im_proto_pack(env, &bytes, &len) < 0)
        return -ENOMEM;
    int rc = s_send_bytes(p, peer, peer_len, bytes, len,
                          (int)env->body_case);
    free(bytes);
    return rc;
}

static void s_unlink(cp_path_t *p, cp_cmd_t *c)
{
    cp_cmd_t **pp = &p->buckets[s_bucket(p, c->info.seq)];
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = c->hnext;
        p->count--;
        if (c->info.body_case == IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG)
            p->releases--;
    }
    cp_timer_cancel(p->ctx->timers, &c->timer);
    im_metric_set(p->ctx->metrics->releases_pending, (int64_t)p->releases);
}

static void s_on_resend(im_timer_t *t, void *arg)
{
    (void)t;
    cp_cmd_t *c = arg;
    cp_path_t *p = c->path;
    if (c->tries >= p->ctx->cfg.command_tries) {
        cp_cmd_info_t info = c->info;
        s_unlink(p, c);
        s_cmd_free(c);
        im_metric_inc(p->ctx->metrics->commands_failed_total);
        IM_LOG_WARN("event=command_failed seq=%" PRIu64 " worker=%s body=%s "
                    "sid=%016" PRIx64 " tries=%u",
                    info.seq, info.worker, im_proto_body_name(info.body_case),
                    info.session_id, p->ctx->cfg.command_tries);
        cp_handler_command_failed(p->ctx, &info);
        return;
    }
    c->tries++;
    im_metric_inc(p->ctx->metrics->commands_resent_total);
    IM_LOG_DEBUG("event=command_resent seq=%" PRIu64 " worker=%s try=%u",
                 c->info.seq, c->info.worker, c->tries);
    (void)s_send_bytes(p, c->info.worker, strlen(c->info.worker), c->bytes,
                       c->len, c->info.body_case);
    /* Back off: each resend waits one timeout longer than the last. */
    cp_timer_arm_in(p->ctx->timers, &c->timer,
                    (uint64_t)p->ctx->cfg.command_timeout_ms * c->tries);
}

uint64_t cp_path_command(cp_path_t *p, const char *worker, im_env_t *env,
                         uint64_t session_id, int dir)
{
    cp_cmd_t *c = calloc(1, sizeof(*c));
    if (!c)
        return 0;
    s_header(p, env);
    if (im_proto_pack(env, &c->bytes, &c->len) < 0) {
        free(c);
        return 0;
    }
    c->path = p;
    c->info.seq = env->seq;
    c->info.body_case = (int)env->body_case;
    c->info.session_id = session_id;
    c->info.dir = dir;
    c->info.sent_us = im_clock_us();
    snprintf(c->info.worker, sizeof(c->info.worker), "%s", worker);
    int rc = s_send_bytes(p, worker, strlen(worker), c->bytes, c->len,
                          c->info.body_case);
    if (rc == -EHOSTUNREACH) {
        IM_LOG_DEBUG("event=command_unroutable worker=%s body=%s sid=%016"
                     PRIx64, worker, im_proto_body_name(c->info.body_case),
                     session_id);
        s_cmd_free(c);
        return 0;
    }
    /* Other send errors (the worker's queue is full) are retried by the
     * resend timer; the command store stays bounded by the sessions
     * (--max-sessions, --max-pending) that issue commands. */
    c->tries = 1;
    im_timer_init(&c->timer, s_on_resend, c);
    size_t k = s_bucket(p, c->info.seq);
    c->hnext = p->buckets[k];
    p->buckets[k] = c;
    p->count++;
    if (c->info.body_case == IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG)
        p->releases++;
    im_metric_set(p->ctx->metrics->releases_pending, (int64_t)p->releases);
    cp_timer_arm_in(p->ctx->timers, &c->timer, p->ctx->cfg.command_timeout_ms);
    return c->info.seq;
}

static cp_cmd_t *s_find(const cp_path_t *p, const char *worker,
                        uint64_t seq)
{
    for (cp_cmd_t *c = p->buckets[s_bucket(p, seq)]; c; c = c->hnext)
        if (c->info.seq == seq && strcmp(c->info.worker, worker) == 0)
            return c;
    return NULL;
}

bool cp_path_peek(const cp_path_t *p, const char *worker, uint64_t reply_to,
                  cp_cmd_info_t *out)
{
    const cp_cmd_t *c = s_find(p, worker, reply_to);
    if (c)
        *out = c->info;
    return c != NULL;
}

bool cp_path_complete(cp_path_t *p, const char *worker, uint64_t reply_to,
                      cp_cmd_info_t *out)
{
    cp_cmd_t *c = s_find(p, worker, reply_to);
    if (!c)
        return false;
    *out = c->info;
    s_unlink(p, c);
    s_cmd_free(c);
    return true;
}

void cp_path_forget_worker(cp_path_t *p, const char *worker)
{
    for (size_t i = 0; i < p->nbuckets; i++) {
        cp_cmd_t *c = p->buckets[i];
        while (c) {
            cp_cmd_t *next = c->hnext;
            if (strcmp(c->info.worker, worker) == 0) {
                s_unlink(p, c);
                s_cmd_free(c);
            }
            c = next;
        }
    }
}

uint64_t cp_path_last_seq(const cp_path_t *p)
{
    return p->seq;
}

size_t cp_path_pending(const cp_path_t *p)
{
    return p->count;
}

size_t cp_path_pending_releases(const cp_path_t *p)
{
    return p->releases;
}
