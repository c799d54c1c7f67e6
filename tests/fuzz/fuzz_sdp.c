/* fuzz_sdp: the CP's SDP handling (cp_sdp) on an offer or answer from a
 * peer: cp_sdp_inspect, then cp_sdp_rewrite for the other hop.
 *
 * Input: byte 0 picks the rewrite parameters: bits 0-1 the worker path
 * (three valid ones, or the first line of the rest of the input, as a
 * worker could send anything in AllocateLegResult), bits 2-3 the a=setup
 * to write (none, actpass, passive, active); the rest is the SDP body.
 *
 * Besides what the sanitizers catch, the target aborts when
 * - a call fails without saying why, or succeeds with an error message,
 *   or gives a reason with bytes a log value or Warning header cannot
 *   carry;
 * - inspect accepts an a=path that im_msrp_uri_parse does not;
 * - rewrite accepts an SDP that inspect rejects for another reason than
 *   its a=setup value;
 * - the CP's own output does not pass cp_sdp_inspect with the path and
 *   a=setup it wrote, or rewriting it again gives something else. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_sdp.h"
#include "im_log.h"
#include "im_msrp_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_CHECK(cond)                                                          \
    do {                                                                       \
        if (!(cond))                                                           \
            s_fail(__LINE__, #cond);                                           \
    } while (0)

static void s_fail(int line, const char *what)
{
    fprintf(stderr, "fuzz_sdp.c:%d: check failed: %s\n", line, what);
    abort();
}

static const char *const s_paths[3] = {
    "msrp://192.0.2.10:40123/aB3dE5fG7hJ9kL1m;tcp",
    "msrp://[2001:db8::7]:2855/leg-2;tcp",
    "msrp://relay.example.net:2856/r1;tcp msrp://192.0.2.10:40124/x9;tcp",
};
static const char *const s_setups[4] = {NULL, "actpass", "passive", "active"};

/* A reason fit for a log value and a Warning header (cp_sdp.h). */
static void s_check_err(const char *err)
{
    for (const char *p = err; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
            fprintf(stderr, "byte 0x%02x in reason: %s\n", c, err);
            S_CHECK(!"printable reason");
        }
    }
}

/* Every space-separated URI of an a=path parses. */
static void s_check_path(const char *path)
{
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
        S_CHECK(im_msrp_uri_parse(b, (size_t)(p - b), &uri) == 0);
        uris++;
    }
    S_CHECK(uris > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned pick = data[0] & 3;
    const char *setup = s_setups[(data[0] >> 2) & 3];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char path_in[CP_SDP_PATH_MAX + 8];
    const char *path;
    if (pick < 3) {
        path = s_paths[pick];
    } else {
        const char *nl = memchr(body, '\n', len);
        size_t n = nl ? (size_t)(nl - body) : len;
        if (n >= sizeof(path_in))
            n = sizeof(path_in) - 1;
        memcpy(path_in, body, n);
        path_in[n] = '\0';
        path = path_in;
        if (nl) {
            len -= (size_t)(nl - body) + 1;
            body = nl + 1;
        }
    }

    char ierr[160], err[160], quoted[200];
    cp_sdp_info_t info;
    int irc = cp_sdp_inspect(body, len, &info, ierr, sizeof(ierr));
    S_CHECK(irc == 0 || irc == -EINVAL);
    S_CHECK(memchr(ierr, '\0', sizeof(ierr)));
    S_CHECK((irc == 0) == (ierr[0] == '\0'));
    s_check_err(ierr);
    (void)im_log_quote(quoted, sizeof(quoted), ierr);
    if (irc == 0) {
        S_CHECK(strlen(info.path) < sizeof(info.path));
        s_check_path(info.path);
    }

    cp_sdp_rewrite_t rw = {path, setup, 0x1234567890abcdefull, 1};
    char *out = NULL;
    int rrc = cp_sdp_rewrite(body, len, &rw, &out, err, sizeof(err));
    S_CHECK(rrc == 0 || rrc == -EINVAL || rrc == -ENOMEM);
    S_CHECK((rrc == 0) == (out != NULL));
    S_CHECK((rrc == 0) == (err[0] == '\0'));
    s_check_err(err);
    (void)im_log_quote(quoted, sizeof(quoted), err);
    if (rrc != 0)
        return 0;
    /* Both read the document the same way; only inspect looks at the
     * a=setup value it is given. */
    S_CHECK(irc == 0 || strcmp(ierr, "invalid a=setup value") == 0);

    size_t olen = strlen(out);
    cp_sdp_info_t back;
    if (cp_sdp_inspect(out, olen, &back, err, sizeof(err)) != 0) {
        fprintf(stderr, "own output rejected (%s):\n%s\n", err, out);
        S_CHECK(!"the CP's SDP passes its own inspection");
    }
    S_CHECK(strcmp(back.path, path) == 0);
    S_CHECK(strcmp(back.setup, setup ? setup : "") == 0);

    char *again = NULL;
    S_CHECK(cp_sdp_rewrite(out, olen, &rw, &again, err, sizeof(err)) == 0);
    if (strcmp(again, out) != 0) {
        fprintf(stderr, "first:\n%s\nsecond:\n%s\n", out, again);
        S_CHECK(!"rewriting the CP's own SDP changes nothing");
    }
    free(again);
    free(out);
    return 0;
}
