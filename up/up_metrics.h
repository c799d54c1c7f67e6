/* up_metrics: the worker's Prometheus series (names are part of the
 * operator interface, see docs/operations.md). Gauges are set from the leg
 * table by up_metrics_sync() after every change, in the same loop turn. */
#ifndef UP_METRICS_H
#define UP_METRICS_H

#include "im_metrics.h"
#include "im_proto.h"
#include "up_leg.h"

/* Why a control-channel frame was rejected: the kind= label of
 * imsplit_up_protocol_errors_total, named as in the kind= of the
 * event=protocol_error log line. */
typedef enum {
    UP_PERR_EMPTY,           /* im_proto: zero-length frame */
    UP_PERR_OVERSIZE,        /* im_proto: above IM_PROTO_MAX_FRAME */
    UP_PERR_MALFORMED,       /* im_proto: not a decodable envelope */
    UP_PERR_VERSION,         /* im_proto: another major version */
    UP_PERR_NO_BODY,         /* im_proto: no (known) body */
    UP_PERR_BAD_FIELD,       /* a required field missing or wrong */
    UP_PERR_EXTRA_FRAMES,    /* a multi-part message */
    UP_PERR_UNEXPECTED_BODY, /* a body a worker never accepts */
    UP_PERR_NOT_REGISTERED,  /* a command from a CP epoch we are not
                                registered with */
    UP_PERR_SEQ_REUSED,      /* a command whose (sender, epoch, seq) an
                                earlier, different command had */
    UP_PERR_COUNT
} up_perr_t;

/* Why an accepted MSRP connection was closed unread to make room: the
 * why= label of imsplit_up_msrp_conns_dropped_total. */
typedef enum {
    UP_DROP_UNBOUND_LIMIT, /* --max-unbound connections waited for a SEND */
    UP_DROP_FD_LIMIT,      /* accept() found no file descriptor left */
    UP_DROP_COUNT
} up_drop_t;

/* Why the MSRP listener stopped accepting for a while: the why= label of
 * imsplit_up_msrp_accept_paused_total. */
typedef enum {
    UP_PAUSE_FD_LIMIT, /* EMFILE/ENFILE and no unbound connection to close */
    UP_PAUSE_NO_MEMORY, /* ENOBUFS/ENOMEM */
    UP_PAUSE_ERROR,     /* any other accept() failure */
    UP_PAUSE_COUNT
} up_pause_t;

struct up_metrics {
    im_metrics_t *reg;
    im_metric_t *legs_active;
    im_metric_t *legs_allocated_total;
    im_metric_t *legs_released_total[UP_DIR_COUNT]; /* by up_dir_t */
    im_metric_t *sockets_open;
    im_metric_t *buffer_bytes;
    im_metric_t *msrp_bytes_relayed_total;
    im_metric_t *protocol_errors_total[UP_PERR_COUNT];
    im_metric_t *leg_connect_failed_total;
    im_metric_t *msrp_rejected_total;
    im_metric_t *msrp_conns_unbound;
    im_metric_t *msrp_conns_dropped_total[UP_DROP_COUNT];
    im_metric_t *msrp_accept_paused_total[UP_PAUSE_COUNT];
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

const char *up_perr_name(up_perr_t kind);
/* The kind for an im_proto_unpack() error. */
up_perr_t up_perr_from_proto(im_proto_err_t err);
void up_metrics_protocol_error(up_metrics_t *m, up_perr_t kind);

const char *up_drop_name(up_drop_t why);
const char *up_pause_name(up_pause_t why);

/* Copies legs_active, sockets_open and buffer_bytes from the table. */
void up_metrics_sync(up_metrics_t *m, const up_legs_t *legs);

#endif
