/* up_context: the worker's configuration and the object that owns every
 * long-lived resource of the process (libuv loop, timing wheel, ZeroMQ
 * channel, MSRP listener, leg table, metrics) and the registration state.
 *
 * One up_context_t exists per process; it is passed explicitly. main.c
 * creates the parts in order and tears them down in two phases: close every
 * handle and run the loop until they are closed, then free. */
#ifndef UP_CONTEXT_H
#define UP_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "im_msrp_uri.h"
#include "im_timer.h"

/* Longest node id (it is the ZeroMQ routing id and the CP's key). */
#define UP_NODE_ID_MAX 63

typedef struct {
    const char *cp;        /* CP ROUTER endpoint */
    const char *id;        /* node id = ZeroMQ routing id */
    const char *msrp;      /* MSRP listen host:port, port 0 = ephemeral */
    const char *advertise; /* host written in leg paths; NULL = msrp host */
    const char *metrics;   /* host:port, NULL = off */
    uint32_t capacity;     /* max legs */
    uint32_t leg_buffer;   /* bytes queued towards a leg before its source
                              stops being read */
    uint32_t max_msg;      /* largest MSRP message relayed (413 beyond) */
    uint32_t max_unbound;  /* accepted connections waiting for their first
                              SEND; beyond, the oldest is closed */
    uint32_t txn_timeout_ms; /* a forwarded SEND unanswered this long: 408;
                                also how long a frame waits for its leg */
    uint32_t leg_idle_ms;  /* LegEvent IDLE after this long without bytes;
                              0 = off */
    uint32_t result_cache_ms;  /* a command's result is kept this long for
                                  answering its resends */
    uint32_t result_cache_max; /* most results kept (oldest go first) */
    uint32_t drain_grace_ms; /* on SIGTERM, wait this long for the legs to
                                be released before cutting them; 0: cut */
    const char *curve_server_key; /* CURVE on: the CP's public key (arg) */
    const char *curve_secret;     /* the worker's secret key (arg) */
    const char *log_level;
    bool help;
} up_config_t;

/* Fills cfg with defaults, then flags, then IMSPLIT_* environment. Returns 0
 * or -EINVAL (message in err). */
int up_config_load(up_config_t *cfg, int argc, char **argv, char *err,
                   size_t err_size);
void up_config_usage(const char *prog);

typedef enum {
    UP_REG_REGISTERING = 0, /* Register sent every second until acked */
    UP_REG_REGISTERED,      /* heartbeating; CP liveness watched */
} up_reg_state_t;

typedef struct up_metrics up_metrics_t;
typedef struct up_legs up_legs_t;
typedef struct up_path up_path_t;
typedef struct up_msrp up_msrp_t;
typedef struct up_timer_driver up_timer_driver_t;
typedef struct up_cache up_cache_t;
typedef struct up_legevents up_legevents_t;

typedef struct up_context {
    up_config_t cfg;
    uint64_t epoch; /* this process's sender_epoch */
    uv_loop_t *loop;
    im_wheel_t *wheel;
    up_timer_driver_t *timers;
    up_metrics_t *metrics;
    up_legs_t *legs;
    up_msrp_t *msrp;
    up_path_t *path;
    up_cache_t *cache;           /* results of commands, for resends */
    up_legevents_t *legevents;   /* LegEvents waiting for their ack */
    /* Where peers reach the MSRP listener: host for leg paths, bound port,
     * and "host:port" as sent in Register. */
    char advertise[IM_MSRP_HOST_MAX];
    unsigned msrp_port;
    char msrp_address[IM_MSRP_HOST_MAX + 8];

    /* Registration with the CP (up_handler). */
    up_reg_state_t reg_state;
    uint64_t cp_epoch;     /* CP the legs belong to; 0 before the first ack */
    uint32_t heartbeat_ms;
    uint32_t liveness;
    uint64_t last_rx_ms;   /* anything from the CP */
    uint64_t reg_since_ms; /* registering since, or since the last new
                              socket */
    im_timer_t reg_timer;  /* Register resend, or heartbeat + liveness */
    im_timer_t tick_timer; /* metrics loop tick */
    bool draining;
    bool stopping;
    /* Leaves the process through main's shutdown path (a drained worker);
     * set by main, NULL where nothing owns the process (tests). */
    void (*stop)(struct up_context *ctx, const char *reason);
} up_context_t;

#endif
