#include "cp_session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cp_slab.h"
#include "im_clock.h"
#include "im_log.h"

static uint64_t s_unexpected;

static const char *const s_state_names[CP_SESS_NSTATES] = {
    "allocating", "calling", "answered", "established", "terminating",
    "closed",
};

static const char *const s_event_names[CP_EV_NEVENTS] = {
    "allocated",   "alloc_failed",  "answered",       "rejected",
    "client_ack",  "client_no_ack", "client_cancel",  "bye_received",
    "timer_expired", "refresh_failed", "bye_done",    "released",
    "worker_lost", "shutdown",      "failed",         "leg_event",
};

const char *cp_sess_state_name(cp_sess_state_t st)
{
    return (unsigned)st < CP_SESS_NSTATES ? s_state_names[st] : "?";
}

const char *cp_sess_event_name(cp_sess_event_t ev)
{
    return (unsigned)ev < CP_EV_NEVENTS ? s_event_names[ev] : "?";
}

const char *cp_dir_name(cp_dir_t dir)
{
    return dir == CP_DIR_CLIENT ? "client" : "controlling";
}

const char *cp_cause_name(cp_cause_t cause)
{
    switch (cause) {
    case CP_CAUSE_NONE: return "none";
    case CP_CAUSE_SESSION_TIMER_EXPIRED: return "session_timer_expired";
    case CP_CAUSE_SETUP_FAILED: return "setup_failed";
    case CP_CAUSE_PEER_BYE: return "peer_bye";
    case CP_CAUSE_WORKER_LOST: return "worker_lost";
    case CP_CAUSE_ADMIN: return "admin";
    case CP_CAUSE_LEG_EVENT: return "leg_event";
    case CP_CAUSE_SHUTDOWN: return "shutdown";
    }
    return "?";
}

const char *cp_media_state_name(cp_media_state_t m)
{
    static const char *const n[] = {"none", "allocating", "ready",
                                    "releasing", "released"};
    return (unsigned)m < 5 ? n[m] : "?";
}

const char *cp_dialog_state_name(cp_dialog_state_t d)
{
    static const char *const n[] = {"none", "confirmed", "bye_sent", "ended"};
    return (unsigned)d < 4 ? n[d] : "?";
}

int cp_session_bye_reason(int status)
{
    if (status >= 200 && status < 300)
        return CP_REL_BYE_2XX;
    if (status == 408)
        return CP_REL_BYE_TIMEOUT;
    return CP_REL_BYE_ERROR;
}

uint64_t cp_session_unexpected_count(void)
{
    return s_unexpected;
}

static void s_pending_sync(cp_session_t *s);

static void s_set_state(cp_session_t *s, cp_sess_state_t st)
{
    if (s->state == st)
        return;
    IM_LOG_DEBUG("event=session_state sid=%016" PRIx64 " from=%s to=%s",
                 s->id, cp_sess_state_name(s->state), cp_sess_state_name(st));
    s->state = st;
    s_pending_sync(s);
}

/* Sends ReleaseLeg for a leg whose media is on the worker, or remembers to
 * do so once an allocation in flight completes. */
static void s_release(cp_session_t *s, cp_dir_t dir, int reason,
                      const cp_session_ops_t *ops, void *ctx)
{
    cp_leg_t *leg = &s->legs[dir];
    switch (leg->media) {
    case CP_MEDIA_ALLOCATING:
        leg->release_wanted = true;
        leg->release_reason = reason;
        break;
    case CP_MEDIA_READY:
        leg->media = CP_MEDIA_RELEASING;
        leg->release_reason = reason;
        if (ops->release(ctx, s, dir, reason) < 0) {
            /* Nobody to tell: the worker is gone, and with it the leg. */
            leg->media = CP_MEDIA_RELEASED;
        }
        break;
    case CP_MEDIA_NONE:
    case CP_MEDIA_RELEASING:
    case CP_MEDIA_RELEASED:
        break;
    }
}

