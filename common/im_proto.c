#include "im_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *im_proto_err_name(im_proto_err_t err)
{
    switch (err) {
    case IM_PROTO_OK: return "ok";
    case IM_PROTO_EMPTY: return "empty";
    case IM_PROTO_OVERSIZE: return "oversize";
    case IM_PROTO_MALFORMED: return "malformed";
    case IM_PROTO_VERSION: return "version";
    case IM_PROTO_NO_BODY: return "no_body";
    case IM_PROTO_BAD_FIELD: return "bad_field";
    }
    return "unknown";
}

/* The body's field descriptor in the envelope, NULL for a case we do not
 * know. Names come from the descriptor so they always match the schema. */
static const ProtobufCFieldDescriptor *s_body_field(int body_case)
{
    const ProtobufCMessageDescriptor *d = &imsplit__v1__envelope__descriptor;

    if (body_case <= 0)
        return NULL;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            f->id == (uint32_t)body_case)
            return f;
    }
    return NULL;
}

const char *im_proto_body_name(int body_case)
{
    const ProtobufCFieldDescriptor *f;

    if (body_case == IMSPLIT__V1__ENVELOPE__BODY__NOT_SET)
        return "none";
    f = s_body_field(body_case);
    return f ? f->name : "unknown";
}

const char *im_proto_direction_name(int direction)
{
    switch (direction) {
    case IMSPLIT__V1__DIRECTION__DIRECTION_UNSPECIFIED: return "unspecified";
    case IMSPLIT__V1__DIRECTION__DIRECTION_CLIENT: return "client";
    case IMSPLIT__V1__DIRECTION__DIRECTION_CONTROLLING: return "controlling";
    }
    return "unknown";
}

const char *im_proto_reason_name(int reason)
{
    static const char *const names[] = {
        [IMSPLIT__V1__RELEASE_REASON__RELEASE_REASON_UNSPECIFIED] = "unspecified",
        [IMSPLIT__V1__RELEASE_REASON__RELEASE_SESSION_TIMER_EXPIRED] =
            "session_timer_expired",
        [IMSPLIT__V1__RELEASE_REASON__RELEASE_BYE_2XX] = "bye_2xx",
        [IMSPLIT__V1__RELEASE_REASON__RELEASE_BYE_ERROR] = "bye_error",
        [IMSPLIT__V1__RELEASE_REASON__RELEASE_BYE_TIMEOUT] = "bye_timeout",
        [IMSPLIT__V1__RELEASE_REASON__RELEASE_SETUP_FAILED] = "setup_failed",
        [IMSPLIT__V1__RELEASE_REASON__RELEASE_PEER_BYE] = "peer_bye",
        [IMSPLIT__V1__RELEASE_REASON__RELEASE_WORKER_LOST] = "worker_lost",
        [IMSPLIT__V1__RELEASE_REASON__RELEASE_ADMIN] = "admin",
        [IMSPLIT__V1__RELEASE_REASON__RELEASE_LEG_EVENT] = "leg_event",
        [IMSPLIT__V1__RELEASE_REASON__RELEASE_SHUTDOWN] = "shutdown",
        [IMSPLIT__V1__RELEASE_REASON__RELEASE_AUDIT] = "audit",
    };

    if (reason < 0 || (size_t)reason >= sizeof(names) / sizeof(names[0]) ||
        !names[reason])
        return "unknown";
    return names[reason];
}

const char *im_proto_status_name(int status)
{
    static const char *const names[] = {
        [IMSPLIT__V1__STATUS__STATUS_OK] = "ok",
        [IMSPLIT__V1__STATUS__STATUS_NOT_FOUND] = "not_found",
        [IMSPLIT__V1__STATUS__STATUS_CONFLICT] = "conflict",
        [IMSPLIT__V1__STATUS__STATUS_NO_CAPACITY] = "no_capacity",
        [IMSPLIT__V1__STATUS__STATUS_BAD_REQUEST] = "bad_request",
        [IMSPLIT__V1__STATUS__STATUS_INTERNAL] = "internal",
        [IMSPLIT__V1__STATUS__STATUS_DRAINING] = "draining",
    };

    if (status < 0 || (size_t)status >= sizeof(names) / sizeof(names[0]) ||
        !names[status])
        return "unknown";
    return names[status];
}

void im_env_init(im_env_t *env, const char *sender_id, uint64_t epoch,
                 uint64_t seq)
{
    if (!env)
        return;
    imsplit__v1__envelope__init(env);
    env->major = IM_PROTO_MAJOR;
    env->minor = IM_PROTO_MINOR;
    /* protobuf-c only reads the string when packing. */
    env->sender_id = (char *)(sender_id ? sender_id : "");
    env->sender_epoch = epoch;
    env->seq = seq;
}

