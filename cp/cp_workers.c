#include "cp_workers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cp_build.h"
#include "cp_handler.h"
#include "cp_metrics.h"
#include "cp_path.h"
#include "cp_session.h"
#include "cp_sip.h"
#include "cp_timer.h"
#include "im_clock.h"
#include "im_log.h"
#include "im_metrics.h"

static uint64_t s_timeout_ms(const cp_context_t *ctx)
{
    return (uint64_t)ctx->cfg.heartbeat_ms * ctx->cfg.liveness;
}

/* ---- loss ------------------------------------------------------------- */

typedef struct {
    cp_context_t *ctx;
    const char *worker;
    size_t ended;
} s_lost_t;

static void s_end_if_on_worker(cp_session_t *s, void *arg)
{
    s_lost_t *l = arg;
    if (strcmp(s->worker, l->worker) != 0 || s->state == CP_SESS_CLOSED)
        return;
    l->ended++;
    cp_sip_dispatch(l->ctx, s, CP_EV_WORKER_LOST, CP_DIR_CLIENT, 0);
}

/* The worker's legs are gone (it died, restarted, or left with legs still
 * placed on it): every session placed on it ends, BYE on both legs, and
 * nothing more is waited for from it. */
static size_t s_end_sessions_on(cp_context_t *ctx, cp_worker_t *w)
{
    cp_path_forget_worker(ctx->path, w->id);
    w->audit_seq = 0;
    s_lost_t l = {ctx, w->id, 0};
    cp_sessions_foreach(ctx->sessions, s_end_if_on_worker, &l);
    im_metric_add(ctx->metrics->sessions_worker_lost_total, (int64_t)l.ended);
    return l.ended;
}

static void s_worker_lost(cp_context_t *ctx, cp_worker_t *w, const char *why)
{
    size_t ended = s_end_sessions_on(ctx, w);
    IM_LOG_WARN("event=worker_lost worker=%s epoch=%" PRIu64 " why=%s "
                "sessions_ended=%zu silent_ms=%" PRIu64,
                w->id, w->epoch, why, ended,
                im_clock_ms() - w->last_seen_ms);
    cp_handler_update_gauges(ctx);
}

static void s_arm_liveness(cp_context_t *ctx, cp_worker_t *w)
{
    uint64_t now = im_clock_ms();
    uint64_t due = w->last_seen_ms + s_timeout_ms(ctx);
    cp_timer_arm_in(ctx->timers, &w->liveness, due > now ? due - now : 0);
}

/* The deadline is re-read lazily: messages only move last_seen_ms, and the
 * timer, when it fires early, re-arms itself for the real deadline. */
static void s_on_liveness(im_timer_t *t, void *arg)
{
    cp_context_t *ctx = arg;
    cp_worker_t *w = (cp_worker_t *)(void *)((char *)t -
                                             offsetof(cp_worker_t, liveness));
    if (w->state == CP_WORKER_DEAD)
        return;
    if (im_clock_ms() - w->last_seen_ms < s_timeout_ms(ctx)) {
        s_arm_liveness(ctx, w);
        return;
    }
    w->state = CP_WORKER_DEAD;
    s_worker_lost(ctx, w, "missed_heartbeats");
}

/* ---- audit ------------------------------------------------------------ */

static void s_audit(cp_context_t *ctx, cp_worker_t *w)
{
    if (w->state == CP_WORKER_DEAD || w->audit_seq)
        return; /* one audit at a time per worker */
    w->audit_seq = cp_build_audit(ctx, w->id);
    IM_LOG_DEBUG("event=audit_sent worker=%s seq=%" PRIu64, w->id,
                 w->audit_seq);
}

void cp_workers_audit_failed(cp_context_t *ctx, const char *worker)
{
    cp_worker_t *w = cp_pool_find(ctx->pool, worker);
    if (w)
        w->audit_seq = 0;
}

/* Legs in these states are (or are about to be) on the worker. */
static bool s_cp_holds(const cp_leg_t *leg)
{
    return leg->media == CP_MEDIA_ALLOCATING ||
           leg->media == CP_MEDIA_READY || leg->media == CP_MEDIA_RELEASING;
}

