/* up_metrics: the worker's Prometheus series (names are part of the
 * operator interface, see docs/operations.md). Gauges are set from the leg
 * table by up_metrics_sync() after every change, in the same loop turn. */
#ifndef UP_METRICS_H
#define UP_METRICS_H

#include "im_metrics.h"
#include "up_leg.h"

struct up_metrics {
    im_metrics_t *reg;
    im_metric_t *legs_active;
    im_metric_t *legs_allocated_total;
    im_metric_t *legs_released_total[UP_DIR_COUNT]; /* by up_dir_t */
    im_metric_t *sockets_open;
    im_metric_t *buffer_bytes;
    im_metric_t *msrp_bytes_relayed_total;
    im_metric_t *protocol_errors_total;
    im_metric_t *leg_connect_failed_total;
    im_metric_t *msrp_rejected_total;
    im_metric_t *frames_dropped_total;
    im_metric_t *msrp_frames_relayed_total;
    im_metric_t *msrp_framing_errors_total;
    im_metric_t *msrp_txn_timeouts_total;
    im_metric_t *msrp_reports_sent_total;
    im_metric_t *leg_idle_total;
    im_metric_t *commands_duplicate_total;
    im_metric_t *result_cache_entries;
    im_metric_t *result_cache_evicted_total;
    im_metric_t *leg_conflicts_total;
    im_metric_t *leg_events_pending;
    im_metric_t *leg_events_resent_total;
    im_metric_t *leg_events_abandoned_total;
    im_metric_t *cp_reconnects_total;
};
typedef struct up_metrics up_metrics_t;

up_metrics_t *up_metrics_new(void);
void up_metrics_destroy(up_metrics_t **m_p);

/* Copies legs_active, sockets_open and buffer_bytes from the table. */
void up_metrics_sync(up_metrics_t *m, const up_legs_t *legs);

#endif
