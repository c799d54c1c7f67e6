#include "cp_handler.h"

#include "im_heap.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cp_build.h"
#include "cp_metrics.h"
#include "cp_pool.h"
#include "cp_session.h"
#include "cp_sip.h"
#include "cp_timer.h"
#include "cp_workers.h"
#include "im_clock.h"
#include "im_heap.h"
#include "im_log.h"
#include "im_metrics.h"
#include "im_proto.h"

void cp_handler_update_gauges(cp_context_t *ctx)
{
    size_t counts[3];
    cp_pool_count(ctx->pool, counts);
    for (int i = 0; i < 3; i++)
        im_metric_set(ctx->metrics->workers[i], (int64_t)counts[i]);
    im_metric_set(ctx->metrics->sessions_active,
                  (int64_t)cp_sessions_count(ctx->sessions));
    im_metric_set(ctx->metrics->sessions_pending,
                  (int64_t)cp_sessions_pending(ctx->sessions));
    im_metrics_set_ready(ctx->metrics->reg, counts[CP_WORKER_LIVE] > 0);
}

#define CP_HEAP_TRIM_EVERY_MS 2000

void cp_handler_heap_tick(cp_context_t *ctx)
{
    im_heap_stats_t st;
    uint64_t now = im_clock_ms();
    if (ctx->cfg.heap_trim_mb == 0 ||
        now - ctx->heap_trimmed_ms < CP_HEAP_TRIM_EVERY_MS) {
        im_heap_stats(&st);
    } else {
        uint64_t t0 = im_clock_us();
        if (im_heap_trim((size_t)ctx->cfg.heap_trim_mb << 20, &st)) {
            ctx->heap_trimmed_ms = now;
            IM_LOG_DEBUG("event=heap_trimmed in_use=%zu free=%zu took_us=%"
                         PRIu64, st.in_use, st.free, im_clock_us() - t0);
            im_heap_stats(&st);
        }
    }
    im_metric_set(ctx->metrics->heap_bytes[0], (int64_t)st.in_use);
    im_metric_set(ctx->metrics->heap_bytes[1], (int64_t)st.free);
    if (ctx->sessions)
        im_metric_set(ctx->metrics->session_store_bytes,
                      (int64_t)cp_sessions_store_bytes(ctx->sessions));
    im_metric_set(ctx->metrics->session_strings_spilled_total,
                  (int64_t)cp_session_str_spills());
}

void cp_handler_reply(cp_context_t *ctx, const void *peer, size_t peer_len,
                      uint64_t reply_to, im_env_t *env)
{
    env->reply_to = reply_to;
    /* A refused send is counted and logged by cp_path. */
    if (cp_path_send(ctx->path, peer, peer_len, env) == -ENOMEM)
        IM_LOG_WARN("event=reply_failed body=%s why=out_of_memory",
                    im_proto_body_name((int)env->body_case));
}

void cp_handler_error(cp_context_t *ctx, const void *peer, size_t peer_len,
                      uint64_t reply_to, int code, const char *msg)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__ErrorReply body = IMSPLIT__V1__ERROR_REPLY__INIT;
    body.code = code;
    body.message = (char *)msg;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_ERROR;
    env.error = &body;
    cp_handler_reply(ctx, peer, peer_len, reply_to, &env);
}

bool cp_handler_complete(cp_context_t *ctx, const cp_worker_t *w,
                         const im_env_t *env, int command, cp_cmd_info_t *info)
{
    if (!cp_path_peek(ctx->path, w->id, env->reply_to, info))
        return false;
    if (info->body_case != command) {
        cp_metrics_protocol_error(ctx->metrics, CP_PERR_BAD_FIELD);
        IM_LOG_WARN("event=protocol_error kind=bad_field worker=%s body=%s "
                    "reply_to=%" PRIu64 " why=answers_%s",
                    w->id, im_proto_body_name((int)env->body_case),
                    env->reply_to, im_proto_body_name(info->body_case));
        return false;
    }
    return cp_path_complete(ctx->path, w->id, env->reply_to, info);
}

