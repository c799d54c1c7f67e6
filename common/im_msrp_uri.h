/* im_msrp_uri: the MSRP URI of RFC 4975 section 9 as imsplit uses it:
 *   msrp://HOST:PORT/SESSIONID;tcp   (also msrps://, and [v6] hosts)
 * Used by the CP (SDP a=path) and the workers (leg paths, connect-out). */
#ifndef IM_MSRP_URI_H
#define IM_MSRP_URI_H

#include <stdbool.h>
#include <stddef.h>

#define IM_MSRP_HOST_MAX 64
#define IM_MSRP_SESSION_MAX 64

typedef struct {
    bool secure;                     /* msrps */
    char host[IM_MSRP_HOST_MAX];     /* without brackets */
    unsigned port;                   /* 1..65535 */
    char session[IM_MSRP_SESSION_MAX];
    char transport[8];               /* "tcp" */
} im_msrp_uri_t;

/* Parses one URI (no surrounding spaces). Returns 0 or -EINVAL for anything
 * else: missing scheme, empty host, port not in 1..65535, session id empty
 * or with characters outside RFC 4975's unreserved set, parts too long. */
int im_msrp_uri_parse(const char *s, size_t len, im_msrp_uri_t *out);

/* The last URI of a space-separated a=path / To-Path list (the one that
 * names the endpoint's session). Sets *start and *len; -EINVAL if empty. */
int im_msrp_path_last(const char *path, const char **start, size_t *len);

/* Formats msrp://HOST:PORT/SESSION;tcp (brackets added for v6). Returns the
 * snprintf-style length; the output is truncated to size. */
int im_msrp_uri_format(char *buf, size_t size, const char *host,
                       unsigned port, const char *session);

#endif
