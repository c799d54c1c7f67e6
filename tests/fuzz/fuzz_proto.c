/* fuzz_proto: the CP-UP codec (im_proto) on frames from a peer.
 *
 * The input is one frame. It goes through im_proto_unpack as an envelope,
 * then through the decoder of every body type, each result wrapped in an
 * envelope, packed and unpacked again so that the validation of that body
 * sees decoded content. Every envelope that decodes is rendered as JSON,
 * read back field by field with im_proto_get_field (every path of the
 * schema), and written field by field with im_proto_set_field from what
 * get_field returned, as imsplit-ctl scripts do.
 *
 * Besides what the sanitizers catch, the target aborts when
 * - the error code, the reason text and *out disagree;
 * - the JSON is not well-formed, or a repacked envelope without unknown
 *   fields decodes to other JSON or another verdict;
 * - get_field fails on a path the schema has, or set_field refuses the
 *   text get_field gave for the same field, or changes it. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "im_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_CHECK(cond)                                                          \
    do {                                                                       \
        if (!(cond))                                                           \
            s_fail(__LINE__, #cond);                                           \
    } while (0)

static void s_fail(int line, const char *what)
{
    fprintf(stderr, "fuzz_proto.c:%d: check failed: %s\n", line, what);
    abort();
}

/* ---- well-formed JSON ------------------------------------------------ */

static bool s_json_value(const char **pp, int depth);

static void s_ws(const char **pp)
{
    while (**pp == ' ')
        (*pp)++;
}

static bool s_json_string(const char **pp)
{
    const char *p = *pp;
    if (*p++ != '"')
        return false;
    for (;;) {
        unsigned char c = (unsigned char)*p++;
        if (c == '"')
            break;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            char e = *p++;
            if (e == 'u') {
                for (int i = 0; i < 4; i++, p++)
                    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
            } else if (!strchr("\"\\nrt/bf", e) || e == '\0') {
                return false;
            }
        }
    }
    *pp = p;
    return true;
}

static bool s_json_number(const char **pp)
{
    const char *p = *pp;
    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' ||
           *p == '+' || *p == '-')
        p++;
    *pp = p;
    return true;
}

static bool s_json_list(const char **pp, char close, bool members, int depth)
{
    const char *p = *pp + 1;
    s_ws(&p);
    if (*p == close) {
        *pp = p + 1;
        return true;
    }
    for (;;) {
        s_ws(&p);
        if (members) {
            if (!s_json_string(&p))
                return false;
            s_ws(&p);
            if (*p++ != ':')
                return false;
        }
        if (!s_json_value(&p, depth + 1))
            return false;
        s_ws(&p);
        if (*p == close) {
            *pp = p + 1;
            return true;
        }
        if (*p++ != ',')
            return false;
    }
}

static bool s_json_value(const char **pp, int depth)
{
    if (depth > 16)
        return false;
    s_ws(pp);
    switch (**pp) {
    case '{': return s_json_list(pp, '}', true, depth);
    case '[': return s_json_list(pp, ']', false, depth);
    case '"': return s_json_string(pp);
    case 't': *pp += 4; return strncmp(*pp - 4, "true", 4) == 0;
    case 'f': *pp += 5; return strncmp(*pp - 5, "false", 5) == 0;
    case 'n': *pp += 4; return strncmp(*pp - 4, "null", 4) == 0;
    default: return s_json_number(pp);
    }
}

static void s_check_json(const char *json)
{
    S_CHECK(json);
    const char *p = json;
    if (!s_json_value(&p, 0) || *p != '\0') {
        fprintf(stderr, "bad JSON: %s\n", json);
        S_CHECK(!"well-formed JSON");
    }
}

/* ---- every field path of the schema --------------------------------- */

#define S_PATHS_MAX 1024
#define S_PATH_LEN 160
static char s_paths[S_PATHS_MAX][S_PATH_LEN];
static size_t s_npaths;

static void s_add_path(const char *p)
{
    S_CHECK(s_npaths < S_PATHS_MAX && strlen(p) < S_PATH_LEN);
    snprintf(s_paths[s_npaths++], S_PATH_LEN, "%s", p);
}

