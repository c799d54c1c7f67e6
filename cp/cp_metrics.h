/* cp_metrics: the control plane's Prometheus series (names are part of the
 * operator interface, see docs/operations.md). */
#ifndef CP_METRICS_H
#define CP_METRICS_H

#include "im_metrics.h"

struct cp_metrics {
    im_metrics_t *reg;
    im_metric_t *sessions_active;
    im_metric_t *sessions_total;
    im_metric_t *session_timer_expired_total;
    im_metric_t *bye_sent_total[2];      /* [CP_DIR_CLIENT], [CP_DIR_CONTROLLING] */
    im_metric_t *releases_sent_total[2];
    im_metric_t *releases_pending;
    im_metric_t *workers[3];             /* live, draining, dead */
    im_metric_t *refreshes_sent_total;
    im_metric_t *refreshes_received_total;
    im_metric_t *invites_rejected_total;
    im_metric_t *protocol_errors_total;
    im_metric_t *commands_resent_total;
    im_metric_t *commands_failed_total;
    im_metric_t *sessions_worker_lost_total;
    im_metric_t *audit_mismatches_total[2]; /* worker_only, cp_only */
    im_metric_t *workers_left_total;        /* Deregister received */
};
typedef struct cp_metrics cp_metrics_t;

cp_metrics_t *cp_metrics_new(void);
void cp_metrics_destroy(cp_metrics_t **m_p);

#endif