int im_proto_pack(const im_env_t *env, uint8_t **out, size_t *len)
{
    size_t size;
    uint8_t *buf;

    if (!env || !out || !len)
        return -EINVAL;
    size = imsplit__v1__envelope__get_packed_size(env);
    buf = malloc(size ? size : 1);
    if (!buf)
        return -ENOMEM;
    *len = imsplit__v1__envelope__pack(env, buf);
    *out = buf;
    return 0;
}

static void s_why(char *why, size_t why_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_why(char *why, size_t why_size, const char *fmt, ...)
{
    va_list ap;

    if (!why || why_size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, why_size, fmt, ap);
    va_end(ap);
}

static bool s_direction_ok(int d)
{
    return d == IMSPLIT__V1__DIRECTION__DIRECTION_CLIENT ||
           d == IMSPLIT__V1__DIRECTION__DIRECTION_CONTROLLING;
}

/* Every leg body names its leg by (session_id, direction); neither may be
 * left at the proto3 default. */
static im_proto_err_t s_check_leg(const char *body, uint64_t session_id,
                                  int direction, char *why, size_t why_size)
{
    if (session_id == 0) {
        s_why(why, why_size, "%s: session_id is 0", body);
        return IM_PROTO_BAD_FIELD;
    }
    if (!s_direction_ok(direction)) {
        s_why(why, why_size, "%s: direction %d is not client or controlling",
              body, direction);
        return IM_PROTO_BAD_FIELD;
    }
    return IM_PROTO_OK;
}

static im_proto_err_t s_validate(const im_env_t *env, char *why,
                                 size_t why_size)
{
    const char *name = im_proto_body_name((int)env->body_case);

    if (env->body_case == IMSPLIT__V1__ENVELOPE__BODY__NOT_SET ||
        !s_body_field((int)env->body_case) || !env->register_) {
        s_why(why, why_size, "envelope has no body we know");
        return IM_PROTO_NO_BODY;
    }
    if (!env->sender_id || env->sender_id[0] == '\0') {
        s_why(why, why_size, "%s: sender_id is empty", name);
        return IM_PROTO_BAD_FIELD;
    }

    switch (env->body_case) {
    case IMSPLIT__V1__ENVELOPE__BODY_REGISTER:
        if (!env->register_->node_id || !env->register_->node_id[0]) {
            s_why(why, why_size, "register: node_id is empty");
            return IM_PROTO_BAD_FIELD;
        }
        return IM_PROTO_OK;
    case IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG:
        return s_check_leg(name, env->allocate_leg->session_id,
                           env->allocate_leg->direction, why, why_size);
    case IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG_RESULT:
        return s_check_leg(name, env->allocate_leg_result->session_id,
                           env->allocate_leg_result->direction, why, why_size);
    case IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG:
        return s_check_leg(name, env->connect_leg->session_id,
                           env->connect_leg->direction, why, why_size);
    case IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG_RESULT:
        return s_check_leg(name, env->connect_leg_result->session_id,
                           env->connect_leg_result->direction, why, why_size);
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG:
        return s_check_leg(name, env->release_leg->session_id,
                           env->release_leg->direction, why, why_size);
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT:
        return s_check_leg(name, env->release_leg_result->session_id,
                           env->release_leg_result->direction, why, why_size);
    case IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT:
        return s_check_leg(name, env->leg_event->session_id,
                           env->leg_event->direction, why, why_size);
    case IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT_ACK:
        return s_check_leg(name, env->leg_event_ack->session_id,
                           env->leg_event_ack->direction, why, why_size);
    case IMSPLIT__V1__ENVELOPE__BODY_INVENTORY: {
        const Imsplit__V1__Inventory *inv = env->inventory;
        for (size_t i = 0; i < inv->n_legs; i++) {
            im_proto_err_t err;
            if (!inv->legs[i]) {
                s_why(why, why_size, "inventory: leg %zu missing", i);
                return IM_PROTO_BAD_FIELD;
            }
            err = s_check_leg(name, inv->legs[i]->session_id,
                              inv->legs[i]->direction, why, why_size);
            if (err != IM_PROTO_OK)
                return err;
        }
        return IM_PROTO_OK;
    }
    default:
        return IM_PROTO_OK;
    }
}

im_proto_err_t im_proto_unpack(const uint8_t *data, size_t len, im_env_t **out,
                               char *why, size_t why_size)
{
    im_env_t *env;
    im_proto_err_t err;

    if (why && why_size)
        why[0] = '\0';
    if (!out)
        return IM_PROTO_MALFORMED;
    *out = NULL;
    if (len == 0 || !data) {
        s_why(why, why_size, "empty frame");
        return IM_PROTO_EMPTY;
    }
    if (len > IM_PROTO_MAX_FRAME) {
        s_why(why, why_size, "frame of %zu bytes exceeds %d", len,
              IM_PROTO_MAX_FRAME);
        return IM_PROTO_OVERSIZE;
    }
    env = imsplit__v1__envelope__unpack(NULL, len, data);
    if (!env) {
        s_why(why, why_size, "protobuf decode failed (%zu bytes)", len);
        return IM_PROTO_MALFORMED;
    }
    if (env->major != IM_PROTO_MAJOR) {
        s_why(why, why_size, "major version %" PRIu32 " (want %u)", env->major,
              IM_PROTO_MAJOR);
        *out = env;
        return IM_PROTO_VERSION;
    }
    err = s_validate(env, why, why_size);
    if (err != IM_PROTO_OK) {
        imsplit__v1__envelope__free_unpacked(env, NULL);
        return err;
    }
    *out = env;
    return IM_PROTO_OK;
}

void im_proto_free(im_env_t *env)
{
    if (env)
        imsplit__v1__envelope__free_unpacked(env, NULL);
}

/* --- JSON ---------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
} s_buf_t;

static void s_buf_reserve(s_buf_t *b, size_t extra)
{
    size_t want;
    char *np;

    if (b->oom)
        return;
    want = b->len + extra + 1;
    if (want <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    np = realloc(b->p, cap);
    if (!np) {
        b->oom = true;
        return;
    }
    b->p = np;
    b->cap = cap;
}

static void s_buf_put(s_buf_t *b, const char *s, size_t n)
{
    s_buf_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void s_buf_printf(s_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_buf_printf(s_buf_t *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    int n;

    /* Only numbers go through here, so a small stack buffer suffices. */
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    s_buf_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void s_json_string(s_buf_t *b, const char *s, size_t n)
{
    s_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': s_buf_put(b, "\\\"", 2); break;
        case '\\': s_buf_put(b, "\\\\", 2); break;
        case '\n': s_buf_put(b, "\\n", 2); break;
        case '\r': s_buf_put(b, "\\r", 2); break;
        case '\t': s_buf_put(b, "\\t", 2); break;
        default:
            if (c < 0x20 || c == 0x7f)
                s_buf_printf(b, "\\u%04x", c);
            else
                s_buf_put(b, (const char *)&c, 1);
        }
    }
    s_buf_put(b, "\"", 1);
}

