#include "im_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define IM_ENV_NAME_MAX 128

static int s_fail(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;

    if (err && err_size) {
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

void im_config_env_name(const char *name, char *buf, size_t size)
{
    static const char prefix[] = "IMSPLIT_";
    size_t o = 0;

    if (!buf || size == 0)
        return;
    for (const char *p = prefix; *p && o + 1 < size; p++)
        buf[o++] = *p;
    for (const char *p = name ? name : ""; *p && o + 1 < size; p++)
        buf[o++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[o] = '\0';
}

static const im_opt_t *s_find(const im_opt_t *opts, size_t nopts,
                              const char *name, size_t len, size_t *index)
{
    for (size_t i = 0; i < nopts; i++) {
        if (opts[i].name && strlen(opts[i].name) == len &&
            strncmp(opts[i].name, name, len) == 0) {
            *index = i;
            return &opts[i];
        }
    }
    return NULL;
}

static int s_parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
        !strcasecmp(v, "on")) {
        *out = true;
        return 0;
    }
    if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
        !strcasecmp(v, "off")) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}

/* `src` names where the value came from ("--min-se" or "IMSPLIT_MIN_SE")
 * so the message points the operator at the right place. */
static int s_parse_uint(const im_opt_t *o, const char *src, const char *v,
                        char *err, size_t err_size)
{
    unsigned long long n;
    char *end;
    uint32_t min = o->min, max = o->max;

    /* strtoull accepts leading space and a sign; a config value may not. */
    if (!isdigit((unsigned char)v[0]))
        return s_fail(err, err_size, "%s: \"%s\" is not a number", src, v);
    errno = 0;
    n = strtoull(v, &end, 10);
    if (*end != '\0')
        return s_fail(err, err_size, "%s: \"%s\" is not a number", src, v);
    if (min == 0 && max == 0)
        max = UINT32_MAX;
    if (errno == ERANGE || n < min || n > max)
        return s_fail(err, err_size, "%s: %s is out of range [%u, %u]", src, v,
                      (unsigned)min, (unsigned)max);
    *(uint32_t *)o->dest = (uint32_t)n;
    return 0;
}

static int s_list_add(const im_opt_t *o, const char *src, const char *v,
                      char *err, size_t err_size)
{
    im_strlist_t *l = o->dest;

    if (l->count >= IM_STRLIST_MAX)
        return s_fail(err, err_size, "%s: more than %d values", src,
                      IM_STRLIST_MAX);
    l->items[l->count++] = v;
    return 0;
}

/* Applies a value given on the command line. `first` is true for the first
 * occurrence of a list flag, which replaces the default list. */
static int s_apply_flag(const im_opt_t *o, const char *src, const char *v,
                        bool first, char *err, size_t err_size)
{
    switch (o->type) {
    case IM_OPT_STRING:
        *(const char **)o->dest = v;
        return 0;
    case IM_OPT_UINT:
        return s_parse_uint(o, src, v, err, err_size);
    case IM_OPT_BOOL:
        if (s_parse_bool(v, o->dest) != 0)
            return s_fail(err, err_size, "%s: \"%s\" is not a boolean", src, v);
        return 0;
    case IM_OPT_LIST:
        if (first)
            ((im_strlist_t *)o->dest)->count = 0;
        return s_list_add(o, src, v, err, err_size);
    }
    return s_fail(err, err_size, "%s: unsupported option type", src);
}

static int s_apply_env(const im_opt_t *o, const char *src, const char *v,
                       char *err, size_t err_size)
{
    im_strlist_t *l;
    char *copy, *save = NULL;

    if (o->type != IM_OPT_LIST)
        return s_apply_flag(o, src, v, false, err, err_size);

    l = o->dest;
    copy = strdup(v);
    if (!copy)
        return s_fail(err, err_size, "%s: out of memory", src);
    free(l->env_copy);
    l->env_copy = copy;
    l->count = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *end;
        while (isspace((unsigned char)*tok))
            tok++;
        end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*tok == '\0')
            continue;
        if (s_list_add(o, src, tok, err, err_size) != 0)
            return -EINVAL;
    }
    return 0;
}

