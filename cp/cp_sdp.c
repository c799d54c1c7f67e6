#include "cp_sdp.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sofia-sip/sdp.h>
#include <sofia-sip/su_alloc.h>

#include "im_msrp_uri.h"

/* Strict: s= and t= are mandatory and lines are taken as written. Manual
 * mode: sofia keeps a=sendonly & co. as plain attributes and prints them
 * back where they were, instead of re-deriving them from its mode flags. */
#define CP_SDP_PARSE_FLAGS (sdp_f_strict | sdp_f_mode_manual)
#define CP_SDP_PRINT_FLAGS (sdp_f_mode_manual)

static void s_err(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* err quotes bytes of the SDP (an a=path URI, sofia's reason), and the CP
 * logs it between quotes and sends it in a Warning header: it is kept to
 * printable ASCII without quotes or backslashes. */
static void s_err(char *err, size_t size, const char *fmt, ...)
{
    if (!err || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c > 0x7e)
            *p = '?';
        else if (c == '"' || c == '\\')
            *p = '\'';
    }
}

static bool s_is_msrp(const sdp_media_t *m)
{
    return m->m_type == sdp_media_message && m->m_proto_name &&
           (strcasecmp(m->m_proto_name, "TCP/MSRP") == 0 ||
            strcasecmp(m->m_proto_name, "TCP/TLS/MSRP") == 0);
}

static sdp_attribute_t *s_attr(sdp_attribute_t *a, const char *name)
{
    for (; a; a = a->a_next)
        if (a->a_name && strcasecmp(a->a_name, name) == 0)
            return a;
    return NULL;
}

/* Every URI of the list must be one a worker can use; catching it here
 * turns a bad peer path into a 488 instead of a failed ConnectLeg later. */
static int s_path_check(const char *path, char *err, size_t err_size)
{
    size_t n = strlen(path);
    if (n == 0) {
        s_err(err, err_size, "empty a=path");
        return -EINVAL;
    }
    if (n >= CP_SDP_PATH_MAX) {
        s_err(err, err_size, "a=path longer than %d bytes",
              CP_SDP_PATH_MAX - 1);
        return -EINVAL;
    }
    const char *p = path;
    int uris = 0;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *b = p;
        while (*p && *p != ' ')
            p++;
        if (p == b)
            continue;
        im_msrp_uri_t uri;
        if (im_msrp_uri_parse(b, (size_t)(p - b), &uri) < 0) {
            s_err(err, err_size, "invalid MSRP URI in a=path: %.*s",
                  (int)(p - b > 80 ? 80 : p - b), b);
            return -EINVAL;
        }
        uris++;
    }
    if (uris == 0) {
        s_err(err, err_size, "empty a=path");
        return -EINVAL;
    }
    return 0;
}

/* The path's first URI is the hop the peer connects to. */
static int s_path_first(const char *path, im_msrp_uri_t *uri)
{
    const char *b = path;
    while (*b == ' ')
        b++;
    const char *e = b;
    while (*e && *e != ' ')
        e++;
    return im_msrp_uri_parse(b, (size_t)(e - b), uri);
}

/* RFC 4566 token-char. */
static bool s_token_char(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x27) || c == 0x2a || c == 0x2b ||
           c == 0x2d || c == 0x2e || (c >= 0x30 && c <= 0x39) ||
           (c >= 0x41 && c <= 0x5a) || (c >= 0x5e && c <= 0x7e);
}

/* p[0, len) is an m= line. sofia's parser loops forever, allocating, on a
 * format that starts with a byte outside token-char ("m=message 9
 * TCP/MSRP * @", or a second tab after the proto), and it reads "9P" as
 * port 9 and proto "P", so the line must have the RFC 4566 shape:
 * <media> <port>[/<count>] <proto> <fmt>..., separated by spaces, media
 * and fmt tokens, proto tokens joined by '/'. */
static bool s_media_line_ok(const char *p, size_t len)
{
    size_t words = 0;
    for (size_t i = 2; i < len;) {
        if (p[i] == ' ') {
            i++;
            continue;
        }
        size_t b = i;
        while (i < len && p[i] != ' ')
            i++;
        words++;
        size_t slashes = 0;
        for (size_t k = b; k < i; k++) {
            unsigned char c = (unsigned char)p[k];
            bool ok = words == 2 ? c >= '0' && c <= '9' : s_token_char(c);
            /* '/' between two parts of a proto, and once in a port. */
            if (c == '/' && (words == 2 || words == 3))
                ok = k > b && k + 1 < i && p[k - 1] != '/' &&
                     (words == 3 || ++slashes == 1);
            if (!ok)
                return false;
        }
    }
    return true;
}

