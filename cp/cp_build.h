/* cp_build: the commands the CP sends to workers, built from a session.
 * Each returns the command's seq (kept by cp_path until its result), or 0
 * when it could not be sent (unknown or unreachable worker). */
#ifndef CP_BUILD_H
#define CP_BUILD_H

#include <stdint.h>

#include "cp_context.h"
#include "cp_session.h"

uint64_t cp_build_allocate(cp_context_t *ctx, const cp_session_t *s,
                           cp_dir_t dir);
uint64_t cp_build_connect(cp_context_t *ctx, const cp_session_t *s,
                          cp_dir_t dir);
/* Release of a session's leg; its result is routed to the session. */
uint64_t cp_build_release(cp_context_t *ctx, const char *worker,
                          uint64_t session_id, cp_dir_t dir, int reason,
                          int cause);

/* Releases a leg no session owns (an allocation answered too late, or one
 * only the worker's inventory lists): its result is not routed to any
 * session. reason is also sent as the cause. */
uint64_t cp_build_release_orphan(cp_context_t *ctx, const char *worker,
                                 uint64_t session_id, cp_dir_t dir,
                                 int reason);

/* Audit (list your legs) and Drain, as at-least-once commands. */
uint64_t cp_build_audit(cp_context_t *ctx, const char *worker);
uint64_t cp_build_drain(cp_context_t *ctx, const char *worker);

/* Protocol Direction value for a cp_dir_t, and back (-1 if invalid). */
int cp_build_direction(cp_dir_t dir);
int cp_build_dir_from_proto(int direction);

#endif
