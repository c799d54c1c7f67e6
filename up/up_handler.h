/* up_handler: decodes control-channel frames from the CP and acts on them
 * (registration and CP liveness, leg commands, drain, audit), and owns the
 * registration state machine:
 *
 *   REGISTERING --RegisterAck--> REGISTERED
 *   REGISTERED --CP silent for liveness * heartbeat_ms, ErrorReply
 *                NOT_REGISTERED, or a message from another CP epoch-->
 *   REGISTERING
 *
 * A RegisterAck from a CP epoch other than the one the legs were allocated
 * under releases those legs: their CP is gone and nobody will release
 * them. Leg commands are accepted only from the CP epoch of the last
 * RegisterAck. */
#ifndef UP_HANDLER_H
#define UP_HANDLER_H

#include <stddef.h>

#include "up_context.h"

/* One ZeroMQ frame from the CP. Never fails: bad input is counted, logged
 * and answered with ErrorReply where possible. */
void up_handler_frame(up_context_t *ctx, const void *data, size_t len);

/* Starts registering and the metrics tick. Requires ctx->path, ->legs,
 * ->msrp, ->timers and ->metrics. */
int up_handler_start(up_context_t *ctx);
/* Cancels the handler's timers and clears readiness. */
void up_handler_stop(up_context_t *ctx);

/* Releases every leg (shutdown), one usage line each, with `reason` in the
 * log. Returns how many. */
size_t up_handler_release_all(up_context_t *ctx, const char *reason);

#endif
