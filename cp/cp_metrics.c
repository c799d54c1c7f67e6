#include "cp_metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "im_log.h"

static const char *const s_perr_names[CP_PERR_COUNT] = {
    [CP_PERR_EMPTY] = "empty",
    [CP_PERR_OVERSIZE] = "oversize",
    [CP_PERR_MALFORMED] = "malformed",
    [CP_PERR_VERSION] = "version",
    [CP_PERR_NO_BODY] = "no_body",
    [CP_PERR_BAD_FIELD] = "bad_field",
    [CP_PERR_NO_ROUTING_FRAME] = "no_routing_frame",
    [CP_PERR_BAD_ROUTING_ID] = "bad_routing_id",
    [CP_PERR_EXTRA_FRAMES] = "extra_frames",
    [CP_PERR_UNEXPECTED_BODY] = "unexpected_body",
    [CP_PERR_NOT_REGISTERED] = "not_registered",
};

static const char *const s_reject_names[CP_REJ_COUNT] = {
    [CP_REJ_NO_OFFER] = "no_sdp_offer",
    [CP_REJ_BAD_OFFER] = "bad_sdp_offer",
    [CP_REJ_INTERVAL] = "interval_too_small",
    [CP_REJ_MAX_SESSIONS] = "max_sessions",
    [CP_REJ_MAX_PENDING] = "max_pending",
    [CP_REJ_NO_LIVE_WORKER] = "no_live_worker",
    [CP_REJ_SHUTTING_DOWN] = "shutting_down",
};

static const char *const s_sendfail_names[CP_SENDFAIL_COUNT] = {
    [CP_SENDFAIL_QUEUE_FULL] = "queue_full",
    [CP_SENDFAIL_UNROUTABLE] = "unroutable",
    [CP_SENDFAIL_OTHER] = "other",
};

static const int s_sip_codes[] = {CP_SIP_CODES};
_Static_assert(sizeof(s_sip_codes) / sizeof(s_sip_codes[0]) ==
                   CP_SIP_CODE_COUNT,
               "CP_SIP_CODE_COUNT must count CP_SIP_CODES");

/* Seconds a session timer fired after its deadline. The wheel's tick is
 * 1 ms; anything past 1 s means a stalled loop. */
static const double s_lateness_bounds[] = {0.001, 0.002, 0.005, 0.01, 0.02,
                                           0.05,  0.1,   0.5,   1};
/* Seconds from the first send of a ReleaseLeg to its result: loopback
 * answers in well under a millisecond, resends start at
 * --command-timeout-ms (1 s). */
static const double s_release_bounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01,
                                          0.025,  0.05,  0.1,   0.25,  0.5,
                                          1,      2.5,   5,     10};

#define S_NBOUNDS(a) (sizeof(a) / sizeof((a)[0]))

const char *cp_perr_name(cp_perr_t kind)
{
    return (unsigned)kind < CP_PERR_COUNT ? s_perr_names[kind] : "?";
}

cp_perr_t cp_perr_from_proto(im_proto_err_t err)
{
    switch (err) {
    case IM_PROTO_EMPTY: return CP_PERR_EMPTY;
    case IM_PROTO_OVERSIZE: return CP_PERR_OVERSIZE;
    case IM_PROTO_VERSION: return CP_PERR_VERSION;
    case IM_PROTO_NO_BODY: return CP_PERR_NO_BODY;
    case IM_PROTO_BAD_FIELD: return CP_PERR_BAD_FIELD;
    case IM_PROTO_MALFORMED:
    case IM_PROTO_OK:
        break;
    }
    return CP_PERR_MALFORMED;
}

const char *cp_reject_name(cp_reject_t why)
{
    return (unsigned)why < CP_REJ_COUNT ? s_reject_names[why] : "?";
}

void cp_metrics_invite_rejected(cp_metrics_t *m, cp_reject_t why)
{
    if ((unsigned)why < CP_REJ_COUNT)
        im_metric_inc(m->invites_rejected_total[why]);
}

const char *cp_sendfail_name(cp_sendfail_t why)
{
    return (unsigned)why < CP_SENDFAIL_COUNT ? s_sendfail_names[why] : "?";
}

