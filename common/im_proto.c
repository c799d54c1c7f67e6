#include "im_proto.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* --- generic field access ------------------------------------------------ */

#define S_SEG_MAX 64
/* Bound on repeated elements appended through a path (the frame limit is
 * reached long before). */
#define S_INDEX_MAX 100000u

static int s_err(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

ProtobufCMessage *im_proto_msg_new(const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m;

    if (!desc || desc->sizeof_message < sizeof(ProtobufCMessage))
        return NULL;
    m = malloc(desc->sizeof_message);
    if (!m)
        return NULL;
    protobuf_c_message_init(desc, m);
    return m;
}

void im_proto_msg_free(ProtobufCMessage *msg)
{
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
}

im_env_t *im_env_new(void)
{
    im_env_t *env =
        (im_env_t *)im_proto_msg_new(&imsplit__v1__envelope__descriptor);

    if (!env)
        return NULL;
    env->major = IM_PROTO_MAJOR;
    env->minor = IM_PROTO_MINOR;
    return env;
}

int im_proto_body_case(const char *name)
{
    const ProtobufCMessageDescriptor *d = &imsplit__v1__envelope__descriptor;

    if (!name)
        return -1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            strcmp(f->name, name) == 0)
            return (int)f->id;
    }
    return -1;
}

const ProtobufCMessage *im_env_body(const im_env_t *env)
{
    const ProtobufCFieldDescriptor *f;

    if (!env)
        return NULL;
    f = s_body_field((int)env->body_case);
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return NULL;
    return *(ProtobufCMessage *const *)((const char *)env + f->offset);
}

/* Frees the value of singular field f stored at p and leaves the default
 * (or NULL) there. */
static void s_value_free(const ProtobufCFieldDescriptor *f, void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char **s = p;
        if (*s && *s != (const char *)f->default_value)
            free(*s);
        *s = (char *)f->default_value;
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *bd = p;
        const ProtobufCBinaryData *def = f->default_value;
        if (bd->data && (!def || bd->data != def->data))
            free(bd->data);
        bd->data = NULL;
        bd->len = 0;
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage **m = p;
        if (*m && *m != f->default_value)
            protobuf_c_message_free_unpacked(*m, NULL);
        *m = NULL;
        break;
    }
    default: break;
    }
}

/* Makes oneof member f the selected one: the member selected before is
 * freed and the shared storage cleared. */
static void s_oneof_select(ProtobufCMessage *msg,
                           const ProtobufCFieldDescriptor *f)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    char *base = (char *)msg;
    uint32_t *casep = (uint32_t *)(base + f->quantifier_offset);
    size_t size = 0;

    if (*casep == f->id)
        return;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *g = &d->fields[i];
        if (!(g->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
            g->quantifier_offset != f->quantifier_offset)
            continue;
        if (g->id == *casep)
            s_value_free(g, base + g->offset);
        if (s_type_size(g->type) > size)
            size = s_type_size(g->type);
    }
    memset(base + f->offset, 0, size);
    if (f->type == PROTOBUF_C_TYPE_STRING)
        *(char **)(base + f->offset) = (char *)f->default_value;
    *casep = f->id;
}

/* Appends one default element to repeated field f of msg. */
static int s_append(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    char *base = (char *)msg;
    size_t *np = (size_t *)(base + f->quantifier_offset);
    char **arrp = (char **)(base + f->offset);
    size_t step = s_type_size(f->type);
    char *arr;
    void *elem = NULL;

    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        elem = im_proto_msg_new(f->descriptor);
        if (!elem)
            return -ENOMEM;
    } else if (f->type == PROTOBUF_C_TYPE_STRING) {
        /* protobuf-c frees every element of a repeated string field. */
        elem = strdup("");
        if (!elem)
            return -ENOMEM;
    }
    arr = realloc(*arrp, (*np + 1) * step);
    if (!arr) {
        if (f->type == PROTOBUF_C_TYPE_MESSAGE)
            im_proto_msg_free(elem);
        else
            free(elem);
        return -ENOMEM;
    }
    *arrp = arr;
    memset(arr + *np * step, 0, step);
    if (elem)
        memcpy(arr + *np * step, &elem, sizeof(elem));
    (*np)++;
    return 0;
}

