#include "up_handler.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "im_clock.h"
#include "im_log.h"
#include "im_msrp_uri.h"
#include "im_proto.h"
#include "up_build.h"
#include "up_leg.h"
#include "up_metrics.h"
#include "up_msrp.h"
#include "up_timer.h"

#define UP_REGISTER_RESEND_MS 1000
#define UP_METRICS_TICK_MS 500
/* Bounds on what a RegisterAck may ask for (0 takes the default). */
#define UP_HEARTBEAT_DEFAULT_MS 1000
#define UP_HEARTBEAT_MIN_MS 10
#define UP_HEARTBEAT_MAX_MS 600000
#define UP_LIVENESS_DEFAULT 3
#define UP_LIVENESS_MAX 100

static void s_sync(up_context_t *ctx)
{
    up_metrics_sync(ctx->metrics, ctx->legs);
}

/* ---- registration state machine ---------------------------------------- */

static void s_enter_registering(up_context_t *ctx, const char *why)
{
    if (ctx->reg_state == UP_REG_REGISTERED)
        IM_LOG_WARN("event=cp_lost node=%s cp_epoch=%" PRIu64 " why=%s "
                    "legs=%zu",
                    ctx->cfg.id, ctx->cp_epoch, why,
                    up_legs_count(ctx->legs));
    ctx->reg_state = UP_REG_REGISTERING;
    im_metrics_set_ready(ctx->metrics->reg, false);
    (void)up_build_register(ctx);
    up_timer_arm_in(ctx->timers, &ctx->reg_timer, UP_REGISTER_RESEND_MS);
}

static void s_on_reg_timer(im_timer_t *t, void *arg)
{
    up_context_t *ctx = arg;
    if (ctx->stopping)
        return;
    if (ctx->reg_state == UP_REG_REGISTERING) {
        (void)up_build_register(ctx);
        up_timer_arm_in(ctx->timers, t, UP_REGISTER_RESEND_MS);
        return;
    }
    uint64_t now = im_clock_ms();
    uint64_t silent = now - ctx->last_rx_ms;
    if (silent > (uint64_t)ctx->liveness * ctx->heartbeat_ms) {
        IM_LOG_WARN("event=cp_silent node=%s silent_ms=%" PRIu64
                    " limit_ms=%" PRIu64,
                    ctx->cfg.id, silent,
                    (uint64_t)ctx->liveness * ctx->heartbeat_ms);
        s_enter_registering(ctx, "missed_heartbeats");
        return;
    }
    (void)up_build_heartbeat(ctx);
    up_timer_arm_in(ctx->timers, t, ctx->heartbeat_ms);
}

static void s_log_released(const up_context_t *ctx, const up_leg_t *leg,
                           const char *reason, const char *cause)
{
    const up_leg_counters_t *c = &leg->counters;
    IM_LOG_INFO("event=leg_released sid=%016" PRIx64 " dir=%s node=%s "
                "reason=%s cause=%s bytes_in=%" PRIu64 " bytes_out=%" PRIu64
                " msgs_in=%" PRIu64 " msgs_out=%" PRIu64,
                leg->session_id, up_dir_name(leg->dir), ctx->cfg.id, reason,
                cause, c->bytes_in, c->bytes_out, c->msgs_in, c->msgs_out);
}

typedef struct {
    up_context_t *ctx;
    const char *reason;
} s_bulk_t;

static void s_on_bulk_release(const up_leg_t *leg, void *arg)
{
    s_bulk_t *b = arg;
    im_metric_inc(b->ctx->metrics->legs_released_total[leg->dir]);
    s_log_released(b->ctx, leg, b->reason, "none");
}