void cp_metrics_ctl_send_failed(cp_metrics_t *m, cp_sendfail_t why)
{
    if ((unsigned)why < CP_SENDFAIL_COUNT)
        im_metric_inc(m->ctl_send_failed_total[why]);
}

void cp_metrics_protocol_error(cp_metrics_t *m, cp_perr_t kind)
{
    if ((unsigned)kind < CP_PERR_COUNT)
        im_metric_inc(m->protocol_errors_total[kind]);
}

/* Slot of a status in sip_responses_total: a listed code, else its class
 * after the listed codes; -1 outside 100..699. */
static int s_sip_slot(int status)
{
    if (status < 100 || status > 699)
        return -1;
    for (int i = 0; i < CP_SIP_CODE_COUNT; i++)
        if (s_sip_codes[i] == status)
            return i;
    return CP_SIP_CODE_COUNT + status / 100 - 1;
}

const char *cp_metrics_sip_code_label(int status, char *buf, size_t size)
{
    int slot = s_sip_slot(status);
    if (slot < 0)
        return NULL;
    if (slot < CP_SIP_CODE_COUNT)
        snprintf(buf, size, "%d", s_sip_codes[slot]);
    else
        snprintf(buf, size, "%dxx", slot - CP_SIP_CODE_COUNT + 1);
    return buf;
}

void cp_metrics_sip_response(cp_metrics_t *m, cp_sip_way_t way, int status)
{
    int slot = s_sip_slot(status);
    if (slot >= 0 && (way == CP_SIP_SENT || way == CP_SIP_RECEIVED))
        im_metric_inc(m->sip_responses_total[way][slot]);
}

static void s_add_sip_responses(cp_metrics_t *m)
{
    static const char *const ways[2] = {"sent", "received"};
    for (int w = 0; w < 2; w++) {
        for (int slot = 0; slot < CP_SIP_SLOTS; slot++) {
            char code[8], labels[48];
            int status = slot < CP_SIP_CODE_COUNT
                             ? s_sip_codes[slot]
                             : (slot - CP_SIP_CODE_COUNT + 1) * 100 + 99;
            snprintf(labels, sizeof(labels), "direction=\"%s\",code=\"%s\"",
                     ways[w],
                     cp_metrics_sip_code_label(status, code, sizeof(code)));
            m->sip_responses_total[w][slot] = im_metrics_add(m->reg,
                "imsplit_cp_sip_responses_total",
                "SIP responses sent and received by the CP, by status code "
                "(codes without a series of their own by class, e.g. 4xx)",
                IM_METRIC_COUNTER, labels);
        }
    }
}

