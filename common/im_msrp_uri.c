#include "im_msrp_uri.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool s_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool s_is_alnum(char c)
{
    return s_is_alpha(c) || s_is_digit(c);
}

static bool s_is_hex(char c)
{
    return s_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char s_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* RFC 3986 unreserved. */
static bool s_is_unreserved(char c)
{
    return s_is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 4975 session-id = 1*( unreserved / "+" / "=" / "/" ). */
static bool s_is_session_char(char c)
{
    return s_is_unreserved(c) || c == '+' || c == '=' || c == '/';
}

/* RFC 3261 token characters, for URI-parameter = token ["=" token]. */
static bool s_is_token_char(char c)
{
    return s_is_alnum(c) || (c != '\0' && strchr("-.!%*_+`'~", c) != NULL);
}

static bool s_prefix_ci(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    if (len < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s_lower(s[i]) != prefix[i])
            return false;
    return true;
}

/* Host chars we accept: a reg-name or IPv4 literal limited to what DNS and
 * inet_pton can use, or the inside of an IPv6 literal. Zone ids ("%eth0")
 * are refused: they mean nothing to the peer that receives the URI. */
static bool s_host_ok(const char *h, size_t n, bool v6)
{
    if (n == 0)
        return false;
    bool colon = false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (v6) {
            if (c == ':')
                colon = true;
            else if (!s_is_hex(c) && c != '.')
                return false;
        } else if (!s_is_alnum(c) && c != '-' && c != '.' && c != '_') {
            return false;
        }
    }
    return !v6 || colon;
}

int im_msrp_uri_parse(const char *s, size_t len, im_msrp_uri_t *out)
{
    if (!s || !out)
        return -EINVAL;
    im_msrp_uri_t u;
    memset(&u, 0, sizeof(u));
    const char *p = s;
    const char *end = s + len;

    if (s_prefix_ci(p, len, "msrps://")) {
        u.secure = true;
        p += 8;
    } else if (s_prefix_ci(p, len, "msrp://")) {
        p += 7;
    } else {
        return -EINVAL;
    }

    /* The authority ends at the first '/' or ';' (a session-less URI). */
    const char *auth = p;
    while (p < end && *p != '/' && *p != ';')
        p++;
    const char *auth_end = p;

    /* userinfo carries no routing information for us; skip it. */
    const char *at = NULL;
    for (const char *q = auth; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (at)
        auth = at + 1;

    const char *host;
    size_t host_len;
    const char *q;
    bool v6 = false;
    if (auth < auth_end && *auth == '[') {
        const char *close = memchr(auth, ']', (size_t)(auth_end - auth));
        if (!close)
            return -EINVAL;
        host = auth + 1;
        host_len = (size_t)(close - host);
        q = close + 1;
        v6 = true;
    } else {
        host = auth;
        q = auth;
        while (q < auth_end && *q != ':')
            q++;
        host_len = (size_t)(q - host);
    }
    if (!s_host_ok(host, host_len, v6) || host_len >= sizeof(u.host))
        return -EINVAL;
    memcpy(u.host, host, host_len);

    /* An a=path without a port cannot be connected to, so the port is
     * mandatory here even though RFC 3986 makes it optional. */
    if (q >= auth_end || *q != ':')
        return -EINVAL;
    q++;
    if (q >= auth_end)
        return -EINVAL;
    unsigned long port = 0;
    for (; q < auth_end; q++) {
        if (!s_is_digit(*q))
            return -EINVAL;
        port = port * 10 + (unsigned long)(*q - '0');
        if (port > 65535)
            return -EINVAL;
    }
    if (port == 0)
        return -EINVAL;
    u.port = (unsigned)port;

    /* Session id: everything up to the ';' that starts the transport. */
    if (p >= end || *p != '/')
        return -EINVAL;
    p++;
    const char *sess = p;
    while (p < end && *p != ';') {
        if (!s_is_session_char(*p))
            return -EINVAL;
        p++;
    }
    size_t sess_len = (size_t)(p - sess);
    if (sess_len == 0 || sess_len >= sizeof(u.session))
        return -EINVAL;
    memcpy(u.session, sess, sess_len);

    if (p >= end || *p != ';')
        return -EINVAL;
    p++;
    const char *tr = p;
    while (p < end && s_is_alnum(*p))
        p++;
    size_t tr_len = (size_t)(p - tr);
    if (tr_len == 0 || tr_len >= sizeof(u.transport))
        return -EINVAL;
    for (size_t i = 0; i < tr_len; i++)
        u.transport[i] = s_lower(tr[i]);

    /* *( ";" token ["=" token] ): checked for syntax, not kept. */
    while (p < end) {
        if (*p != ';')
            return -EINVAL;
        p++;
        const char *name = p;
        while (p < end && s_is_token_char(*p))
            p++;
        if (p == name)
            return -EINVAL;
        if (p < end && *p == '=') {
            p++;
            const char *val = p;
            while (p < end && s_is_token_char(*p))
                p++;
            if (p == val)
                return -EINVAL;
        }
    }

    *out = u;
    return 0;
}

static bool s_is_path_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int im_msrp_path_last(const char *path, const char **start, size_t *len)
{
    if (!path || !start || !len)
        return -EINVAL;
    const char *end = path + strlen(path);
    while (end > path && s_is_path_space(end[-1]))
        end--;
    const char *b = end;
    while (b > path && !s_is_path_space(b[-1]))
        b--;
    if (b == end)
        return -EINVAL;
    *start = b;
    *len = (size_t)(end - b);
    return 0;
}

int im_msrp_uri_format(char *buf, size_t size, const char *host,
                       unsigned port, const char *session)
{
    if (!host || !session || (!buf && size > 0))
        return -EINVAL;
    bool v6 = strchr(host, ':') != NULL && host[0] != '[';
    return snprintf(buf, size, "msrp://%s%s%s:%u/%s;tcp", v6 ? "[" : "", host,
                    v6 ? "]" : "", port, session);
}
