/* cp_workers: the life of a worker as the CP sees it.
 *
 * - Registration: a worker (re)registers with its node id and epoch; a new
 *   epoch, or a worker the CP had declared dead, has lost its legs and the
 *   sessions placed on it end. Every registration is followed by an audit.
 * - Liveness (Paranoid Pirate, both ways): the CP heartbeats every live
 *   worker each heartbeat_ms, and declares a worker dead when nothing came
 *   from it for liveness x heartbeat_ms. Each worker has its own deadline
 *   timer, so a failure is seen at that instant, not at the next tick.
 * - Drain: an operator's Drain stops new sessions on a worker and is passed
 *   on to it; a worker that leaves (Deregister) is forgotten.
 * - Audit: the CP asks a worker for its leg inventory (after registering and
 *   every audit_ms) and compares: a leg only the worker holds is released; a
 *   leg only the CP holds ends its session (BYE both legs). */
#ifndef CP_WORKERS_H
#define CP_WORKERS_H

#include <stddef.h>

#include "cp_context.h"
#include "cp_session.h"
#include "cp_pool.h"
#include "im_proto.h"

void cp_workers_on_register(cp_context_t *ctx, const char *peer_id,
                            const void *peer, size_t peer_len,
                            const im_env_t *env);
void cp_workers_on_heartbeat(cp_context_t *ctx, cp_worker_t *w,
                             const im_env_t *env);
/* Drain asked for by an operator (imsplit-ctl): answered with DrainResult. */
void cp_workers_on_drain_request(cp_context_t *ctx, const void *peer,
                                 size_t peer_len, const im_env_t *env);
void cp_workers_on_drain_result(cp_context_t *ctx, cp_worker_t *w,
                                const im_env_t *env);
/* The worker leaves on purpose; w is freed. */
void cp_workers_on_deregister(cp_context_t *ctx, cp_worker_t *w,
                              const im_env_t *env);
void cp_workers_on_inventory(cp_context_t *ctx, cp_worker_t *w,
                             const im_env_t *env);
/* An Audit got no inventory after every try: the next one may go. */
void cp_workers_audit_failed(cp_context_t *ctx, const char *worker);

/* Starts the heartbeat and audit timers; stop before the context goes. */
/* ReleaseLeg for one direction of s, sent to its worker if that worker is
 * still known and not dead: 0, or -EHOSTUNREACH (nothing to release
 * there; the caller treats the direction as released). */
int cp_workers_release_leg(cp_context_t *ctx, const cp_session_t *s,
                           cp_dir_t dir, int reason);
/* A closed session leaves its worker's count and the session table (it is
 * freed later, by whoever owns its remaining objects). */
void cp_workers_session_closed(cp_context_t *ctx, cp_session_t *s);

void cp_workers_start(cp_context_t *ctx);
void cp_workers_stop(cp_context_t *ctx);

#endif