/* Ends one leg's dialog: BYE if it is up, otherwise release at once. */
static void s_end_leg(cp_session_t *s, cp_dir_t dir, bool with_reason,
                      const cp_session_ops_t *ops, void *ctx)
{
    cp_leg_t *leg = &s->legs[dir];
    if (leg->dialog == CP_DIALOG_CONFIRMED) {
        leg->dialog = CP_DIALOG_BYE_SENT;
        if (ops->bye(ctx, s, dir, with_reason) < 0) {
            leg->dialog = CP_DIALOG_ENDED;
            s_release(s, dir, CP_REL_BYE_ERROR, ops, ctx);
        }
    } else if (leg->dialog == CP_DIALOG_NONE) {
        s_release(s, dir, CP_REL_SETUP_FAILED, ops, ctx);
    }
}

static void s_terminate(cp_session_t *s, cp_cause_t cause,
                        const cp_session_ops_t *ops, void *ctx)
{
    if (s->cause == CP_CAUSE_NONE)
        s->cause = cause;
    s_set_state(s, CP_SESS_TERMINATING);
    ops->stop_timers(ctx, s);
    bool reason = cause == CP_CAUSE_SESSION_TIMER_EXPIRED;
    s_end_leg(s, CP_DIR_CLIENT, reason, ops, ctx);
    s_end_leg(s, CP_DIR_CONTROLLING, reason, ops, ctx);
}

static bool s_leg_done(const cp_leg_t *leg)
{
    bool media_done = leg->media == CP_MEDIA_NONE ||
                      leg->media == CP_MEDIA_RELEASED;
    bool dialog_done = leg->dialog == CP_DIALOG_NONE ||
                       leg->dialog == CP_DIALOG_ENDED;
    return media_done && dialog_done;
}

/* Closes the session once both legs are done. Returns true if closed. */
static bool s_maybe_close(cp_session_t *s, const cp_session_ops_t *ops,
                          void *ctx)
{
    if (s->state != CP_SESS_TERMINATING)
        return false;
    if (!s_leg_done(&s->legs[0]) || !s_leg_done(&s->legs[1]))
        return false;
    s_set_state(s, CP_SESS_CLOSED);
    ops->closed(ctx, s);
    return true;
}

static void s_unexpected_event(cp_session_t *s, cp_sess_event_t ev,
                               cp_dir_t dir, int status)
{
    s_unexpected++;
    IM_LOG_WARN("event=sm_unexpected sid=%016" PRIx64
                " state=%s ev=%s dir=%s status=%d",
                s->id, cp_sess_state_name(s->state), cp_sess_event_name(ev),
                cp_dir_name(dir), status);
}

/* Events that mean the same in every state where media is being set up or
 * torn down. Returns true if handled. */
static bool s_media_event(cp_session_t *s, cp_sess_event_t ev, cp_dir_t dir,
                          const cp_session_ops_t *ops, void *ctx)
{
    cp_leg_t *leg = &s->legs[dir];
    switch (ev) {
    case CP_EV_ALLOCATED:
        if (leg->media != CP_MEDIA_ALLOCATING)
            return false;
        leg->media = CP_MEDIA_READY;
        if (leg->release_wanted || s->state == CP_SESS_TERMINATING)
            s_release(s, dir, leg->release_wanted ? leg->release_reason
                                                  : CP_REL_SETUP_FAILED,
                      ops, ctx);
        return true;
    case CP_EV_ALLOC_FAILED:
        if (leg->media != CP_MEDIA_ALLOCATING)
            return false;
        leg->media = CP_MEDIA_NONE;
        return true;
    case CP_EV_RELEASED:
        if (leg->media != CP_MEDIA_RELEASING)
            return false;
        leg->media = CP_MEDIA_RELEASED;
        return true;
    default:
        return false;
    }
}

static void s_setup_failed(cp_session_t *s, int status,
                           const cp_session_ops_t *ops, void *ctx)
{
    if (status)
        ops->reject(ctx, s, status);
    s->cause = CP_CAUSE_SETUP_FAILED;
    s_terminate(s, CP_CAUSE_SETUP_FAILED, ops, ctx);
}

