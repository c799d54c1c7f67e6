/* cp_pool: the workers known to the CP, their liveness and their load.
 *
 * A worker is identified by its node id, which is also its ZeroMQ routing
 * id. It is live while messages keep arriving from it; dead when it missed
 * `liveness` heartbeat intervals; a worker that registers again with a new
 * epoch has restarted and lost its legs. Dead workers stay listed (for
 * operators and metrics) until they register again. */
#ifndef CP_POOL_H
#define CP_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "im_timer.h"

#define CP_WORKER_ID_MAX 64

typedef enum {
    CP_WORKER_LIVE = 0,
    CP_WORKER_DRAINING = 1,
    CP_WORKER_DEAD = 2,
} cp_worker_state_t;

typedef struct cp_worker {
    char id[CP_WORKER_ID_MAX];
    uint64_t epoch;
    cp_worker_state_t state;
    char msrp_address[96];
    uint32_t capacity;
    uint32_t legs_active; /* as last reported by the worker */
    uint32_t sockets_open;
    uint64_t buffer_bytes;
    uint32_t sessions;    /* sessions the CP has placed on it */
    uint64_t last_seen_ms;
    im_timer_t liveness;  /* fires when the worker has been silent too long */
    uint64_t audit_seq;   /* Audit in flight (0: none) */
    struct cp_worker *next;
} cp_worker_t;

typedef struct cp_pool cp_pool_t;

cp_pool_t *cp_pool_new(void);
void cp_pool_destroy(cp_pool_t **pool_p);

cp_worker_t *cp_pool_find(const cp_pool_t *pool, const char *id);

/* Adds or refreshes a worker on Register. *restarted is set when the worker
 * was known with another epoch (its legs are gone), or came back from dead.
 * A new epoch is live; the same epoch keeps draining if it was. NULL on
 * allocation failure or an id that does not fit. The liveness timer of a
 * new worker is initialised with no callback: the caller sets it. */
cp_worker_t *cp_pool_register(cp_pool_t *pool, const char *id, uint64_t epoch,
                              const char *msrp_address, uint32_t capacity,
                              uint64_t now_ms, bool *restarted);

/* The live, non-draining worker with the fewest sessions (ties: fewest
 * legs reported), with room below its capacity; NULL if none. */
cp_worker_t *cp_pool_pick(const cp_pool_t *pool);

/* Counts of workers by state, indexed by cp_worker_state_t. */
void cp_pool_count(const cp_pool_t *pool, size_t counts[3]);

/* Unlinks and frees a worker (its timer must not be armed). */
void cp_pool_remove(cp_pool_t *pool, cp_worker_t *w);

void cp_pool_foreach(cp_pool_t *pool, void (*fn)(cp_worker_t *w, void *arg),
                     void *arg);
size_t cp_pool_size(const cp_pool_t *pool);

const char *cp_worker_state_name(cp_worker_state_t st);

#endif
