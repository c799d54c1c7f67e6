#include "ctl_script.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TOKENS_MAX 128
#define S_SCRIPT_MAX (4u << 20)
#define S_VALUE_MAX 4096

static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

const char *ctl_cmd_name(ctl_cmd_kind_t kind)
{
    switch (kind) {
    case CTL_CMD_SEND: return "send";
    case CTL_CMD_REPLY: return "reply";
    case CTL_CMD_RESEND: return "resend";
    case CTL_CMD_EXPECT: return "expect";
    case CTL_CMD_EXPECT_NONE: return "expect-none";
    case CTL_CMD_DROP: return "drop";
    case CTL_CMD_FLUSH: return "flush";
    case CTL_CMD_SLEEP: return "sleep";
    case CTL_CMD_LOG: return "log";
    case CTL_CMD_SET: return "set";
    case CTL_CMD_AUTO_HEARTBEAT: return "auto-heartbeat";
    }
    return "?";
}

static bool s_is_ident(const char *s)
{
    if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return false;
    return true;
}

static int s_parse_ms(const char *v, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long long n;

    if (!v || !isdigit((unsigned char)v[0]))
        return -EINVAL;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (*end || errno == ERANGE || n > max)
        return -EINVAL;
    *out = (uint32_t)n;
    return 0;
}

/* The message type of a body, NULL for a case we do not know. */
static const ProtobufCMessageDescriptor *s_body_desc(int body_case)
{
    const ProtobufCFieldDescriptor *f;

    if (body_case <= 0)
        return NULL;
    f = protobuf_c_message_descriptor_get_field(
        &imsplit__v1__envelope__descriptor, (unsigned)body_case);
    if (!f || !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
        f->type != PROTOBUF_C_TYPE_MESSAGE)
        return NULL;
    return f->descriptor;
}

static bool s_has_legs(int body_case)
{
    const ProtobufCMessageDescriptor *d = s_body_desc(body_case);
    const ProtobufCFieldDescriptor *f =
        d ? protobuf_c_message_descriptor_get_field_by_name(d, "legs") : NULL;
    return f && f->label == PROTOBUF_C_LABEL_REPEATED &&
           f->descriptor == &imsplit__v1__leg_ref__descriptor;
}

static const char *const s_header_fields[] = {
    "major", "minor", "sender_id", "sender_epoch", "seq", "reply_to",
};

static bool s_is_header(const char *key)
{
    for (size_t i = 0; i < sizeof(s_header_fields) / sizeof(*s_header_fields);
         i++)
        if (strcmp(key, s_header_fields[i]) == 0)
            return true;
    return false;
}

/* The envelope path of a FIELD key of a command on body_case: a body field
 * first, then a header field ("epoch" standing for sender_epoch). *path is
 * NULL for leg=. */
static int s_resolve(int body_case, const char *key, char **path, char *err,
                     size_t errlen)
{
    const ProtobufCMessageDescriptor *d = s_body_desc(body_case);
    const char *body = im_proto_body_name(body_case);
    char why[256];

    *path = NULL;
    if (strcmp(key, "leg") == 0) {
        if (!s_has_legs(body_case))
            return s_fail(err, errlen, -EINVAL,
                          "leg= needs a body with legs (inventory), not %s",
                          body);
        return 0;
    }
    if (d && im_proto_check_path(d, key, why, sizeof(why)) == 0) {
        size_t len = strlen(body) + strlen(key) + 2;
        *path = malloc(len);
        if (!*path)
            return s_fail(err, errlen, -ENOMEM, "out of memory");
        snprintf(*path, len, "%s.%s", body, key);
        return 0;
    }
    if (strcmp(key, "epoch") == 0)
        key = "sender_epoch";
    if (s_is_header(key)) {
        *path = strdup(key);
        return *path ? 0 : s_fail(err, errlen, -ENOMEM, "out of memory");
    }
    return s_fail(err, errlen, -EINVAL, "%s: %s", body,
                  d ? why : "unknown body");
}

/* ---- tokens ------------------------------------------------------------- */

typedef struct {
    char *text;
    long eq;     /* offset of the first '=' outside quotes, -1 if none */
    bool quoted; /* had quotes: never a keyword */
} s_tok_t;

static void s_toks_free(s_tok_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i].text);
}

/* Splits one line (see the header for the rules). */
static int s_tokenize(const char *line, s_tok_t *toks, size_t max, size_t *n,
                      char *err, size_t errlen)
{
    const char *p = line;
    size_t cap = strlen(line) + 1;

    *n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p || *p == '#')
            return 0;
        if (*n == max) {
            s_toks_free(toks, *n);
            *n = 0;
            return s_fail(err, errlen, -EINVAL, "more than %zu tokens", max);
        }
        s_tok_t *t = &toks[*n];
        size_t len = 0;
        bool inq = false;
        t->text = malloc(cap);
        if (!t->text) {
            s_toks_free(toks, *n);
            *n = 0;
            return s_fail(err, errlen, -ENOMEM, "out of memory");
        }
        t->eq = -1;
        t->quoted = false;
        while (*p && (inq || (*p != ' ' && *p != '\t' && *p != '\r'))) {
            char c = *p;
            if (inq) {
                if (c == '\\' && (p[1] == '"' || p[1] == '\\')) {
                    t->text[len++] = p[1];
                    p += 2;
                    continue;
                }
                if (c == '"')
                    inq = false;
                else
                    t->text[len++] = c;
            } else if (c == '"') {
                inq = true;
                t->quoted = true;
            } else {
                if (c == '=' && t->eq < 0)
                    t->eq = (long)len;
                t->text[len++] = c;
            }
            p++;
        }
        t->text[len] = '\0';
        (*n)++;
        if (inq) {
            s_toks_free(toks, *n);
            *n = 0;
            return s_fail(err, errlen, -EINVAL, "unterminated quote");
        }
    }
}

