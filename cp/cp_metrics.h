/* cp_metrics: the control plane's Prometheus series (names are part of the
 * operator interface, see docs/configuration.md). Every series exists from
 * start, as 0, except the per-worker ones, which exist while the worker is
 * registered. All functions run on the loop thread. */
#ifndef CP_METRICS_H
#define CP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_pool.h"
#include "im_metrics.h"
#include "im_proto.h"

/* Why a control-channel frame was rejected: the kind= label of
 * imsplit_cp_protocol_errors_total, named as in the kind= of the
 * event=protocol_error log line. */
typedef enum {
    CP_PERR_EMPTY,            /* im_proto: zero-length frame */
    CP_PERR_OVERSIZE,         /* im_proto: above IM_PROTO_MAX_FRAME */
    CP_PERR_MALFORMED,        /* im_proto: not a decodable envelope */
    CP_PERR_VERSION,          /* im_proto: another major version */
    CP_PERR_NO_BODY,          /* im_proto: no (known) body */
    CP_PERR_BAD_FIELD,        /* a required field missing or wrong */
    CP_PERR_NO_ROUTING_FRAME, /* a single-frame message on the ROUTER */
    CP_PERR_BAD_ROUTING_ID,   /* routing id empty or too long */
    CP_PERR_EXTRA_FRAMES,     /* more than routing id + one frame */
    CP_PERR_UNEXPECTED_BODY,  /* a body the CP never accepts */
    CP_PERR_NOT_REGISTERED,   /* a worker message from an unregistered peer */
    CP_PERR_COUNT
} cp_perr_t;

/* Why the CP refused an initial INVITE itself: the why= label of
 * imsplit_cp_invites_rejected_total and of the event=invite_rejected log
 * line. */
typedef enum {
    CP_REJ_NO_OFFER,      /* 488: no application/sdp body */
    CP_REJ_BAD_OFFER,     /* 488: no usable MSRP offer */
    CP_REJ_INTERVAL,      /* 422: Session-Expires below --min-se */
    CP_REJ_MAX_SESSIONS,  /* 503: --max-sessions reached */
    CP_REJ_MAX_PENDING,   /* 503: --max-pending set-ups in progress */
    CP_REJ_NO_LIVE_WORKER,/* 503: no worker takes new sessions */
    CP_REJ_SHUTTING_DOWN, /* 503: SIGTERM received */
    CP_REJ_COUNT
} cp_reject_t;

/* Why a message to a worker could not be queued: the why= label of
 * imsplit_cp_ctl_send_failed_total. */
typedef enum {
    CP_SENDFAIL_QUEUE_FULL,  /* the worker's queue is at --ctl-hwm */
    CP_SENDFAIL_UNROUTABLE,  /* no connection with that routing id */
    CP_SENDFAIL_OTHER,
    CP_SENDFAIL_COUNT
} cp_sendfail_t;

/* SIP response directions (label direction=). */
typedef enum { CP_SIP_SENT = 0, CP_SIP_RECEIVED = 1 } cp_sip_way_t;

/* Status codes with a series of their own; any other code is counted in
 * its class ("1xx" .. "6xx"). */
#define CP_SIP_CODES                                                          \
    100, 180, 183, 200, 400, 403, 404, 405, 408, 415, 420, 422, 480, 481,     \
        486, 487, 488, 491, 500, 501, 502, 503, 504, 603
#define CP_SIP_CODE_COUNT 24
#define CP_SIP_SLOTS (CP_SIP_CODE_COUNT + 6)

/* Most per-worker series of each family: beyond it, a worker works but
 * has no imsplit_cp_worker_* series (and event=metrics_worker_cap is
 * logged once). */
#define CP_METRICS_MAX_WORKERS 1024

struct cp_metrics {
    im_metrics_t *reg;
    im_metric_t *sessions_active;
    im_metric_t *sessions_total;
    im_metric_t *session_timer_expired_total;
    im_metric_t *bye_sent_total[2];      /* [CP_DIR_CLIENT], [CP_DIR_CONTROLLING] */
    im_metric_t *releases_sent_total[2];
    im_metric_t *releases_pending;
    im_metric_t *byes_in_flight;         /* BYE transactions open */
    im_metric_t *byes_queued;            /* BYEs waiting for the window */
    im_metric_t *workers[3];             /* live, draining, dead */
    im_metric_t *refreshes_sent_total;
    im_metric_t *refreshes_received_total;
    im_metric_t *sessions_pending;
    im_metric_t *invites_rejected_total[CP_REJ_COUNT];
    im_metric_t *ctl_send_failed_total[CP_SENDFAIL_COUNT];
    im_metric_t *protocol_errors_total[CP_PERR_COUNT];
    im_metric_t *commands_resent_total;
    im_metric_t *commands_failed_total;
    im_metric_t *sessions_worker_lost_total;
    im_metric_t *audit_mismatches_total[2]; /* worker_only, cp_only */
    im_metric_t *workers_left_total;        /* Deregister received */
    im_metric_t *sip_responses_total[2][CP_SIP_SLOTS]; /* [cp_sip_way_t] */
    im_metric_t *timer_lateness_seconds;    /* histogram */
    im_metric_t *release_latency_seconds;   /* histogram */
    im_metric_t *heap_bytes[2];             /* in_use, free */
    im_metric_t *session_store_bytes;       /* the sessions' slab, mapped */
    im_metric_t *session_strings_spilled_total;
    im_metric_family_t *worker_legs;        /* {worker="ID"} */
    im_metric_family_t *worker_sessions;    /* {worker="ID"} */
    bool worker_cap_logged;
};
typedef struct cp_metrics cp_metrics_t;

cp_metrics_t *cp_metrics_new(void);
void cp_metrics_destroy(cp_metrics_t **m_p);

const char *cp_perr_name(cp_perr_t kind);
const char *cp_reject_name(cp_reject_t why);
void cp_metrics_invite_rejected(cp_metrics_t *m, cp_reject_t why);
const char *cp_sendfail_name(cp_sendfail_t why);
void cp_metrics_ctl_send_failed(cp_metrics_t *m, cp_sendfail_t why);
/* The kind for an im_proto_unpack() error (IM_PROTO_OK has none: it maps
 * to CP_PERR_MALFORMED, never used). */
cp_perr_t cp_perr_from_proto(im_proto_err_t err);
void cp_metrics_protocol_error(cp_metrics_t *m, cp_perr_t kind);

/* Counts one SIP response the CP sent or received. Codes outside 100..699
 * are not counted. */
void cp_metrics_sip_response(cp_metrics_t *m, cp_sip_way_t way, int status);
/* The label value a status is counted under ("200", "4xx"), NULL outside
 * 100..699. */
const char *cp_metrics_sip_code_label(int status, char *buf, size_t size);

/* Per-worker series. add creates them (if the worker has none yet) and
 * syncs them; sync copies the worker's reported legs and its sessions;
 * remove drops them, before the worker is freed. */
void cp_metrics_worker_add(cp_metrics_t *m, const cp_worker_t *w);
void cp_metrics_worker_sync(cp_metrics_t *m, const cp_worker_t *w);
void cp_metrics_worker_remove(cp_metrics_t *m, const char *id);

#endif
