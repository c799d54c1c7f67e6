#include "up_metrics.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const s_perr_names[UP_PERR_COUNT] = {
    [UP_PERR_EMPTY] = "empty",
    [UP_PERR_OVERSIZE] = "oversize",
    [UP_PERR_MALFORMED] = "malformed",
    [UP_PERR_VERSION] = "version",
    [UP_PERR_NO_BODY] = "no_body",
    [UP_PERR_BAD_FIELD] = "bad_field",
    [UP_PERR_EXTRA_FRAMES] = "extra_frames",
    [UP_PERR_UNEXPECTED_BODY] = "unexpected_body",
    [UP_PERR_NOT_REGISTERED] = "not_registered",
    [UP_PERR_SEQ_REUSED] = "seq_reused",
};

const char *up_perr_name(up_perr_t kind)
{
    return (unsigned)kind < UP_PERR_COUNT ? s_perr_names[kind] : "?";
}

up_perr_t up_perr_from_proto(im_proto_err_t err)
{
    switch (err) {
    case IM_PROTO_EMPTY: return UP_PERR_EMPTY;
    case IM_PROTO_OVERSIZE: return UP_PERR_OVERSIZE;
    case IM_PROTO_VERSION: return UP_PERR_VERSION;
    case IM_PROTO_NO_BODY: return UP_PERR_NO_BODY;
    case IM_PROTO_BAD_FIELD: return UP_PERR_BAD_FIELD;
    case IM_PROTO_MALFORMED:
    case IM_PROTO_OK:
        break;
    }
    return UP_PERR_MALFORMED;
}

void up_metrics_protocol_error(up_metrics_t *m, up_perr_t kind)
{
    if ((unsigned)kind < UP_PERR_COUNT)
        im_metric_inc(m->protocol_errors_total[kind]);
}

const char *up_drop_name(up_drop_t why)
{
    static const char *const names[UP_DROP_COUNT] = {
        [UP_DROP_UNBOUND_LIMIT] = "unbound_limit",
        [UP_DROP_FD_LIMIT] = "fd_limit",
    };
    return (unsigned)why < UP_DROP_COUNT ? names[why] : "?";
}

const char *up_pause_name(up_pause_t why)
{
    static const char *const names[UP_PAUSE_COUNT] = {
        [UP_PAUSE_FD_LIMIT] = "fd_limit",
        [UP_PAUSE_NO_MEMORY] = "no_memory",
        [UP_PAUSE_ERROR] = "error",
    };
    return (unsigned)why < UP_PAUSE_COUNT ? names[why] : "?";
}

