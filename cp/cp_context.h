/* cp_context: the control plane's configuration and the object that owns
 * every long-lived resource of the process (su_root, NTA agent, timer wheel,
 * ZeroMQ socket, metrics, worker pool, session table).
 *
 * One cp_context_t exists per process; it is passed explicitly. Teardown runs
 * in reverse order of creation (cp_context_destroy). */
#ifndef CP_CONTEXT_H
#define CP_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_st.h"
#include "im_config.h"
#include "im_log.h"
#include "im_timer.h"

typedef struct {
    im_strlist_t sip;         /* "udp:127.0.0.1:5060", "tcp:..." */
    const char *ctl;          /* ROUTER endpoint the workers connect to */
    const char *next_hop;     /* SIP URI for controlling-leg INVITEs */
    uint32_t session_expires; /* seconds */
    uint32_t min_se;          /* seconds */
    const char *metrics;      /* host:port, NULL = off */
    uint32_t sip_t1;          /* ms */
    uint32_t heartbeat_ms;
    uint32_t liveness;        /* missed heartbeats before a worker is dead */
    uint32_t max_sessions;
    uint32_t max_pending;     /* set-ups in progress above which: 503 */
    uint32_t ctl_hwm;         /* messages queued per worker (ZMQ SNDHWM) */
    uint32_t heap_trim_mb; /* free MiB in the heap that trigger a trim; 0: off */
    uint32_t bye_window;         /* BYE transactions in flight at most */
    uint32_t command_timeout_ms; /* resend an unanswered command after this */
    uint32_t command_tries;      /* give up after this many sends */
    uint32_t audit_ms;           /* leg inventory audit period, 0 = off */
    uint32_t shutdown_grace_ms;  /* SIGTERM: wait this long for the BYEs */
    const char *curve_secret;    /* CURVE on: the CP's secret key (arg) */
    im_strlist_t curve_allow;    /* client public keys admitted (args) */
    const char *log_level;
    const char *node_id;
    bool help;
} cp_config_t;

/* Fills cfg with defaults, then flags, then IMSPLIT_* environment. Returns 0
 * or -EINVAL (message in err). */
int cp_config_load(cp_config_t *cfg, int argc, char **argv, char *err,
                   size_t err_size);
void cp_config_usage(const char *prog);
void cp_config_release(cp_config_t *cfg);

struct su_root_s;
struct nta_agent_s;
typedef struct cp_metrics cp_metrics_t;
typedef struct cp_pool cp_pool_t;
typedef struct cp_sessions cp_sessions_t;
typedef struct cp_path cp_path_t;
typedef struct cp_timer_driver cp_timer_driver_t;

typedef struct cp_context {
    cp_config_t cfg;
    cp_st_config_t st;
    uint64_t epoch;
    struct su_root_s *root;
    struct nta_agent_s *agent;
    im_wheel_t *wheel;
    cp_timer_driver_t *timers;
    cp_metrics_t *metrics;
    cp_pool_t *pool;
    cp_sessions_t *sessions;
    cp_path_t *path;
    im_timer_t heartbeat_timer; /* heartbeats to workers, gauges */
    im_timer_t audit_timer;     /* periodic leg audits */
    uint64_t heap_trimmed_ms;   /* when the heap was last trimmed */
    bool stopping;
} cp_context_t;

#endif
