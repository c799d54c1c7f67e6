/* up_leg: the worker's leg table.
 *
 * A leg is one direction (client or controlling) of one IM session: its MSRP
 * session id and path, the peer's path, its counters, the relay state
 * towards its peer and at most one MSRP connection. Legs are found by (session id, direction) for
 * CP commands and by MSRP session id for the first SEND of an incoming
 * connection.
 *
 * The table does not know libuv. A connection is an opaque up_conn_t owned
 * by its leg; closing one is delegated to ops.conn_close. Release is two
 * phases: up_legs_release() takes the leg out of every table, lets
 * ops.released drop its relay state, frees its buffers and starts closing its
 * connection at once (the gauges drop in the same call); the leg's memory goes only when the connection's owner reports
 * up_legs_conn_closed(), so a close callback never meets a freed leg.
 *
 * Ownership: the table owns every leg; pointers returned by find/allocate
 * are valid until the leg is released or the table destroyed. Across an
 * asynchronous boundary keep (session id, direction), not the pointer. */
#ifndef UP_LEG_H
#define UP_LEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "im_msrp_uri.h"

/* Length of the MSRP session ids the worker generates. */
#define UP_LEG_MSRP_ID_LEN 20
#define UP_LEG_PATH_MAX 128
/* Longest peer path (a=path) a leg accepts. */
#define UP_LEG_PEER_PATH_MAX 1024
/* Longest Call-ID kept on a leg; a longer one is cut (and compared cut). */
#define UP_LEG_CALL_ID_MAX 256

typedef enum {
    UP_DIR_CLIENT = 0,
    UP_DIR_CONTROLLING = 1,
} up_dir_t;

#define UP_DIR_COUNT 2

typedef struct up_conn up_conn_t;
typedef struct up_legs up_legs_t;
/* A forwarded SEND waiting for its answer; up_msrp's. */
typedef struct up_txn up_txn_t;

typedef struct {
    uint64_t bytes_in;  /* bytes received from this leg's peer */
    uint64_t bytes_out; /* bytes written to this leg's peer */
    uint64_t msgs_in;   /* SEND requests received from this leg's peer */
    uint64_t msgs_out;  /* SEND requests sent to this leg's peer */
} up_leg_counters_t;

typedef struct up_leg {
    uint64_t session_id;
    up_dir_t dir;
    uint64_t cp_epoch; /* epoch of the CP that allocated the leg */
    char *call_id;     /* owned; the session's Call-ID, NULL if none given */
    char msrp_id[UP_LEG_MSRP_ID_LEN + 1];
    char path[UP_LEG_PATH_MAX];
    char *peer_path; /* owned; NULL until ConnectLeg */
    up_leg_counters_t counters;
    /* Complete frames (answers, REPORTs) for this leg's peer that must wait
     * while a frame forwarded to it is still open (frames never interleave
     * on a connection), or until the end of the loop turn. Allocated on
     * first use, freed once sent; grows up to the table's limit. */
    uint8_t *buf;
    size_t buf_len;
    size_t buf_cap;
    size_t buf_frames;
    /* Bytes held for this leg elsewhere (its connection's partial input
     * and writes in flight), counted in the table's buffer bytes. */
    size_t held;
    bool out_open;    /* a frame forwarded to this leg has begun, not ended */
    /* Its buffer also holds frames that wait for the end of the loop turn
     * (up_msrp batches a turn's answers into one write). */
    bool deferred;
    bool unreachable; /* no connection for longer than the wait limit */
    up_txn_t *txns;   /* oldest first; owned by up_msrp (ops.released) */
    size_t ntxns;
    up_conn_t *conn; /* owned; NULL when the leg has no connection */
    /* Table internals. */
    struct up_leg *next_key;
    struct up_leg *next_msrp;
    struct up_leg *prev_all;
    struct up_leg *next_all;
    unsigned closes_pending;
    bool released;
} up_leg_t;

typedef struct {
    /* Starts closing conn, owned by a leg being released. The owner of the
     * connection must call up_legs_conn_closed(t, leg) once it is closed;
     * it must not call back into the table before returning. */
    void (*conn_close)(up_conn_t *conn, void *arg);
    /* The leg has just left the tables (leg->released is set, its buffer
     * and connection are still there): drop its relay state (txns) and
     * tell the other direction. May be NULL. Must not release legs. */
    void (*released)(up_leg_t *leg, void *arg);
} up_leg_ops_t;

/* A table for at most `capacity` legs whose buffers, allocated on first
 * use, start at buf_start bytes and never exceed buf_max. `ops` may be NULL
 * when no connection is ever attached. NULL on allocation failure or invalid sizes. */
