#include "up_legevent.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "im_log.h"
#include "im_proto.h"
#include "up_build.h"
#include "up_metrics.h"
#include "up_path.h"
#include "up_timer.h"

/* Seqs are consecutive, so masking them spreads events evenly. */
#define UP_LEGEVENT_BUCKETS_MIN 16u
#define UP_LEGEVENT_BUCKETS_MAX (1u << 16)

typedef struct s_event {
    im_timer_t timer;
    up_legevents_t *q;
    struct s_event *older;
    struct s_event *newer;
    struct s_event *next_hash;
    struct s_event **pprev_hash;
    uint64_t session_id;
    up_dir_t dir;
    int kind;
    unsigned sends;
    up_sent_t sent;
} s_event_t;

struct up_legevents {
    up_context_t *ctx;
    s_event_t **buckets;
    size_t nbuckets;
    s_event_t *oldest;
    s_event_t *newest;
    size_t count;
    size_t max_pending;
    uint32_t base_ms;
};

static const char *s_kind_name(int kind)
{
    switch (kind) {
    case IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_PEER_CLOSED:
        return "peer_closed";
    case IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_IDLE: return "idle";
    case IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED:
        return "connect_failed";
    default: return "unspecified";
    }
}

static void s_gauge(up_legevents_t *q)
{
    if (q->ctx->metrics)
        im_metric_set(q->ctx->metrics->leg_events_pending, (int64_t)q->count);
}

up_legevents_t *up_legevents_new(up_context_t *ctx, size_t max_pending,
                                 uint32_t base_ms)
{
    if (!ctx || !ctx->timers || max_pending == 0 || base_ms == 0)
        return NULL;
    up_legevents_t *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    size_t n = UP_LEGEVENT_BUCKETS_MIN;
    while (n < max_pending && n < UP_LEGEVENT_BUCKETS_MAX)
        n <<= 1;
    q->buckets = calloc(n, sizeof(*q->buckets));
    if (!q->buckets) {
        free(q);
        return NULL;
    }
    q->nbuckets = n;
    q->ctx = ctx;
    q->max_pending = max_pending;
    q->base_ms = base_ms;
    return q;
}

/* Takes the event out of the store, cancels its timer and frees it. */
static void s_forget(up_legevents_t *q, s_event_t *e)
{
    up_timer_cancel(q->ctx->timers, &e->timer);
    if (e->older)
        e->older->newer = e->newer;
    else
        q->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        q->newest = e->older;
    *e->pprev_hash = e->next_hash;
    if (e->next_hash)
        e->next_hash->pprev_hash = e->pprev_hash;
    q->count--;
    up_sent_clear(&e->sent);
    free(e);
}

size_t up_legevents_clear(up_legevents_t *q)
{
    if (!q)
        return 0;
    size_t n = 0;
    while (q->oldest) {
        s_forget(q, q->oldest);
        n++;
    }
    s_gauge(q);
    return n;
}

void up_legevents_destroy(up_legevents_t **q_p)
{
    if (!q_p || !*q_p)
        return;
    up_legevents_t *q = *q_p;
    *q_p = NULL;
    up_legevents_clear(q);
    free(q->buckets);
    free(q);
}

static void s_abandon(up_legevents_t *q, s_event_t *e, const char *why)
{
    up_context_t *ctx = q->ctx;
    if (ctx->metrics)
        im_metric_inc(ctx->metrics->leg_events_abandoned_total);
    IM_LOG_WARN("event=leg_event_abandoned sid=%016" PRIx64 " dir=%s "
                "node=%s kind=%s seq=%" PRIu64 " sends=%u why=%s",
                e->session_id, up_dir_name(e->dir), ctx->cfg.id,
                s_kind_name(e->kind), e->sent.seq, e->sends, why);
    s_forget(q, e);
    s_gauge(q);
}

static void s_on_timer(im_timer_t *t, void *arg)
{
    (void)t;
    s_event_t *e = arg;
    up_legevents_t *q = e->q;
    up_context_t *ctx = q->ctx;
    if (ctx->stopping)
        return;
    if (e->sends >= UP_LEGEVENT_SENDS) {
        s_abandon(q, e, "no_ack");
        return;
    }
    if (ctx->reg_state != UP_REG_REGISTERED) {
        /* Nobody to hear it: wait for the registration, uncounted. */
        up_timer_arm_in(ctx->timers, &e->timer, q->base_ms);
        return;
    }
    e->sends++;
    if (ctx->metrics)
        im_metric_inc(ctx->metrics->leg_events_resent_total);
    IM_LOG_DEBUG("event=leg_event_resent sid=%016" PRIx64 " dir=%s kind=%s "
                 "seq=%" PRIu64 " sends=%u",
                 e->session_id, up_dir_name(e->dir), s_kind_name(e->kind),
                 e->sent.seq, e->sends);
    (void)up_path_resend(ctx->path, e->sent.bytes, e->sent.len);
    up_timer_arm_in(ctx->timers, &e->timer, (uint64_t)q->base_ms * e->sends);
}

static void s_keep(up_legevents_t *q, s_event_t *e)
{
    if (q->count >= q->max_pending)
        s_abandon(q, q->oldest, "too_many_pending");
    e->q = q;
    e->sends = 1;
    im_timer_init(&e->timer, s_on_timer, e);
    s_event_t **head = &q->buckets[e->sent.seq & (q->nbuckets - 1)];
    e->next_hash = *head;
    if (*head)
        (*head)->pprev_hash = &e->next_hash;
    *head = e;
    e->pprev_hash = head;
    e->older = q->newest;
    if (q->newest)
        q->newest->newer = e;
    else
        q->oldest = e;
    q->newest = e;
    q->count++;
    s_gauge(q);
    up_timer_arm_in(q->ctx->timers, &e->timer, q->base_ms);
}

int up_legevent_send(up_context_t *ctx, const up_leg_t *leg, int kind)
{
    up_legevents_t *q = ctx->legevents;
    if (!q)
        return up_build_leg_event(ctx, NULL, leg, kind);
    s_event_t *e = calloc(1, sizeof(*e));
    if (!e) {
        IM_LOG_WARN("event=leg_event_not_kept sid=%016" PRIx64 " dir=%s "
                    "why=out_of_memory",
                    leg->session_id, up_dir_name(leg->dir));
        return up_build_leg_event(ctx, NULL, leg, kind);
    }
    e->session_id = leg->session_id;
    e->dir = leg->dir;
    e->kind = kind;
    int rc = up_build_leg_event(ctx, &e->sent, leg, kind);
    if (!e->sent.bytes) {
        free(e); /* never packed: nothing to resend */
        return rc;
    }
    s_keep(q, e);
    return rc;
}

bool up_legevents_ack(up_legevents_t *q, uint64_t reply_to)
{
    if (!q)
        return false;
    for (s_event_t *e = q->buckets[reply_to & (q->nbuckets - 1)]; e;
         e = e->next_hash) {
        if (e->sent.seq == reply_to) {
            IM_LOG_DEBUG("event=leg_event_acked sid=%016" PRIx64 " dir=%s "
                         "kind=%s seq=%" PRIu64 " sends=%u",
                         e->session_id, up_dir_name(e->dir),
                         s_kind_name(e->kind), reply_to, e->sends);
            s_forget(q, e);
            s_gauge(q);
            return true;
        }
    }
    return false;
}

size_t up_legevents_pending(const up_legevents_t *q)
{
    return q ? q->count : 0;
}