static void s_on_allocate_result(cp_context_t *ctx, cp_worker_t *w,
                                 const im_env_t *env)
{
    const Imsplit__V1__AllocateLegResult *r = env->allocate_leg_result;
    cp_cmd_info_t info;
    if (!cp_handler_complete(ctx, w, env,
                             IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG, &info)) {
        IM_LOG_DEBUG("event=result_duplicate worker=%s reply_to=%" PRIu64,
                     w->id, env->reply_to);
        return;
    }
    int dir = cp_build_dir_from_proto(r->direction);
    cp_session_t *s = cp_session_find(ctx->sessions, info.session_id);
    if (!s || dir < 0 || r->session_id != info.session_id) {
        /* Nobody owns this leg any more: give it straight back. */
        if (r->status == IMSPLIT__V1__STATUS__STATUS_OK && dir >= 0)
            (void)cp_build_release_orphan(ctx, w->id, r->session_id,
                                          (cp_dir_t)dir, CP_REL_SETUP_FAILED);
        IM_LOG_INFO("event=allocate_result_orphan worker=%s sid=%016" PRIx64,
                    w->id, r->session_id);
        return;
    }
    if (r->status != IMSPLIT__V1__STATUS__STATUS_OK || !r->path ||
        !*r->path) {
        IM_LOG_WARN("event=allocate_failed sid=%016" PRIx64
                    " dir=%s worker=%s status=%s",
                    s->id, cp_dir_name((cp_dir_t)dir), w->id,
                    im_proto_status_name(r->status));
        cp_sip_dispatch(ctx, s, CP_EV_ALLOC_FAILED, (cp_dir_t)dir, 0);
        return;
    }
    cp_leg_t *leg = &s->legs[dir];
    cp_session_strset(s, &leg->path, r->path);
    if (!leg->path) {
        cp_sip_dispatch(ctx, s, CP_EV_ALLOCATED, (cp_dir_t)dir, 0);
        cp_sip_dispatch(ctx, s, CP_EV_FAILED, (cp_dir_t)dir, 500);
        return;
    }
    IM_LOG_DEBUG("event=leg_allocated sid=%016" PRIx64 " dir=%s path=%s",
                 s->id, cp_dir_name((cp_dir_t)dir), leg->path);
    /* Every audit sent from now on must find this leg on the worker. */
    s->ready_seq = cp_path_last_seq(ctx->path);
    cp_sip_dispatch(ctx, s, CP_EV_ALLOCATED, (cp_dir_t)dir, 0);
}

static void s_on_release_result(cp_context_t *ctx, cp_worker_t *w,
                                const im_env_t *env)
{
    const Imsplit__V1__ReleaseLegResult *r = env->release_leg_result;
    cp_cmd_info_t info;
    if (!cp_handler_complete(ctx, w, env,
                             IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG, &info))
        return;
    const Imsplit__V1__LegCounters *c = r->counters;
    int dir = cp_build_dir_from_proto(r->direction);
    uint64_t latency_us = im_clock_us() - info.sent_us;
    im_metric_observe(ctx->metrics->release_latency_seconds,
                      (double)latency_us / 1e6);
    /* One usage record per leg. */
    IM_LOG_INFO("event=leg_usage sid=%016" PRIx64 " dir=%s worker=%s "
                "status=%s bytes_in=%" PRIu64 " bytes_out=%" PRIu64
                " msgs_in=%" PRIu64 " msgs_out=%" PRIu64 " ack_ms=%" PRIu64,
                r->session_id, dir >= 0 ? cp_dir_name((cp_dir_t)dir) : "?",
                w->id, im_proto_status_name(r->status),
                c ? c->bytes_in : 0, c ? c->bytes_out : 0,
                c ? c->msgs_in : 0, c ? c->msgs_out : 0, latency_us / 1000);
    /* An orphan's release (session 0) concerns no session. */
    cp_session_t *s = info.session_id
                          ? cp_session_find(ctx->sessions, info.session_id)
                          : NULL;
    if (s)
        cp_sip_dispatch(ctx, s, CP_EV_RELEASED, (cp_dir_t)info.dir, 0);
}

static void s_on_connect_result(cp_context_t *ctx, cp_worker_t *w,
                                const im_env_t *env)
{
    const Imsplit__V1__ConnectLegResult *r = env->connect_leg_result;
    cp_cmd_info_t info;
    if (!cp_handler_complete(ctx, w, env,
                             IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG, &info))
        return;
    if (r->status != IMSPLIT__V1__STATUS__STATUS_OK)
        IM_LOG_WARN("event=connect_failed sid=%016" PRIx64 " dir=%s "
                    "worker=%s status=%s",
                    info.session_id, cp_dir_name((cp_dir_t)info.dir), w->id,
                    im_proto_status_name(r->status));
}