static void s_on_allocating(cp_session_t *s, cp_sess_event_t ev, cp_dir_t dir,
                            int status, const cp_session_ops_t *ops, void *ctx)
{
    switch (ev) {
    case CP_EV_ALLOCATED:
        s_media_event(s, ev, dir, ops, ctx);
        if (s->legs[0].media == CP_MEDIA_READY &&
            s->legs[1].media == CP_MEDIA_READY) {
            s_set_state(s, CP_SESS_CALLING);
            if (ops->invite(ctx, s) < 0)
                s_setup_failed(s, 500, ops, ctx);
        }
        break;
    case CP_EV_ALLOC_FAILED:
        s_media_event(s, ev, dir, ops, ctx);
        s_setup_failed(s, 503, ops, ctx);
        break;
    case CP_EV_CLIENT_CANCEL:
        /* The SIP layer has already answered 487 to the INVITE. */
        s->cancelled = true;
        s_setup_failed(s, 0, ops, ctx);
        break;
    case CP_EV_WORKER_LOST:
    case CP_EV_SHUTDOWN:
    case CP_EV_FAILED:
        s_setup_failed(s, ev == CP_EV_FAILED && status ? status : 503, ops,
                       ctx);
        break;
    default:
        s_unexpected_event(s, ev, dir, status);
    }
}

static void s_on_calling(cp_session_t *s, cp_sess_event_t ev, cp_dir_t dir,
                         int status, const cp_session_ops_t *ops, void *ctx)
{
    switch (ev) {
    case CP_EV_ANSWERED:
        s->legs[CP_DIR_CONTROLLING].dialog = CP_DIALOG_CONFIRMED;
        if (s->cancelled) {
            /* The 2xx crossed our CANCEL: the far dialog exists and must be
             * ended; the client already has its 487. */
            s_terminate(s, CP_CAUSE_SETUP_FAILED, ops, ctx);
            break;
        }
        s->legs[CP_DIR_CLIENT].dialog = CP_DIALOG_CONFIRMED;
        s_set_state(s, CP_SESS_ANSWERED);
        if (ops->answer(ctx, s) < 0) {
            s->legs[CP_DIR_CLIENT].dialog = CP_DIALOG_NONE;
            ops->reject(ctx, s, 500);
            s_terminate(s, CP_CAUSE_SETUP_FAILED, ops, ctx);
        }
        break;
    case CP_EV_REJECTED:
        s_setup_failed(s, s->cancelled ? 0 : status, ops, ctx);
        break;
    case CP_EV_CLIENT_CANCEL:
        /* Wait for the controlling side's final response (487, or a 2xx
         * that crossed the CANCEL) before ending that leg. */
        s->cancelled = true;
        ops->cancel(ctx, s);
        break;
    case CP_EV_WORKER_LOST:
    case CP_EV_SHUTDOWN:
    case CP_EV_FAILED:
        if (!s->cancelled) {
            s->cancelled = true;
            s->cause = ev == CP_EV_WORKER_LOST ? CP_CAUSE_WORKER_LOST
                                               : CP_CAUSE_SHUTDOWN;
            ops->reject(ctx, s, 503);
            ops->cancel(ctx, s);
        }
        break;
    default:
        s_unexpected_event(s, ev, dir, status);
    }
}

static void s_on_up(cp_session_t *s, cp_sess_event_t ev, cp_dir_t dir,
                    int status, const cp_session_ops_t *ops, void *ctx)
{
    switch (ev) {
    case CP_EV_CLIENT_ACK:
        if (s->state == CP_SESS_ANSWERED)
            s_set_state(s, CP_SESS_ESTABLISHED);
        break;
    case CP_EV_CLIENT_NO_ACK:
        s_terminate(s, CP_CAUSE_SETUP_FAILED, ops, ctx);
        break;
    case CP_EV_BYE_RECEIVED:
        /* The SIP layer has answered the BYE; that leg's dialog is over. */
        s->legs[dir].dialog = CP_DIALOG_ENDED;
        s->cause = CP_CAUSE_PEER_BYE;
        s_release(s, dir, CP_REL_PEER_BYE, ops, ctx);
        s_terminate(s, CP_CAUSE_PEER_BYE, ops, ctx);
        break;
    case CP_EV_TIMER_EXPIRED:
        s_terminate(s, CP_CAUSE_SESSION_TIMER_EXPIRED, ops, ctx);
        break;
    case CP_EV_REFRESH_FAILED:
        s_terminate(s, CP_CAUSE_SESSION_TIMER_EXPIRED, ops, ctx);
        break;
    case CP_EV_WORKER_LOST:
        s_terminate(s, CP_CAUSE_WORKER_LOST, ops, ctx);
        break;
    case CP_EV_SHUTDOWN:
        s_terminate(s, CP_CAUSE_SHUTDOWN, ops, ctx);
        break;
    case CP_EV_FAILED:
        s_terminate(s, CP_CAUSE_ADMIN, ops, ctx);
        break;
    case CP_EV_LEG_EVENT:
        s_terminate(s, CP_CAUSE_LEG_EVENT, ops, ctx);
        break;
    default:
        s_unexpected_event(s, ev, dir, status);
    }
}