/* Copies the next '.'-separated segment of *pp into seg and moves *pp past
 * it (and its dot). -EINVAL for an empty or overlong segment. */
static int s_next_seg(const char **pp, char *seg, size_t size)
{
    const char *p = *pp;
    size_t n = strcspn(p, ".");

    if (n == 0 || n >= size)
        return -EINVAL;
    memcpy(seg, p, n);
    seg[n] = '\0';
    p += n;
    if (*p == '.') {
        p++;
        if (*p == '\0')
            return -EINVAL;
    }
    *pp = p;
    return 0;
}

static bool s_is_index(const char *seg, size_t *out)
{
    unsigned long v = 0;

    if (!seg[0])
        return false;
    for (const char *p = seg; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > S_INDEX_MAX)
            return false;
    }
    *out = (size_t)v;
    return true;
}

typedef struct {
    ProtobufCMessage *msg; /* the message holding the field */
    const ProtobufCFieldDescriptor *f;
    bool indexed; /* element `index` of repeated field f */
    size_t index;
} s_loc_t;

static void *s_loc_member(const s_loc_t *l)
{
    char *member = (char *)l->msg + l->f->offset;

    if (l->indexed)
        return *(char **)member + l->index * s_type_size(l->f->type);
    return member;
}

/* Resolves path down to its last field. With create, missing sub-messages
 * are made, unselected oneof members on the way selected and an index equal
 * to the element count appends; without it such a path gives -ENOENT and
 * nothing is written (msg may then be a const message cast). */
static int s_walk(ProtobufCMessage *msg, const char *path, bool create,
                  s_loc_t *loc, char *err, size_t errlen)
{
    const char *p = path;
    char seg[S_SEG_MAX];

    if (!msg || !path || !*path)
        return s_err(err, errlen, -EINVAL, "empty field path");
    for (;;) {
        const ProtobufCMessageDescriptor *d = msg->descriptor;
        const ProtobufCFieldDescriptor *f;
        char *base = (char *)msg;
        s_loc_t here = {msg, NULL, false, 0};

        if (s_next_seg(&p, seg, sizeof(seg)) < 0)
            return s_err(err, errlen, -EINVAL, "bad field path \"%s\"", path);
        f = protobuf_c_message_descriptor_get_field_by_name(d, seg);
        if (!f)
            return s_err(err, errlen, -EINVAL, "%s has no field \"%s\"",
                         d->short_name, seg);
        here.f = f;
        if (f->label == PROTOBUF_C_LABEL_REPEATED && *p) {
            size_t n = *(size_t *)(base + f->quantifier_offset);
            const char *name = f->name;
            if (s_next_seg(&p, seg, sizeof(seg)) < 0 ||
                !s_is_index(seg, &here.index))
                return s_err(err, errlen, -EINVAL,
                             "%s is repeated: an index must follow it "
                             "(%s.0...)",
                             name, name);
            if (here.index > n || (here.index == n && !create))
                return s_err(err, errlen, create ? -EINVAL : -ENOENT,
                             "%s.%zu: index past the end (%zu elements)", name,
                             here.index, n);
            if (here.index == n) {
                int rc = s_append(msg, f);
                if (rc < 0)
                    return s_err(err, errlen, rc, "out of memory");
            }
            here.indexed = true;
        }
        if (!*p) {
            *loc = here;
            return 0;
        }
        if (f->type != PROTOBUF_C_TYPE_MESSAGE ||
            (f->label == PROTOBUF_C_LABEL_REPEATED && !here.indexed))
            return s_err(err, errlen, -EINVAL, "%s is not a message", f->name);
        if (!here.indexed && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(uint32_t *)(base + f->quantifier_offset) != f->id) {
            if (!create)
                return s_err(err, errlen, -ENOENT, "%s is not set", f->name);
            s_oneof_select(msg, f);
        }
        ProtobufCMessage **sub = s_loc_member(&here);
        if (!*sub) {
            if (!create)
                return s_err(err, errlen, -ENOENT, "%s is not set", f->name);
            *sub = im_proto_msg_new(f->descriptor);
            if (!*sub)
                return s_err(err, errlen, -ENOMEM, "out of memory");
        }
        msg = *sub;
    }
}

