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
/* Release by ids alone: also used for legs no session owns any more. */
uint64_t cp_build_release(cp_context_t *ctx, const char *worker,
                          uint64_t session_id, cp_dir_t dir, int reason,
                          int cause);

/* Protocol Direction value for a cp_dir_t, and back (-1 if invalid). */
int cp_build_direction(cp_dir_t dir);
int cp_build_dir_from_proto(int direction);

#endif