static void s_on_terminating(cp_session_t *s, cp_sess_event_t ev,
                             cp_dir_t dir, int status,
                             const cp_session_ops_t *ops, void *ctx)
{
    cp_leg_t *leg = &s->legs[dir];
    switch (ev) {
    case CP_EV_ALLOCATED:
    case CP_EV_ALLOC_FAILED:
    case CP_EV_RELEASED:
        if (!s_media_event(s, ev, dir, ops, ctx))
            s_unexpected_event(s, ev, dir, status);
        break;
    case CP_EV_BYE_DONE:
        if (leg->dialog != CP_DIALOG_BYE_SENT) {
            s_unexpected_event(s, ev, dir, status);
            break;
        }
        leg->dialog = CP_DIALOG_ENDED;
        s_release(s, dir, cp_session_bye_reason(status), ops, ctx);
        break;
    case CP_EV_BYE_RECEIVED:
        /* BYEs crossed, or the peer hung up while its leg was still up: its
         * dialog is over either way. If our BYE is in flight its final
         * response still releases the media; otherwise release now. */
        if (leg->dialog == CP_DIALOG_CONFIRMED) {
            leg->dialog = CP_DIALOG_ENDED;
            s_release(s, dir, CP_REL_PEER_BYE, ops, ctx);
        }
        break;
    case CP_EV_REJECTED:
        /* Final response to a cancelled controlling INVITE. */
        break;
    case CP_EV_ANSWERED:
        /* A 2xx after we gave up on the setup: end that dialog too. */
        if (s->legs[CP_DIR_CONTROLLING].dialog == CP_DIALOG_NONE) {
            s->legs[CP_DIR_CONTROLLING].dialog = CP_DIALOG_CONFIRMED;
            s_end_leg(s, CP_DIR_CONTROLLING, false, ops, ctx);
        }
        break;
    case CP_EV_WORKER_LOST:
        /* s_media_lost() has run: nothing is left to release. */
        break;
    case CP_EV_CLIENT_ACK:
    case CP_EV_CLIENT_NO_ACK:
    case CP_EV_CLIENT_CANCEL:
    case CP_EV_TIMER_EXPIRED:
    case CP_EV_REFRESH_FAILED:
    case CP_EV_SHUTDOWN:
    case CP_EV_FAILED:
    case CP_EV_LEG_EVENT:
        /* Already ending. */
        break;
    default:
        s_unexpected_event(s, ev, dir, status);
    }
}

/* The worker holding the legs died or restarted: the legs went with it,
 * and no allocation or release in flight will ever be answered. */
static void s_media_lost(cp_session_t *s)
{
    for (int d = 0; d < CP_DIR_COUNT; d++) {
        cp_leg_t *l = &s->legs[d];
        if (l->media == CP_MEDIA_ALLOCATING)
            l->media = CP_MEDIA_NONE;
        else if (l->media != CP_MEDIA_NONE)
            l->media = CP_MEDIA_RELEASED;
        l->release_wanted = false;
    }
}