/* ---- parsing --------------------------------------------------------------
 */

static void s_cmd_free(ctl_cmd_t *c)
{
    free(c->ref);
    free(c->as);
    free(c->to);
    free(c->from);
    free(c->name);
    free(c->text);
    for (size_t i = 0; i < c->nargs; i++) {
        free(c->args[i].key);
        free(c->args[i].path);
        free(c->args[i].value);
    }
    free(c->args);
}

void ctl_script_destroy(ctl_script_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    ctl_script_t *s = *s_p;
    for (size_t i = 0; i < s->ncmds; i++)
        s_cmd_free(&s->cmds[i]);
    free(s->cmds);
    free(s->name);
    free(s);
    *s_p = NULL;
}

static int s_body(const char *name, int *body_case, char *err, size_t errlen)
{
    int b = im_proto_body_case(name);
    if (b <= 0)
        return s_fail(err, errlen, -EINVAL, "unknown body \"%s\"", name);
    *body_case = b;
    return 0;
}

/* Splits SID:DIR at the last ':'. */
static int s_leg_split(const char *v, char *sid, size_t sidlen, char *dir,
                       size_t dirlen)
{
    const char *colon = strrchr(v, ':');
    size_t n;

    if (!colon || colon == v || !colon[1])
        return -EINVAL;
    n = (size_t)(colon - v);
    if (n >= sidlen || strlen(colon + 1) >= dirlen)
        return -EINVAL;
    memcpy(sid, v, n);
    sid[n] = '\0';
    snprintf(dir, dirlen, "%s", colon + 1);
    return 0;
}

/* Appends one LegRef given as SID:DIR to the body's legs. */
static int s_leg_append(im_env_t *env, const char *v, char *err, size_t errlen)
{
    char sid[128], dir[128], path[160], count[32];
    const char *body = im_proto_body_name((int)env->body_case);
    int rc;

    if (s_leg_split(v, sid, sizeof(sid), dir, sizeof(dir)) < 0)
        return s_fail(err, errlen, -EINVAL,
                      "leg: \"%s\" is not SESSION_ID:DIRECTION", v);
    snprintf(path, sizeof(path), "%s.legs", body);
    rc = im_proto_get_field(&env->base, path, count, sizeof(count));
    if (rc < 0)
        return s_fail(err, errlen, -EINVAL, "leg: %s has no legs", body);
    snprintf(path, sizeof(path), "%s.legs.%s.session_id", body, count);
    rc = im_proto_set_field(&env->base, path, sid, err, errlen);
    if (rc < 0)
        return rc;
    snprintf(path, sizeof(path), "%s.legs.%s.direction", body, count);
    return im_proto_set_field(&env->base, path, dir, err, errlen);
}

/* Whether an argument's value is fixed when the script is parsed. */
static bool s_literal(const char *v)
{
    return strchr(v, '$') == NULL;
}

static int s_normalise(int body_case, const char *path, const char *value,
                       char **out, char *err, size_t errlen);
static int s_normalise_leg(int body_case, const char *value, char **sid,
                           char **dir, char *err, size_t errlen);

/* Tries the arguments of a command on a scratch envelope so that a bad field
 * or value fails the parse, not the run. In a send, values still holding
 * variables get a placeholder of the right shape, so that later indices
 * still line up; a match checks each literal value on its own. */
static int s_check_args(const ctl_cmd_t *c, char *err, size_t errlen)
{
    bool match = c->kind == CTL_CMD_EXPECT || c->kind == CTL_CMD_EXPECT_NONE ||
                 c->kind == CTL_CMD_DROP;
    im_env_t *env;
    int rc = 0;

    if (match) {
        for (size_t i = 0; rc == 0 && i < c->nargs; i++) {
            const ctl_arg_t *a = &c->args[i];
            char *x = NULL, *y = NULL;
            if (!s_literal(a->value) || !strcmp(a->value, "*"))
                continue;
            rc = a->path ? s_normalise(c->body_case, a->path, a->value, &x, err,
                                       errlen)
                         : s_normalise_leg(c->body_case, a->value, &x, &y, err,
                                           errlen);
            free(x);
            free(y);
        }
        return rc;
    }
    env = im_env_new();
    if (!env)
        return s_fail(err, errlen, -ENOMEM, "out of memory");
    rc = im_proto_set_field(&env->base, im_proto_body_name(c->body_case), "{}",
                            err, errlen);
    for (size_t i = 0; rc == 0 && i < c->nargs; i++) {
        const ctl_arg_t *a = &c->args[i];
        bool fixed = s_literal(a->value);
        if (!a->path) {
            rc = s_leg_append(env, fixed ? a->value : "1:client", err, errlen);
        } else if (fixed) {
            rc = im_proto_set_field(&env->base, a->path, a->value, err, errlen);
        } else if (im_proto_set_field(&env->base, a->path, "0", NULL, 0) < 0) {
            (void)im_proto_set_field(&env->base, a->path, "{}", NULL, 0);
        }
    }
    im_proto_free(env);
    return rc;
}

static int s_dup(char **dst, const char *src, char *err, size_t errlen)
{
    free(*dst);
    *dst = strdup(src);
    return *dst ? 0 : s_fail(err, errlen, -ENOMEM, "out of memory");
}

/* FIELD=VALUE, `as NAME` and the keywords a command allows, from toks[i]
 * on. */