static void s_on_register_ack(up_context_t *ctx, const im_env_t *env)
{
    const Imsplit__V1__RegisterAck *ack = env->register_ack;
    uint32_t hb = ack->heartbeat_ms ? ack->heartbeat_ms
                                    : UP_HEARTBEAT_DEFAULT_MS;
    if (hb < UP_HEARTBEAT_MIN_MS)
        hb = UP_HEARTBEAT_MIN_MS;
    if (hb > UP_HEARTBEAT_MAX_MS)
        hb = UP_HEARTBEAT_MAX_MS;
    uint32_t liveness = ack->liveness ? ack->liveness : UP_LIVENESS_DEFAULT;
    if (liveness > UP_LIVENESS_MAX)
        liveness = UP_LIVENESS_MAX;
    if (ack->cp_epoch == 0) {
        im_metric_inc(ctx->metrics->protocol_errors_total);
        IM_LOG_WARN("event=protocol_error kind=bad_field body=register_ack "
                    "why=cp_epoch_zero");
        return;
    }

    /* Legs of another CP epoch have no CP left to release them. */
    uint64_t old = ctx->cp_epoch;
    s_bulk_t bulk = {ctx, "cp_epoch_changed"};
    size_t n = up_legs_release_stale(ctx->legs, ack->cp_epoch,
                                     s_on_bulk_release, &bulk);
    if (n > 0) {
        IM_LOG_WARN("event=legs_orphaned_released count=%zu old_cp_epoch=%"
                    PRIu64 " cp_epoch=%" PRIu64 " node=%s",
                    n, old, ack->cp_epoch, ctx->cfg.id);
        s_sync(ctx);
    }
    ctx->cp_epoch = ack->cp_epoch;
    ctx->heartbeat_ms = hb;
    ctx->liveness = liveness;
    ctx->last_rx_ms = im_clock_ms();
    if (ctx->reg_state == UP_REG_REGISTERED)
        return; /* an answer to a resent Register */
    ctx->reg_state = UP_REG_REGISTERED;
    im_metrics_set_ready(ctx->metrics->reg, true);
    IM_LOG_INFO("event=registered node=%s cp_epoch=%" PRIu64
                " heartbeat_ms=%u liveness=%u msrp=%s legs=%zu",
                ctx->cfg.id, ctx->cp_epoch, hb, liveness, ctx->msrp_address,
                up_legs_count(ctx->legs));
    up_timer_arm_in(ctx->timers, &ctx->reg_timer, hb);
}

/* ---- leg commands ------------------------------------------------------ */

static void s_on_allocate(up_context_t *ctx, const im_env_t *env)
{
    const Imsplit__V1__AllocateLeg *a = env->allocate_leg;
    int dir = up_build_dir_from_proto(a->direction);
    if (dir < 0) {
        (void)up_build_allocate_result(
            ctx, env->seq, IMSPLIT__V1__STATUS__STATUS_BAD_REQUEST,
            a->session_id, a->direction, NULL);
        return;
    }
    up_leg_t *leg = up_legs_find(ctx->legs, a->session_id, (up_dir_t)dir);
    if (!leg && ctx->draining) {
        IM_LOG_INFO("event=leg_allocate_refused sid=%016" PRIx64 " dir=%s "
                    "node=%s why=draining",
                    a->session_id, up_dir_name((up_dir_t)dir), ctx->cfg.id);
        (void)up_build_allocate_result(ctx, env->seq,
                                       IMSPLIT__V1__STATUS__STATUS_DRAINING,
                                       a->session_id, a->direction, NULL);
        return;
    }
    bool created = false;
    int rc = up_legs_allocate(ctx->legs, a->session_id, (up_dir_t)dir,
                              env->sender_epoch, ctx->advertise,
                              ctx->msrp_port, &leg, &created);
    if (rc < 0) {
        int status = rc == -ENOSPC ? IMSPLIT__V1__STATUS__STATUS_NO_CAPACITY
                                   : IMSPLIT__V1__STATUS__STATUS_INTERNAL;
        IM_LOG_WARN("event=leg_allocate_failed sid=%016" PRIx64 " dir=%s "
                    "node=%s why=%s legs=%zu capacity=%u",
                    a->session_id, up_dir_name((up_dir_t)dir), ctx->cfg.id,
                    rc == -ENOSPC ? "no_capacity" : strerror(-rc),
                    up_legs_count(ctx->legs), up_legs_capacity(ctx->legs));
        (void)up_build_allocate_result(ctx, env->seq, status, a->session_id,
                                       a->direction, NULL);
        return;
    }
    if (created) {
        im_metric_inc(ctx->metrics->legs_allocated_total);
        s_sync(ctx);
        IM_LOG_INFO("event=leg_allocated sid=%016" PRIx64 " dir=%s node=%s "
                    "path=%s",
                    leg->session_id, up_dir_name(leg->dir), ctx->cfg.id,
                    leg->path);
    } else {
        IM_LOG_DEBUG("event=leg_allocate_repeated sid=%016" PRIx64 " dir=%s",
                     leg->session_id, up_dir_name(leg->dir));
    }
    (void)up_build_allocate_result(ctx, env->seq, IMSPLIT__V1__STATUS__STATUS_OK,
                                   leg->session_id, a->direction, leg->path);
}

