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
#include "up_cache.h"
#include "up_leg.h"
#include "up_legevent.h"
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
/* While registering, the socket is replaced after liveness * heartbeat
 * without an answer, but never more often than this. */
#define UP_RECONNECT_MIN_MS 3000
/* How long the Deregister sent on the way out may take to leave. */
#define UP_LEAVE_LINGER_MS 1000

static void s_sync(up_context_t *ctx)
{
    up_metrics_sync(ctx->metrics, ctx->legs);
    im_metric_set(ctx->metrics->result_cache_entries,
                  (int64_t)up_cache_count(ctx->cache));
    im_metric_set(ctx->metrics->result_cache_evicted_total,
                  (int64_t)up_cache_evicted(ctx->cache));
}

static uint64_t s_silence_limit_ms(const up_context_t *ctx)
{
    return (uint64_t)ctx->liveness * ctx->heartbeat_ms;
}

/* Paranoid Pirate: a CP that stopped answering may have left messages
 * queued on the old socket in either direction (stale Registers, results
 * it will never read); a new socket starts clean. The command resends and
 * the result cache make up for anything lost with it. */
static void s_reconnect(up_context_t *ctx, const char *why)
{
    int rc = up_path_reconnect(ctx->path);
    im_metric_inc(ctx->metrics->cp_reconnects_total);
    ctx->reg_since_ms = im_clock_ms();
    if (rc < 0)
        IM_LOG_WARN("event=cp_reconnect_failed node=%s why=%s err=\"%s\"",
                    ctx->cfg.id, why, strerror(-rc));
    else
        IM_LOG_INFO("event=cp_reconnect node=%s cp=%s why=%s", ctx->cfg.id,
                    ctx->cfg.cp, why);
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
    ctx->reg_since_ms = im_clock_ms();
    im_metrics_set_ready(ctx->metrics->reg, false);
    (void)up_build_register(ctx);
    up_timer_arm_in(ctx->timers, &ctx->reg_timer, UP_REGISTER_RESEND_MS);
}

static void s_on_reg_timer(im_timer_t *t, void *arg)
{
    up_context_t *ctx = arg;
    if (ctx->stopping)
        return;
    uint64_t now = im_clock_ms();
    uint64_t limit = s_silence_limit_ms(ctx);
    if (ctx->reg_state == UP_REG_REGISTERING) {
        uint64_t waited = now - ctx->reg_since_ms;
        if (waited >= limit && waited >= UP_RECONNECT_MIN_MS)
            s_reconnect(ctx, "no_register_ack");
        (void)up_build_register(ctx);
        up_timer_arm_in(ctx->timers, t, UP_REGISTER_RESEND_MS);
        return;
    }
    uint64_t silent = now - ctx->last_rx_ms;
    if (silent > limit) {
        IM_LOG_WARN("event=cp_silent node=%s silent_ms=%" PRIu64
                    " limit_ms=%" PRIu64,
                    ctx->cfg.id, silent, limit);
        s_reconnect(ctx, "missed_heartbeats");
        s_enter_registering(ctx, "missed_heartbeats");
        return;
    }
    (void)up_build_heartbeat(ctx);
    up_timer_arm_in(ctx->timers, t, ctx->heartbeat_ms);
}

/* Room for a quoted, escaped Call-ID of UP_LEG_CALL_ID_MAX bytes. */
#define UP_QUOTED_CALL_ID (UP_LEG_CALL_ID_MAX * 2 + 3)

static const char *s_quote_call_id(char *buf, size_t size, const char *id)
{
    return im_log_quote(buf, size, id ? id : "");
}