static void s_audit_leg(cp_context_t *ctx, cp_worker_t *w, uint64_t audit,
                        const Imsplit__V1__LegRef *ref)
{
    int dir = cp_build_dir_from_proto(ref->direction);
    cp_session_t *s = cp_session_find(ctx->sessions, ref->session_id);
    if (dir < 0)
        return; /* im_proto validated it */
    if (s && strcmp(s->worker, w->id) == 0 && s_cp_holds(&s->legs[dir])) {
        s->legs[dir].audit_seq = audit;
        return;
    }
    /* Only the worker holds it: nothing will ever release it otherwise. */
    im_metric_inc(ctx->metrics->audit_mismatches_total[0]);
    IM_LOG_WARN("event=audit_mismatch kind=worker_only worker=%s sid=%016"
                PRIx64 " dir=%s action=release",
                w->id, ref->session_id, cp_dir_name((cp_dir_t)dir));
    (void)cp_build_release_orphan(ctx, w->id, ref->session_id, (cp_dir_t)dir,
                                  IMSPLIT__V1__RELEASE_REASON__RELEASE_AUDIT);
}

typedef struct {
    cp_context_t *ctx;
    cp_worker_t *w;
    uint64_t audit;
} s_audit_end_t;

/* A leg that was ready on this worker before the audit was sent, and that
 * the inventory did not list, is gone from the worker: its session cannot
 * go on. Sessions being set up or torn down settle by themselves. */
static void s_audit_session(cp_session_t *s, void *arg)
{
    s_audit_end_t *a = arg;
    if (strcmp(s->worker, a->w->id) != 0 ||
        (s->state != CP_SESS_ANSWERED && s->state != CP_SESS_ESTABLISHED) ||
        s->ready_seq == 0 || s->ready_seq >= a->audit)
        return;
    for (int d = 0; d < CP_DIR_COUNT; d++) {
        const cp_leg_t *leg = &s->legs[d];
        if (leg->media != CP_MEDIA_READY || leg->audit_seq == a->audit)
            continue;
        im_metric_inc(a->ctx->metrics->audit_mismatches_total[1]);
        IM_LOG_WARN("event=audit_mismatch kind=cp_only worker=%s sid=%016"
                    PRIx64 " dir=%s action=end_session",
                    a->w->id, s->id, cp_dir_name((cp_dir_t)d));
        cp_sip_dispatch(a->ctx, s, CP_EV_LEG_EVENT, (cp_dir_t)d, 0);
        return;
    }
}

void cp_workers_on_inventory(cp_context_t *ctx, cp_worker_t *w,
                             const im_env_t *env)
{
    const Imsplit__V1__Inventory *inv = env->inventory;
    cp_cmd_info_t info;
    if (!cp_path_peek(ctx->path, w->id, env->reply_to, &info) ||
        info.body_case != IMSPLIT__V1__ENVELOPE__BODY_AUDIT) {
        IM_LOG_DEBUG("event=inventory_stale worker=%s reply_to=%" PRIu64,
                     w->id, env->reply_to);
        return;
    }
    for (size_t i = 0; i < inv->n_legs; i++)
        s_audit_leg(ctx, w, info.seq, inv->legs[i]);
    if (!inv->last)
        return;
    (void)cp_path_complete(ctx->path, w->id, env->reply_to, &info);
    w->audit_seq = 0;
    s_audit_end_t a = {ctx, w, info.seq};
    cp_sessions_foreach(ctx->sessions, s_audit_session, &a);
    IM_LOG_DEBUG("event=audit_done worker=%s seq=%" PRIu64 " parts=%u",
                 w->id, info.seq, inv->part + 1);
}

/* ---- registration and heartbeats -------------------------------------- */

