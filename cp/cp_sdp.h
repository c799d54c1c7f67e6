/* cp_sdp: inspect and rewrite the MSRP SDP of one hop (sofia-sip sdp.h).
 *
 * The B2BUA never lets one side see the other's media address: every SDP it
 * forwards describes the worker's leg instead (c= address, m= port, a=path,
 * a=setup), while everything else in the media description (accept-types,
 * max-size, ...) is kept. */
#ifndef CP_SDP_H
#define CP_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CP_SDP_PATH_MAX 1024

typedef struct {
    char path[CP_SDP_PATH_MAX]; /* a=path of the MSRP m-line, as written */
    char setup[16];             /* a=setup value, "" when absent */
} cp_sdp_info_t;

typedef struct {
    const char *path;  /* worker leg's msrp://HOST:PORT/SESSIONID;tcp */
    const char *setup; /* a=setup to write ("actpass", "passive", ...), or
                          NULL to remove any a=setup */
    uint64_t origin_id;      /* o= sess-id */
    uint64_t origin_version; /* o= sess-version */
} cp_sdp_rewrite_t;

/* Finds the first active m=message line with proto TCP/MSRP or TCP/TLS/MSRP
 * and reads its a=path and a=setup. Returns 0; -EINVAL with a reason in err
 * when the SDP does not parse, has no such m-line, or that m-line has no
 * a=path. Reasons of both functions are printable ASCII without quotes or
 * backslashes, fit for a log value or a Warning header. */
int cp_sdp_inspect(const char *body, size_t len, cp_sdp_info_t *info,
                   char *err, size_t err_size);

/* Writes a copy of body for the other hop: c= (session and media level) set
 * to the path's host (IN IP4 or IN IP6 by its form), the MSRP m-line's port
 * set to the path's port, a=path replaced by rw->path, a=setup replaced or
 * removed, o= set to "imsplit <origin_id> <origin_version> IN IP4|6 host".
 * Other m-lines are kept as they are. *out is malloc'd; caller frees.
 * Returns 0 or -EINVAL (err says why) / -ENOMEM. */
int cp_sdp_rewrite(const char *body, size_t len, const cp_sdp_rewrite_t *rw,
                   char **out, char *err, size_t err_size);

#endif