static const char *s_leg_event_name(int kind)
{
    switch (kind) {
    case IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_PEER_CLOSED: return "peer_closed";
    case IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_IDLE: return "idle";
    case IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED:
        return "connect_failed";
    default: return "unknown";
    }
}

static void s_on_leg_event(cp_context_t *ctx, cp_worker_t *w,
                           const void *peer, size_t peer_len,
                           const im_env_t *env)
{
    const Imsplit__V1__LegEvent *e = env->leg_event;
    const Imsplit__V1__LegCounters *c = e->counters;
    IM_LOG_INFO("event=leg_event sid=%016" PRIx64 " dir=%s worker=%s kind=%s "
                "bytes_in=%" PRIu64 " bytes_out=%" PRIu64,
                e->session_id, im_proto_direction_name(e->direction), w->id,
                s_leg_event_name(e->kind), c ? c->bytes_in : 0,
                c ? c->bytes_out : 0);
    /* The media of that leg is gone (peer closed, idle past the limit, or
     * unreachable): the IM session cannot go on. It ends like any other,
     * BYE on both legs, each direction released on its BYE's answer. The
     * ack goes first so a duplicate event is answered even if the session
     * is already gone. */
    int dir = cp_build_dir_from_proto(e->direction);
    cp_session_t *s = cp_session_find(ctx->sessions, e->session_id);
    Imsplit__V1__Envelope out = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__LegEventAck ack = IMSPLIT__V1__LEG_EVENT_ACK__INIT;
    ack.session_id = e->session_id;
    ack.direction = e->direction;
    out.body_case = IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT_ACK;
    out.leg_event_ack = &ack;
    cp_handler_reply(ctx, peer, peer_len, env->seq, &out);
    if (s && dir >= 0 && strcmp(s->worker, w->id) == 0)
        cp_sip_dispatch(ctx, s, CP_EV_LEG_EVENT, (cp_dir_t)dir, 0);
}

typedef struct {
    cp_context_t *ctx;
    Imsplit__V1__QueryResult *res;
    size_t n;
} s_query_t;

static void s_add_worker(cp_worker_t *w, void *arg)
{
    s_query_t *q = arg;
    Imsplit__V1__WorkerInfo *wi = q->res->workers[q->n++];
    wi->node_id = w->id;
    wi->epoch = w->epoch;
    wi->state = w->state == CP_WORKER_LIVE ? IMSPLIT__V1__WORKER_STATE__WORKER_LIVE
              : w->state == CP_WORKER_DRAINING
                  ? IMSPLIT__V1__WORKER_STATE__WORKER_DRAINING
                  : IMSPLIT__V1__WORKER_STATE__WORKER_DEAD;
    wi->msrp_address = w->msrp_address;
    wi->legs_active = w->legs_active;
    wi->sockets_open = w->sockets_open;
    wi->buffer_bytes = w->buffer_bytes;
    wi->sessions = w->sessions;
    wi->capacity = w->capacity;
    uint64_t age = im_clock_ms() - w->last_seen_ms;
    wi->last_seen_ms = age > UINT32_MAX ? UINT32_MAX : (uint32_t)age;
}

static const char *s_leg_summary(const cp_leg_t *leg)
{
    if (leg->media == CP_MEDIA_RELEASING)
        return "releasing";
    if (leg->media == CP_MEDIA_RELEASED)
        return "released";
    if (leg->dialog == CP_DIALOG_BYE_SENT)
        return "bye_sent";
    if (leg->dialog == CP_DIALOG_CONFIRMED)
        return "up";
    return cp_media_state_name(leg->media);
}