int im_config_parse(const im_opt_t *opts, size_t nopts, int argc,
                    char **argv, const char **positional, size_t *npositional,
                    char *err, size_t err_size)
{
    size_t cap = positional && npositional ? *npositional : 0;
    size_t npos = 0;
    bool *seen = NULL;
    bool only_positional = false;
    int rc = -EINVAL;

    if (err && err_size)
        err[0] = '\0';
    if (!opts && nopts)
        return s_fail(err, err_size, "no option table");
    seen = calloc(nopts ? nopts : 1, sizeof(*seen));
    if (!seen)
        return s_fail(err, err_size, "out of memory");

    for (int i = 1; i < argc && argv && argv[i]; i++) {
        const char *a = argv[i];
        const char *name, *eq, *value;
        const im_opt_t *o;
        size_t idx, len;
        char src[IM_ENV_NAME_MAX];

        if (only_positional || a[0] != '-' || a[1] == '\0') {
            if (!positional) {
                s_fail(err, err_size, "unexpected argument \"%s\"", a);
                goto out;
            }
            if (npos >= cap) {
                s_fail(err, err_size, "too many arguments at \"%s\"", a);
                goto out;
            }
            positional[npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (a[1] != '-') {
            s_fail(err, err_size, "unknown option %s", a);
            goto out;
        }
        name = a + 2;
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        o = s_find(opts, nopts, name, len, &idx);
        if (!o) {
            s_fail(err, err_size, "unknown option --%.*s", (int)len, name);
            goto out;
        }
        snprintf(src, sizeof(src), "--%s", o->name);
        if (o->type == IM_OPT_BOOL && !eq) {
            *(bool *)o->dest = true;
            seen[idx] = true;
            continue;
        }
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc && argv[i + 1] &&
                   strncmp(argv[i + 1], "--", 2) != 0) {
            value = argv[++i];
        } else {
            s_fail(err, err_size, "%s: missing value", src);
            goto out;
        }
        if (s_apply_flag(o, src, value, !seen[idx], err, err_size) != 0)
            goto out;
        seen[idx] = true;
    }

    for (size_t i = 0; i < nopts; i++) {
        char env[IM_ENV_NAME_MAX];
        const char *v;

        if (seen[i] || !opts[i].name)
            continue;
        im_config_env_name(opts[i].name, env, sizeof(env));
        v = getenv(env);
        if (!v)
            continue;
        if (s_apply_env(&opts[i], env, v, err, err_size) != 0)
            goto out;
    }
    rc = 0;
out:
    if (npositional && positional)
        *npositional = npos;
    free(seen);
    return rc;
}

void im_config_usage(void *stream, const char *prog, const im_opt_t *opts,
                     size_t nopts)
{
    FILE *f = stream ? stream : stderr;

    fprintf(f, "usage: %s [options]\n\noptions (environment: IMSPLIT_<NAME>):\n",
            prog ? prog : "imsplit");
    for (size_t i = 0; i < nopts && opts; i++) {
        const im_opt_t *o = &opts[i];
        char flag[64];

        if (!o->name)
            continue;
        switch (o->type) {
        case IM_OPT_BOOL:
            snprintf(flag, sizeof(flag), "--%s", o->name);
            break;
        case IM_OPT_UINT:
            snprintf(flag, sizeof(flag), "--%s N", o->name);
            break;
        case IM_OPT_LIST:
            snprintf(flag, sizeof(flag), "--%s VALUE...", o->name);
            break;
        default:
            snprintf(flag, sizeof(flag), "--%s VALUE", o->name);
            break;
        }
        fprintf(f, "  %-28s %s", flag, o->help ? o->help : "");
        if (o->type == IM_OPT_UINT && (o->min || o->max))
            fprintf(f, " [%u..%u]", (unsigned)o->min, (unsigned)o->max);
        if (o->type == IM_OPT_LIST)
            fprintf(f, " (repeatable)");
        fputc('\n', f);
    }
}

void im_strlist_free(im_strlist_t *l)
{
    if (!l)
        return;
    free(l->env_copy);
    l->env_copy = NULL;
    l->count = 0;
}

int im_config_split_hostport(const char *s, char *host, size_t host_size,
                             unsigned *port)
{
    const char *h, *colon, *p;
    size_t hlen;
    unsigned long n;
    char *end;

    if (!s || !host || host_size == 0 || !port)
        return -EINVAL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        /* An unbracketed IPv6 address cannot be told from its port. */
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -EINVAL;
        h = s;
        hlen = (size_t)(colon - s);
    }
    p = colon + 1;
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    errno = 0;
    n = strtoul(p, &end, 10);
    if (*end != '\0' || errno == ERANGE || n > 65535)
        return -EINVAL;
    if (hlen + 1 > host_size)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (unsigned)n;
    return 0;
}