static void s_json_message(s_buf_t *b, const ProtobufCMessage *msg);

/* One value of field f stored at p (an element, for repeated fields). */
static void s_json_value(s_buf_t *b, const ProtobufCFieldDescriptor *f,
                         const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        s_buf_printf(b, "%" PRId32, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        s_buf_printf(b, "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        s_buf_printf(b, "%" PRId64, *(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        s_buf_printf(b, "%" PRIu64, *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        s_buf_printf(b, "%.9g", (double)*(const float *)p);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        s_buf_printf(b, "%.17g", *(const double *)p);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        s_buf_printf(b, "%s", *(const protobuf_c_boolean *)p ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        if (ev)
            s_json_string(b, ev->name, strlen(ev->name));
        else
            s_buf_printf(b, "%d", v);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        s_json_string(b, s ? s : "", s ? strlen(s) : 0);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = p;
        s_buf_put(b, "\"", 1);
        for (size_t i = 0; i < bd->len; i++)
            s_buf_printf(b, "%02x", bd->data[i]);
        s_buf_put(b, "\"", 1);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        if (m)
            s_json_message(b, m);
        else
            s_buf_put(b, "null", 4);
        break;
    }
    }
}

static size_t s_type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* Writes `"name":value` pairs of every present field, comma-separated;
 * `first` says whether a comma is needed before the first one. */
static void s_json_fields(s_buf_t *b, const ProtobufCMessage *msg, bool first)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *)msg;

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *member = base + f->offset;

        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
                   f->type != PROTOBUF_C_TYPE_STRING &&
                   f->type != PROTOBUF_C_TYPE_MESSAGE) {
            if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset))
                continue;
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
            f->label != PROTOBUF_C_LABEL_REPEATED &&
            !*(ProtobufCMessage *const *)member)
            continue;

        if (!first)
            s_buf_put(b, ",", 1);
        first = false;
        s_json_string(b, f->name, strlen(f->name));
        s_buf_put(b, ":", 1);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(const char *const *)member;
            size_t step = s_type_size(f->type);
            s_buf_put(b, "[", 1);
            for (size_t k = 0; k < n && arr; k++) {
                if (k)
                    s_buf_put(b, ",", 1);
                s_json_value(b, f, arr + k * step);
            }
            s_buf_put(b, "]", 1);
        } else {
            s_json_value(b, f, member);
        }
    }
}

static void s_json_message(s_buf_t *b, const ProtobufCMessage *msg)
{
    s_buf_put(b, "{", 1);
    s_json_fields(b, msg, true);
    s_buf_put(b, "}", 1);
}

char *im_proto_to_json(const im_env_t *env)
{
    s_buf_t b = {0};
    const char *name;

    if (!env) {
        s_buf_put(&b, "null", 4);
        return b.oom ? NULL : b.p;
    }
    s_buf_put(&b, "{", 1);
    s_json_fields(&b, &env->base, true);
    name = im_proto_body_name((int)env->body_case);
    s_buf_put(&b, ",\"body\":", 8);
    s_json_string(&b, name, strlen(name));
    s_buf_put(&b, "}", 1);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