cp_metrics_t *cp_metrics_new(void)
{
    cp_metrics_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->reg = im_metrics_new();
    if (!m->reg)
        goto fail;
    im_metrics_t *r = m->reg;
    m->sessions_active = im_metrics_add(r, "imsplit_cp_sessions_active",
        "IM sessions currently held by the CP", IM_METRIC_GAUGE, NULL);
    m->sessions_total = im_metrics_add(r, "imsplit_cp_sessions_total",
        "IM sessions created", IM_METRIC_COUNTER, NULL);
    m->session_timer_expired_total = im_metrics_add(r,
        "imsplit_cp_session_timer_expired_total",
        "Sessions ended because a leg's session timer expired",
        IM_METRIC_COUNTER, NULL);
    m->bye_sent_total[0] = im_metrics_add(r, "imsplit_cp_bye_sent_total",
        "BYE requests sent by the CP", IM_METRIC_COUNTER, "leg=\"client\"");
    m->bye_sent_total[1] = im_metrics_add(r, "imsplit_cp_bye_sent_total",
        "BYE requests sent by the CP", IM_METRIC_COUNTER,
        "leg=\"controlling\"");
    m->releases_sent_total[0] = im_metrics_add(r,
        "imsplit_cp_releases_sent_total", "ReleaseLeg commands sent",
        IM_METRIC_COUNTER, "direction=\"client\"");
    m->releases_sent_total[1] = im_metrics_add(r,
        "imsplit_cp_releases_sent_total", "ReleaseLeg commands sent",
        IM_METRIC_COUNTER, "direction=\"controlling\"");
    m->releases_pending = im_metrics_add(r, "imsplit_cp_releases_pending",
        "ReleaseLeg commands not yet acknowledged", IM_METRIC_GAUGE, NULL);
    m->byes_in_flight = im_metrics_add(r, "imsplit_cp_byes_in_flight",
        "BYE transactions sent and not yet answered", IM_METRIC_GAUGE, NULL);
    m->byes_queued = im_metrics_add(r, "imsplit_cp_byes_queued",
        "BYEs waiting for a place among the BYE transactions in flight",
        IM_METRIC_GAUGE, NULL);
    m->workers[0] = im_metrics_add(r, "imsplit_cp_workers",
        "Workers known to the CP by state", IM_METRIC_GAUGE, "state=\"live\"");
    m->workers[1] = im_metrics_add(r, "imsplit_cp_workers",
        "Workers known to the CP by state", IM_METRIC_GAUGE,
        "state=\"draining\"");
    m->workers[2] = im_metrics_add(r, "imsplit_cp_workers",
        "Workers known to the CP by state", IM_METRIC_GAUGE, "state=\"dead\"");
    m->heap_bytes[0] = im_metrics_add(r, "imsplit_cp_heap_bytes",
        "Heap bytes in use and free (malloc's view; RSS may be higher "
        "until free pages are trimmed)", IM_METRIC_GAUGE,
        "state=\"in_use\"");
    m->heap_bytes[1] = im_metrics_add(r, "imsplit_cp_heap_bytes",
        "Heap bytes in use and free (malloc's view; RSS may be higher "
        "until free pages are trimmed)", IM_METRIC_GAUGE, "state=\"free\"");
    m->session_store_bytes = im_metrics_add(r,
        "imsplit_cp_session_store_bytes",
        "Memory mapped for sessions and their strings, outside the heap",
        IM_METRIC_GAUGE, NULL);
    m->session_strings_spilled_total = im_metrics_add(r,
        "imsplit_cp_session_strings_spilled_total",
        "Session strings that did not fit the session's block (malloc'd)",
        IM_METRIC_COUNTER, NULL);
    m->refreshes_sent_total = im_metrics_add(r,
        "imsplit_cp_refreshes_sent_total",
        "Session refreshes sent (UPDATE or re-INVITE)", IM_METRIC_COUNTER,
        NULL);
    m->refreshes_received_total = im_metrics_add(r,
        "imsplit_cp_refreshes_received_total",
        "Session refreshes received and accepted", IM_METRIC_COUNTER, NULL);
    m->sessions_pending = im_metrics_add(r, "imsplit_cp_sessions_pending",
        "Sessions being set up: INVITE received, client's ACK not yet",
        IM_METRIC_GAUGE, NULL);
    for (int k = 0; k < CP_REJ_COUNT; k++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "why=\"%s\"", s_reject_names[k]);
        m->invites_rejected_total[k] = im_metrics_add(r,
            "imsplit_cp_invites_rejected_total",
            "Initial INVITEs answered with a final error by the CP itself, "
            "by reason", IM_METRIC_COUNTER, labels);
    }
    for (int k = 0; k < CP_SENDFAIL_COUNT; k++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "why=\"%s\"", s_sendfail_names[k]);
        m->ctl_send_failed_total[k] = im_metrics_add(r,
            "imsplit_cp_ctl_send_failed_total",
            "Messages to workers that could not be queued, by reason",
            IM_METRIC_COUNTER, labels);
    }
    for (int k = 0; k < CP_PERR_COUNT; k++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "kind=\"%s\"", s_perr_names[k]);
        m->protocol_errors_total[k] = im_metrics_add(r,
            "imsplit_cp_protocol_errors_total",
            "Control-channel frames rejected, by kind", IM_METRIC_COUNTER,
            labels);
    }
    m->commands_resent_total = im_metrics_add(r,
        "imsplit_cp_commands_resent_total",
        "Worker commands resent after a timeout", IM_METRIC_COUNTER, NULL);
    m->commands_failed_total = im_metrics_add(r,
        "imsplit_cp_commands_failed_total",
        "Worker commands given up after every try", IM_METRIC_COUNTER, NULL);
    m->sessions_worker_lost_total = im_metrics_add(r,
        "imsplit_cp_sessions_worker_lost_total",
        "Sessions ended because their worker was lost or restarted",
        IM_METRIC_COUNTER, NULL);
    m->audit_mismatches_total[0] = im_metrics_add(r,
        "imsplit_cp_audit_mismatches_total",
        "Legs found by an audit on one side only", IM_METRIC_COUNTER,
        "kind=\"worker_only\"");
    m->audit_mismatches_total[1] = im_metrics_add(r,
        "imsplit_cp_audit_mismatches_total",
        "Legs found by an audit on one side only", IM_METRIC_COUNTER,
        "kind=\"cp_only\"");
    m->workers_left_total = im_metrics_add(r, "imsplit_cp_workers_left_total",
        "Workers that deregistered (drained or shut down)", IM_METRIC_COUNTER,
        NULL);
    s_add_sip_responses(m);
    m->timer_lateness_seconds = im_metrics_add_histogram(r,
        "imsplit_cp_timer_lateness_seconds",
        "How late session-timer expiries and refreshes fired after their "
        "deadline", NULL, s_lateness_bounds, S_NBOUNDS(s_lateness_bounds));
    m->release_latency_seconds = im_metrics_add_histogram(r,
        "imsplit_cp_release_latency_seconds",
        "Time from sending ReleaseLeg to its result", NULL, s_release_bounds,
        S_NBOUNDS(s_release_bounds));
    m->worker_legs = im_metrics_add_family(r, "imsplit_cp_worker_legs",
        "Legs a registered worker reported in its last heartbeat",
        IM_METRIC_GAUGE, "worker", CP_METRICS_MAX_WORKERS);
    m->worker_sessions = im_metrics_add_family(r, "imsplit_cp_worker_sessions",
        "Sessions the CP has placed on a registered worker",
        IM_METRIC_GAUGE, "worker", CP_METRICS_MAX_WORKERS);
    /* Every series is part of the operator interface: a registration that
     * failed must stop the daemon, not leave a hole in /metrics. */
    if (!im_metrics_complete(r))
        goto fail;
    return m;