static void s_log_released(const up_context_t *ctx, const up_leg_t *leg,
                           const char *reason, const char *cause)
{
    const up_leg_counters_t *c = &leg->counters;
    char q[UP_QUOTED_CALL_ID];
    IM_LOG_INFO("event=leg_released sid=%016" PRIx64 " dir=%s node=%s "
                "call_id=%s reason=%s cause=%s bytes_in=%" PRIu64
                " bytes_out=%" PRIu64 " msgs_in=%" PRIu64 " msgs_out=%" PRIu64,
                leg->session_id, up_dir_name(leg->dir), ctx->cfg.id,
                s_quote_call_id(q, sizeof(q), leg->call_id), reason, cause,
                c->bytes_in, c->bytes_out, c->msgs_in, c->msgs_out);
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
        up_metrics_protocol_error(ctx->metrics, UP_PERR_BAD_FIELD);
        IM_LOG_WARN("event=protocol_error kind=bad_field body=register_ack "
                    "why=cp_epoch_zero");
        return;
    }

    /* Legs of another CP epoch have no CP left to release them, and their
     * unacknowledged LegEvents nobody to hear them: the new CP audits. */
    uint64_t old = ctx->cp_epoch;
    if (old != 0 && old != ack->cp_epoch) {
        size_t dropped = up_legevents_clear(ctx->legevents);
        if (dropped > 0)
            IM_LOG_INFO("event=leg_events_dropped count=%zu node=%s "
                        "why=cp_epoch_changed",
                        dropped, ctx->cfg.id);
    }
    s_bulk_t bulk = {ctx, "cp_epoch_changed"};
    size_t n = up_legs_release_stale(ctx->legs, ack->cp_epoch,
                                     s_on_bulk_release, &bulk);
    if (n > 0) {
        IM_LOG_WARN("event=legs_orphaned_released count=%zu old_cp_epoch=%"
                    PRIu64 " cp_epoch=%" PRIu64 " node=%s",
                    n, old, ack->cp_epoch, ctx->cfg.id);
        s_sync(ctx);
    }
    bool new_beat = hb != ctx->heartbeat_ms;
    ctx->cp_epoch = ack->cp_epoch;
    ctx->heartbeat_ms = hb;
    ctx->liveness = liveness;
    ctx->last_rx_ms = im_clock_ms();
    if (ctx->reg_state == UP_REG_REGISTERED) {
        /* An answer to a resent Register; a new pace applies at once. */
        if (new_beat)
            up_timer_arm_in(ctx->timers, &ctx->reg_timer, hb);
        return;
    }
    ctx->reg_state = UP_REG_REGISTERED;
    im_metrics_set_ready(ctx->metrics->reg, true);
    IM_LOG_INFO("event=registered node=%s cp_epoch=%" PRIu64
                " heartbeat_ms=%u liveness=%u msrp=%s legs=%zu",
                ctx->cfg.id, ctx->cp_epoch, hb, liveness, ctx->msrp_address,
                up_legs_count(ctx->legs));
    up_timer_arm_in(ctx->timers, &ctx->reg_timer, hb);
}

/* ---- leg commands ------------------------------------------------------ */

/* Every command handler sends exactly one result; `keep` gets its bytes
 * for the result cache. */

static void s_allocate_known(up_context_t *ctx, const im_env_t *env,
                             up_leg_t *leg, up_sent_t *keep)
{
    const Imsplit__V1__AllocateLeg *a = env->allocate_leg;
    if (up_leg_same_owner(leg, env->sender_epoch, a->call_id)) {
        IM_LOG_DEBUG("event=leg_allocate_repeated sid=%016" PRIx64 " dir=%s",
                     leg->session_id, up_dir_name(leg->dir));
        (void)up_build_allocate_result(ctx, keep, env->seq,
                                       IMSPLIT__V1__STATUS__STATUS_OK,
                                       leg->session_id, a->direction,
                                       leg->path);
        return;
    }
    char q1[UP_QUOTED_CALL_ID], q2[UP_QUOTED_CALL_ID];
    im_metric_inc(ctx->metrics->leg_conflicts_total);
    IM_LOG_WARN("event=leg_allocate_conflict sid=%016" PRIx64 " dir=%s "
                "node=%s call_id=%s leg_call_id=%s cp_epoch=%" PRIu64
                " leg_cp_epoch=%" PRIu64,
                leg->session_id, up_dir_name(leg->dir), ctx->cfg.id,
                s_quote_call_id(q1, sizeof(q1), a->call_id),
                s_quote_call_id(q2, sizeof(q2), leg->call_id),
                env->sender_epoch, leg->cp_epoch);
    (void)up_build_allocate_result(ctx, keep, env->seq,
                                   IMSPLIT__V1__STATUS__STATUS_CONFLICT,
                                   leg->session_id, a->direction, NULL);
}