int im_proto_check_path(const ProtobufCMessageDescriptor *desc,
                        const char *path, char *err, size_t errlen)
{
    const char *p = path;
    char seg[S_SEG_MAX];
    size_t index;

    if (!desc || !path || !*path)
        return s_err(err, errlen, -EINVAL, "empty field path");
    for (;;) {
        const ProtobufCFieldDescriptor *f;
        bool indexed = false;

        if (s_next_seg(&p, seg, sizeof(seg)) < 0)
            return s_err(err, errlen, -EINVAL, "bad field path \"%s\"", path);
        f = protobuf_c_message_descriptor_get_field_by_name(desc, seg);
        if (!f)
            return s_err(err, errlen, -EINVAL, "%s has no field \"%s\"",
                         desc->short_name, seg);
        if (f->label == PROTOBUF_C_LABEL_REPEATED && *p) {
            if (s_next_seg(&p, seg, sizeof(seg)) < 0 ||
                !s_is_index(seg, &index))
                return s_err(err, errlen, -EINVAL,
                             "%s is repeated: an index must follow it "
                             "(%s.0...)",
                             f->name, f->name);
            indexed = true;
        }
        if (!*p)
            return 0;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE ||
            (f->label == PROTOBUF_C_LABEL_REPEATED && !indexed))
            return s_err(err, errlen, -EINVAL, "%s is not a message", f->name);
        desc = f->descriptor;
    }
}

/* Integers: decimal or 0x hex, no blanks, no '+'. */
static int s_parse_u64(const char *v, uint64_t *out)
{
    int base = 10;
    const char *p = v;
    char *end;
    unsigned long long n;

    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }
    if (!(base == 16 ? isxdigit((unsigned char)*p)
                     : isdigit((unsigned char)*p)))
        return -EINVAL;
    errno = 0;
    n = strtoull(p, &end, base);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE)
        return -ERANGE;
    *out = (uint64_t)n;
    return 0;
}

static int s_parse_i64(const char *v, int64_t *out)
{
    bool neg = v[0] == '-';
    uint64_t n;
    int rc = s_parse_u64(neg ? v + 1 : v, &n);

    if (rc < 0)
        return rc;
    if (neg) {
        if (n > (uint64_t)INT64_MAX + 1)
            return -ERANGE;
        *out = n == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)n;
    } else {
        if (n > (uint64_t)INT64_MAX)
            return -ERANGE;
        *out = (int64_t)n;
    }
    return 0;
}

static int s_parse_bool(const char *v, protobuf_c_boolean *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -EINVAL;
}

/* Full name, unique '_'-suffix or number; see im_proto_set_field. */
static int s_parse_enum(const ProtobufCEnumDescriptor *ed, const char *v,
                        int *out, char *err, size_t errlen)
{
    size_t vl = strlen(v);
    unsigned matches = 0;
    int found = 0;

    int64_t n;
    int nrc = s_parse_i64(v, &n);
    if (nrc == 0 && n >= INT32_MIN && n <= INT32_MAX) {
        *out = (int)n;
        return 0;
    }
    if (nrc == -ERANGE || nrc == 0)
        return s_err(err, errlen, -EINVAL, "%s number %s is out of range",
                     ed->short_name, v);
    for (unsigned i = 0; i < ed->n_values; i++) {
        if (strcasecmp(ed->values[i].name, v) == 0) {
            *out = ed->values[i].value;
            return 0;
        }
    }
    for (unsigned i = 0; vl > 0 && i < ed->n_values; i++) {
        const char *name = ed->values[i].name;
        size_t nl = strlen(name);
        if (nl > vl && name[nl - vl - 1] == '_' &&
            strcasecmp(name + nl - vl, v) == 0) {
            matches++;
            found = ed->values[i].value;
        }
    }
    if (matches == 1) {
        *out = found;
        return 0;
    }
    if (err && errlen) {
        s_buf_t b = {0};
        for (unsigned i = 0; i < ed->n_values; i++) {
            if (i)
                s_buf_put(&b, "|", 1);
            s_buf_put(&b, ed->values[i].name, strlen(ed->values[i].name));
        }
        snprintf(err, errlen, "%s value \"%s\" for %s; expected %s",
                 matches ? "ambiguous" : "unknown", v, ed->short_name,
                 b.p && !b.oom ? b.p : "a value of the enum");
        free(b.p);
    }
    return -EINVAL;
}