static int s_parse_args(ctl_cmd_t *c, s_tok_t *toks, size_t i, size_t n,
                        char *err, size_t errlen)
{
    bool msg = c->kind == CTL_CMD_SEND || c->kind == CTL_CMD_REPLY;
    bool match = c->kind == CTL_CMD_EXPECT || c->kind == CTL_CMD_EXPECT_NONE ||
                 c->kind == CTL_CMD_DROP;
    bool can_as = c->kind != CTL_CMD_EXPECT_NONE && c->kind != CTL_CMD_RESEND;
    int rc;

    c->args = calloc(n ? n : 1, sizeof(*c->args));
    if (!c->args)
        return s_fail(err, errlen, -ENOMEM, "out of memory");
    while (i < n) {
        s_tok_t *t = &toks[i];
        if (t->eq < 0) {
            if (can_as && !t->quoted && strcmp(t->text, "as") == 0) {
                if (i + 1 >= n || !s_is_ident(toks[i + 1].text))
                    return s_fail(err, errlen, -EINVAL,
                                  "`as` needs a NAME (letters, digits, _)");
                if ((rc = s_dup(&c->as, toks[i + 1].text, err, errlen)) < 0)
                    return rc;
                i += 2;
                continue;
            }
            return s_fail(err, errlen, -EINVAL,
                          "expected FIELD=VALUE, got \"%s\"", t->text);
        }
        t->text[t->eq] = '\0';
        const char *key = t->text, *value = t->text + t->eq + 1;
        i++;
        if (!key[0])
            return s_fail(err, errlen, -EINVAL, "empty field name");
        if (strcmp(key, "to") == 0 && (msg || c->kind == CTL_CMD_RESEND)) {
            if ((rc = s_dup(&c->to, value, err, errlen)) < 0)
                return rc;
            continue;
        }
        if (match && strcmp(key, "from") == 0) {
            if ((rc = s_dup(&c->from, value, err, errlen)) < 0)
                return rc;
            continue;
        }
        if (match && strcmp(key, "within") == 0) {
            if (s_parse_ms(value, CTL_WITHIN_MAX_MS, &c->within_ms) < 0)
                return s_fail(err, errlen, -EINVAL,
                              "within: \"%s\" is not a number of ms", value);
            continue;
        }
        if (c->kind == CTL_CMD_DROP && strcmp(key, "count") == 0) {
            if (s_parse_ms(value, 1000000, &c->count) < 0 || c->count == 0)
                return s_fail(err, errlen, -EINVAL,
                              "count: \"%s\" is not a positive number", value);
            continue;
        }
        if (c->kind == CTL_CMD_RESEND)
            return s_fail(err, errlen, -EINVAL,
                          "resend takes only to=ID, not %s=", key);
        ctl_arg_t *a = &c->args[c->nargs];
        size_t klen = strlen(key);
        if (key[klen - 1] == '!') {
            if (!match || klen == 1)
                return s_fail(err, errlen, -EINVAL,
                              "%s: != is for expect, expect-none and drop",
                              key);
            t->text[klen - 1] = '\0';
            a->neg = true;
        }
        if ((rc = s_resolve(c->body_case, key, &a->path, err, errlen)) < 0)
            return rc;
        if (!a->path && strcmp(value, "*") == 0)
            return s_fail(err, errlen, -EINVAL,
                          "leg= takes SESSION_ID:DIRECTION (legs=* for any)");
        a->key = strdup(key);
        a->value = strdup(value);
        c->nargs++;
        if (!a->key || !a->value)
            return s_fail(err, errlen, -ENOMEM, "out of memory");
    }
    return msg || match ? s_check_args(c, err, errlen) : 0;
}

/* The text after the command word, blanks trimmed. */
static const char *s_rest(const char *line, size_t *len)
{
    const char *p = line, *end;

    while (*p == ' ' || *p == '\t')
        p++;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    while (*p == ' ' || *p == '\t')
        p++;
    end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    *len = (size_t)(end - p);
    return p;
}

