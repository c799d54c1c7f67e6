#include "cp_metrics.h"

#include <stdlib.h>

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
    m->workers[0] = im_metrics_add(r, "imsplit_cp_workers",
        "Workers known to the CP by state", IM_METRIC_GAUGE, "state=\"live\"");
    m->workers[1] = im_metrics_add(r, "imsplit_cp_workers",
        "Workers known to the CP by state", IM_METRIC_GAUGE,
        "state=\"draining\"");
    m->workers[2] = im_metrics_add(r, "imsplit_cp_workers",
        "Workers known to the CP by state", IM_METRIC_GAUGE, "state=\"dead\"");
    m->refreshes_sent_total = im_metrics_add(r,
        "imsplit_cp_refreshes_sent_total",
        "Session refreshes sent (UPDATE or re-INVITE)", IM_METRIC_COUNTER,
        NULL);
    m->refreshes_received_total = im_metrics_add(r,
        "imsplit_cp_refreshes_received_total",
        "Session refreshes received and accepted", IM_METRIC_COUNTER, NULL);
    m->invites_rejected_total = im_metrics_add(r,
        "imsplit_cp_invites_rejected_total",
        "Initial INVITEs answered with a final error by the CP itself",
        IM_METRIC_COUNTER, NULL);
    m->protocol_errors_total = im_metrics_add(r,
        "imsplit_cp_protocol_errors_total",
        "Control-channel frames dropped as invalid", IM_METRIC_COUNTER, NULL);
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
