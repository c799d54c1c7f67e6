/* cp_handler: decodes control-channel frames and acts on them (worker
 * registration and liveness, command results, leg events, operator
 * queries). */
#ifndef CP_HANDLER_H
#define CP_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_context.h"
#include "cp_path.h"
#include "cp_pool.h"
#include "im_proto.h"

/* One ZeroMQ message from a peer: its routing id and its single frame. */
void cp_handler_frame(cp_context_t *ctx, const void *peer, size_t peer_len,
                      const void *data, size_t len);

/* Takes the pending command that a result from w answers (reply_to) out
 * of the store, if it is a command of kind `command` (an
 * IMSPLIT__V1__ENVELOPE__BODY_* value): a result naming another command's
 * seq completes nothing and is counted as a protocol error. False when
 * there is no such command (unknown, answered already, or another kind). */
bool cp_handler_complete(cp_context_t *ctx, const cp_worker_t *w,
                         const im_env_t *env, int command, cp_cmd_info_t *info);

/* A command was sent command_tries times without a result. */
void cp_handler_command_failed(cp_context_t *ctx, const cp_cmd_info_t *info);

/* Starts the heartbeat/liveness tick; stop before the context goes. */
int cp_handler_start(cp_context_t *ctx);
void cp_handler_stop(cp_context_t *ctx);

/* Sends env (header filled by cp_path) as the answer to reply_to. */
void cp_handler_reply(cp_context_t *ctx, const void *peer, size_t peer_len,
                      uint64_t reply_to, im_env_t *env);
void cp_handler_error(cp_context_t *ctx, const void *peer, size_t peer_len,
                      uint64_t reply_to, int code, const char *msg);

/* Recomputes gauges derived from tables (sessions, workers by state). */
void cp_handler_update_gauges(cp_context_t *ctx);
/* Once per heartbeat: heap gauges, and the heap trimmed when
 * --heap-trim-mb are free (at most every 2 s; see im_heap.h). */
void cp_handler_heap_tick(cp_context_t *ctx);

#endif