/* sofia ignores lines it does not understand after the first m= and stops
 * quietly at a one-character line, dropping the rest of the body; both
 * would let garbage through or lose attributes on rewrite. Every line must
 * therefore have the RFC 4566 shape <lowercase letter>=<value>. */
static int s_lines_check(const char *body, size_t len, char *err,
                         size_t err_size)
{
    size_t line = 1;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && body[e] != '\r' && body[e] != '\n')
            e++;
        if (e > i && (e - i < 2 || body[i] < 'a' || body[i] > 'z' ||
                      body[i + 1] != '=' ||
                      (body[i] == 'm' && !s_media_line_ok(body + i, e - i)))) {
            s_err(err, err_size, "malformed SDP line %zu", line);
            return -EINVAL;
        }
        if (e < len && body[e] == '\n')
            line++;
        i = e + 1;
    }
    return 0;
}

typedef struct {
    su_home_t home[1];
    sdp_parser_t *parser;
    sdp_session_t *sdp;
    sdp_media_t *m;
    sdp_attribute_t *path;
} s_doc_t;

static void s_doc_fini(s_doc_t *d)
{
    if (d->parser)
        sdp_parser_free(d->parser);
    su_home_deinit(d->home);
}

/* Parses body and finds the MSRP m-line with its a=path. d must be
 * released with s_doc_fini whatever this returns. */
static int s_doc_load(s_doc_t *d, const char *body, size_t len, char *err,
                      size_t err_size)
{
    memset(d, 0, sizeof(*d));
    su_home_init(d->home);
    if (!body || len == 0) {
        s_err(err, err_size, "empty SDP");
        return -EINVAL;
    }
    /* sofia copies the body with strncpy: a NUL would silently cut off
     * everything after it. */
    if (memchr(body, '\0', len)) {
        s_err(err, err_size, "NUL byte in SDP");
        return -EINVAL;
    }
    if (len > (size_t)SSIZE_MAX) {
        s_err(err, err_size, "SDP too large");
        return -EINVAL;
    }
    if (s_lines_check(body, len, err, err_size) < 0)
        return -EINVAL;
    d->parser = sdp_parse(d->home, body, (issize_t)len, CP_SDP_PARSE_FLAGS);
    d->sdp = sdp_session(d->parser);
    if (!d->sdp) {
        const char *why = d->parser ? sdp_parsing_error(d->parser) : NULL;
        s_err(err, err_size, "SDP parse error: %s", why ? why : "unknown");
        return -EINVAL;
    }
    for (sdp_media_t *m = d->sdp->sdp_media; m; m = m->m_next) {
        if (!m->m_rejected && m->m_port != 0 && s_is_msrp(m)) {
            d->m = m;
            break;
        }
    }
    if (!d->m) {
        s_err(err, err_size, "no active m=message TCP/MSRP line");
        return -EINVAL;
    }
    d->path = s_attr(d->m->m_attributes, "path");
    if (!d->path || !d->path->a_value) {
        s_err(err, err_size, "MSRP m-line has no a=path");
        return -EINVAL;
    }
    return s_path_check(d->path->a_value, err, err_size);
}

int cp_sdp_inspect(const char *body, size_t len, cp_sdp_info_t *info,
                   char *err, size_t err_size)
{
    s_err(err, err_size, "%s", "");
    if (!info) {
        s_err(err, err_size, "no output");
        return -EINVAL;
    }
    s_doc_t d;
    int rc = s_doc_load(&d, body, len, err, err_size);
    if (rc < 0)
        goto out;
    /* RFC 4145: a=setup may sit at session level; media level wins. */
    sdp_attribute_t *setup = s_attr(d.m->m_attributes, "setup");
    if (!setup)
        setup = s_attr(d.sdp->sdp_attributes, "setup");
    const char *sv = setup && setup->a_value ? setup->a_value : "";
    if (strlen(sv) >= sizeof(info->setup)) {
        s_err(err, err_size, "invalid a=setup value");
        rc = -EINVAL;
        goto out;
    }
    snprintf(info->path, sizeof(info->path), "%s", d.path->a_value);
    snprintf(info->setup, sizeof(info->setup), "%s", sv);
out:
    s_doc_fini(&d);
    return rc;
}

/* Unlinks every attribute called name from *list except keep. */
static void s_attr_drop(sdp_attribute_t **list, const char *name,
                        const sdp_attribute_t *keep)
{
    while (*list) {
        sdp_attribute_t *a = *list;
        if (a != keep && a->a_name && strcasecmp(a->a_name, name) == 0)
            *list = a->a_next;
        else
            list = &a->a_next;
    }
}