void cp_workers_on_register(cp_context_t *ctx, const char *peer_id,
                            const void *peer, size_t peer_len,
                            const im_env_t *env)
{
    const Imsplit__V1__Register *r = env->register_;
    if (strcmp(r->node_id, peer_id) != 0) {
        char q[96];
        cp_metrics_protocol_error(ctx->metrics, CP_PERR_BAD_FIELD);
        IM_LOG_WARN("event=register_rejected worker=%s node_id=%s "
                    "why=routing_id_mismatch", peer_id,
                    im_log_quote(q, sizeof(q), r->node_id));
        cp_handler_error(ctx, peer, peer_len, env->seq,
                         IMSPLIT__V1__ERROR_CODE__ERROR_MALFORMED,
                         "node_id must equal the ZeroMQ routing id");
        return;
    }
    bool restarted = false;
    cp_worker_t *known = cp_pool_find(ctx->pool, peer_id);
    uint64_t old_epoch = known ? known->epoch : 0;
    bool was_dead = known && known->state == CP_WORKER_DEAD;
    cp_worker_t *w = cp_pool_register(ctx->pool, peer_id, env->sender_epoch,
                                      r->msrp_address, r->capacity,
                                      im_clock_ms(), &restarted);
    if (!w) {
        cp_handler_error(ctx, peer, peer_len, env->seq,
                         IMSPLIT__V1__ERROR_CODE__ERROR_MALFORMED,
                         "node_id too long");
        return;
    }
    w->legs_active = r->legs_active;
    cp_metrics_worker_add(ctx->metrics, w);
    IM_LOG_INFO("event=worker_registered worker=%s epoch=%" PRIu64
                " msrp=%s capacity=%u legs=%u restarted=%d",
                w->id, w->epoch, w->msrp_address, w->capacity, r->legs_active,
                restarted);
    /* A dead worker's sessions were ended when it died; a new epoch means
     * the legs of the old one are gone. */
    if (!was_dead && old_epoch != 0 && old_epoch != env->sender_epoch)
        s_worker_lost(ctx, w, "new_epoch");
    cp_timer_cancel(ctx->timers, &w->liveness);
    im_timer_init(&w->liveness, s_on_liveness, ctx);
    s_arm_liveness(ctx, w);

    Imsplit__V1__Envelope out = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__RegisterAck ack = IMSPLIT__V1__REGISTER_ACK__INIT;
    ack.cp_epoch = ctx->epoch;
    ack.heartbeat_ms = ctx->cfg.heartbeat_ms;
    ack.liveness = ctx->cfg.liveness;
    out.body_case = IMSPLIT__V1__ENVELOPE__BODY_REGISTER_ACK;
    out.register_ack = &ack;
    cp_handler_reply(ctx, peer, peer_len, env->seq, &out);
    /* After the ack, so the worker knows our epoch when the audit comes. */
    w->audit_seq = 0;
    s_audit(ctx, w);
    cp_handler_update_gauges(ctx);
}

void cp_workers_on_heartbeat(cp_context_t *ctx, cp_worker_t *w,
                             const im_env_t *env)
{
    const Imsplit__V1__Heartbeat *hb = env->heartbeat;
    w->legs_active = hb->legs_active;
    w->sockets_open = hb->sockets_open;
    w->buffer_bytes = hb->buffer_bytes;
    cp_metrics_worker_sync(ctx->metrics, w);
    if (hb->draining && w->state == CP_WORKER_LIVE) {
        /* Drained by its operator (or shutting down): no new sessions. */
        w->state = CP_WORKER_DRAINING;
        IM_LOG_INFO("event=worker_draining worker=%s by=worker legs=%u",
                    w->id, hb->legs_active);
        cp_handler_update_gauges(ctx);
    }
}

/* ---- drain and leave -------------------------------------------------- */

static void s_drain_result(cp_context_t *ctx, const void *peer,
                           size_t peer_len, uint64_t reply_to, int status)
{
    Imsplit__V1__Envelope out = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__DrainResult res = IMSPLIT__V1__DRAIN_RESULT__INIT;
    res.status = status;
    out.body_case = IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT;
    out.drain_result = &res;
    cp_handler_reply(ctx, peer, peer_len, reply_to, &out);
}

void cp_workers_on_drain_request(cp_context_t *ctx, const void *peer,
                                 size_t peer_len, const im_env_t *env)
{
    const char *id = env->drain->node_id ? env->drain->node_id : "";
    cp_worker_t *w = cp_pool_find(ctx->pool, id);
    char q[96];
    if (!w || w->state == CP_WORKER_DEAD) {
        IM_LOG_INFO("event=drain_refused worker=%s by=%s why=%s",
                    im_log_quote(q, sizeof(q), id), env->sender_id,
                    w ? "dead" : "unknown");
        s_drain_result(ctx, peer, peer_len, env->seq,
                       IMSPLIT__V1__STATUS__STATUS_NOT_FOUND);
        return;
    }
    if (w->state == CP_WORKER_LIVE)
        IM_LOG_INFO("event=worker_draining worker=%s by=%s sessions=%u",
                    w->id, env->sender_id, w->sessions);
    w->state = CP_WORKER_DRAINING;
    (void)cp_build_drain(ctx, w->id);
    s_drain_result(ctx, peer, peer_len, env->seq,
                   IMSPLIT__V1__STATUS__STATUS_OK);
    cp_handler_update_gauges(ctx);
}