static void s_add_session(cp_session_t *s, void *arg)
{
    s_query_t *q = arg;
    Imsplit__V1__SessionInfo *si = q->res->sessions[q->n++];
    si->session_id = s->id;
    si->call_id = s->call_id ? s->call_id : (char *)"";
    si->state = (char *)cp_sess_state_name(s->state);
    si->worker_id = s->worker;
    si->client_leg = (char *)s_leg_summary(&s->legs[CP_DIR_CLIENT]);
    si->controlling_leg = (char *)s_leg_summary(&s->legs[CP_DIR_CONTROLLING]);
    si->client_se = s->legs[CP_DIR_CLIENT].se;
    si->controlling_se = s->legs[CP_DIR_CONTROLLING].se;
}

static void s_on_query(cp_context_t *ctx, const void *peer, size_t peer_len,
                       const im_env_t *env)
{
    Imsplit__V1__QueryResult res = IMSPLIT__V1__QUERY_RESULT__INIT;
    s_query_t q = {ctx, &res, 0};
    void *storage = NULL;
    void **ptrs = NULL;
    size_t n = 0;
    if (env->query->kind == IMSPLIT__V1__QUERY_KIND__QUERY_WORKERS) {
        n = cp_pool_size(ctx->pool);
        Imsplit__V1__WorkerInfo *items = calloc(n ? n : 1, sizeof(*items));
        ptrs = calloc(n ? n : 1, sizeof(*ptrs));
        storage = items;
        if (!items || !ptrs)
            goto out;
        for (size_t i = 0; i < n; i++) {
            imsplit__v1__worker_info__init(&items[i]);
            ptrs[i] = &items[i];
        }
        res.n_workers = n;
        res.workers = (Imsplit__V1__WorkerInfo **)ptrs;
        cp_pool_foreach(ctx->pool, s_add_worker, &q);
    } else if (env->query->kind == IMSPLIT__V1__QUERY_KIND__QUERY_SESSIONS) {
        /* Bounded so one answer stays under the frame limit. */
        n = cp_sessions_count(ctx->sessions);
        if (n > 1000)
            n = 1000;
        Imsplit__V1__SessionInfo *items = calloc(n ? n : 1, sizeof(*items));
        ptrs = calloc(n ? n : 1, sizeof(*ptrs));
        storage = items;
        if (!items || !ptrs)
            goto out;
        for (size_t i = 0; i < n; i++) {
            imsplit__v1__session_info__init(&items[i]);
            ptrs[i] = &items[i];
        }
        res.n_sessions = n;
        res.sessions = (Imsplit__V1__SessionInfo **)ptrs;
        if (n)
            cp_sessions_foreach_limit(ctx->sessions, s_add_session, &q, n);
    } else {
        cp_handler_error(ctx, peer, peer_len, env->seq,
                      IMSPLIT__V1__ERROR_CODE__ERROR_MALFORMED,
                      "unknown query kind");
        return;
    }
    Imsplit__V1__Envelope out = IMSPLIT__V1__ENVELOPE__INIT;
    out.body_case = IMSPLIT__V1__ENVELOPE__BODY_QUERY_RESULT;
    out.query_result = &res;
    cp_handler_reply(ctx, peer, peer_len, env->seq, &out);
out:
    free(storage);
    free(ptrs);
}