static bool s_path_ok(const char *path)
{
    const char *start;
    size_t len;
    im_msrp_uri_t uri;
    return path && strlen(path) <= UP_LEG_PEER_PATH_MAX &&
           im_msrp_path_last(path, &start, &len) == 0 &&
           im_msrp_uri_parse(start, len, &uri) == 0;
}

static void s_on_connect(up_context_t *ctx, const im_env_t *env)
{
    const Imsplit__V1__ConnectLeg *c = env->connect_leg;
    int dir = up_build_dir_from_proto(c->direction);
    up_leg_t *leg = dir < 0 ? NULL
                            : up_legs_find(ctx->legs, c->session_id,
                                           (up_dir_t)dir);
    int status = IMSPLIT__V1__STATUS__STATUS_OK;
    const char *why = NULL;
    if (!leg) {
        status = IMSPLIT__V1__STATUS__STATUS_NOT_FOUND;
        why = "unknown_leg";
    } else if (!s_path_ok(c->peer_path)) {
        status = IMSPLIT__V1__STATUS__STATUS_BAD_REQUEST;
        why = "bad_peer_path";
    } else if (up_leg_set_peer_path(leg, c->peer_path) < 0) {
        status = IMSPLIT__V1__STATUS__STATUS_INTERNAL;
        why = "out_of_memory";
    }
    if (status != IMSPLIT__V1__STATUS__STATUS_OK) {
        char q[160];
        /* An unknown leg is usually a late command for a released one. */
        IM_LOG(status == IMSPLIT__V1__STATUS__STATUS_NOT_FOUND
                   ? IM_LOG_LEVEL_INFO
                   : IM_LOG_LEVEL_WARN,
               "event=leg_connect_refused sid=%016" PRIx64 " dir=%s "
               "node=%s why=%s peer_path=%s",
               c->session_id, im_proto_direction_name(c->direction),
               ctx->cfg.id, why,
               im_log_quote(q, sizeof(q), c->peer_path ? c->peer_path : ""));
        (void)up_build_connect_result(ctx, env->seq, status, c->session_id,
                                      c->direction);
        return;
    }
    /* RFC 6135: a peer that is "active" connects to us; otherwise (passive,
     * actpass, or no a=setup) we are the offerer side and connect out. */
    bool wait = c->setup && strcasecmp(c->setup, "active") == 0;
    IM_LOG_INFO("event=leg_connect sid=%016" PRIx64 " dir=%s node=%s "
                "setup=%s action=%s",
                leg->session_id, up_dir_name(leg->dir), ctx->cfg.id,
                c->setup && *c->setup ? c->setup : "none",
                wait ? "wait" : "connect");
    /* Requests held for this leg until its peer's path was known may go
     * now if it is connected already. */
    up_msrp_leg_ready(ctx->msrp, leg);
    if (!wait) {
        int rc = up_msrp_connect(ctx->msrp, leg);
        if (rc < 0) {
            status = rc == -EINVAL ? IMSPLIT__V1__STATUS__STATUS_BAD_REQUEST
                                   : IMSPLIT__V1__STATUS__STATUS_INTERNAL;
            IM_LOG_WARN("event=leg_connect_refused sid=%016" PRIx64
                        " dir=%s node=%s why=\"%s\"",
                        leg->session_id, up_dir_name(leg->dir), ctx->cfg.id,
                        strerror(-rc));
        }
    }
    (void)up_build_connect_result(ctx, env->seq, status, c->session_id,
                                  c->direction);
}