static int s_hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int im_proto_set_field(ProtobufCMessage *msg, const char *path,
                       const char *value, char *err, size_t errlen)
{
    s_loc_t loc;
    const ProtobufCFieldDescriptor *f;
    const char *name;
    int rc;
    union {
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float fl;
        double db;
        protobuf_c_boolean b;
        int e;
    } v;
    char *str = NULL;
    ProtobufCBinaryData bd = {0, NULL};

    if (err && errlen)
        err[0] = '\0';
    if (!value)
        value = "";
    rc = s_walk(msg, path, true, &loc, err, errlen);
    if (rc < 0)
        return rc;
    f = loc.f;
    name = f->name;
    if (f->label == PROTOBUF_C_LABEL_REPEATED && !loc.indexed)
        return s_err(err, errlen, -EINVAL,
                     "%s is repeated: give an index (%s.0...)", name, name);

    /* Parse first, so a bad value leaves the field as it was. */
    memset(&v, 0, sizeof(v));
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        rc = s_parse_i64(value, &v.i64);
        if (rc == 0 && (v.i64 < INT32_MIN || v.i64 > INT32_MAX))
            rc = -ERANGE;
        v.i32 = (int32_t)v.i64;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        rc = s_parse_u64(value, &v.u64);
        if (rc == 0 && v.u64 > UINT32_MAX)
            rc = -ERANGE;
        v.u32 = (uint32_t)v.u64;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: rc = s_parse_i64(value, &v.i64); break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: rc = s_parse_u64(value, &v.u64); break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        char *end;
        double d;
        errno = 0;
        d = strtod(value, &end);
        if (!*value || *end || errno == ERANGE)
            rc = -EINVAL;
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
            v.fl = (float)d;
        else
            v.db = d;
        break;
    }
    case PROTOBUF_C_TYPE_BOOL: rc = s_parse_bool(value, &v.b); break;
    case PROTOBUF_C_TYPE_ENUM:
        rc = s_parse_enum(f->descriptor, value, &v.e, err, errlen);
        if (rc < 0 && err && errlen) {
            char why[512];
            snprintf(why, sizeof(why), "%s", err);
            snprintf(err, errlen, "%s: %s", name, why);
        }
        if (rc < 0)
            return rc;
        break;
    case PROTOBUF_C_TYPE_STRING:
        str = strdup(value);
        if (!str)
            return s_err(err, errlen, -ENOMEM, "out of memory");
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        size_t n = strlen(value);
        if (n % 2) {
            rc = -EINVAL;
            break;
        }
        bd.len = n / 2;
        bd.data = malloc(bd.len ? bd.len : 1);
        if (!bd.data)
            return s_err(err, errlen, -ENOMEM, "out of memory");
        for (size_t i = 0; i < bd.len; i++) {
            int hi = s_hex_nibble(value[2 * i]);
            int lo = s_hex_nibble(value[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                rc = -EINVAL;
                break;
            }
            bd.data[i] = (uint8_t)(hi << 4 | lo);
        }
        if (rc < 0)
            free(bd.data);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        if (value[0] && strcmp(value, "{}") != 0)
            return s_err(err, errlen, -EINVAL,
                         "%s is a message: set its fields (%s.FIELD=...) or "
                         "give it \"{}\"",
                         name, name);
        break;
    }
    if (rc == -ERANGE)
        return s_err(err, errlen, -EINVAL, "%s: \"%s\" is out of range", name,
                     value);
    if (rc < 0)
        return s_err(err, errlen, -EINVAL, "%s: bad value \"%s\"", name, value);

    if (!loc.indexed && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        s_oneof_select(loc.msg, f);
    void *member = s_loc_member(&loc);
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        if (loc.indexed)
            free(*(char **)member);
        else
            s_value_free(f, member);
        *(char **)member = str;
        break;
    case PROTOBUF_C_TYPE_BYTES:
        if (loc.indexed)
            free(((ProtobufCBinaryData *)member)->data);
        else
            s_value_free(f, member);
        *(ProtobufCBinaryData *)member = bd;
        break;
    case PROTOBUF_C_TYPE_MESSAGE:
        if (!*(ProtobufCMessage **)member) {
            *(ProtobufCMessage **)member = im_proto_msg_new(f->descriptor);
            if (!*(ProtobufCMessage **)member)
                return s_err(err, errlen, -ENOMEM, "out of memory");
        }
        break;
    case PROTOBUF_C_TYPE_BOOL: *(protobuf_c_boolean *)member = v.b; break;
    case PROTOBUF_C_TYPE_ENUM: *(int *)member = v.e; break;
    case PROTOBUF_C_TYPE_FLOAT: *(float *)member = v.fl; break;
    case PROTOBUF_C_TYPE_DOUBLE: *(double *)member = v.db; break;
    default:
        if (s_type_size(f->type) == 4)
            memcpy(member, &v.u32, 4);
        else
            memcpy(member, &v.u64, 8);
        break;
    }
    if (!loc.indexed && f->label == PROTOBUF_C_LABEL_OPTIONAL &&
        !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)((char *)loc.msg + f->quantifier_offset) = 1;
    return 0;
}