fail:
    cp_metrics_destroy(&m);
    return NULL;
}

void cp_metrics_destroy(cp_metrics_t **m_p)
{
    if (!m_p || !*m_p)
        return;
    im_metrics_destroy(&(*m_p)->reg);
    free(*m_p);
    *m_p = NULL;
}

void cp_metrics_worker_add(cp_metrics_t *m, const cp_worker_t *w)
{
    im_metric_t *legs = NULL, *sessions = NULL;
    int rc = im_metric_family_add(m->worker_legs, w->id, &legs);
    if (rc == 0)
        rc = im_metric_family_add(m->worker_sessions, w->id, &sessions);
    if (rc == 0) {
        cp_metrics_worker_sync(m, w);
        return;
    }
    /* Both series or neither. */
    im_metric_family_remove(m->worker_legs, w->id);
    char q[96];
    if (rc == -ENOSPC) {
        if (!m->worker_cap_logged)
            IM_LOG_WARN("event=metrics_worker_cap worker=%s cap=%d "
                        "why=too_many_workers",
                        im_log_quote(q, sizeof(q), w->id),
                        CP_METRICS_MAX_WORKERS);
        m->worker_cap_logged = true;
        return;
    }
    IM_LOG_WARN("event=metrics_worker_refused worker=%s why=%s",
                im_log_quote(q, sizeof(q), w->id),
                rc == -EINVAL ? "id_not_printable_ascii" : "out_of_memory");
}

void cp_metrics_worker_sync(cp_metrics_t *m, const cp_worker_t *w)
{
    im_metric_set(im_metric_family_find(m->worker_legs, w->id),
                  (int64_t)w->legs_active);
    im_metric_set(im_metric_family_find(m->worker_sessions, w->id),
                  (int64_t)w->sessions);
}

void cp_metrics_worker_remove(cp_metrics_t *m, const char *id)
{
    im_metric_family_remove(m->worker_legs, id);
    im_metric_family_remove(m->worker_sessions, id);
    if (im_metric_family_size(m->worker_legs) < CP_METRICS_MAX_WORKERS)
        m->worker_cap_logged = false;
}