void cp_workers_on_drain_result(cp_context_t *ctx, cp_worker_t *w,
                                const im_env_t *env)
{
    cp_cmd_info_t info;
    if (!cp_handler_complete(ctx, w, env, IMSPLIT__V1__ENVELOPE__BODY_DRAIN,
                             &info))
        return;
    IM_LOG_DEBUG("event=drain_acked worker=%s status=%s", w->id,
                 im_proto_status_name(env->drain_result->status));
}

void cp_workers_on_deregister(cp_context_t *ctx, cp_worker_t *w,
                              const im_env_t *env)
{
    char q[96];
    const char *reason = env->deregister->reason ? env->deregister->reason
                                                 : "";
    cp_timer_cancel(ctx->timers, &w->liveness);
    /* Normally nothing is left on it (drained); what is (its grace ran
     * out) ends as with a lost worker. */
    size_t ended = s_end_sessions_on(ctx, w);
    IM_LOG(ended ? IM_LOG_LEVEL_WARN : IM_LOG_LEVEL_INFO,
           "event=worker_left worker=%s epoch=%" PRIu64 " reason=%s "
           "sessions_ended=%zu",
           w->id, w->epoch, im_log_quote(q, sizeof(q), reason), ended);
    im_metric_inc(ctx->metrics->workers_left_total);
    cp_metrics_worker_remove(ctx->metrics, w->id);
    cp_pool_remove(ctx->pool, w);
    cp_handler_update_gauges(ctx);
}

/* ---- periodic work ---------------------------------------------------- */

static void s_send_heartbeat(cp_worker_t *w, void *arg)
{
    cp_context_t *ctx = arg;
    if (w->state == CP_WORKER_DEAD)
        return;
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__Heartbeat hb = IMSPLIT__V1__HEARTBEAT__INIT;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    (void)cp_path_send(ctx->path, w->id, strlen(w->id), &env);
}

static void s_on_heartbeat_tick(im_timer_t *t, void *arg)
{
    cp_context_t *ctx = arg;
    cp_pool_foreach(ctx->pool, s_send_heartbeat, ctx);
    cp_handler_update_gauges(ctx);
    cp_handler_heap_tick(ctx);
    im_metrics_loop_tick(ctx->metrics->reg, im_clock_ms());
    cp_timer_arm_in(ctx->timers, t, ctx->cfg.heartbeat_ms);
}

static void s_audit_each(cp_worker_t *w, void *arg)
{
    s_audit((cp_context_t *)arg, w);
}

static void s_on_audit_tick(im_timer_t *t, void *arg)
{
    cp_context_t *ctx = arg;
    cp_pool_foreach(ctx->pool, s_audit_each, ctx);
    cp_timer_arm_in(ctx->timers, t, ctx->cfg.audit_ms);
}

void cp_workers_start(cp_context_t *ctx)
{
    im_timer_init(&ctx->heartbeat_timer, s_on_heartbeat_tick, ctx);
    cp_timer_arm_in(ctx->timers, &ctx->heartbeat_timer, 0);
    im_timer_init(&ctx->audit_timer, s_on_audit_tick, ctx);
    if (ctx->cfg.audit_ms)
        cp_timer_arm_in(ctx->timers, &ctx->audit_timer, ctx->cfg.audit_ms);
}

static void s_cancel_liveness(cp_worker_t *w, void *arg)
{
    cp_timer_cancel(((cp_context_t *)arg)->timers, &w->liveness);
}

void cp_workers_stop(cp_context_t *ctx)
{
    cp_timer_cancel(ctx->timers, &ctx->heartbeat_timer);
    cp_timer_cancel(ctx->timers, &ctx->audit_timer);
    cp_pool_foreach(ctx->pool, s_cancel_liveness, ctx);
}

int cp_workers_release_leg(cp_context_t *ctx, const cp_session_t *s,
                           cp_dir_t dir, int reason)
{
    cp_worker_t *w = cp_pool_find(ctx->pool, s->worker);
    if (!w || w->state == CP_WORKER_DEAD)
        return -EHOSTUNREACH;
    if (!cp_build_release(ctx, s->worker, s->id, dir, reason, (int)s->cause))
        return -EHOSTUNREACH;
    return 0;
}

void cp_workers_session_closed(cp_context_t *ctx, cp_session_t *s)
{
    cp_worker_t *w = cp_pool_find(ctx->pool, s->worker);
    if (w && w->sessions > 0) {
        w->sessions--;
        cp_metrics_worker_sync(ctx->metrics, w);
    }
    cp_session_detach(ctx->sessions, s);
}