static void s_on_allocate(up_context_t *ctx, const im_env_t *env,
                          up_sent_t *keep)
{
    const Imsplit__V1__AllocateLeg *a = env->allocate_leg;
    int dir = up_build_dir_from_proto(a->direction);
    if (dir < 0) {
        (void)up_build_allocate_result(
            ctx, keep, env->seq, IMSPLIT__V1__STATUS__STATUS_BAD_REQUEST,
            a->session_id, a->direction, NULL);
        return;
    }
    up_leg_t *leg = up_legs_find(ctx->legs, a->session_id, (up_dir_t)dir);
    if (leg) {
        s_allocate_known(ctx, env, leg, keep);
        return;
    }
    if (ctx->draining) {
        IM_LOG_INFO("event=leg_allocate_refused sid=%016" PRIx64 " dir=%s "
                    "node=%s why=draining",
                    a->session_id, up_dir_name((up_dir_t)dir), ctx->cfg.id);
        (void)up_build_allocate_result(ctx, keep, env->seq,
                                       IMSPLIT__V1__STATUS__STATUS_DRAINING,
                                       a->session_id, a->direction, NULL);
        return;
    }
    bool created = false;
    int rc = up_legs_allocate(ctx->legs, a->session_id, (up_dir_t)dir,
                              env->sender_epoch, a->call_id, ctx->advertise,
                              ctx->msrp_port, &leg, &created);
    if (rc < 0 || !created) {
        int status = rc == -ENOSPC ? IMSPLIT__V1__STATUS__STATUS_NO_CAPACITY
                                   : IMSPLIT__V1__STATUS__STATUS_INTERNAL;
        IM_LOG_WARN("event=leg_allocate_failed sid=%016" PRIx64 " dir=%s "
                    "node=%s why=%s legs=%zu capacity=%u",
                    a->session_id, up_dir_name((up_dir_t)dir), ctx->cfg.id,
                    rc == -ENOSPC ? "no_capacity"
                    : rc < 0      ? strerror(-rc)
                                  : "not_created",
                    up_legs_count(ctx->legs), up_legs_capacity(ctx->legs));
        (void)up_build_allocate_result(ctx, keep, env->seq, status,
                                       a->session_id, a->direction, NULL);
        return;
    }
    char q[UP_QUOTED_CALL_ID];
    im_metric_inc(ctx->metrics->legs_allocated_total);
    s_sync(ctx);
    IM_LOG_INFO("event=leg_allocated sid=%016" PRIx64 " dir=%s node=%s "
                "call_id=%s path=%s",
                leg->session_id, up_dir_name(leg->dir), ctx->cfg.id,
                s_quote_call_id(q, sizeof(q), leg->call_id), leg->path);
    (void)up_build_allocate_result(ctx, keep, env->seq,
                                   IMSPLIT__V1__STATUS__STATUS_OK,
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

/* A leg with a connection (made, or being made) keeps its peer: the same
 * path again changes nothing, another one is a conflict. */
static int s_connect_check(up_context_t *ctx, const up_leg_t *leg,
                           const char *peer_path, const char **why)
{
    if (!leg->conn || !leg->peer_path)
        return IMSPLIT__V1__STATUS__STATUS_OK;
    if (strcmp(leg->peer_path, peer_path) == 0) {
        *why = "repeated";
        return IMSPLIT__V1__STATUS__STATUS_OK;
    }
    im_metric_inc(ctx->metrics->leg_conflicts_total);
    *why = "conflict";
    return IMSPLIT__V1__STATUS__STATUS_CONFLICT;
}

static void s_on_connect(up_context_t *ctx, const im_env_t *env,
                         up_sent_t *keep)
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
    } else {
        /* A conflict or a repeat is answered without touching the leg. */
        status = s_connect_check(ctx, leg, c->peer_path, &why);
        if (!why && up_leg_set_peer_path(leg, c->peer_path) < 0) {
            status = IMSPLIT__V1__STATUS__STATUS_INTERNAL;
            why = "out_of_memory";
        }
    }
    if (why) {
        char q[160];
        /* An unknown leg is usually a late command for a released one. */
        IM_LOG(status == IMSPLIT__V1__STATUS__STATUS_OK
                   ? IM_LOG_LEVEL_DEBUG
               : status == IMSPLIT__V1__STATUS__STATUS_NOT_FOUND
                   ? IM_LOG_LEVEL_INFO
                   : IM_LOG_LEVEL_WARN,
               "event=%s sid=%016" PRIx64 " dir=%s node=%s why=%s "
               "peer_path=%s",
               status == IMSPLIT__V1__STATUS__STATUS_OK
                   ? "leg_connect_repeated"
                   : "leg_connect_refused",
               c->session_id, im_proto_direction_name(c->direction),
               ctx->cfg.id, why,
               im_log_quote(q, sizeof(q), c->peer_path ? c->peer_path : ""));
        (void)up_build_connect_result(ctx, keep, env->seq, status,
                                      c->session_id, c->direction);
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
    (void)up_build_connect_result(ctx, keep, env->seq, status, c->session_id,
                                  c->direction);
}

static void s_on_release(up_context_t *ctx, const im_env_t *env,
                         up_sent_t *keep)
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
        (void)up_build_release_result(ctx, keep, env->seq,
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
    (void)up_build_release_result(ctx, keep, env->seq,
                                  IMSPLIT__V1__STATUS__STATUS_OK,
                                  r->session_id, r->direction, &counters);
}

/* No new legs from now on; the heartbeats say so, the first one at once
 * so the CP stops placing sessions here without waiting a full interval. */
static void s_start_draining(up_context_t *ctx, const char *by)
{
    if (ctx->draining)
        return;
    ctx->draining = true;
    IM_LOG_INFO("event=draining node=%s by=%s legs=%zu", ctx->cfg.id, by,
                up_legs_count(ctx->legs));
    if (ctx->reg_state == UP_REG_REGISTERED)
        (void)up_build_heartbeat(ctx);
}

static void s_on_drain(up_context_t *ctx, const im_env_t *env,
                       up_sent_t *keep)
{
    const char *node = env->drain->node_id ? env->drain->node_id : "";
    if (*node && strcmp(node, ctx->cfg.id) != 0) {
        char q[UP_NODE_ID_MAX * 2 + 3];
        IM_LOG_WARN("event=drain_refused node=%s drain_node=%s "
                    "why=other_node",
                    ctx->cfg.id, im_log_quote(q, sizeof(q), node));
        (void)up_build_drain_result(ctx, keep, env->seq,
                                    IMSPLIT__V1__STATUS__STATUS_NOT_FOUND);
        return;
    }
    s_start_draining(ctx, "cp");
    (void)up_build_drain_result(ctx, keep, env->seq,
                                IMSPLIT__V1__STATUS__STATUS_OK);
}

static void s_on_audit(up_context_t *ctx, const im_env_t *env)
{
    uint32_t parts = 0;
    int rc = up_build_inventory(ctx, env->seq, &parts);
    IM_LOG_DEBUG("event=inventory_sent node=%s reply_to=%" PRIu64
                 " legs=%zu parts=%u rc=%d",
                 ctx->cfg.id, env->seq, up_legs_count(ctx->legs), parts, rc);
}

/* Commands that change state are applied once per (sender, epoch, seq):
 * a resend (the identical bytes) gets the bytes of the first answer; another
 * command with a seq already used is refused and applied never. */
static void s_protocol_error(up_context_t *ctx, up_perr_t kind, size_t len,
                             const char *why);

static void s_on_command(up_context_t *ctx, const im_env_t *env,
                         const void *frame, size_t frame_len)
{
    uint64_t command_fp = up_cache_fingerprint(frame, frame_len);
    const char *sender = env->sender_id ? env->sender_id : "";
    uint64_t now = im_clock_ms();
    size_t len = 0;
    bool reused = false;
    const uint8_t *cached = up_cache_find(ctx->cache, sender,
                                          env->sender_epoch, env->seq,
                                          command_fp, now, &len, &reused);
    if (reused) {
        s_protocol_error(ctx, UP_PERR_SEQ_REUSED, frame_len,
                         "seq already used by another command");
        (void)up_build_error(ctx, env->seq,
                             IMSPLIT__V1__ERROR_CODE__ERROR_MALFORMED,
                             "seq already used by another command");
        return;
    }
    if (cached) {
        char q[80];
        im_metric_inc(ctx->metrics->commands_duplicate_total);
        IM_LOG_DEBUG("event=command_duplicate node=%s body=%s sender=%s "
                     "sender_epoch=%" PRIu64 " seq=%" PRIu64,
                     ctx->cfg.id, im_proto_body_name((int)env->body_case),
                     im_log_quote(q, sizeof(q), sender), env->sender_epoch,
                     env->seq);
        (void)up_path_resend(ctx->path, cached, len);
        return;
    }
    up_sent_t answer = {0};
    switch (env->body_case) {
    case IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG:
        s_on_allocate(ctx, env, &answer);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG:
        s_on_connect(ctx, env, &answer);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG:
        s_on_release(ctx, env, &answer);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_DRAIN:
        s_on_drain(ctx, env, &answer);
        break;
    default:
        break;
    }
    if (answer.bytes && ctx->cache) {
        int rc = up_cache_put(ctx->cache, sender, env->sender_epoch,
                              env->seq, command_fp, answer.bytes, answer.len,
                              now);
        if (rc < 0)
            IM_LOG_WARN("event=result_not_cached node=%s body=%s seq=%" PRIu64
                        " err=\"%s\"",
                        ctx->cfg.id, im_proto_body_name((int)env->body_case),
                        env->seq, strerror(-rc));
    }
    up_sent_clear(&answer);
    im_metric_set(ctx->metrics->result_cache_entries,
                  (int64_t)up_cache_count(ctx->cache));
}

/* A draining worker with no legs left has nothing more to do. */
static void s_leave_if_drained(up_context_t *ctx)
{
    if (!ctx->draining || ctx->stopping || up_legs_count(ctx->legs) > 0)
        return;
    IM_LOG_INFO("event=drained node=%s cp_epoch=%" PRIu64, ctx->cfg.id,
                ctx->cp_epoch);
    if (ctx->stop)
        ctx->stop(ctx, "drained");
}

void up_handler_drain(up_context_t *ctx, const char *by)
{
    s_start_draining(ctx, by);
    s_leave_if_drained(ctx);
}

/* ---- dispatch ---------------------------------------------------------- */

static void s_protocol_error(up_context_t *ctx, up_perr_t kind, size_t len,
                             const char *why)
{
    char q[200];
    up_metrics_protocol_error(ctx->metrics, kind);
    IM_LOG_WARN("event=protocol_error kind=%s node=%s len=%zu why=%s",
                up_perr_name(kind), ctx->cfg.id, len,
                im_log_quote(q, sizeof(q), why));
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
        s_protocol_error(ctx, up_perr_from_proto(err), len, why);
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
        up_metrics_protocol_error(ctx->metrics, UP_PERR_NOT_REGISTERED);
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
    case IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG:
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG:
    case IMSPLIT__V1__ENVELOPE__BODY_DRAIN:
        s_on_command(ctx, env, data, len);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_AUDIT:
        s_on_audit(ctx, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT_ACK:
        if (!up_legevents_ack(ctx->legevents, env->reply_to))
            IM_LOG_DEBUG("event=leg_event_ack_unknown sid=%016" PRIx64
                         " dir=%s reply_to=%" PRIu64,
                         env->leg_event_ack->session_id,
                         im_proto_direction_name(
                             env->leg_event_ack->direction),
                         env->reply_to);
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
        s_protocol_error(ctx, UP_PERR_UNEXPECTED_BODY, len,
                         im_proto_body_name(body));
        (void)up_build_error(ctx, env->seq,
                             IMSPLIT__V1__ERROR_CODE__ERROR_UNKNOWN_BODY,
                             "body not accepted by a worker");
        break;
    }
    im_proto_free(env);
    /* Last: leaving closes the channel, after this frame's answer went. */
    s_leave_if_drained(ctx);
}

/* ---- lifecycle --------------------------------------------------------- */

static void s_on_tick(im_timer_t *t, void *arg)
{
    up_context_t *ctx = arg;
    uint64_t now = im_clock_ms();
    (void)up_cache_expire(ctx->cache, now);
    s_sync(ctx);
    im_metrics_loop_tick(ctx->metrics->reg, now);
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

void up_handler_stop(up_context_t *ctx, const char *reason)
{
    if (ctx->timers) {
        up_timer_cancel(ctx->timers, &ctx->reg_timer);
        up_timer_cancel(ctx->timers, &ctx->tick_timer);
    }
    if (ctx->metrics)
        im_metrics_set_ready(ctx->metrics->reg, false);
    if (!reason || !ctx->path || ctx->reg_state != UP_REG_REGISTERED)
        return; /* no CP to tell: it forgets us on its own */
    int rc = up_build_deregister(ctx, reason);
    /* Closing the socket waits (bounded) for the Deregister to leave. */
    if (rc == 0)
        rc = up_path_set_linger(ctx->path, UP_LEAVE_LINGER_MS);
    IM_LOG_INFO("event=deregister node=%s cp_epoch=%" PRIu64 " reason=%s "
                "sent=%s",
                ctx->cfg.id, ctx->cp_epoch, reason, rc == 0 ? "yes" : "no");
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
