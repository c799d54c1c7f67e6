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

/* ---- generic field access ------------------------------------------------
 *
 * For imsplit-ctl's scripts and for tests: fields are named by a path of
 * proto field names joined by '.', descending into message fields, with a
 * decimal index selecting an element of a repeated field:
 * "counters.bytes_in", "legs.0.session_id", "allocate_leg.call_id" (on an
 * envelope). Oneof members (the envelope's bodies) are ordinary segments;
 * setting through one selects it and frees the member selected before.
 *
 * Ownership: im_proto_set_field allocates what it stores (sub-messages,
 * repeated arrays and their elements, strings) with malloc and frees what
 * it replaces, the way protobuf-c's unpacker does. A message created with
 * im_proto_msg_new / im_env_new (or returned by im_proto_unpack) and filled
 * only through im_proto_set_field is released completely by
 * im_proto_msg_free. Never set fields of a message whose strings or
 * sub-messages point to static or stack storage (as im_env_init does). */

/* A new message of that type, every field at its default. NULL on ENOMEM. */
ProtobufCMessage *im_proto_msg_new(const ProtobufCMessageDescriptor *desc);
/* Frees a message and everything it owns (see above). NULL-safe. */
void im_proto_msg_free(ProtobufCMessage *msg);
/* A new envelope with major/minor set; free with im_proto_free. */
im_env_t *im_env_new(void);
/* Body case for a body name ("allocate_leg"), -1 for a name we do not
 * know. The inverse of im_proto_body_name. */
int im_proto_body_case(const char *name);
/* The envelope's body message, NULL when none is set. */
const ProtobufCMessage *im_env_body(const im_env_t *env);

/* Sets the field at path from its text form, creating sub-messages and
 * appending a repeated element when the index equals the current count.
 * Values: integers in decimal or 0x hex (a '-' only for signed types,
 * range-checked), bool true/false/1/0/yes/no/on/off, enums by full name
 * (STATUS_OK), by the part after an underscore that names one value only
 * (OK, ok, client, bye_2xx) or by number, bytes as hex, strings as they
 * are. A message field takes "" or "{}" (made present, fields default).
 * Returns 0, -EINVAL (unknown field, bad value, repeated field without an
 * index, index past the end; `err` says which) or -ENOMEM. On error the
 * field keeps its value, though sub-messages on the way may exist now. */
int im_proto_set_field(ProtobufCMessage *msg, const char *path,
                       const char *value, char *err, size_t errlen);

/* Renders the field at path into out: numbers in decimal, enums by full
 * name (the number if not in the schema), bools true/false, strings as
 * they are, bytes in hex, messages as JSON, a repeated field without an
 * index as its element count. Returns 1 when the value is not the proto3
 * default (non-zero, non-empty, a message present), 0 when it is, -ENOENT
 * when the path runs through a message or oneof member that is not set or
 * an index past the end (out is ""), -EINVAL for a path the schema does
 * not have, -ENOSPC when out was too small (truncated, NUL-terminated). */
int im_proto_get_field(const ProtobufCMessage *msg, const char *path, char *out,
                       size_t outlen);

/* Checks that path names a field of messages of type desc (indices are not
 * range-checked). 0 or -EINVAL with the reason in err. */
int im_proto_check_path(const ProtobufCMessageDescriptor *desc,
                        const char *path, char *err, size_t errlen);

#endif