/* Each field, and for repeated fields elements 0 and 1. */
static void s_collect(const ProtobufCMessageDescriptor *d, const char *prefix,
                      int depth)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char p[S_PATH_LEN];
        snprintf(p, sizeof(p), "%s%s%s", prefix, *prefix ? "." : "", f->name);
        s_add_path(p);
        bool msg = f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 4;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            for (int k = 0; k < 2; k++) {
                char q[S_PATH_LEN];
                snprintf(q, sizeof(q), "%s.%d", p, k);
                s_add_path(q);
                if (msg)
                    s_collect(f->descriptor, q, depth + 1);
            }
        } else if (msg) {
            s_collect(f->descriptor, p, depth + 1);
        }
    }
}

/* ---- checks on a decoded envelope ------------------------------------ */

static im_proto_err_t s_unpack(const uint8_t *p, size_t n, im_env_t **env)
{
    char why[200];
    memset(why, 'x', sizeof(why));
    im_proto_err_t err = im_proto_unpack(p, n, env, why, sizeof(why));
    S_CHECK(memchr(why, '\0', sizeof(why)));
    S_CHECK(strcmp(im_proto_err_name(err), "unknown") != 0);
    S_CHECK((err == IM_PROTO_OK) == (why[0] == '\0'));
    S_CHECK((*env != NULL) == (err == IM_PROTO_OK || err == IM_PROTO_VERSION));
    return err;
}

/* Reads every path and writes back what was read, on env itself. */
static void s_fields(im_env_t *env)
{
    ProtobufCMessage *m = &env->base;
    for (size_t i = 0; i < s_npaths; i++) {
        const char *path = s_paths[i];
        char v[96], err[256], again[96];
        int rc = im_proto_get_field(m, path, v, sizeof(v));
        if (rc == -EINVAL)
            fprintf(stderr, "get_field(%s) = -EINVAL\n", path);
        S_CHECK(rc == 0 || rc == 1 || rc == -ENOENT || rc == -ENOSPC);
        if (rc < 0)
            continue;
        const ProtobufCMessageDescriptor *d = env->base.descriptor;
        S_CHECK(im_proto_check_path(d, path, err, sizeof(err)) == 0);
        /* Only a singular scalar's text form is a value set_field takes;
         * a repeated field without an index reads as its count. */
        const char *last = strrchr(path, '.');
        last = last ? last + 1 : path;
        if (*last >= '0' && *last <= '9')
            continue;
        char parent[S_PATH_LEN];
        const ProtobufCFieldDescriptor *f = NULL;
        snprintf(parent, sizeof(parent), "%s", path);
        for (const char *seg = parent; d;) {
            char name[S_PATH_LEN];
            size_t n = strcspn(seg, ".");
            memcpy(name, seg, n);
            name[n] = '\0';
            f = protobuf_c_message_descriptor_get_field_by_name(d, name);
            S_CHECK(f);
            seg += n;
            if (!*seg)
                break;
            seg++;
            if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                seg += strcspn(seg, ".");
                if (!*seg)
                    break;
                seg++;
            }
            d = f->descriptor;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED ||
            f->type == PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (im_proto_set_field(m, path, v, err, sizeof(err)) != 0) {
            fprintf(stderr, "set_field(%s, \"%s\"): %s\n", path, v, err);
            S_CHECK(!"set_field takes what get_field gave");
        }
        S_CHECK(im_proto_get_field(m, path, again, sizeof(again)) == rc);
        S_CHECK(strcmp(v, again) == 0);
    }
}

/* Unknown fields anywhere in m. protobuf-c keeps them as read (even field
 * number 0) and packs them again verbatim, so a message that has some may
 * not decode the same once repacked; that is the library's affair. */
static bool s_has_unknown(const ProtobufCMessage *m)
{
    if (!m)
        return false;
    if (m->n_unknown_fields)
        return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *member = (const char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n =
                *(const size_t *)((const char *)m + f->quantifier_offset);
            ProtobufCMessage *const *arr =
                *(ProtobufCMessage *const *const *)member;
            for (size_t k = 0; k < n; k++)
                if (s_has_unknown(arr[k]))
                    return true;
        } else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                   *(const uint32_t *)((const char *)m +
                                       f->quantifier_offset) != f->id) {
            continue;
        } else if (s_has_unknown(*(ProtobufCMessage *const *)member)) {
            return true;
        }
    }
    return false;
}