static int s_parse_line(ctl_cmd_t *c, const char *line, s_tok_t *toks, size_t n,
                        char *err, size_t errlen)
{
    const char *w = toks[0].text;
    int rc;

    if (toks[0].quoted)
        return s_fail(err, errlen, -EINVAL, "a line starts with a command");
    if (!strcmp(w, "send") || !strcmp(w, "expect") ||
        !strcmp(w, "expect-none") || !strcmp(w, "drop")) {
        c->kind = !strcmp(w, "send")     ? CTL_CMD_SEND
                  : !strcmp(w, "expect") ? CTL_CMD_EXPECT
                  : !strcmp(w, "drop")   ? CTL_CMD_DROP
                                         : CTL_CMD_EXPECT_NONE;
        c->within_ms = c->kind == CTL_CMD_EXPECT_NONE
                           ? CTL_EXPECT_NONE_WITHIN_MS
                           : CTL_EXPECT_WITHIN_MS;
        c->count = 1;
        if (n < 2)
            return s_fail(err, errlen, -EINVAL, "%s needs a BODY", w);
        if ((rc = s_body(toks[1].text, &c->body_case, err, errlen)) < 0)
            return rc;
        return s_parse_args(c, toks, 2, n, err, errlen);
    }
    if (!strcmp(w, "reply")) {
        c->kind = CTL_CMD_REPLY;
        if (n < 3 || !s_is_ident(toks[1].text))
            return s_fail(err, errlen, -EINVAL, "usage: reply NAME BODY ...");
        if ((rc = s_dup(&c->ref, toks[1].text, err, errlen)) < 0 ||
            (rc = s_body(toks[2].text, &c->body_case, err, errlen)) < 0)
            return rc;
        return s_parse_args(c, toks, 3, n, err, errlen);
    }
    if (!strcmp(w, "resend")) {
        c->kind = CTL_CMD_RESEND;
        if (n < 2 || !s_is_ident(toks[1].text))
            return s_fail(err, errlen, -EINVAL, "usage: resend NAME [to=ID]");
        if ((rc = s_dup(&c->ref, toks[1].text, err, errlen)) < 0)
            return rc;
        return s_parse_args(c, toks, 2, n, err, errlen);
    }
    if (!strcmp(w, "flush")) {
        c->kind = CTL_CMD_FLUSH;
        if (n > 2)
            return s_fail(err, errlen, -EINVAL, "usage: flush [BODY]");
        return n == 2 ? s_body(toks[1].text, &c->body_case, err, errlen) : 0;
    }
    if (!strcmp(w, "sleep")) {
        c->kind = CTL_CMD_SLEEP;
        if (n != 2 || s_parse_ms(toks[1].text, CTL_WITHIN_MAX_MS, &c->ms) < 0)
            return s_fail(err, errlen, -EINVAL, "usage: sleep MS");
        return 0;
    }
    if (!strcmp(w, "log")) {
        size_t len;
        const char *rest = s_rest(line, &len);
        c->kind = CTL_CMD_LOG;
        c->text = strndup(rest, len);
        return c->text ? 0 : s_fail(err, errlen, -ENOMEM, "out of memory");
    }
    if (!strcmp(w, "set")) {
        c->kind = CTL_CMD_SET;
        if (n != 2 || toks[1].eq < 1)
            return s_fail(err, errlen, -EINVAL, "usage: set NAME=VALUE");
        toks[1].text[toks[1].eq] = '\0';
        if (!s_is_ident(toks[1].text))
            return s_fail(err, errlen, -EINVAL,
                          "set: \"%s\" is not a NAME (letters, digits, _)",
                          toks[1].text);
        if ((rc = s_dup(&c->name, toks[1].text, err, errlen)) < 0)
            return rc;
        return s_dup(&c->text, toks[1].text + toks[1].eq + 1, err, errlen);
    }
    if (!strcmp(w, "auto-heartbeat")) {
        c->kind = CTL_CMD_AUTO_HEARTBEAT;
        if (n < 2 || n > 3 ||
            (strcmp(toks[1].text, "on") && strcmp(toks[1].text, "off")))
            return s_fail(err, errlen, -EINVAL,
                          "usage: auto-heartbeat on|off [MS]");
        c->on = !strcmp(toks[1].text, "on");
        if (n == 3) {
            const char *v = toks[2].text;
            if (!strncmp(v, "ms=", 3))
                v += 3;
            if (s_parse_ms(v, CTL_WITHIN_MAX_MS, &c->ms) < 0 || c->ms == 0)
                return s_fail(err, errlen, -EINVAL,
                              "auto-heartbeat: \"%s\" is not a number of ms",
                              toks[2].text);
        }
        return 0;
    }
    return s_fail(err, errlen, -EINVAL, "unknown command \"%s\"", w);
}

int ctl_script_parse(const char *text, const char *name, ctl_script_t **out,
                     char *err, size_t errlen)
{
    ctl_script_t *s;
    const char *p = text;
    unsigned lineno = 0;
    size_t cap = 0;
    s_tok_t toks[S_TOKENS_MAX];
    char why[512];
    int rc = 0;

    if (err && errlen)
        err[0] = '\0';
    if (!out || !text)
        return s_fail(err, errlen, -EINVAL, "no script");
    *out = NULL;
    if (!name)
        name = "script";
    s = calloc(1, sizeof(*s));
    if (!s || !(s->name = strdup(name))) {
        free(s);
        return s_fail(err, errlen, -ENOMEM, "out of memory");
    }
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, len);
        size_t n = 0;

        lineno++;
        p += len + (nl ? 1 : 0);
        if (!line) {
            rc = s_fail(err, errlen, -ENOMEM, "out of memory");
            break;
        }
        rc = s_tokenize(line, toks, S_TOKENS_MAX, &n, why, sizeof(why));
        if (rc == 0 && n > 0) {
            if (s->ncmds == cap) {
                size_t ncap = cap ? cap * 2 : 32;
                ctl_cmd_t *c = realloc(s->cmds, ncap * sizeof(*c));
                if (!c) {
                    rc = -ENOMEM;
                    snprintf(why, sizeof(why), "out of memory");
                } else {
                    s->cmds = c;
                    cap = ncap;
                }
            }
            if (rc == 0) {
                ctl_cmd_t *c = &s->cmds[s->ncmds++];
                memset(c, 0, sizeof(*c));
                c->line = lineno;
                rc = s_parse_line(c, line, toks, n, why, sizeof(why));
            }
        }
        s_toks_free(toks, n);
        free(line);
        if (rc < 0) {
            s_fail(err, errlen, rc, "%s:%u: %s", name, lineno, why);
            break;
        }
    }
    if (rc < 0) {
        ctl_script_destroy(&s);
        return rc;
    }
    *out = s;
    return 0;
}

int ctl_script_load(const char *path, ctl_script_t **out, char *err,
                    size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *buf;
    size_t n;
    int rc;

    if (!f)
        return s_fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
    buf = malloc(S_SCRIPT_MAX + 1);
    if (!buf) {
        fclose(f);
        return s_fail(err, errlen, -ENOMEM, "out of memory");
    }
    n = fread(buf, 1, S_SCRIPT_MAX + 1, f);
    rc = ferror(f) ? -EIO : 0;
    fclose(f);
    if (rc == 0 && n > S_SCRIPT_MAX)
        rc = s_fail(err, errlen, -EFBIG, "%s: larger than %u bytes", path,
                    S_SCRIPT_MAX);
    else if (rc < 0)
        s_fail(err, errlen, rc, "%s: read error", path);
    else if (memchr(buf, '\0', n))
        rc = s_fail(err, errlen, -EINVAL, "%s: contains a NUL byte", path);
    if (rc == 0) {
        buf[n] = '\0';
        rc = ctl_script_parse(buf, path, out, err, errlen);
    }
    free(buf);
    return rc;
}