cp_sess_state_t cp_session_dispatch(cp_session_t *s, cp_sess_event_t ev,
                                    cp_dir_t dir, int status,
                                    const cp_session_ops_t *ops, void *ctx)
{
    if ((unsigned)dir >= CP_DIR_COUNT)
        dir = CP_DIR_CLIENT;
    IM_LOG_DEBUG("event=session_event sid=%016" PRIx64
                 " state=%s ev=%s dir=%s status=%d",
                 s->id, cp_sess_state_name(s->state), cp_sess_event_name(ev),
                 cp_dir_name(dir), status);
    if (ev == CP_EV_WORKER_LOST && s->state != CP_SESS_CLOSED)
        s_media_lost(s);
    /* Media results can arrive in any state before the session ends. */
    if ((ev == CP_EV_RELEASED || ev == CP_EV_ALLOC_FAILED) &&
        s->state != CP_SESS_ALLOCATING && s->state != CP_SESS_TERMINATING) {
        if (!s_media_event(s, ev, dir, ops, ctx))
            s_unexpected_event(s, ev, dir, status);
        return s->state;
    }
    switch (s->state) {
    case CP_SESS_ALLOCATING:
        s_on_allocating(s, ev, dir, status, ops, ctx);
        break;
    case CP_SESS_CALLING:
        s_on_calling(s, ev, dir, status, ops, ctx);
        break;
    case CP_SESS_ANSWERED:
    case CP_SESS_ESTABLISHED:
        s_on_up(s, ev, dir, status, ops, ctx);
        break;
    case CP_SESS_TERMINATING:
        s_on_terminating(s, ev, dir, status, ops, ctx);
        break;
    case CP_SESS_CLOSED:
    case CP_SESS_NSTATES:
        s_unexpected_event(s, ev, dir, status);
        return CP_SESS_CLOSED;
    }
    if (s_maybe_close(s, ops, ctx))
        return CP_SESS_CLOSED;
    return s->state;
}

/* ---- session table ---------------------------------------------------- */

struct cp_sessions {
    cp_slab_t *slab; /* every session's block */
    cp_session_t **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    size_t pending;  /* sessions with s->pending */
    uint64_t next_id;
};

static bool s_state_pending(cp_sess_state_t st)
{
    return st == CP_SESS_ALLOCATING || st == CP_SESS_CALLING ||
           st == CP_SESS_ANSWERED;
}

/* Keeps the table's count of set-ups in progress equal to the number of
 * its sessions in a set-up state; runs on every state change and when a
 * session enters or leaves the table. */
static void s_pending_sync(cp_session_t *s)
{
    bool now = s->table && s_state_pending(s->state);
    if (now == s->pending)
        return;
    s->pending = now;
    if (now)
        s->table->pending++;
    else
        s->table->pending--;
}

static size_t s_bucket(const cp_sessions_t *t, uint64_t id)
{
    /* Fibonacci hashing spreads sequential ids over the buckets. */
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (t->nbuckets - 1);
}

cp_sessions_t *cp_sessions_new(uint64_t first_id)
{
    cp_sessions_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->nbuckets = 1024;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    t->slab = cp_slab_new(CP_SESSION_BLOCK);
    if (!t->buckets || !t->slab) {
        free(t->buckets);
        cp_slab_destroy(&t->slab);
        free(t);
        return NULL;
    }
    t->next_id = first_id ? first_id : 1;
    return t;
}

void cp_sessions_destroy(cp_sessions_t **t_p)
{
    if (!t_p || !*t_p)
        return;
    free((*t_p)->buckets);
    cp_slab_destroy(&(*t_p)->slab);
    free(*t_p);
    *t_p = NULL;
}

static void s_grow(cp_sessions_t *t)
{
    size_t n = t->nbuckets * 2;
    cp_session_t **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* keep the longer chains; lookups stay correct */
    cp_session_t **old = t->buckets;
    size_t oldn = t->nbuckets;
    t->buckets = b;
    t->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        cp_session_t *s = old[i];
        while (s) {
            cp_session_t *next = s->hnext;
            size_t k = s_bucket(t, s->id);
            s->hnext = b[k];
            b[k] = s;
            s = next;
        }
    }
    free(old);
}

cp_session_t *cp_session_new(cp_sessions_t *t)
{
    cp_session_t *s = cp_slab_alloc(t->slab);
    if (!s)
        return NULL;
    s->strs_size = (uint16_t)(CP_SESSION_BLOCK - sizeof(*s));
    if (t->count >= t->nbuckets)
        s_grow(t);
    s->id = t->next_id++;
    if (t->next_id == 0)
        t->next_id = 1;
    s->state = CP_SESS_ALLOCATING;
    s->created_ms = im_clock_ms();
    s->legs[CP_DIR_CLIENT].dir = CP_DIR_CLIENT;
    s->legs[CP_DIR_CONTROLLING].dir = CP_DIR_CONTROLLING;
    size_t k = s_bucket(t, s->id);
    s->hnext = t->buckets[k];
    t->buckets[k] = s;
    t->count++;
    s->table = t;
    s_pending_sync(s);
    return s;
}

