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
 * under releases those legs (their CP is gone and nobody will release
 * them) and drops the LegEvents that CP never acknowledged. Leg commands
 * are accepted only from the CP epoch of the last RegisterAck. On CP
 * silence, and every liveness * heartbeat while a Register stays
 * unanswered, the control socket is replaced (up_path_reconnect); the legs
 * stay.
 *
 * AllocateLeg, ConnectLeg, ReleaseLeg and Drain are applied once per
 * (sender_id, sender_epoch, seq): a resend is answered from ctx->cache
 * with the first answer's bytes. Audit is answered afresh, in pages.
 *
 * Draining: new legs are refused; once no leg is left the worker leaves
 * through ctx->stop(ctx, "drained"), after the answer to the command that
 * released the last leg (or to the Drain itself) has been sent. */
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
/* Cancels the handler's timers and clears readiness. With a reason, and
 * while registered, sends Deregister{reason} and lets the socket's close
 * wait (bounded) for it to leave. */
void up_handler_stop(up_context_t *ctx, const char *reason);

/* Stops taking legs (as a Drain from the CP does, `by` names who asked)
 * and leaves through ctx->stop(ctx, "drained") once no leg is left, at
 * once if there is none. */
void up_handler_drain(up_context_t *ctx, const char *by);

/* Releases every leg (shutdown), one usage line each, with `reason` in the
 * log. Returns how many. */
size_t up_handler_release_all(up_context_t *ctx, const char *reason);

#endif