/* Whether the value stored at p is not the proto3 default. */
static bool s_is_set(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT: return *(const float *)p != 0;
    case PROTOBUF_C_TYPE_DOUBLE: return *(const double *)p != 0;
    case PROTOBUF_C_TYPE_BOOL: return *(const protobuf_c_boolean *)p != 0;
    case PROTOBUF_C_TYPE_ENUM: return *(const int *)p != 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s && s[0];
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len > 0;
    case PROTOBUF_C_TYPE_MESSAGE: return *(ProtobufCMessage *const *)p != NULL;
    default:
        if (s_type_size(f->type) == 4)
            return *(const uint32_t *)p != 0;
        return *(const uint64_t *)p != 0;
    }
}

int im_proto_get_field(const ProtobufCMessage *msg, const char *path, char *out,
                       size_t outlen)
{
    s_loc_t loc;
    s_buf_t b = {0};
    const ProtobufCFieldDescriptor *f;
    const char *base;
    int rc;

    if (out && outlen)
        out[0] = '\0';
    /* Without create, s_walk writes nothing. */
    rc = s_walk((ProtobufCMessage *)msg, path, false, &loc, NULL, 0);
    if (rc < 0)
        return rc;
    f = loc.f;
    base = (const char *)loc.msg;
    if (f->label == PROTOBUF_C_LABEL_REPEATED && !loc.indexed) {
        size_t n = *(const size_t *)(base + f->quantifier_offset);
        s_buf_printf(&b, "%zu", n);
        rc = n > 0;
    } else if (!loc.indexed && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
               *(const uint32_t *)(base + f->quantifier_offset) != f->id) {
        return -ENOENT;
    } else {
        const void *member = s_loc_member(&loc);
        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING: {
            const char *s = *(char *const *)member;
            s_buf_put(&b, s ? s : "", s ? strlen(s) : 0);
            break;
        }
        case PROTOBUF_C_TYPE_ENUM: {
            int e = *(const int *)member;
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value(f->descriptor, e);
            if (ev)
                s_buf_put(&b, ev->name, strlen(ev->name));
            else
                s_buf_printf(&b, "%d", e);
            break;
        }
        case PROTOBUF_C_TYPE_MESSAGE:
            if (!*(ProtobufCMessage *const *)member)
                return -ENOENT;
            s_json_value(&b, f, member);
            break;
        default:
            s_json_value(&b, f, member);
            if (f->type == PROTOBUF_C_TYPE_BYTES && b.p && b.len >= 2) {
                /* Without the JSON quotes. */
                memmove(b.p, b.p + 1, b.len - 2);
                b.len -= 2;
                b.p[b.len] = '\0';
            }
            break;
        }
        rc = s_is_set(f, member);
    }
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    if (out && outlen) {
        size_t n = b.p ? b.len : 0;
        if (n >= outlen) {
            n = outlen - 1;
            rc = -ENOSPC;
        }
        if (n)
            memcpy(out, b.p, n);
        out[n] = '\0';
    } else if (b.len > 0) {
        rc = -ENOSPC;
    }
    free(b.p);
    return rc;
}
