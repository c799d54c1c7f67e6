/* up_build: the envelopes the worker sends to the CP. Each fills one body,
 * sends it through up_path (which sets the header) and returns 0 or -errno.
 * Results carry reply_to = the seq of the command they answer. */
#ifndef UP_BUILD_H
#define UP_BUILD_H

#include <stdint.h>

#include "up_context.h"
#include "up_leg.h"

/* Protocol Direction value for an up_dir_t, and back (-1 if invalid). */
int up_build_direction(up_dir_t dir);
int up_build_dir_from_proto(int direction);

int up_build_register(up_context_t *ctx);
int up_build_heartbeat(up_context_t *ctx);
int up_build_allocate_result(up_context_t *ctx, uint64_t reply_to, int status,
                             uint64_t session_id, int direction,
                             const char *path);
int up_build_connect_result(up_context_t *ctx, uint64_t reply_to, int status,
                            uint64_t session_id, int direction);
int up_build_release_result(up_context_t *ctx, uint64_t reply_to, int status,
                            uint64_t session_id, int direction,
                            const up_leg_counters_t *counters);
int up_build_drain_result(up_context_t *ctx, uint64_t reply_to, int status);
/* Inventory of the live legs (bounded to fit one frame). */
int up_build_inventory(up_context_t *ctx, uint64_t reply_to);
int up_build_error(up_context_t *ctx, uint64_t reply_to, int code,
                   const char *message);
/* LegEvent{kind} for a leg, with its counters so far. */
int up_build_leg_event(up_context_t *ctx, const up_leg_t *leg, int kind);

#endif