/* A message from a registered worker of its current epoch. */
static void s_from_worker(cp_context_t *ctx, cp_worker_t *w, const void *peer,
                          size_t peer_len, const im_env_t *env)
{
    switch (env->body_case) {
    case IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT:
        cp_workers_on_heartbeat(ctx, w, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG_RESULT:
        s_on_allocate_result(ctx, w, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT:
        s_on_release_result(ctx, w, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG_RESULT:
        s_on_connect_result(ctx, w, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT:
        s_on_leg_event(ctx, w, peer, peer_len, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_INVENTORY:
        cp_workers_on_inventory(ctx, w, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT:
        cp_workers_on_drain_result(ctx, w, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_DEREGISTER:
        cp_workers_on_deregister(ctx, w, env); /* frees w */
        break;
    default:
        break;
    }
}

void cp_handler_frame(cp_context_t *ctx, const void *peer, size_t peer_len,
                      const void *data, size_t len)
{
    char peer_id[CP_WORKER_ID_MAX];
    if (peer_len == 0 || peer_len >= sizeof(peer_id)) {
        cp_metrics_protocol_error(ctx->metrics, CP_PERR_BAD_ROUTING_ID);
        IM_LOG_WARN("event=protocol_error kind=bad_routing_id len=%zu",
                    peer_len);
        return;
    }
    memcpy(peer_id, peer, peer_len);
    peer_id[peer_len] = '\0';

    char why[160];
    im_env_t *env = NULL;
    im_proto_err_t err = im_proto_unpack(data, len, &env, why, sizeof(why));
    if (err != IM_PROTO_OK) {
        cp_metrics_protocol_error(ctx->metrics, cp_perr_from_proto(err));
        char q[200], qwhy[200];
        IM_LOG_WARN("event=protocol_error kind=%s peer=%s len=%zu why=%s",
                    im_proto_err_name(err), im_log_quote(q, sizeof(q), peer_id),
                    len, im_log_quote(qwhy, sizeof(qwhy), why));
        if (err == IM_PROTO_VERSION && env)
            cp_handler_error(ctx, peer, peer_len, env->seq,
                          IMSPLIT__V1__ERROR_CODE__ERROR_UNSUPPORTED_VERSION,
                          "unsupported major version");
        im_proto_free(env);
        return;
    }

    cp_worker_t *w = cp_pool_find(ctx->pool, peer_id);
    switch (env->body_case) {
    case IMSPLIT__V1__ENVELOPE__BODY_REGISTER:
        cp_workers_on_register(ctx, peer_id, peer, peer_len, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_QUERY:
        s_on_query(ctx, peer, peer_len, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_DRAIN:
        cp_workers_on_drain_request(ctx, peer, peer_len, env);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_ERROR:
        IM_LOG_WARN("event=peer_error peer=%s code=%d message=%s reply_to=%"
                    PRIu64, peer_id, env->error->code,
                    env->error->message ? env->error->message : "",
                    env->reply_to);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT:
    case IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG_RESULT:
    case IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG_RESULT:
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT:
    case IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT:
    case IMSPLIT__V1__ENVELOPE__BODY_INVENTORY:
    case IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT:
    case IMSPLIT__V1__ENVELOPE__BODY_DEREGISTER:
        if (!w || w->state == CP_WORKER_DEAD || w->epoch != env->sender_epoch) {
            /* A worker we do not know (or that we declared dead) must
             * register again before anything it says is trusted. */
            cp_metrics_protocol_error(ctx->metrics, CP_PERR_NOT_REGISTERED);
            IM_LOG_INFO("event=unregistered_peer peer=%s body=%s", peer_id,
                        im_proto_body_name((int)env->body_case));
            cp_handler_error(ctx, peer, peer_len, env->seq,
                             IMSPLIT__V1__ERROR_CODE__ERROR_NOT_REGISTERED,
                             "register first");
            break;
        }
        w->last_seen_ms = im_clock_ms();
        s_from_worker(ctx, w, peer, peer_len, env);
        break;
    default:
        cp_metrics_protocol_error(ctx->metrics, CP_PERR_UNEXPECTED_BODY);
        IM_LOG_WARN("event=protocol_error kind=unexpected_body peer=%s body=%s",
                    peer_id, im_proto_body_name((int)env->body_case));
        cp_handler_error(ctx, peer, peer_len, env->seq,
                         IMSPLIT__V1__ERROR_CODE__ERROR_UNKNOWN_BODY,
                         "body not accepted by the CP");
        break;
    }
    im_proto_free(env);
}

void cp_handler_command_failed(cp_context_t *ctx, const cp_cmd_info_t *info)
{
    if (info->body_case == IMSPLIT__V1__ENVELOPE__BODY_AUDIT) {
        cp_workers_audit_failed(ctx, info->worker);
        return;
    }
    cp_session_t *s = cp_session_find(ctx->sessions, info->session_id);
    if (!s)
        return;
    switch (info->body_case) {
    case IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG:
        cp_sip_dispatch(ctx, s, CP_EV_ALLOC_FAILED, (cp_dir_t)info->dir, 0);
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG:
        /* The worker never confirmed: count the leg as gone here; the
         * worker's own audit releases it if it still exists. */
        cp_sip_dispatch(ctx, s, CP_EV_RELEASED, (cp_dir_t)info->dir, 0);
        break;
    default:
        break;
    }
}

int cp_handler_start(cp_context_t *ctx)
{
    cp_workers_start(ctx);
    return 0;
}

void cp_handler_stop(cp_context_t *ctx)
{
    cp_workers_stop(ctx);
}
