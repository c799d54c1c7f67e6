/* cp_session: one IM session of the B2BUA, its two legs, and its state
 * machine.
 *
 * A session has a client leg (towards the IM Client, the CP is UAS) and a
 * controlling leg (towards the Controlling IM Function, the CP is UAC). Each
 * leg tracks its SIP dialog and its media resource on the worker separately,
 * because the two end independently: a leg's media is released exactly when
 * that leg's dialog has ended (the final response to our BYE, the peer's
 * BYE, or a failed setup), never earlier and never as a side effect of the
 * other leg.
 *
 * Every event goes through cp_session_dispatch(); the dispatch function is
 * the only place that changes `state`, and the only place that logs an
 * unexpected (state, event) pair. Side effects (SIP messages, worker
 * commands, freeing) are performed through cp_session_ops_t so that the
 * machine can be driven by tests without a SIP stack or workers.
 *
 * Ownership: the session table (cp_sessions_t) owns sessions. Asynchronous
 * completions (worker results, timers) find a session again by id; NTA
 * callbacks carry the session pointer as their magic, which is safe because
 * every NTA object of a session is destroyed (silencing its callbacks)
 * before the session is freed. */
#ifndef CP_SESSION_H
#define CP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_st.h"
#include "im_timer.h"

typedef enum { CP_DIR_CLIENT = 0, CP_DIR_CONTROLLING = 1 } cp_dir_t;
#define CP_DIR_COUNT 2

typedef enum {
    CP_SESS_ALLOCATING = 0, /* INVITE received, legs being allocated */
    CP_SESS_CALLING,        /* INVITE sent to the controlling side */
    CP_SESS_ANSWERED,       /* 2xx sent to the client, waiting for its ACK */
    CP_SESS_ESTABLISHED,
    CP_SESS_TERMINATING,    /* dialogs ending and/or media being released */
    CP_SESS_CLOSED,         /* everything released; about to be freed */
    CP_SESS_NSTATES
} cp_sess_state_t;

typedef enum {
    CP_EV_ALLOCATED = 0, /* dir: AllocateLeg succeeded */
    CP_EV_ALLOC_FAILED,  /* dir: AllocateLeg failed or was never answered */
    CP_EV_ANSWERED,      /* controlling side answered 2xx (SDP accepted) */
    CP_EV_REJECTED,      /* controlling side final non-2xx; status */
    CP_EV_CLIENT_ACK,    /* ACK for our 2xx to the client */
    CP_EV_CLIENT_NO_ACK, /* no ACK for our 2xx (RFC 3261 timer H) */
    CP_EV_CLIENT_CANCEL, /* the client cancelled its INVITE */
    CP_EV_BYE_RECEIVED,  /* dir: the peer of that leg sent BYE */
    CP_EV_TIMER_EXPIRED, /* dir: no refresh by SE - min(32, SE/3) */
    CP_EV_REFRESH_FAILED,/* dir: our refresh got 408/481/no answer */
    CP_EV_BYE_DONE,      /* dir: final response to our BYE; status */
    CP_EV_RELEASED,      /* dir: the worker acknowledged ReleaseLeg */
    CP_EV_WORKER_LOST,   /* the session's worker died or restarted */
    CP_EV_SHUTDOWN,      /* the CP is stopping */
    CP_EV_FAILED,        /* local failure (e.g. cannot build/send); status */
    CP_EV_LEG_EVENT,     /* dir: the worker saw that leg's peer close or idle */
    CP_EV_NEVENTS
} cp_sess_event_t;

typedef enum {
    CP_MEDIA_NONE = 0,   /* nothing on a worker */
    CP_MEDIA_ALLOCATING, /* AllocateLeg sent */
    CP_MEDIA_READY,      /* allocated on the worker */
    CP_MEDIA_RELEASING,  /* ReleaseLeg sent */
    CP_MEDIA_RELEASED,
} cp_media_state_t;

typedef enum {
    CP_DIALOG_NONE = 0,  /* no dialog (yet, or never: setup failed) */
    CP_DIALOG_CONFIRMED, /* dialog established */
    CP_DIALOG_BYE_SENT,  /* our BYE is in flight */
    CP_DIALOG_ENDED,
} cp_dialog_state_t;

/* Why a session ended; mirrors the protocol's ReleaseReason numbering so it
 * can travel in ReleaseLeg.cause unchanged. */
typedef enum {
    CP_CAUSE_NONE = 0,
    CP_CAUSE_SESSION_TIMER_EXPIRED = 1,
    CP_CAUSE_SETUP_FAILED = 5,
    CP_CAUSE_PEER_BYE = 6,
    CP_CAUSE_WORKER_LOST = 7,
    CP_CAUSE_ADMIN = 8,
    CP_CAUSE_LEG_EVENT = 9,
    CP_CAUSE_SHUTDOWN = 10,
} cp_cause_t;