static void s_on_release(up_context_t *ctx, const im_env_t *env)
{
    const Imsplit__V1__ReleaseLeg *r = env->release_leg;
    int dir = up_build_dir_from_proto(r->direction);
    up_leg_t *leg = dir < 0 ? NULL
                            : up_legs_find(ctx->legs, r->session_id,
                                           (up_dir_t)dir);
    if (!leg) {
        /* Already released or never allocated: success for the CP. */
        IM_LOG_DEBUG("event=leg_release_unknown sid=%016" PRIx64 " dir=%s",
                     r->session_id, im_proto_direction_name(r->direction));
        (void)up_build_release_result(ctx, env->seq,
                                      IMSPLIT__V1__STATUS__STATUS_NOT_FOUND,
                                      r->session_id, r->direction, NULL);
        return;
    }
    s_log_released(ctx, leg, im_proto_reason_name(r->reason),
                   im_proto_reason_name(r->cause));
    up_leg_counters_t counters;
    up_dir_t d = leg->dir;
    (void)up_legs_release(ctx->legs, r->session_id, d, &counters);
    im_metric_inc(ctx->metrics->legs_released_total[d]);
    s_sync(ctx);
    (void)up_build_release_result(ctx, env->seq, IMSPLIT__V1__STATUS__STATUS_OK,
                                  r->session_id, r->direction, &counters);
}

static void s_on_drain(up_context_t *ctx, const im_env_t *env)
{
    if (!ctx->draining)
        IM_LOG_INFO("event=draining node=%s legs=%zu", ctx->cfg.id,
                    up_legs_count(ctx->legs));
    ctx->draining = true;
    (void)up_build_drain_result(ctx, env->seq, IMSPLIT__V1__STATUS__STATUS_OK);
}

/* ---- dispatch ---------------------------------------------------------- */

static void s_protocol_error(up_context_t *ctx, const char *kind, size_t len,
                             const char *why)
{
    char q[200];
    im_metric_inc(ctx->metrics->protocol_errors_total);
    IM_LOG_WARN("event=protocol_error kind=%s node=%s len=%zu why=%s", kind,
                ctx->cfg.id, len, im_log_quote(q, sizeof(q), why));
}

static bool s_is_command(int body_case)
{
    switch (body_case) {
    case IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG:
    case IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG:
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG:
    case IMSPLIT__V1__ENVELOPE__BODY_DRAIN:
    case IMSPLIT__V1__ENVELOPE__BODY_AUDIT:
        return true;
    default:
        return false;
    }
}

