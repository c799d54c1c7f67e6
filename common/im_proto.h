/* im_proto: the CP-UP envelope codec (proto/imsplit.proto) with validation.
 *
 * Decoding never trusts the peer: an empty, truncated or oversize frame, an
 * unknown major version or an envelope without a body is rejected with an
 * error code and a message for the log line; unknown fields are ignored
 * (protobuf semantics). */
#ifndef IM_PROTO_H
#define IM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "imsplit.pb-c.h"

#define IM_PROTO_MAJOR 1u
#define IM_PROTO_MINOR 1u
/* Largest frame either side accepts (also ZMQ_MAXMSGSIZE). */
#define IM_PROTO_MAX_FRAME (256 * 1024)

typedef Imsplit__V1__Envelope im_env_t;

typedef enum {
    IM_PROTO_OK = 0,
    IM_PROTO_EMPTY,       /* zero-length frame */
    IM_PROTO_OVERSIZE,    /* larger than IM_PROTO_MAX_FRAME */
    IM_PROTO_MALFORMED,   /* protobuf-c could not unpack it (truncated, bad) */
    IM_PROTO_VERSION,     /* major != IM_PROTO_MAJOR */
    IM_PROTO_NO_BODY,     /* body not set, or a body number we do not know */
    IM_PROTO_BAD_FIELD,   /* a required field missing or out of range */
} im_proto_err_t;

/* Stable short name for metrics labels and logs: "ok", "empty", ... */
const char *im_proto_err_name(im_proto_err_t err);
/* Body name for logs: "allocate_leg", ... ("none" when not set). */
const char *im_proto_body_name(int body_case);
const char *im_proto_direction_name(int direction); /* "client"/"controlling" */
const char *im_proto_reason_name(int reason);       /* "session_timer_expired".. */
const char *im_proto_status_name(int status);       /* "ok", "not_found", .. */

/* Fills the envelope header; body_case and body pointer are set by caller. */
void im_env_init(im_env_t *env, const char *sender_id, uint64_t epoch,
                 uint64_t seq);

/* Serializes env into a new malloc'd buffer (*out, *len); caller frees.
 * Returns 0 or -ENOMEM. */
int im_proto_pack(const im_env_t *env, uint8_t **out, size_t *len);

/* Decodes and validates a frame. On IM_PROTO_OK *out holds an envelope the
 * caller frees with im_proto_free(). On IM_PROTO_VERSION *out is still set
 * (so the caller can answer the sender with an ErrorReply); otherwise *out is
 * NULL. `why` (may be NULL) gets a human-readable reason. Validation checks
 * the fields each body needs (direction set on leg bodies, node_id on
 * Register, ...). */
im_proto_err_t im_proto_unpack(const uint8_t *data, size_t len, im_env_t **out,
                               char *why, size_t why_size);
void im_proto_free(im_env_t *env);

/* Renders an envelope as one line of JSON (for imsplit-ctl and debug logs).
 * Returns a malloc'd string, NULL on allocation failure. */
char *im_proto_to_json(const im_env_t *env);

#endif
