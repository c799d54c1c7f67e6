/* up_build: the envelopes the worker sends to the CP. Each fills one body,
 * sends it through up_path (which sets the header) and returns 0 or -errno.
 * Results carry reply_to = the seq of the command they answer.
 *
 * Functions taking `keep` (may be NULL) hand back the packed bytes as
 * up_path_send() does: results for the result cache, LegEvents for their
 * resends until acknowledged. */
#ifndef UP_BUILD_H
#define UP_BUILD_H

#include <stdint.h>

#include "up_context.h"
#include "up_leg.h"
#include "up_path.h"

/* Most LegRefs in one Inventory message. */
#define UP_BUILD_INVENTORY_PAGE 4096

/* Protocol Direction value for an up_dir_t, and back (-1 if invalid). */
int up_build_direction(up_dir_t dir);
int up_build_dir_from_proto(int direction);

int up_build_register(up_context_t *ctx);
int up_build_heartbeat(up_context_t *ctx);
/* Deregister{reason}: the worker leaves on purpose. */
int up_build_deregister(up_context_t *ctx, const char *reason);
int up_build_allocate_result(up_context_t *ctx, up_sent_t *keep,
                             uint64_t reply_to, int status,
                             uint64_t session_id, int direction,
                             const char *path);
int up_build_connect_result(up_context_t *ctx, up_sent_t *keep,
                            uint64_t reply_to, int status,
                            uint64_t session_id, int direction);
int up_build_release_result(up_context_t *ctx, up_sent_t *keep,
                            uint64_t reply_to, int status,
                            uint64_t session_id, int direction,
                            const up_leg_counters_t *counters);
int up_build_drain_result(up_context_t *ctx, up_sent_t *keep,
                          uint64_t reply_to, int status);
/* Inventory of the live legs in messages of at most
 * UP_BUILD_INVENTORY_PAGE legs, part 0, 1, ..., the final one with
 * last=true (no legs: one empty message with last=true). *parts (may be
 * NULL) gets how many were sent. Returns 0 or the first send error (the
 * parts after it are still sent). */
int up_build_inventory(up_context_t *ctx, uint64_t reply_to,
                       uint32_t *parts);
int up_build_error(up_context_t *ctx, uint64_t reply_to, int code,
                   const char *message);
/* LegEvent{kind} for a leg, with its counters so far. */
int up_build_leg_event(up_context_t *ctx, up_sent_t *keep,
                       const up_leg_t *leg, int kind);

#endif