/* ReleaseLeg.reason values used by the machine (imsplit.v1.ReleaseReason). */
enum {
    CP_REL_BYE_2XX = 2,
    CP_REL_BYE_ERROR = 3,
    CP_REL_BYE_TIMEOUT = 4,
    CP_REL_SETUP_FAILED = 5,
    CP_REL_PEER_BYE = 6,
    CP_REL_WORKER_LOST = 7,
    CP_REL_SHUTDOWN = 10,
};

struct nta_incoming_s;
struct nta_outgoing_s;

typedef struct cp_session cp_session_t;
typedef struct cp_sessions cp_sessions_t;

typedef struct cp_leg {
    cp_dir_t dir;
    cp_media_state_t media;
    cp_dialog_state_t dialog;
    bool release_wanted; /* release as soon as an allocation completes */
    int release_reason;  /* reason of the ReleaseLeg sent (for logs/tests) */

    /* SIP transactions (owned; destroyed by the SIP layer before the
     * session). */
    struct nta_outgoing_s *orq;     /* INVITE (controlling) or a refresh */
    struct nta_outgoing_s *bye;     /* our BYE */
    struct nta_incoming_s *irq;     /* client INVITE server transaction */
    const char *contact;            /* our Contact on this leg (static) */
    bool peer_allows_update;
    bool tcp;                       /* leg's SIP transport is TCP */

    /* The SIP dialog (RFC 3261 12), kept here rather than in an NTA leg:
     * the session's own block holds it (see cp_session_strdup). Our tag
     * is made of the session id, the direction and tag_nonce
     * (cp_sip), so a request finds its dialog from its To tag. */
    uint32_t tag_nonce;
    uint32_t local_cseq;  /* CSeq of the last request we sent */
    uint32_t remote_cseq; /* CSeq of the last request received; 0: none */
    char *call_id;        /* the client leg's is the session's call_id */
    char *local_uri;      /* our From, as name-addr, without tag */
    char *remote_uri;     /* our To, as name-addr, without tag */
    char *remote_tag;     /* NULL until known (controlling leg: its 2xx) */
    char *target;         /* remote target: the peer's Contact URI */
    char *route;          /* route set as a Route header value, or NULL */

    /* Media (strings in the session's store). */
    char *path;       /* worker's msrp path for this leg */
    char *peer_path;  /* the peer's a=path */
    char *peer_setup; /* the peer's effective RFC 6135 role */
    char *sdp_out;    /* SDP the CP sent on this leg (for refresh answers) */

    /* RFC 4028 (per leg). */
    cp_st_role_t st_role;
    uint32_t se;           /* negotiated interval, seconds (0: none) */
    uint64_t st_deadline;  /* ms: expiry (peer refreshes) or refresh (CP) */
    im_timer_t st_timer;
    uint32_t refresh_se;   /* SE asked for in the refresh in flight */
    bool refreshing;       /* orq is a refresh (UPDATE/re-INVITE) */

    /* BYE pacing (cp_sip): queued for the window, or counted in it. */
    struct cp_leg *bye_qnext;
    struct cp_leg **bye_qprev; /* NULL when not queued */
    bool bye_with_reason;
    bool bye_in_flight;

    /* Audit: seq of the last Audit whose inventory listed this leg. */
    uint64_t audit_seq;
} cp_leg_t;

struct cp_session {
    uint64_t id;
    cp_sess_state_t state;
    cp_cause_t cause; /* why it is terminating */
    bool cancelled;   /* client CANCEL seen before the session was answered */
    char *call_id;    /* client leg's Call-ID (for logs) */
    char worker[64];  /* node id of the worker holding both legs */
    cp_leg_t legs[CP_DIR_COUNT];

    char *client_sdp;      /* the client's offer as received, until the
                              controlling leg's offer is built from it */
    char *ctrl_sdp;        /* the controlling side's answer as received,
                              until the client leg's answer is built */
    uint32_t ctrl_se_sent; /* Session-Expires sent in the controlling INVITE */
    unsigned ctrl_422_retries;
    uint64_t created_ms;
    uint64_t ready_seq;    /* last seq the CP had sent when a leg became
                              ready: audits sent later must list it */

    cp_sessions_t *table; /* while in the table (pending count) */
    bool pending;         /* counted in the table's set-ups in progress */
    cp_session_t *hnext; /* session table chain, then the reap list */
    void *owner;         /* opaque back-pointer for the ops (cp_context_t) */

    /* The session's string store: the rest of its block. */
    uint16_t strs_used;
    uint16_t strs_size;
    char strs[];
};

/* Every session is one block of this size from the table's slab: the
 * structure, then its strings (dialogs, paths, SDP), so a session's
 * long-lived memory is one place, apart from the transactions that set it
 * up. Typical strings take about 1 KiB; what does not fit is malloc'd. */
#define CP_SESSION_BLOCK 2048

