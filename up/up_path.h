/* up_path: the worker's end of the control channel, a ZeroMQ DEALER to the
 * CP's ROUTER, watched by the libuv loop.
 *
 * ZMQ_FD signals edges of ZeroMQ's internal state, not readable bytes: each
 * wake-up reads until ZMQ_EVENTS shows nothing waiting, and any send made
 * outside that read loop schedules one more check on the next loop turn
 * (a send may consume the edge that announced pending input). Frames are
 * handed to up_handler_frame().
 *
 * The DEALER can be replaced while the path lives (up_path_reconnect):
 * whatever the old socket still queued in either direction is dropped, and
 * the sequence numbers go on where they were (one sender epoch per
 * process). */
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

/* The packed bytes of a message sent, kept for sending again. The holder
 * owns `bytes` and releases them with up_sent_clear(). */
typedef struct {
    uint8_t *bytes;
    size_t len;
    uint64_t seq;
} up_sent_t;

/* Frees the bytes and zeroes the struct. NULL-safe. */
void up_sent_clear(up_sent_t *s);

/* Fills the envelope header (version, sender id, epoch, next seq) and sends
 * env without blocking; reply_to is left as the caller set it. When keep is
 * not NULL it receives the packed bytes and their seq whenever packing
 * succeeded, even if the send itself failed (a resend may still get them
 * through); keep must be empty on entry.
 * Returns 0 or -errno (-EAGAIN when the queue to the CP is full). */
int up_path_send(up_path_t *p, im_env_t *env, up_sent_t *keep);
/* Sends bytes packed earlier, unchanged (same seq and reply_to).
 * Returns 0 or -errno. */
int up_path_resend(up_path_t *p, const uint8_t *bytes, size_t len);

/* Closes the DEALER and connects a new one with the same routing id, so
 * nothing queued for or from a silent CP survives, and watches the new
 * socket. On failure (logged) the path has no socket: sends fail with
 * -ENOTCONN until a later call succeeds. Returns 0 or -errno. */
int up_path_reconnect(up_path_t *p);

/* How long closing the socket may wait for queued messages to leave (the
 * last words to the CP before exit). Returns 0 or -errno. */
int up_path_set_linger(up_path_t *p, int linger_ms);

#endif
