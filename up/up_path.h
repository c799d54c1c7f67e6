/* up_path: the worker's end of the control channel, a ZeroMQ DEALER to the
 * CP's ROUTER, watched by the libuv loop.
 *
 * ZMQ_FD signals edges of ZeroMQ's internal state, not readable bytes: each
 * wake-up reads until ZMQ_EVENTS shows nothing waiting, and any send made
 * outside that read loop schedules one more check on the next loop turn
 * (a send may consume the edge that announced pending input). Frames are
 * handed to up_handler_frame(). */
#ifndef UP_PATH_H
#define UP_PATH_H

#include "im_proto.h"
#include "up_context.h"

typedef struct up_path up_path_t;

/* Connects to cfg.cp with routing id cfg.id and starts watching the socket
 * in ctx->loop. NULL on error (logged). */
up_path_t *up_path_new(up_context_t *ctx);
/* Phase one of the teardown: stops watching and closes the libuv handles.
 * Idempotent, NULL-safe. Nothing is received or sent afterwards. */
void up_path_close(up_path_t *p);
/* Phase two, after a loop run completed the closes: closes the ZeroMQ
 * socket and context and frees. NULL-safe; sets *p_p to NULL. */
void up_path_destroy(up_path_t **p_p);

/* Fills the envelope header (version, sender id, epoch, next seq) and sends
 * env without blocking; reply_to is left as the caller set it.
 * Returns 0 or -errno (-EAGAIN when the queue to the CP is full). */
int up_path_send(up_path_t *p, im_env_t *env);

#endif