/* ---- variables ------------------------------------------------------------
 */

typedef struct {
    char *name;
    char *value;
} s_plain_t;

struct ctl_vars {
    s_plain_t *plain;
    size_t nplain, capplain;
    ctl_msg_t *msgs;
    size_t nmsgs, capmsgs;
};

ctl_vars_t *ctl_vars_new(void)
{
    return calloc(1, sizeof(ctl_vars_t));
}

static void s_msg_clear(ctl_msg_t *m)
{
    free(m->name);
    im_proto_free(m->env);
    free(m->peer);
    free(m->bytes);
    memset(m, 0, sizeof(*m));
}

void ctl_vars_destroy(ctl_vars_t **v_p)
{
    if (!v_p || !*v_p)
        return;
    ctl_vars_t *v = *v_p;
    for (size_t i = 0; i < v->nplain; i++) {
        free(v->plain[i].name);
        free(v->plain[i].value);
    }
    free(v->plain);
    for (size_t i = 0; i < v->nmsgs; i++)
        s_msg_clear(&v->msgs[i]);
    free(v->msgs);
    free(v);
    *v_p = NULL;
}

int ctl_vars_set(ctl_vars_t *v, const char *name, const char *value)
{
    char *copy;

    if (!v || !name || !value)
        return -EINVAL;
    copy = strdup(value);
    if (!copy)
        return -ENOMEM;
    for (size_t i = 0; i < v->nplain; i++) {
        if (strcmp(v->plain[i].name, name) == 0) {
            free(v->plain[i].value);
            v->plain[i].value = copy;
            return 0;
        }
    }
    if (v->nplain == v->capplain) {
        size_t cap = v->capplain ? v->capplain * 2 : 16;
        s_plain_t *np = realloc(v->plain, cap * sizeof(*np));
        if (!np) {
            free(copy);
            return -ENOMEM;
        }
        v->plain = np;
        v->capplain = cap;
    }
    v->plain[v->nplain].name = strdup(name);
    if (!v->plain[v->nplain].name) {
        free(copy);
        return -ENOMEM;
    }
    v->plain[v->nplain++].value = copy;
    return 0;
}

const char *ctl_vars_get(const ctl_vars_t *v, const char *name)
{
    for (size_t i = 0; v && name && i < v->nplain; i++)
        if (strcmp(v->plain[i].name, name) == 0)
            return v->plain[i].value;
    return NULL;
}

int ctl_vars_save(ctl_vars_t *v, const char *name, im_env_t *env,
                  const char *peer, uint8_t *bytes, size_t len)
{
    ctl_msg_t m = {0};

    m.env = env;
    m.bytes = bytes;
    m.len = len;
    if (!v || !name || !env) {
        s_msg_clear(&m);
        return -EINVAL;
    }
    m.name = strdup(name);
    m.peer = strdup(peer ? peer : "");
    if (!m.name || !m.peer) {
        s_msg_clear(&m);
        return -ENOMEM;
    }
    for (size_t i = 0; i < v->nmsgs; i++) {
        if (strcmp(v->msgs[i].name, name) == 0) {
            s_msg_clear(&v->msgs[i]);
            v->msgs[i] = m;
            return 0;
        }
    }
    if (v->nmsgs == v->capmsgs) {
        size_t cap = v->capmsgs ? v->capmsgs * 2 : 16;
        ctl_msg_t *nm = realloc(v->msgs, cap * sizeof(*nm));
        if (!nm) {
            s_msg_clear(&m);
            return -ENOMEM;
        }
        v->msgs = nm;
        v->capmsgs = cap;
    }
    v->msgs[v->nmsgs++] = m;
    return 0;
}

const ctl_msg_t *ctl_vars_msg(const ctl_vars_t *v, const char *name)
{
    for (size_t i = 0; v && name && i < v->nmsgs; i++)
        if (strcmp(v->msgs[i].name, name) == 0)
            return &v->msgs[i];
    return NULL;
}

int ctl_msg_field(const ctl_msg_t *m, const char *path, char *out,
                  size_t outlen, char *err, size_t errlen)
{
    const char *body = im_proto_body_name((int)m->env->body_case);
    char full[256];
    int rc;

    if (strcmp(path, "body") == 0) {
        snprintf(out, outlen, "%s", body);
        return 0;
    }
    if (strcmp(path, "peer") == 0) {
        snprintf(out, outlen, "%s", m->peer ? m->peer : "");
        return 0;
    }
    if (strcmp(path, "epoch") == 0)
        path = "sender_epoch";
    snprintf(full, sizeof(full), "%s.%s", body, path);
    rc = im_proto_get_field(&m->env->base, full, out, outlen);
    if (rc == -EINVAL && s_is_header(path))
        rc = im_proto_get_field(&m->env->base, path, out, outlen);
    if (rc >= 0)
        return 0;
    if (rc == -ENOENT)
        return s_fail(err, errlen, rc, "$%s.%s: not set in that %s", m->name,
                      path, body);
    if (rc == -ENOSPC)
        return s_fail(err, errlen, -EINVAL, "$%s.%s: value too long", m->name,
                      path);
    return s_fail(err, errlen, -EINVAL, "$%s.%s: %s has no field %s", m->name,
                  path, body, path);
}