typedef struct {
    /* Sends AllocateLeg for one direction. <0: could not be sent. */
    int (*allocate)(void *ctx, cp_session_t *s, cp_dir_t dir);
    /* Sends the INVITE to the controlling side. <0 on failure. */
    int (*invite)(void *ctx, cp_session_t *s);
    /* Answers the client 2xx and connects both legs on the worker. */
    int (*answer)(void *ctx, cp_session_t *s);
    /* Final error response to the client's INVITE (if still possible). */
    void (*reject)(void *ctx, cp_session_t *s, int status);
    /* CANCELs the INVITE in flight to the controlling side. */
    void (*cancel)(void *ctx, cp_session_t *s);
    /* Sends BYE on a leg; with_reason adds the session-timer Reason.
     * <0: could not be sent (the machine then treats the BYE as failed). */
    int (*bye)(void *ctx, cp_session_t *s, cp_dir_t dir, bool with_reason);
    /* Sends ReleaseLeg for a leg. <0: the worker is unreachable. */
    int (*release)(void *ctx, cp_session_t *s, cp_dir_t dir, int reason);
    /* Stops the session timers of both legs. */
    void (*stop_timers)(void *ctx, cp_session_t *s);
    /* Everything is released: destroy SIP objects and free the session. */
    void (*closed)(void *ctx, cp_session_t *s);
} cp_session_ops_t;

const char *cp_sess_state_name(cp_sess_state_t st);
const char *cp_sess_event_name(cp_sess_event_t ev);
const char *cp_dir_name(cp_dir_t dir);
const char *cp_cause_name(cp_cause_t cause);
const char *cp_media_state_name(cp_media_state_t m);
const char *cp_dialog_state_name(cp_dialog_state_t d);

/* Release reason for the final status of our BYE (408 = timeout). */
int cp_session_bye_reason(int status);

/* Drives the machine. `dir` is meaningful for per-leg events, `status` for
 * REJECTED, BYE_DONE and FAILED. The session may be freed (ops->closed) by
 * this call: callers must not touch `s` afterwards. Returns the state
 * reached (CP_SESS_CLOSED when freed). */
cp_sess_state_t cp_session_dispatch(cp_session_t *s, cp_sess_event_t ev,
                                    cp_dir_t dir, int status,
                                    const cp_session_ops_t *ops, void *ctx);

/* Number of unexpected (state, event) pairs seen, for metrics and tests. */
uint64_t cp_session_unexpected_count(void);

/* ---- session table ---------------------------------------------------- */

cp_sessions_t *cp_sessions_new(uint64_t first_id);
/* Frees the table only; sessions still in it must have been closed. */
void cp_sessions_destroy(cp_sessions_t **t_p);

/* Creates a session in ALLOCATING with a new id, owned by the table. */
cp_session_t *cp_session_new(cp_sessions_t *t);
cp_session_t *cp_session_find(const cp_sessions_t *t, uint64_t id);
/* A copy of src (n bytes, or up to its NUL with cp_session_strdup) that
 * lives as long as the session: in its store, or malloc'd when the store
 * is full. NULL only if out of memory (or src is NULL). */
char *cp_session_strndup(cp_session_t *s, const char *src, size_t n);
char *cp_session_strdup(cp_session_t *s, const char *src);
/* Gives a string of the session back (NULL-safe). Store space is reused
 * only if it was the last string taken; the rest returns with the session. */
void cp_session_strfree(cp_session_t *s, char *p);
/* *dst = a copy of src (or NULL), the old string given back. */
void cp_session_strset(cp_session_t *s, char **dst, const char *src);
/* Strings that did not fit a session's store, since start (metrics). */
uint64_t cp_session_str_spills(void);

/* Removes from the table and frees the session's own memory (strings). The
 * SIP objects must have been destroyed by the caller. */
void cp_session_free(cp_sessions_t *t, cp_session_t **s_p);
size_t cp_sessions_count(const cp_sessions_t *t);
/* Bytes mapped for the sessions' blocks. */
size_t cp_sessions_store_bytes(const cp_sessions_t *t);
/* Sessions in the table that are being set up: from the INVITE to the
 * client's ACK (ALLOCATING, CALLING, ANSWERED), waiting on a worker or on
 * the controlling side. */
size_t cp_sessions_pending(const cp_sessions_t *t);
/* Takes a session out of the table (id lookups stop finding it) without
 * freeing it; used to reap closed sessions outside any callback. */
void cp_session_detach(cp_sessions_t *t, cp_session_t *s);

/* Calls fn for every session; fn may dispatch events that free the session
 * it is given (iteration is safe against that), but must not free others. */
void cp_sessions_foreach(cp_sessions_t *t,
                         void (*fn)(cp_session_t *s, void *arg), void *arg);
/* The same for at most `limit` sessions. */
void cp_sessions_foreach_limit(cp_sessions_t *t,
                               void (*fn)(cp_session_t *s, void *arg),
                               void *arg, size_t limit);

#endif