static bool s_setup_ok(const char *v)
{
    if (!*v || strlen(v) >= sizeof(((cp_sdp_info_t *)0)->setup))
        return false;
    for (; *v; v++)
        if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
              *v == '-'))
            return false;
    return true;
}

int cp_sdp_rewrite(const char *body, size_t len, const cp_sdp_rewrite_t *rw,
                   char **out, char *err, size_t err_size)
{
    s_err(err, err_size, "%s", "");
    if (!out || !rw || !rw->path) {
        s_err(err, err_size, "no rewrite parameters");
        return -EINVAL;
    }
    *out = NULL;
    /* rw->path goes into the SDP verbatim: refuse anything that could end
     * the line or that the peer could not use. */
    if (strpbrk(rw->path, "\r\n\t")) {
        s_err(err, err_size, "invalid rewrite path");
        return -EINVAL;
    }
    if (s_path_check(rw->path, err, err_size) < 0)
        return -EINVAL;
    im_msrp_uri_t uri;
    if (s_path_first(rw->path, &uri) < 0) {
        s_err(err, err_size, "invalid rewrite path");
        return -EINVAL;
    }
    if (rw->setup && !s_setup_ok(rw->setup)) {
        s_err(err, err_size, "invalid rewrite a=setup");
        return -EINVAL;
    }

    s_doc_t d;
    sdp_printer_t *pr = NULL;
    int rc = s_doc_load(&d, body, len, err, err_size);
    if (rc < 0)
        goto out;

    sdp_connection_t wc = {
        .c_size = sizeof(wc),
        .c_nettype = sdp_net_in,
        .c_addrtype = strchr(uri.host, ':') ? sdp_addr_ip6 : sdp_addr_ip4,
        .c_address = uri.host,
        .c_groups = 1,
    };
    sdp_origin_t o = {
        .o_size = sizeof(o),
        .o_username = "imsplit",
        .o_id = rw->origin_id,
        .o_version = rw->origin_version,
        .o_address = &wc,
    };
    d.sdp->sdp_origin = &o;

    sdp_connection_t *orig = d.sdp->sdp_connection;
    if (orig) {
        /* Other m-lines that relied on the session-level c= keep the
         * address they had, now as their own media-level c=. */
        for (sdp_media_t *m = d.sdp->sdp_media; m; m = m->m_next)
            if (m != d.m && !m->m_rejected && !m->m_connections)
                m->m_connections = orig;
        d.sdp->sdp_connection = &wc;
    }
    if (d.m->m_connections || !orig)
        d.m->m_connections = &wc;
    d.m->m_port = uri.port;
    d.m->m_number_of_ports = 0;

    d.path->a_value = rw->path;
    s_attr_drop(&d.m->m_attributes, "path", d.path);

    sdp_attribute_t setup_attr = {
        .a_size = sizeof(setup_attr),
        .a_name = "setup",
        .a_value = rw->setup,
    };
    if (rw->setup) {
        sdp_attribute_t *a = s_attr(d.m->m_attributes, "setup");
        if (a) {
            a->a_value = rw->setup;
            s_attr_drop(&d.m->m_attributes, "setup", a);
        } else {
            sdp_attribute_t **tail = &d.m->m_attributes;
            while (*tail)
                tail = &(*tail)->a_next;
            *tail = &setup_attr;
        }
    } else {
        /* A session-level a=setup would still apply to the m-line. */
        s_attr_drop(&d.m->m_attributes, "setup", NULL);
        s_attr_drop(&d.sdp->sdp_attributes, "setup", NULL);
    }

    pr = sdp_print(d.home, d.sdp, NULL, 0, CP_SDP_PRINT_FLAGS);
    const char *perr = pr ? sdp_printing_error(pr) : "out of memory";
    if (perr) {
        s_err(err, err_size, "cannot print SDP: %s", perr);
        rc = strstr(perr, "memory") ? -ENOMEM : -EINVAL;
        goto out;
    }
    const char *msg = sdp_message(pr);
    size_t size = (size_t)sdp_message_size(pr);
    if (!msg) {
        s_err(err, err_size, "cannot print SDP");
        rc = -EINVAL;
        goto out;
    }
    char *copy = malloc(size + 1);
    if (!copy) {
        s_err(err, err_size, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    memcpy(copy, msg, size);
    copy[size] = '\0';
    *out = copy;
    rc = 0;
out:
    if (pr)
        sdp_printer_free(pr);
    s_doc_fini(&d);
    return rc;
}