/* ---- expansion
 * --------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} s_str_t;

static void s_str_put(s_str_t *s, const char *p, size_t n)
{
    if (s->oom)
        return;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *np = realloc(s->p, cap);
        if (!np) {
            s->oom = true;
            return;
        }
        s->p = np;
        s->cap = cap;
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static bool s_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* One variable: name, and path (NULL: none) of a saved message's field. */
static int s_lookup(const ctl_vars_t *v, const char *name, const char *path,
                    s_str_t *out, char *err, size_t errlen)
{
    char val[S_VALUE_MAX];
    const char *s;

    if (path) {
        const ctl_msg_t *m = ctl_vars_msg(v, name);
        int rc;
        if (!m)
            return s_fail(err, errlen, -EINVAL, "no message saved as %s", name);
        rc = ctl_msg_field(m, path, val, sizeof(val), err, errlen);
        if (rc < 0)
            return -EINVAL;
        s_str_put(out, val, strlen(val));
        return 0;
    }
    s = ctl_vars_get(v, name);
    if (!s)
        s = getenv(name);
    if (s) {
        s_str_put(out, s, strlen(s));
        return 0;
    }
    if (ctl_vars_msg(v, name))
        return s_fail(err, errlen, -EINVAL,
                      "$%s is a message: name one of its fields ($%s.seq)",
                      name, name);
    return s_fail(err, errlen, -EINVAL, "undefined variable $%s", name);
}

int ctl_expand(const ctl_vars_t *v, const char *in, char **out, char *err,
               size_t errlen)
{
    s_str_t s = {0};
    const char *p = in;
    int rc = 0;

    *out = NULL;
    s_str_put(&s, "", 0);
    while (rc == 0 && *p) {
        const char *d = strchr(p, '$');
        if (!d) {
            s_str_put(&s, p, strlen(p));
            break;
        }
        s_str_put(&s, p, (size_t)(d - p));
        p = d + 1;
        if (*p == '$') {
            s_str_put(&s, "$", 1);
            p++;
        } else if (*p == '{') {
            const char *close = strchr(p, '}');
            char inner[256];
            size_t n;
            if (!close) {
                rc = s_fail(err, errlen, -EINVAL, "unterminated ${");
                break;
            }
            n = (size_t)(close - p - 1);
            if (n == 0 || n >= sizeof(inner)) {
                rc = s_fail(err, errlen, -EINVAL, "bad ${...}");
                break;
            }
            memcpy(inner, p + 1, n);
            inner[n] = '\0';
            char *dot = strchr(inner, '.');
            if (dot)
                *dot = '\0';
            if (!s_is_ident(inner)) {
                rc = s_fail(err, errlen, -EINVAL, "bad variable name \"%s\"",
                            inner);
                break;
            }
            rc = s_lookup(v, inner, dot ? dot + 1 : NULL, &s, err, errlen);
            p = close + 1;
        } else if (isalpha((unsigned char)*p) || *p == '_') {
            char name[128], path[256];
            size_t n = 0, pl = 0;
            while (s_name_char(*p) && n + 1 < sizeof(name))
                name[n++] = *p++;
            name[n] = '\0';
            if (s_name_char(*p)) {
                rc = s_fail(err, errlen, -EINVAL, "variable name too long");
                break;
            }
            /* .FIELD... only after the name of a saved message. */
            if (ctl_vars_msg(v, name)) {
                while (*p == '.' && s_name_char(p[1])) {
                    if (pl)
                        path[pl++] = '.';
                    p++;
                    while (s_name_char(*p) && pl + 2 < sizeof(path))
                        path[pl++] = *p++;
                    if (pl + 2 >= sizeof(path))
                        break;
                }
            }
            path[pl] = '\0';
            rc = s_lookup(v, name, pl ? path : NULL, &s, err, errlen);
        } else {
            rc = s_fail(err, errlen, -EINVAL,
                        "'$' must start a variable ($NAME, ${NAME}, "
                        "$NAME.FIELD; $$ for a '$')");
        }
    }
    if (rc == 0 && s.oom)
        rc = s_fail(err, errlen, -ENOMEM, "out of memory");
    if (rc < 0) {
        free(s.p);
        return rc;
    }
    *out = s.p;
    return 0;
}

/* ---- building
 * ----------------------------------------------------------------- */

static bool s_cmd_sets(const ctl_cmd_t *c, const char *key)
{
    for (size_t i = 0; i < c->nargs; i++)
        if (strcmp(c->args[i].key, key) == 0)
            return true;
    return false;
}

int ctl_script_build(const ctl_cmd_t *cmd, const ctl_vars_t *vars,
                     const ctl_header_t *hdr, im_env_t **out, bool *seq_used,
                     char *err, size_t errlen)
{
    static const char *const copied[] = {"session_id", "direction"};
    const char *body = im_proto_body_name(cmd->body_case);
    const ProtobufCMessageDescriptor *bd = s_body_desc(cmd->body_case);
    im_env_t *env;
    int rc;

    *out = NULL;
    *seq_used = false;
    if (!bd)
        return s_fail(err, errlen, -EINVAL, "unknown body");
    env = im_env_new();
    if (!env)
        return s_fail(err, errlen, -ENOMEM, "out of memory");
    env->sender_epoch = hdr->epoch;
    env->seq = hdr->seq;
    *seq_used = true;
    rc = im_proto_set_field(&env->base, "sender_id",
                            hdr->sender_id ? hdr->sender_id : "", err, errlen);
    if (rc == 0)
        rc = im_proto_set_field(&env->base, body, "{}", err, errlen);
    if (rc == 0 && cmd->kind == CTL_CMD_REPLY) {
        const ctl_msg_t *ref = ctl_vars_msg(vars, cmd->ref);
        if (!ref) {
            rc = s_fail(err, errlen, -EINVAL, "no message saved as %s",
                        cmd->ref);
            goto out;
        }
        env->reply_to = ref->env->seq;
        const char *rbody = im_proto_body_name((int)ref->env->body_case);
        for (size_t i = 0; rc == 0 && i < 2; i++) {
            char path[128], val[64];
            if (s_cmd_sets(cmd, copied[i]) ||
                im_proto_check_path(bd, copied[i], NULL, 0) < 0)
                continue;
            snprintf(path, sizeof(path), "%s.%s", rbody, copied[i]);
            if (im_proto_get_field(&ref->env->base, path, val, sizeof(val)) < 0)
                continue;
            snprintf(path, sizeof(path), "%s.%s", body, copied[i]);
            rc = im_proto_set_field(&env->base, path, val, err, errlen);
        }
    }
    for (size_t i = 0; rc == 0 && i < cmd->nargs; i++) {
        const ctl_arg_t *a = &cmd->args[i];
        char *value = NULL;
        rc = ctl_expand(vars, a->value, &value, err, errlen);
        if (rc < 0)
            break;
        if (!a->path) {
            rc = s_leg_append(env, value, err, errlen);
        } else {
            rc = im_proto_set_field(&env->base, a->path, value, err, errlen);
            if (strcmp(a->path, "seq") == 0)
                *seq_used = false;
        }
        free(value);
    }
out:
    if (rc < 0) {
        im_proto_free(env);
        *seq_used = false;
        return rc;
    }
    *out = env;
    return 0;
}