void up_handler_frame(up_context_t *ctx, const void *data, size_t len)
{
    char why[160] = "";
    im_env_t *env = NULL;
    im_proto_err_t err = im_proto_unpack(data, len, &env, why, sizeof(why));
    if (err != IM_PROTO_OK) {
        s_protocol_error(ctx, im_proto_err_name(err), len, why);
        if (err == IM_PROTO_VERSION && env)
            (void)up_build_error(
                ctx, env->seq,
                IMSPLIT__V1__ERROR_CODE__ERROR_UNSUPPORTED_VERSION,
                "unsupported major version");
        im_proto_free(env);
        return;
    }
    if (ctx->stopping) {
        im_proto_free(env);
        return;
    }
    int body = (int)env->body_case;
    bool current = ctx->cp_epoch != 0 && env->sender_epoch == ctx->cp_epoch;
    if (current)
        ctx->last_rx_ms = im_clock_ms();

    if (s_is_command(body) && !current) {
        /* A CP we are not registered with (yet, or any more): it cannot own
         * legs here. If it is a restarted CP, registering again tells it
         * about us and releases the legs of the old one. */
        IM_LOG_INFO("event=command_refused node=%s body=%s sender_epoch=%"
                    PRIu64 " cp_epoch=%" PRIu64 " why=not_registered",
                    ctx->cfg.id, im_proto_body_name(body), env->sender_epoch,
                    ctx->cp_epoch);
        (void)up_build_error(ctx, env->seq,
                             IMSPLIT__V1__ERROR_CODE__ERROR_NOT_REGISTERED,
                             "register first");
        if (ctx->reg_state == UP_REG_REGISTERED)
            s_enter_registering(ctx, "cp_epoch_changed");
        im_proto_free(env);
        return;
    }

    switch (env->body_case) {
    case IMSPLIT__V1__ENVELOPE__BODY_REGISTER_ACK:
        s_on_register_ack(ctx, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT:
        if (!current && ctx->reg_state == UP_REG_REGISTERED)
            s_enter_registering(ctx, "cp_epoch_changed");
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG:
        s_on_allocate(ctx, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG:
        s_on_connect(ctx, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG:
        s_on_release(ctx, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_DRAIN:
        s_on_drain(ctx, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_AUDIT:
        (void)up_build_inventory(ctx, env->seq);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT_ACK:
        IM_LOG_DEBUG("event=leg_event_acked sid=%016" PRIx64 " dir=%s",
                     env->leg_event_ack->session_id,
                     im_proto_direction_name(env->leg_event_ack->direction));
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_ERROR: {
        char q[160];
        const Imsplit__V1__ErrorReply *e = env->error;
        IM_LOG_WARN("event=cp_error node=%s code=%d reply_to=%" PRIu64
                    " message=%s",
                    ctx->cfg.id, (int)e->code, env->reply_to,
                    im_log_quote(q, sizeof(q), e->message ? e->message : ""));
        if (e->code == IMSPLIT__V1__ERROR_CODE__ERROR_NOT_REGISTERED &&
            ctx->reg_state == UP_REG_REGISTERED)
            s_enter_registering(ctx, "cp_forgot_us");
        break;
    }
    default:
        s_protocol_error(ctx, "unexpected_body", len,
                         im_proto_body_name(body));
        (void)up_build_error(ctx, env->seq,
                             IMSPLIT__V1__ERROR_CODE__ERROR_UNKNOWN_BODY,
                             "body not accepted by a worker");
        break;
    }
    im_proto_free(env);
}

/* ---- lifecycle --------------------------------------------------------- */

static void s_on_tick(im_timer_t *t, void *arg)
{
    up_context_t *ctx = arg;
    s_sync(ctx);
    im_metrics_loop_tick(ctx->metrics->reg, im_clock_ms());
    up_timer_arm_in(ctx->timers, t, UP_METRICS_TICK_MS);
}

int up_handler_start(up_context_t *ctx)
{
    if (!ctx->path || !ctx->legs || !ctx->timers || !ctx->metrics)
        return -EINVAL;
    im_timer_init(&ctx->reg_timer, s_on_reg_timer, ctx);
    im_timer_init(&ctx->tick_timer, s_on_tick, ctx);
    ctx->heartbeat_ms = UP_HEARTBEAT_DEFAULT_MS;
    ctx->liveness = UP_LIVENESS_DEFAULT;
    ctx->reg_state = UP_REG_REGISTERING;
    im_metrics_loop_tick(ctx->metrics->reg, im_clock_ms());
    up_timer_arm_in(ctx->timers, &ctx->tick_timer, UP_METRICS_TICK_MS);
    s_enter_registering(ctx, "start");
    return 0;
}

void up_handler_stop(up_context_t *ctx)
{
    if (ctx->timers) {
        up_timer_cancel(ctx->timers, &ctx->reg_timer);
        up_timer_cancel(ctx->timers, &ctx->tick_timer);
    }
    if (ctx->metrics)
        im_metrics_set_ready(ctx->metrics->reg, false);
}

size_t up_handler_release_all(up_context_t *ctx, const char *reason)
{
    if (!ctx->legs)
        return 0;
    s_bulk_t bulk = {ctx, reason};
    size_t n = up_legs_release_all(ctx->legs, s_on_bulk_release, &bulk);
    if (ctx->metrics)
        s_sync(ctx);
    return n;
}