up_legs_t *up_legs_new(uint32_t capacity, size_t buf_start, size_t buf_max,
                       const up_leg_ops_t *ops, void *ops_arg);
/* Frees the table and every leg still in it, released or not, without
 * calling ops: release everything and let the connections close first.
 * NULL-safe; sets *t_p to NULL. */
void up_legs_destroy(up_legs_t **t_p);

/* Creates the leg (session_id, dir) with a fresh random MSRP session id,
 * the path msrp://host:port/ID;tcp and a copy of call_id (may be NULL or
 * empty; cut at UP_LEG_CALL_ID_MAX). If the leg exists already it is
 * returned unchanged (*created false) whatever cp_epoch and call_id say:
 * up_leg_same_owner() tells whether the caller asked for that leg.
 * Returns 0, -ENOSPC (capacity reached), -EINVAL (bad host/port) or
 * -ENOMEM. */
int up_legs_allocate(up_legs_t *t, uint64_t session_id, up_dir_t dir,
                     uint64_t cp_epoch, const char *call_id, const char *host,
                     unsigned port, up_leg_t **out, bool *created);

/* True if the leg was allocated by the CP epoch cp_epoch for call_id (NULL
 * and "" are the same; compared as stored, i.e. cut). */
bool up_leg_same_owner(const up_leg_t *leg, uint64_t cp_epoch,
                       const char *call_id);

up_leg_t *up_legs_find(const up_legs_t *t, uint64_t session_id, up_dir_t dir);
up_leg_t *up_legs_find_msrp(const up_legs_t *t, const char *msrp_id,
                            size_t len);

/* Stores a copy of the peer's path. 0, -EINVAL (empty or too long) or
 * -ENOMEM. */
int up_leg_set_peer_path(up_leg_t *leg, const char *path);

/* Releases the leg (see the header comment). *out (may be NULL) gets its
 * final counters. Returns 0, or -ENOENT for an unknown or already released
 * leg. */
int up_legs_release(up_legs_t *t, uint64_t session_id, up_dir_t dir,
                    up_leg_counters_t *out);

/* Called for each leg just before it is released in bulk. */
typedef void up_leg_visit_cb(const up_leg_t *leg, void *arg);

/* Releases every leg allocated under another CP epoch than keep_epoch;
 * `cb` (may be NULL) sees each one first. Returns how many. */
size_t up_legs_release_stale(up_legs_t *t, uint64_t keep_epoch,
                             up_leg_visit_cb *cb, void *arg);
/* Releases every leg; `cb` as above. Returns how many. */
size_t up_legs_release_all(up_legs_t *t, up_leg_visit_cb *cb, void *arg);

/* Visits every live leg; cb must not release or allocate. */
void up_legs_foreach(const up_legs_t *t, up_leg_visit_cb *cb, void *arg);

/* Gives conn to the leg, which must have none: -EBUSY otherwise. */
int up_legs_attach_conn(up_legs_t *t, up_leg_t *leg, up_conn_t *conn);
/* Takes the connection away from the leg (its peer went, or it failed);
 * the caller closes it and the leg no longer hears of it. */
void up_legs_detach_conn(up_legs_t *t, up_leg_t *leg);
/* A connection closed through ops.conn_close has finished closing. */
void up_legs_conn_closed(up_legs_t *t, up_leg_t *leg);

/* Makes the leg's buffer at least `need` bytes. 0, -ENOBUFS (beyond the
 * table's limit, or a released leg) or -ENOMEM. */
int up_legs_buf_reserve(up_legs_t *t, up_leg_t *leg, size_t need);
/* Frees the leg's buffer (empty or not), so an idle leg holds none. */
void up_legs_buf_free(up_legs_t *t, up_leg_t *leg);
/* Counts bytes held for the leg outside the table (delta may be negative).
 * Ignored for a released leg: its share left the count on release. */
void up_legs_account(up_legs_t *t, up_leg_t *leg, int64_t delta);

size_t up_legs_count(const up_legs_t *t);
uint32_t up_legs_capacity(const up_legs_t *t);
size_t up_legs_sockets(const up_legs_t *t);
/* Bytes currently allocated in leg buffers and held for legs. */
size_t up_legs_buffer_bytes(const up_legs_t *t);
/* Released legs still waiting for their connection to finish closing. */
size_t up_legs_zombies(const up_legs_t *t);

const char *up_dir_name(up_dir_t dir);

/* Fills buf with n random characters from [A-Za-z0-9] and a final NUL
 * (buf holds n + 1). 0 or -errno from getrandom(). */
int up_leg_random_id(char *buf, size_t n);

#endif