/* ---- matching
 * ------------------------------------------------------------------- */

typedef struct {
    char *key;  /* as written, for messages */
    char *path; /* envelope path; NULL for leg= */
    char *want; /* normalised value; NULL for `*` */
    char *leg_sid, *leg_dir;
    bool neg;
} s_cond_t;

struct ctl_matcher {
    int body_case;
    char *from;
    s_cond_t *conds;
    size_t nconds;
};

void ctl_matcher_destroy(ctl_matcher_t **m_p)
{
    if (!m_p || !*m_p)
        return;
    ctl_matcher_t *m = *m_p;
    for (size_t i = 0; i < m->nconds; i++) {
        free(m->conds[i].key);
        free(m->conds[i].path);
        free(m->conds[i].want);
        free(m->conds[i].leg_sid);
        free(m->conds[i].leg_dir);
    }
    free(m->conds);
    free(m->from);
    free(m);
    *m_p = NULL;
}

/* Whether an envelope path names a whole repeated field (no index after
 * it), which im_proto_get_field renders as its element count. */
static bool s_is_count(const char *path)
{
    const ProtobufCMessageDescriptor *d = &imsplit__v1__envelope__descriptor;
    const ProtobufCFieldDescriptor *f = NULL;
    const char *p = path;
    bool indexed = false;

    while (*p) {
        char seg[64];
        size_t n = strcspn(p, ".");
        if (n == 0 || n >= sizeof(seg))
            return false;
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (f && f->label == PROTOBUF_C_LABEL_REPEATED && !indexed &&
            strspn(seg, "0123456789") == n) {
            indexed = true;
        } else {
            if (f) {
                if (f->type != PROTOBUF_C_TYPE_MESSAGE)
                    return false;
                d = f->descriptor;
            }
            f = protobuf_c_message_descriptor_get_field_by_name(d, seg);
            if (!f)
                return false;
            indexed = false;
        }
        p += n;
        if (*p == '.')
            p++;
    }
    return f && f->label == PROTOBUF_C_LABEL_REPEATED && !indexed;
}

/* The value as im_proto_get_field renders it for the field at path: set on
 * a fresh envelope (indices replaced by 0, which a fresh message can
 * always append) and read back. A whole repeated field takes a count. */
static int s_normalise(int body_case, const char *path, const char *value,
                       char **out, char *err, size_t errlen)
{
    im_env_t *env;
    char zpath[256], val[S_VALUE_MAX];
    size_t o = 0;
    const char *p = path;
    int rc;

    *out = NULL;
    if (s_is_count(path)) {
        char *end;
        unsigned long long n;
        if (!isdigit((unsigned char)value[0]))
            return s_fail(err, errlen, -EINVAL,
                          "%s is repeated: compare its count, not \"%s\"", path,
                          value);
        errno = 0;
        n = strtoull(value, &end, 10);
        if (*end || errno == ERANGE)
            return s_fail(err, errlen, -EINVAL, "%s: bad count \"%s\"", path,
                          value);
        snprintf(val, sizeof(val), "%llu", n);
        *out = strdup(val);
        return *out ? 0 : s_fail(err, errlen, -ENOMEM, "out of memory");
    }
    env = im_env_new();
    if (!env)
        return s_fail(err, errlen, -ENOMEM, "out of memory");
    while (*p && o + 2 < sizeof(zpath)) {
        size_t n = strcspn(p, ".");
        bool digits = n > 0 && strspn(p, "0123456789") == n;
        if (digits) {
            zpath[o++] = '0';
        } else {
            if (o + n + 1 >= sizeof(zpath))
                break;
            memcpy(zpath + o, p, n);
            o += n;
        }
        p += n;
        if (*p == '.')
            zpath[o++] = *p++;
    }
    zpath[o] = '\0';
    rc = im_proto_set_field(&env->base, im_proto_body_name(body_case), "{}",
                            err, errlen);
    if (rc == 0)
        rc = im_proto_set_field(&env->base, zpath, value, err, errlen);
    if (rc == 0 && im_proto_get_field(&env->base, zpath, val, sizeof(val)) < 0)
        rc = s_fail(err, errlen, -EINVAL, "%s: value too long", path);
    if (rc == 0) {
        *out = strdup(val);
        if (!*out)
            rc = s_fail(err, errlen, -ENOMEM, "out of memory");
    }
    im_proto_free(env);
    return rc;
}