up_metrics_t *up_metrics_new(void)
{
    up_metrics_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->reg = im_metrics_new();
    if (!m->reg)
        goto fail;
    im_metrics_t *r = m->reg;
    m->legs_active = im_metrics_add(r, "imsplit_up_legs_active",
        "Legs currently held by the worker", IM_METRIC_GAUGE, NULL);
    m->legs_allocated_total = im_metrics_add(r,
        "imsplit_up_legs_allocated_total", "Legs created", IM_METRIC_COUNTER,
        NULL);
    m->legs_released_total[UP_DIR_CLIENT] = im_metrics_add(r,
        "imsplit_up_legs_released_total", "Legs released, by direction",
        IM_METRIC_COUNTER, "direction=\"client\"");
    m->legs_released_total[UP_DIR_CONTROLLING] = im_metrics_add(r,
        "imsplit_up_legs_released_total", "Legs released, by direction",
        IM_METRIC_COUNTER, "direction=\"controlling\"");
    m->sockets_open = im_metrics_add(r, "imsplit_up_sockets_open",
        "MSRP connections owned by legs (not the listener)", IM_METRIC_GAUGE,
        NULL);
    m->buffer_bytes = im_metrics_add(r, "imsplit_up_buffer_bytes",
        "Bytes allocated in leg buffers (partial input, queued output)",
        IM_METRIC_GAUGE, NULL);
    m->msrp_bytes_relayed_total = im_metrics_add(r,
        "imsplit_up_msrp_bytes_relayed_total",
        "MSRP bytes forwarded from one leg to the other (headers, bodies "
        "and end-lines)", IM_METRIC_COUNTER,
        NULL);
    for (int k = 0; k < UP_PERR_COUNT; k++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "kind=\"%s\"", s_perr_names[k]);
        m->protocol_errors_total[k] = im_metrics_add(r,
            "imsplit_up_protocol_errors_total",
            "Control-channel frames rejected, by kind", IM_METRIC_COUNTER,
            labels);
    }
    m->leg_connect_failed_total = im_metrics_add(r,
        "imsplit_up_leg_connect_failed_total",
        "Outgoing MSRP connections that could not be made", IM_METRIC_COUNTER,
        NULL);
    m->msrp_rejected_total = im_metrics_add(r,
        "imsplit_up_msrp_rejected_total",
        "Incoming MSRP connections closed before naming a leg",
        IM_METRIC_COUNTER, NULL);
    m->msrp_conns_unbound = im_metrics_add(r, "imsplit_up_msrp_conns_unbound",
        "Accepted MSRP connections not bound to a leg (waiting for their "
        "first SEND, or being turned away)", IM_METRIC_GAUGE, NULL);
    for (int k = 0; k < UP_DROP_COUNT; k++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "why=\"%s\"",
                 up_drop_name((up_drop_t)k));
        m->msrp_conns_dropped_total[k] = im_metrics_add(r,
            "imsplit_up_msrp_conns_dropped_total",
            "Unbound MSRP connections closed unread to make room for new "
            "ones (the oldest goes), by reason", IM_METRIC_COUNTER, labels);
    }
    for (int k = 0; k < UP_PAUSE_COUNT; k++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "why=\"%s\"",
                 up_pause_name((up_pause_t)k));
        m->msrp_accept_paused_total[k] = im_metrics_add(r,
            "imsplit_up_msrp_accept_paused_total",
            "Times the MSRP listener stopped accepting for a back-off "
            "because accept() failed, by reason", IM_METRIC_COUNTER, labels);
    }
    m->frames_dropped_total = im_metrics_add(r,
        "imsplit_up_frames_dropped_total",
        "MSRP frames not delivered: towards a released or unreachable leg, "
        "cut by a lost connection, or left unanswered",
        IM_METRIC_COUNTER, NULL);
    m->msrp_frames_relayed_total = im_metrics_add(r,
        "imsplit_up_msrp_frames_relayed_total",
        "MSRP SEND and REPORT frames forwarded to the other leg",
        IM_METRIC_COUNTER, NULL);
    m->msrp_framing_errors_total = im_metrics_add(r,
        "imsplit_up_msrp_framing_errors_total",
        "MSRP connections closed for malformed framing", IM_METRIC_COUNTER,
        NULL);
    m->msrp_txn_timeouts_total = im_metrics_add(r,
        "imsplit_up_msrp_txn_timeouts_total",
        "Forwarded SENDs the next hop did not answer in time",
        IM_METRIC_COUNTER, NULL);
    m->msrp_reports_sent_total = im_metrics_add(r,
        "imsplit_up_msrp_reports_sent_total",
        "REPORTs the worker sent for failed forwarded SENDs",
        IM_METRIC_COUNTER, NULL);
    m->leg_idle_total = im_metrics_add(r, "imsplit_up_leg_idle_total",
        "Legs reported idle to the CP", IM_METRIC_COUNTER, NULL);
    m->commands_duplicate_total = im_metrics_add(r,
        "imsplit_up_commands_duplicate_total",
        "Repeated CP commands answered from the result cache",
        IM_METRIC_COUNTER, NULL);
    m->result_cache_entries = im_metrics_add(r,
        "imsplit_up_result_cache_entries",
        "Command results kept for answering repeated commands",
        IM_METRIC_GAUGE, NULL);
    m->result_cache_evicted_total = im_metrics_add(r,
        "imsplit_up_result_cache_evicted_total",
        "Command results dropped before their time because the cache was "
        "full", IM_METRIC_COUNTER, NULL);
    m->leg_conflicts_total = im_metrics_add(r,
        "imsplit_up_leg_conflicts_total",
        "AllocateLeg or ConnectLeg refused with STATUS_CONFLICT",
        IM_METRIC_COUNTER, NULL);
    m->leg_events_pending = im_metrics_add(r,
        "imsplit_up_leg_events_pending",
        "LegEvents sent and not yet acknowledged by the CP", IM_METRIC_GAUGE,
        NULL);
    m->leg_events_resent_total = im_metrics_add(r,
        "imsplit_up_leg_events_resent_total",
        "LegEvents sent again for want of an acknowledgement",
        IM_METRIC_COUNTER, NULL);
    m->leg_events_abandoned_total = im_metrics_add(r,
        "imsplit_up_leg_events_abandoned_total",
        "LegEvents given up without an acknowledgement", IM_METRIC_COUNTER,
        NULL);
    m->cp_reconnects_total = im_metrics_add(r,
        "imsplit_up_cp_reconnects_total",
        "Control-channel sockets replaced after the CP went silent",
        IM_METRIC_COUNTER, NULL);
    /* A registration that failed must stop the worker, not leave a hole
     * in /metrics. */
    if (!im_metrics_complete(r))
        goto fail;
    return m;
fail:
    up_metrics_destroy(&m);
    return NULL;
}

void up_metrics_destroy(up_metrics_t **m_p)
{
    if (!m_p || !*m_p)
        return;
    im_metrics_destroy(&(*m_p)->reg);
    free(*m_p);
    *m_p = NULL;
}

void up_metrics_sync(up_metrics_t *m, const up_legs_t *legs)
{
    im_metric_set(m->legs_active, (int64_t)up_legs_count(legs));
    im_metric_set(m->sockets_open, (int64_t)up_legs_sockets(legs));
    im_metric_set(m->buffer_bytes, (int64_t)up_legs_buffer_bytes(legs));
}