/* The names the daemons log for the enum fields a peer sets. */
static void s_enum_names(const im_env_t *env)
{
    switch (env->body_case) {
    case IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG_RESULT:
        S_CHECK(im_proto_status_name(env->allocate_leg_result->status));
        S_CHECK(im_proto_direction_name(env->allocate_leg_result->direction));
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG_RESULT:
        S_CHECK(im_proto_status_name(env->connect_leg_result->status));
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG:
        S_CHECK(im_proto_reason_name(env->release_leg->reason));
        S_CHECK(im_proto_reason_name(env->release_leg->cause));
        S_CHECK(im_proto_direction_name(env->release_leg->direction));
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT:
        S_CHECK(im_proto_status_name(env->release_leg_result->status));
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT:
        S_CHECK(im_proto_direction_name(env->leg_event->direction));
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT:
        S_CHECK(im_proto_status_name(env->drain_result->status));
        break;
    default: break;
    }
}

/* A decoded envelope: names, JSON, a repacked copy with the same verdict
 * and JSON (when it has no unknown fields), then the field round trip. */
static void s_envelope(im_env_t *env, im_proto_err_t err)
{
    int bc = (int)env->body_case;
    const char *name = im_proto_body_name(bc);
    S_CHECK(name);
    if (err == IM_PROTO_OK) {
        S_CHECK(im_env_body(env) != NULL);
        S_CHECK(im_proto_body_case(name) == bc);
        s_enum_names(env);
    }
    char *json = im_proto_to_json(env);
    s_check_json(json);

    uint8_t *buf = NULL;
    size_t len = 0;
    S_CHECK(im_proto_pack(env, &buf, &len) == 0);
    im_env_t *copy = NULL;
    im_proto_err_t err2 = len ? s_unpack(buf, len, &copy) : IM_PROTO_EMPTY;
    free(buf);
    /* A frame that validates has a body and a sender, so never packs to
     * nothing; one that failed on the version may. */
    bool same = !s_has_unknown(&env->base);
    S_CHECK(!same || err2 == err || (len == 0 && err == IM_PROTO_VERSION));
    if (copy) {
        char *json2 = im_proto_to_json(copy);
        S_CHECK(json2 && (!same || strcmp(json, json2) == 0));
        free(json2);
        s_fields(copy);
        im_proto_free(copy);
    }
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (s_npaths == 0)
        s_collect(&imsplit__v1__envelope__descriptor, "", 0);

    im_env_t *env = NULL;
    im_proto_err_t err = s_unpack(data, size, &env);
    if (env) {
        s_envelope(env, err);
        im_proto_free(env);
    }

    /* The same bytes as each body, in a valid envelope. */
    const ProtobufCMessageDescriptor *ed = &imsplit__v1__envelope__descriptor;
    for (unsigned i = 0; i < ed->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &ed->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        ProtobufCMessage *body =
            protobuf_c_message_unpack(f->descriptor, NULL, size, data);
        if (!body)
            continue;
        bool same = !s_has_unknown(body);
        im_env_t e;
        im_env_init(&e, "fuzz-peer", 7, 42);
        e.body_case = (Imsplit__V1__Envelope__BodyCase)f->id;
        memcpy((char *)&e + f->offset, &body, sizeof(body));
        uint8_t *buf = NULL;
        size_t len = 0;
        S_CHECK(im_proto_pack(&e, &buf, &len) == 0);
        protobuf_c_message_free_unpacked(body, NULL);
        im_env_t *back = NULL;
        err = len <= IM_PROTO_MAX_FRAME ? s_unpack(buf, len, &back)
                                        : IM_PROTO_OVERSIZE;
        free(buf);
        if (same && (err == IM_PROTO_MALFORMED || err == IM_PROTO_NO_BODY ||
                     err == IM_PROTO_VERSION)) {
            fprintf(stderr, "%s repacked in an envelope: %s\n", f->name,
                    im_proto_err_name(err));
            S_CHECK(!"a decoded body packs into an envelope that decodes");
        }
        S_CHECK(back == NULL || (int)back->body_case == (int)f->id);
        if (back) {
            s_envelope(back, err);
            im_proto_free(back);
        }
    }
    return 0;
}
