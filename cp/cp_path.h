/* cp_path: the CP's end of the control channel (ZeroMQ ROUTER in su_root)
 * and its at-least-once command store.
 *
 * A command (AllocateLeg, ConnectLeg, ReleaseLeg, ...) is packed once, kept
 * with its bytes, and resent unchanged every command_timeout_ms until the
 * result whose reply_to equals its seq arrives, or command_tries sends have
 * been made; then cp_handler_command_failed() is told. Other messages
 * (acks, heartbeats, query results) are sent once. */
#ifndef CP_PATH_H
#define CP_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_context.h"
#include "im_proto.h"

typedef struct cp_path cp_path_t;

/* What a pending command was about, handed back when it completes or
 * fails. */
typedef struct {
    uint64_t seq;
    int body_case;       /* IMSPLIT__V1__ENVELOPE__BODY_* of the command */
    uint64_t session_id;
    int dir;             /* cp_dir_t */
    char worker[64];
    uint64_t sent_us;    /* first send, im_clock_us() */
} cp_cmd_info_t;

/* Binds the ROUTER on cfg.ctl and registers it in ctx->root. */
cp_path_t *cp_path_new(cp_context_t *ctx);
void cp_path_destroy(cp_path_t **p_p);

/* Fills the envelope header (sender, epoch, next seq), sends env to worker
 * and keeps it for resending. Returns the seq, or 0 if it could not be
 * packed or the worker is unreachable right now (no route). */
uint64_t cp_path_command(cp_path_t *p, const char *worker, im_env_t *env,
                         uint64_t session_id, int dir);

/* Sends a message that expects no result, to a peer routing id. The header
 * is filled here; reply_to is left as the caller set it. 0 or -errno. */
int cp_path_send(cp_path_t *p, const void *peer, size_t peer_len,
                 im_env_t *env);

/* Takes the pending command answered by (worker, reply_to) out of the
 * store. Returns false for an unknown or already answered seq (a duplicate
 * result, or one for a command already given up). */
bool cp_path_complete(cp_path_t *p, const char *worker, uint64_t reply_to,
                      cp_cmd_info_t *out);

/* Like cp_path_complete, but leaves the command pending (an answer in
 * several parts: Inventory pages before the last). */
bool cp_path_peek(const cp_path_t *p, const char *worker, uint64_t reply_to,
                  cp_cmd_info_t *out);

/* Drops every pending command to a worker (it died); nothing is called. */
void cp_path_forget_worker(cp_path_t *p, const char *worker);

size_t cp_path_pending(const cp_path_t *p);
/* The seq of the last message sent (0: none yet). */
uint64_t cp_path_last_seq(const cp_path_t *p);
/* Pending ReleaseLeg commands (for imsplit_cp_releases_pending). */
size_t cp_path_pending_releases(const cp_path_t *p);

#endif