/* SID:DIR of a leg= match, each normalised as a LegRef field. */
static int s_normalise_leg(int body_case, const char *value, char **sid,
                           char **dir, char *err, size_t errlen)
{
    const char *body = im_proto_body_name(body_case);
    char s[128], d[128], path[128];
    int rc;

    *sid = *dir = NULL;
    if (s_leg_split(value, s, sizeof(s), d, sizeof(d)) < 0)
        return s_fail(err, errlen, -EINVAL,
                      "leg: \"%s\" is not SESSION_ID:DIRECTION", value);
    snprintf(path, sizeof(path), "%s.legs.0.session_id", body);
    rc = s_normalise(body_case, path, s, sid, err, errlen);
    snprintf(path, sizeof(path), "%s.legs.0.direction", body);
    if (rc == 0)
        rc = s_normalise(body_case, path, d, dir, err, errlen);
    if (rc < 0) {
        free(*sid);
        free(*dir);
        *sid = *dir = NULL;
    }
    return rc;
}

int ctl_matcher_new(const ctl_cmd_t *cmd, const ctl_vars_t *vars,
                    ctl_matcher_t **out, char *err, size_t errlen)
{
    ctl_matcher_t *m = calloc(1, sizeof(*m));
    int rc = 0;

    *out = NULL;
    if (!m)
        return s_fail(err, errlen, -ENOMEM, "out of memory");
    m->body_case = cmd->body_case;
    m->conds = calloc(cmd->nargs ? cmd->nargs : 1, sizeof(*m->conds));
    if (!m->conds) {
        rc = s_fail(err, errlen, -ENOMEM, "out of memory");
        goto out;
    }
    if (cmd->from &&
        (rc = ctl_expand(vars, cmd->from, &m->from, err, errlen)) < 0)
        goto out;
    for (size_t i = 0; i < cmd->nargs; i++) {
        const ctl_arg_t *a = &cmd->args[i];
        s_cond_t *c = &m->conds[m->nconds++];
        char *value = NULL;
        c->key = strdup(a->key);
        c->path = a->path ? strdup(a->path) : NULL;
        c->neg = a->neg;
        if (!c->key || (a->path && !c->path)) {
            rc = s_fail(err, errlen, -ENOMEM, "out of memory");
            goto out;
        }
        if (strcmp(a->value, "*") == 0)
            continue;
        if ((rc = ctl_expand(vars, a->value, &value, err, errlen)) < 0)
            goto out;
        if (a->path) {
            rc = s_normalise(cmd->body_case, a->path, value, &c->want, err,
                             errlen);
        } else {
            rc = s_normalise_leg(cmd->body_case, value, &c->leg_sid,
                                 &c->leg_dir, err, errlen);
        }
        free(value);
        if (rc < 0)
            goto out;
    }
out:
    if (rc < 0) {
        ctl_matcher_destroy(&m);
        return rc;
    }
    *out = m;
    return 0;
}

int ctl_matcher_body(const ctl_matcher_t *m)
{
    return m ? m->body_case : 0;
}

static bool s_leg_listed(const im_env_t *env, const s_cond_t *c)
{
    const char *body = im_proto_body_name((int)env->body_case);
    char path[128], val[64];
    unsigned long n;

    snprintf(path, sizeof(path), "%s.legs", body);
    if (im_proto_get_field(&env->base, path, val, sizeof(val)) < 0)
        return false;
    n = strtoul(val, NULL, 10);
    for (unsigned long i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s.legs.%lu.session_id", body, i);
        if (im_proto_get_field(&env->base, path, val, sizeof(val)) < 0 ||
            strcmp(val, c->leg_sid) != 0)
            continue;
        snprintf(path, sizeof(path), "%s.legs.%lu.direction", body, i);
        if (im_proto_get_field(&env->base, path, val, sizeof(val)) >= 0 &&
            strcmp(val, c->leg_dir) == 0)
            return true;
    }
    return false;
}

int ctl_matcher_test(const ctl_matcher_t *m, const im_env_t *env,
                     const char *peer, char *why, size_t whylen)
{
    char val[S_VALUE_MAX];

    if (why && whylen)
        why[0] = '\0';
    if (!m || !env)
        return 0;
    if ((int)env->body_case != m->body_case) {
        s_fail(why, whylen, 0, "body %s",
               im_proto_body_name((int)env->body_case));
        return 0;
    }
    if (m->from && strcmp(m->from, peer ? peer : "") != 0) {
        s_fail(why, whylen, 0, "from %s, want %s", peer ? peer : "", m->from);
        return 0;
    }
    for (size_t i = 0; i < m->nconds; i++) {
        const s_cond_t *c = &m->conds[i];
        const char *op = c->neg ? "!=" : "";
        bool same;
        if (!c->path) {
            same = s_leg_listed(env, c);
            if (same == c->neg) {
                s_fail(why, whylen, 0, "%s leg %s:%s", same ? "has the" : "no",
                       c->leg_sid, c->leg_dir);
                return 0;
            }
            continue;
        }
        int rc = im_proto_get_field(&env->base, c->path, val, sizeof(val));
        if (!c->want) {
            same = rc == 1;
            if (same == c->neg) {
                s_fail(why, whylen, 0, "%s %s (want %s*)", c->key,
                       same ? "set" : "not set", op);
                return 0;
            }
            continue;
        }
        if (rc < 0 && rc != -ENOSPC) {
            if (c->neg)
                continue;
            s_fail(why, whylen, 0, "%s absent, want %s", c->key, c->want);
            return 0;
        }
        same = strcmp(val, c->want) == 0;
        if (same == c->neg) {
            s_fail(why, whylen, 0, "%s=%s, want %s%s", c->key, val, op,
                   c->want);
            return 0;
        }
    }
    return 1;
}