cp_session_t *cp_session_find(const cp_sessions_t *t, uint64_t id)
{
    for (cp_session_t *s = t->buckets[s_bucket(t, id)]; s; s = s->hnext)
        if (s->id == id)
            return s;
    return NULL;
}

/* ---- the session's string store ------------------------------------- */

static uint64_t s_str_spills;

_Static_assert(sizeof(cp_session_t) + 1024 <= CP_SESSION_BLOCK,
               "a session's block leaves room for its strings");

static bool s_in_store(const cp_session_t *s, const char *p)
{
    return p >= s->strs && p < s->strs + s->strs_size;
}

char *cp_session_strndup(cp_session_t *s, const char *src, size_t n)
{
    if (!src)
        return NULL;
    char *d;
    if (n < (size_t)(s->strs_size - s->strs_used)) {
        d = s->strs + s->strs_used;
        s->strs_used = (uint16_t)(s->strs_used + n + 1);
    } else {
        d = malloc(n + 1);
        if (!d)
            return NULL;
        s_str_spills++;
    }
    memcpy(d, src, n);
    d[n] = '\0';
    return d;
}

char *cp_session_strdup(cp_session_t *s, const char *src)
{
    return src ? cp_session_strndup(s, src, strlen(src)) : NULL;
}

void cp_session_strfree(cp_session_t *s, char *p)
{
    if (!p)
        return;
    if (!s_in_store(s, p)) {
        free(p);
        return;
    }
    size_t end = (size_t)(p - s->strs) + strlen(p) + 1;
    if (end == s->strs_used)
        s->strs_used = (uint16_t)(p - s->strs);
}

void cp_session_strset(cp_session_t *s, char **dst, const char *src)
{
    char *old = *dst;
    *dst = NULL;
    cp_session_strfree(s, old);
    *dst = cp_session_strdup(s, src);
}

uint64_t cp_session_str_spills(void)
{
    return s_str_spills;
}

static void s_leg_free_strings(cp_session_t *s, cp_leg_t *leg)
{
    char **owned[] = {&leg->path,       &leg->peer_path,  &leg->peer_setup,
                      &leg->sdp_out,    &leg->local_uri,  &leg->remote_uri,
                      &leg->remote_tag, &leg->target,     &leg->route};
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
        cp_session_strfree(s, *owned[i]);
        *owned[i] = NULL;
    }
    /* The client leg's Call-ID is the session's. */
    if (leg->call_id != s->call_id)
        cp_session_strfree(s, leg->call_id);
    leg->call_id = NULL;
}

void cp_session_detach(cp_sessions_t *t, cp_session_t *s)
{
    cp_session_t **pp = &t->buckets[s_bucket(t, s->id)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = s->hnext;
        s->hnext = NULL;
        t->count--;
    }
    if (s->table == t) {
        if (s->pending)
            t->pending--;
        s->pending = false;
        s->table = NULL;
    }
}

void cp_session_free(cp_sessions_t *t, cp_session_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    cp_session_t *s = *s_p;
    cp_session_detach(t, s);
    for (int d = 0; d < CP_DIR_COUNT; d++)
        s_leg_free_strings(s, &s->legs[d]);
    cp_session_strfree(s, s->call_id);
    free(s->client_sdp);
    free(s->ctrl_sdp);
    cp_slab_free(t->slab, s);
    *s_p = NULL;
}

size_t cp_sessions_count(const cp_sessions_t *t)
{
    return t->count;
}

size_t cp_sessions_store_bytes(const cp_sessions_t *t)
{
    return cp_slab_mapped(t->slab);
}

size_t cp_sessions_pending(const cp_sessions_t *t)
{
    return t->pending;
}

void cp_sessions_foreach_limit(cp_sessions_t *t,
                               void (*fn)(cp_session_t *s, void *arg),
                               void *arg, size_t limit)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nbuckets && n < limit; i++) {
        cp_session_t *s = t->buckets[i];
        while (s && n < limit) {
            cp_session_t *next = s->hnext;
            fn(s, arg);
            n++;
            s = next;
        }
    }
}

void cp_sessions_foreach(cp_sessions_t *t,
                         void (*fn)(cp_session_t *s, void *arg), void *arg)
{
    cp_sessions_foreach_limit(t, fn, arg, SIZE_MAX);
}
