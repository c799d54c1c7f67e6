/* MSRP SDP inspection and per-hop rewrite through sofia's SDP parser and
 * printer: what is read, what is replaced, what is kept, and that bad
 * input of any shape is refused with a reason instead of crashing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_sdp.h"

#define OFFER                                                   \
    "v=0\r\n"                                                   \
    "o=alice 2890844526 2890844527 IN IP4 127.0.0.1\r\n"        \
    "s=-\r\n"                                                   \
    "c=IN IP4 127.0.0.1\r\n"                                    \
    "t=0 0\r\n"                                                 \
    "m=message 7654 TCP/MSRP *\r\n"                             \
    "a=accept-types:message/cpim text/plain\r\n"                \
    "a=path:msrp://127.0.0.1:7654/jshA7weztas;tcp\r\n"          \
    "a=setup:actpass\r\n"

#define WORKER_PATH "msrp://10.0.0.5:40001/k3J9xQpL2mN8vB7c;tcp"

static int inspect(const char *body, cp_sdp_info_t *info, char *err,
                   size_t err_size)
{
    memset(info, 0x5a, sizeof(*info));
    return cp_sdp_inspect(body, strlen(body), info, err, err_size);
}

/* Asserts body is refused by both functions, with a reason. */
static void assert_refused_len(const char *body, size_t len)
{
    cp_sdp_info_t info;
    char err[160] = "";
    assert_int_equal(cp_sdp_inspect(body, len, &info, err, sizeof(err)),
                     -EINVAL);
    assert_true(err[0] != '\0');

    cp_sdp_rewrite_t rw = {WORKER_PATH, "passive", 1, 1};
    char *out = (char *)0x1;
    err[0] = '\0';
    assert_int_equal(cp_sdp_rewrite(body, len, &rw, &out, err, sizeof(err)),
                     -EINVAL);
    assert_null(out);
    assert_true(err[0] != '\0');
}

static void assert_refused(const char *body, const char *why)
{
    cp_sdp_info_t info;
    char err[160] = "";
    if (inspect(body, &info, err, sizeof(err)) != -EINVAL)
        fail_msg("accepted: %s", body);
    if (why && !strstr(err, why))
        fail_msg("error \"%s\" does not mention \"%s\"", err, why);
    assert_refused_len(body, strlen(body));
}

/* Not inlined: GCC 12 then mistakes the returned buffer for a dangling
 * pointer to the local that held it. */
__attribute__((noinline)) static char *
rewrite_ok(const char *body, const cp_sdp_rewrite_t *rw)
{
    char *out = NULL;
    char err[160] = "";
    int rc = cp_sdp_rewrite(body, strlen(body), rw, &out, err, sizeof(err));
    if (rc != 0)
        fail_msg("rewrite failed: %d %s", rc, err);
    assert_non_null(out);
    return out;
}

static bool has_line(const char *sdp, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = sdp; (p = strstr(p, line)) != NULL; p += n)
        if ((p == sdp || p[-1] == '\n') && p[n] == '\r' && p[n + 1] == '\n')
            return true;
    return false;
}

static int count(const char *sdp, const char *needle)
{
    int n = 0;
    for (const char *p = sdp; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* ---- inspect ---------------------------------------------------------- */

static void test_inspect_offer(void **state)
{
    (void)state;
    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(inspect(OFFER, &info, err, sizeof(err)), 0);
    assert_string_equal(info.path, "msrp://127.0.0.1:7654/jshA7weztas;tcp");
    assert_string_equal(info.setup, "actpass");
    /* err and its size are optional. */
    assert_int_equal(cp_sdp_inspect(OFFER, strlen(OFFER), &info, NULL, 0), 0);
}

static void test_inspect_answer_without_setup(void **state)
{
    (void)state;
    const char *answer = "v=0\r\n"
                         "o=bob 2890844530 2890844530 IN IP4 192.0.2.7\r\n"
                         "s= \r\n"
                         "c=IN IP4 192.0.2.7\r\n"
                         "t=0 0\r\n"
                         "m=message 12763 TCP/MSRP *\r\n"
                         "a=accept-types:message/cpim\r\n"
                         "a=path:msrp://192.0.2.7:12763/kjhd37s2s20w2a;tcp\r\n";
    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(inspect(answer, &info, err, sizeof(err)), 0);
    assert_string_equal(info.path, "msrp://192.0.2.7:12763/kjhd37s2s20w2a;tcp");
    assert_string_equal(info.setup, "");
}

static void test_inspect_session_level_setup(void **state)
{
    (void)state;
    const char *sdp = "v=0\r\n"
                      "o=a 1 1 IN IP4 192.0.2.1\r\n"
                      "s=-\r\n"
                      "c=IN IP4 192.0.2.1\r\n"
                      "t=0 0\r\n"
                      "a=setup:passive\r\n"
                      "m=message 2855 TCP/MSRP *\r\n"
                      "a=path:msrp://192.0.2.1:2855/a;tcp\r\n";
    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(inspect(sdp, &info, err, sizeof(err)), 0);
    assert_string_equal(info.setup, "passive");
}

static void test_inspect_relay_chain(void **state)
{
    (void)state;
    const char *path = "msrp://relay.example.net:2855/r9;tcp "
                       "msrp://[2001:db8::7]:7000/end1;tcp";
    char sdp[1024];
    snprintf(sdp, sizeof(sdp),
             "v=0\r\n"
             "o=a 1 1 IN IP6 2001:db8::7\r\n"
             "s=-\r\n"
             "c=IN IP6 2001:db8::7\r\n"
             "t=0 0\r\n"
             "m=message 7000 TCP/TLS/MSRP *\r\n"
             "a=path:%s\r\n"
             "a=setup:active\r\n",
             path);
    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(inspect(sdp, &info, err, sizeof(err)), 0);
    assert_string_equal(info.path, path);
    assert_string_equal(info.setup, "active");
}

static void test_inspect_picks_first_active_msrp_line(void **state)
{
    (void)state;
    const char *sdp = "v=0\r\n"
                      "o=a 1 1 IN IP4 192.0.2.1\r\n"
                      "s=-\r\n"
                      "c=IN IP4 192.0.2.1\r\n"
                      "t=0 0\r\n"
                      "m=audio 49170 RTP/AVP 0\r\n"
                      "a=path:msrp://192.0.2.1:1/audio-is-not-msrp;tcp\r\n"
                      "m=message 0 TCP/MSRP *\r\n"
                      "a=path:msrp://192.0.2.1:2/rejected;tcp\r\n"
                      "m=message 3 tcp/msrp *\r\n"
                      "a=path:msrp://192.0.2.1:3/active;tcp\r\n"
                      "m=message 4 TCP/MSRP *\r\n"
                      "a=path:msrp://192.0.2.1:4/second;tcp\r\n";
    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(inspect(sdp, &info, err, sizeof(err)), 0);
    assert_string_equal(info.path, "msrp://192.0.2.1:3/active;tcp");
}

static void test_inspect_refusals(void **state)
{
    (void)state;
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=message 7654 TCP/MSRP *\r\n"
                   "a=accept-types:text/plain\r\n",
                   "a=path");
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n",
                   "m=message");
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=message 0 TCP/MSRP *\r\n"
                   "a=path:msrp://192.0.2.1:7654/x;tcp\r\n",
                   "m=message");
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=audio 49170 RTP/AVP 0 8\r\n"
                   "a=rtpmap:0 PCMU/8000\r\n",
                   "m=message");
    /* m=message over something that is not MSRP. */
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=message 7654 TCP/SIP *\r\n"
                   "a=path:msrp://192.0.2.1:7654/x;tcp\r\n",
                   "m=message");
    /* Empty and unusable paths. */
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=message 7654 TCP/MSRP *\r\n"
                   "a=path\r\n",
                   "a=path");
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=message 7654 TCP/MSRP *\r\n"
                   "a=path:sip:bob@example.com\r\n",
                   "MSRP URI");
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=message 7654 TCP/MSRP *\r\n"
                   "a=path:msrp://192.0.2.1:7654/x;tcp msrp://h/nope;tcp\r\n",
                   "MSRP URI");
    /* A nonsense a=setup cannot be reported, but the rewrite replaces it
     * anyway, so only inspect refuses it. */
    const char *long_setup = "v=0\r\n"
                             "o=a 1 1 IN IP4 192.0.2.1\r\n"
                             "s=-\r\n"
                             "c=IN IP4 192.0.2.1\r\n"
                             "t=0 0\r\n"
                             "m=message 7654 TCP/MSRP *\r\n"
                             "a=path:msrp://192.0.2.1:7654/x;tcp\r\n"
                             "a=setup:actpassactpassactpass\r\n";
    cp_sdp_info_t info;
    char err[160] = "";
    assert_int_equal(inspect(long_setup, &info, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "a=setup"));
    cp_sdp_rewrite_t rw = {WORKER_PATH, "active", 1, 1};
    char *out = rewrite_ok(long_setup, &rw);
    assert_true(has_line(out, "a=setup:active"));
    assert_null(strstr(out, "actpassactpass"));
    free(out);
    /* Structure errors the parser catches. */
    assert_refused("v=0\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=message 7654 TCP/MSRP *\r\n"
                   "a=path:msrp://192.0.2.1:7654/x;tcp\r\n",
                   "parse");
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "t=0 0\r\n"
                   "m=message 7654 TCP/MSRP *\r\n"
                   "a=path:msrp://192.0.2.1:7654/x;tcp\r\n",
                   "parse");
    assert_refused("v=1\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=message 7654 TCP/MSRP *\r\n"
                   "a=path:msrp://192.0.2.1:7654/x;tcp\r\n",
                   "parse");
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=message 7654 TCP/MSRP *\r\n"
                   "a=path:msrp://192.0.2.1:7654/x;tcp\r\n"
                   "this is not an sdp line\r\n",
                   "malformed SDP line 8");
    /* sofia would stop at the one-character line and drop what follows. */
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=message 7654 TCP/MSRP *\r\n"
                   "a=path:msrp://192.0.2.1:7654/x;tcp\r\n"
                   "x\r\n"
                   "a=max-size:1\r\n",
                   "malformed SDP line 8");
    assert_refused("v=0\n"
                   "o=a 1 1 IN IP4 192.0.2.1\n"
                   "S=-\n",
                   "malformed SDP line 3");
    /* A format that is not a token: sofia's parser would allocate until
     * memory runs out. */
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=message 7654 TCP/MSRP * @\r\n"
                   "a=path:msrp://192.0.2.1:7654/x;tcp\r\n",
                   "malformed SDP line 6");
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=audio 49170 RTP/AVP 0\r\n"
                   "m=message 7654 TCP/MSRP \xc3\xa9\r\n"
                   "a=path:msrp://192.0.2.1:7654/x;tcp\r\n",
                   "malformed SDP line 7");
    assert_refused("v=0\rm=a 2P\x90\x90", "malformed SDP line");
    /* Nor with tabs between the fields: sofia loops on "T\t\t". */
    assert_refused("v=0\rm=e 4 T\t\t", "malformed SDP line");
    /* sofia would read port 8 and proto "P", then loop on "/". */
    assert_refused("v=0\nm=m 8P /", "malformed SDP line 2");
    assert_refused("v=0\r\n"
                   "o=a 1 1 IN IP4 192.0.2.1\r\n"
                   "s=-\r\n"
                   "c=IN IP4 192.0.2.1\r\n"
                   "t=0 0\r\n"
                   "m=message 7654/2/2 TCP/MSRP *\r\n"
                   "a=path:msrp://192.0.2.1:7654/x;tcp\r\n",
                   "malformed SDP line 6");
}

/* Reasons quote the SDP, and the CP logs them between quotes and sends
 * them in a Warning header. */
static void test_refusal_reason_printable(void **state)
{
    (void)state;
    const char *sdp = "v=0\r\n"
                      "o=a 1 1 IN IP4 192.0.2.1\r\n"
                      "s=-\r\n"
                      "c=IN IP4 192.0.2.1\r\n"
                      "t=0 0\r\n"
                      "m=message 7654 TCP/MSRP *\r\n"
                      "a=path:msrp://a\x01\"b\\\x1b[2J\x7f\xc3\xa9:1/x;tcp\r\n";
    cp_sdp_info_t info;
    char err[160] = "";
    assert_int_equal(inspect(sdp, &info, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "a=path: msrp://a?'b'?[2J"));
    for (const char *p = err; *p; p++) {
        unsigned char c = (unsigned char)*p;
        assert_true(c >= 0x20 && c <= 0x7e && c != '"' && c != '\\');
    }
}

static void test_inspect_bad_input_never_crashes(void **state)
{
    (void)state;
    assert_refused("", "empty");
    assert_refused_len(OFFER, 0);
    assert_refused("garbage", NULL);
    assert_refused("\r\n\r\n\r\n", NULL);
    assert_refused("v=0", NULL);
    assert_refused("m=message 7654 TCP/MSRP *\r\n", NULL);
    assert_refused("\x01\x02\x03\xff\xfe=", NULL);

    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(cp_sdp_inspect(NULL, 10, &info, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(cp_sdp_inspect(OFFER, strlen(OFFER), NULL, err,
                                    sizeof(err)),
                     -EINVAL);

    /* Every truncation of a valid offer: parses or is refused, never
     * more. The cut is an exact-size heap copy so ASan sees any
     * over-read. Cuts inside the a=path URI must be refused. */
    size_t full = strlen(OFFER);
    const char *path_at = strstr(OFFER, "a=path:") + strlen("a=path:");
    size_t path_start = (size_t)(path_at - OFFER);
    size_t path_end = path_start + strlen("msrp://127.0.0.1:7654/jshA7weztas;");
    for (size_t cut = 0; cut < full; cut++) {
        char *copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, OFFER, cut);
        int rc = cp_sdp_inspect(copy, cut, &info, err, sizeof(err));
        assert_true(rc == 0 || rc == -EINVAL);
        if (cut <= path_end)
            assert_int_equal(rc, -EINVAL);
        if (rc == 0)
            assert_true(strncmp(info.path, "msrp://127.0.0.1:7654/", 22) == 0);
        free(copy);
    }

    /* A NUL inside the body: sofia would otherwise stop reading there. */
    char nul[sizeof(OFFER) + 32];
    size_t n = (size_t)snprintf(nul, sizeof(nul), "%s", OFFER);
    memcpy(nul + n, "\0a=x:y\r\n", 8);
    assert_refused_len(nul, n + 8);
    nul[10] = '\0';
    assert_refused_len(nul, n);
}

static void test_inspect_64k_garbage(void **state)
{
    (void)state;
    size_t n = 64 * 1024;
    char *g = malloc(n);
    assert_non_null(g);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        g[i] = (char)(x % 255 + 1); /* no NUL: the parser must do the work */
    }
    assert_refused_len(g, n);

    /* Garbage after a valid header still has to fail, as must 64 KiB of
     * well-formed but pointless attribute lines before the m-line. */
    memcpy(g, "v=0\r\n", 5);
    assert_refused_len(g, n);

    char *big = malloc(n + sizeof(OFFER));
    assert_non_null(big);
    size_t off = (size_t)sprintf(big, "v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\n"
                                      "s=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n");
    while (off + 16 < n)
        off += (size_t)sprintf(big + off, "a=x-pad:%06zu\r\n", off);
    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(cp_sdp_inspect(big, off, &info, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "m=message"));
    off += (size_t)sprintf(big + off, "m=message 1 TCP/MSRP *\r\n"
                                      "a=path:msrp://192.0.2.1:1/z;tcp\r\n");
    assert_int_equal(cp_sdp_inspect(big, off, &info, err, sizeof(err)), 0);
    assert_string_equal(info.path, "msrp://192.0.2.1:1/z;tcp");
    free(big);
    free(g);
}

static void test_inspect_path_too_long(void **state)
{
    (void)state;
    /* A relay chain whose a=path does not fit CP_SDP_PATH_MAX. */
    char *sdp = malloc(CP_SDP_PATH_MAX * 2 + 512);
    assert_non_null(sdp);
    int off = sprintf(sdp, "v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
                           "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"
                           "m=message 1 TCP/MSRP *\r\na=path:");
    int start = off;
    while (off - start < CP_SDP_PATH_MAX)
        off += sprintf(sdp + off, "msrp://192.0.2.1:1/relayhop;tcp ");
    sprintf(sdp + off, "msrp://192.0.2.1:1/end;tcp\r\n");
    assert_refused(sdp, "a=path");
    free(sdp);
}

/* ---- rewrite ---------------------------------------------------------- */

static void test_rewrite_offer(void **state)
{
    (void)state;
    cp_sdp_rewrite_t rw = {WORKER_PATH, "actpass", 0x1122334455667788ull, 7};
    char *out = rewrite_ok(OFFER, &rw);

    assert_true(has_line(out, "v=0"));
    assert_true(has_line(out, "o=imsplit 1234605616436508552 7 IN IP4 10.0.0.5"));
    assert_true(has_line(out, "s=-"));
    assert_true(has_line(out, "c=IN IP4 10.0.0.5"));
    assert_true(has_line(out, "t=0 0"));
    assert_true(has_line(out, "m=message 40001 TCP/MSRP *"));
    assert_true(has_line(out, "a=accept-types:message/cpim text/plain"));
    assert_true(has_line(out, "a=path:" WORKER_PATH));
    assert_true(has_line(out, "a=setup:actpass"));
    /* Nothing of the client's media address survives. */
    assert_null(strstr(out, "127.0.0.1"));
    assert_null(strstr(out, "7654"));
    assert_null(strstr(out, "alice"));
    assert_int_equal(count(out, "c="), 1);
    assert_int_equal(count(out, "a=setup"), 1);
    assert_int_equal(count(out, "a=path"), 1);

    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(inspect(out, &info, err, sizeof(err)), 0);
    assert_string_equal(info.path, WORKER_PATH);
    assert_string_equal(info.setup, "actpass");
    free(out);
}

static void test_rewrite_exact_output(void **state)
{
    (void)state;
    cp_sdp_rewrite_t rw = {WORKER_PATH, "passive", 42, 1};
    char *out = rewrite_ok(OFFER, &rw);
    assert_string_equal(out, "v=0\r\n"
                             "o=imsplit 42 1 IN IP4 10.0.0.5\r\n"
                             "s=-\r\n"
                             "c=IN IP4 10.0.0.5\r\n"
                             "t=0 0\r\n"
                             "m=message 40001 TCP/MSRP *\r\n"
                             "a=accept-types:message/cpim text/plain\r\n"
                             "a=path:" WORKER_PATH "\r\n"
                             "a=setup:passive\r\n");
    free(out);
}

static void test_lf_only_line_ends(void **state)
{
    (void)state;
    const char *lf = "v=0\n"
                     "o=alice 1 1 IN IP4 127.0.0.1\n"
                     "s=-\n"
                     "c=IN IP4 127.0.0.1\n"
                     "t=0 0\n"
                     "m=message 7654 TCP/MSRP *\n"
                     "a=path:msrp://127.0.0.1:7654/lf;tcp\n";
    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(inspect(lf, &info, err, sizeof(err)), 0);
    assert_string_equal(info.path, "msrp://127.0.0.1:7654/lf;tcp");
    cp_sdp_rewrite_t rw = {WORKER_PATH, NULL, 1, 1};
    char *out = rewrite_ok(lf, &rw);
    /* The output always uses CRLF. */
    assert_true(has_line(out, "m=message 40001 TCP/MSRP *"));
    assert_null(strstr(out, "a=setup"));
    free(out);
}

static void test_rewrite_setup_replaced_added_removed(void **state)
{
    (void)state;
    cp_sdp_info_t info;
    char err[160];

    cp_sdp_rewrite_t rw = {WORKER_PATH, "passive", 1, 1};
    char *out = rewrite_ok(OFFER, &rw);
    assert_true(has_line(out, "a=setup:passive"));
    assert_int_equal(count(out, "a=setup"), 1);
    assert_int_equal(inspect(out, &info, err, sizeof(err)), 0);
    assert_string_equal(info.setup, "passive");

    /* Removed, then added back to an SDP that has none. */
    rw.setup = NULL;
    char *none = rewrite_ok(out, &rw);
    assert_null(strstr(none, "a=setup"));
    assert_true(has_line(none, "a=accept-types:message/cpim text/plain"));
    assert_int_equal(inspect(none, &info, err, sizeof(err)), 0);
    assert_string_equal(info.setup, "");

    rw.setup = "active";
    char *added = rewrite_ok(none, &rw);
    assert_true(has_line(added, "a=setup:active"));
    assert_int_equal(count(added, "a=setup"), 1);
    assert_int_equal(inspect(added, &info, err, sizeof(err)), 0);
    assert_string_equal(info.setup, "active");

    free(out);
    free(none);
    free(added);
}

static void test_rewrite_setup_duplicates_and_session_level(void **state)
{
    (void)state;
    const char *sdp = "v=0\r\n"
                      "o=a 1 1 IN IP4 192.0.2.1\r\n"
                      "s=-\r\n"
                      "c=IN IP4 192.0.2.1\r\n"
                      "t=0 0\r\n"
                      "a=setup:active\r\n"
                      "m=message 2855 TCP/MSRP *\r\n"
                      "a=setup:passive\r\n"
                      "a=path:msrp://192.0.2.1:2855/a;tcp\r\n"
                      "a=setup:holdconn\r\n"
                      "a=path:msrp://192.0.2.1:2855/b;tcp\r\n";
    cp_sdp_rewrite_t rw = {WORKER_PATH, "actpass", 1, 1};
    char *out = rewrite_ok(sdp, &rw);
    assert_int_equal(count(out, "a=path"), 1);
    assert_true(has_line(out, "a=path:" WORKER_PATH));
    assert_true(has_line(out, "a=setup:actpass"));
    assert_null(strstr(out, "holdconn"));
    free(out);

    /* Removal also drops the session-level one, which would otherwise
     * still apply to the m-line. */
    rw.setup = NULL;
    out = rewrite_ok(sdp, &rw);
    assert_null(strstr(out, "a=setup"));
    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(inspect(out, &info, err, sizeof(err)), 0);
    assert_string_equal(info.setup, "");
    free(out);
}

static void test_rewrite_ipv6_path(void **state)
{
    (void)state;
    const char *v6 = "msrp://[2001:db8::42]:5000/v6leg;tcp";
    cp_sdp_rewrite_t rw = {v6, "active", 99, 2};
    char *out = rewrite_ok(OFFER, &rw);
    assert_true(has_line(out, "o=imsplit 99 2 IN IP6 2001:db8::42"));
    assert_true(has_line(out, "c=IN IP6 2001:db8::42"));
    assert_true(has_line(out, "m=message 5000 TCP/MSRP *"));
    assert_true(has_line(out, "a=path:msrp://[2001:db8::42]:5000/v6leg;tcp"));
    assert_null(strstr(out, "IN IP4"));
    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(inspect(out, &info, err, sizeof(err)), 0);
    assert_string_equal(info.path, v6);

    /* And back from v6 to v4. */
    cp_sdp_rewrite_t back = {WORKER_PATH, "passive", 99, 3};
    char *out4 = rewrite_ok(out, &back);
    assert_true(has_line(out4, "c=IN IP4 10.0.0.5"));
    assert_true(has_line(out4, "o=imsplit 99 3 IN IP4 10.0.0.5"));
    assert_null(strstr(out4, "2001:db8"));
    free(out4);
    free(out);
}

static void test_rewrite_relay_chain_keeps_only_worker_path(void **state)
{
    (void)state;
    const char *sdp =
        "v=0\r\n"
        "o=a 1 1 IN IP4 198.51.100.9\r\n"
        "s=-\r\n"
        "c=IN IP4 198.51.100.9\r\n"
        "t=0 0\r\n"
        "m=message 2855 TCP/TLS/MSRP *\r\n"
        "a=accept-types:message/cpim\r\n"
        "a=path:msrps://relay.example.net:2855/r1;tcp "
        "msrps://198.51.100.9:7777/endp;tcp\r\n";
    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(inspect(sdp, &info, err, sizeof(err)), 0);
    assert_non_null(strstr(info.path, "relay.example.net"));
    assert_non_null(strstr(info.path, "endp"));

    cp_sdp_rewrite_t rw = {WORKER_PATH, "passive", 5, 5};
    char *out = rewrite_ok(sdp, &rw);
    assert_true(has_line(out, "a=path:" WORKER_PATH));
    assert_null(strstr(out, "relay.example.net"));
    assert_null(strstr(out, "198.51.100.9"));
    /* The transport name is kept as the peer wrote it. */
    assert_true(has_line(out, "m=message 40001 TCP/TLS/MSRP *"));
    assert_int_equal(inspect(out, &info, err, sizeof(err)), 0);
    assert_string_equal(info.path, WORKER_PATH);
    free(out);
}

static void test_rewrite_keeps_other_lines(void **state)
{
    (void)state;
    /* Media-level c= on the MSRP line, a second stream relying on the
     * session-level c=, a rejected MSRP line, direction attributes and
     * session attributes. */
    const char *sdp = "v=0\r\n"
                      "o=alice 10 20 IN IP4 192.0.2.1\r\n"
                      "s=chat\r\n"
                      "i=some info\r\n"
                      "c=IN IP4 192.0.2.1\r\n"
                      "b=AS:64\r\n"
                      "t=0 0\r\n"
                      "a=tool:x\r\n"
                      "m=audio 49170 RTP/AVP 0 96\r\n"
                      "a=rtpmap:96 opus/48000/2\r\n"
                      "a=sendonly\r\n"
                      "m=message 0 TCP/MSRP *\r\n"
                      "m=message 7654 TCP/MSRP *\r\n"
                      "c=IN IP4 192.0.2.99\r\n"
                      "a=accept-types:message/cpim text/plain\r\n"
                      "a=accept-wrapped-types:*\r\n"
                      "a=max-size:131072\r\n"
                      "a=path:msrp://192.0.2.99:7654/s1;tcp\r\n"
                      "a=recvonly\r\n";
    cp_sdp_rewrite_t rw = {WORKER_PATH, "passive", 3, 4};
    char *out = rewrite_ok(sdp, &rw);

    assert_true(has_line(out, "o=imsplit 3 4 IN IP4 10.0.0.5"));
    assert_true(has_line(out, "s=chat"));
    assert_true(has_line(out, "i=some info"));
    assert_true(has_line(out, "b=AS:64"));
    assert_true(has_line(out, "a=tool:x"));
    assert_true(has_line(out, "c=IN IP4 10.0.0.5"));
    /* The audio stream keeps its address, now as its own c=. */
    assert_true(has_line(out, "m=audio 49170 RTP/AVP 0 96"));
    assert_true(has_line(out, "c=IN IP4 192.0.2.1"));
    assert_true(has_line(out, "a=rtpmap:96 opus/48000/2"));
    assert_true(has_line(out, "a=sendonly"));
    assert_true(has_line(out, "m=message 0 TCP/MSRP *"));
    assert_true(has_line(out, "m=message 40001 TCP/MSRP *"));
    assert_true(has_line(out, "a=accept-types:message/cpim text/plain"));
    assert_true(has_line(out, "a=accept-wrapped-types:*"));
    assert_true(has_line(out, "a=max-size:131072"));
    assert_true(has_line(out, "a=recvonly"));
    assert_true(has_line(out, "a=setup:passive"));
    assert_null(strstr(out, "192.0.2.99"));
    assert_null(strstr(out, "7654"));
    /* Order of the m-lines is unchanged. */
    char *audio = strstr(out, "m=audio");
    char *rejected = strstr(out, "m=message 0");
    char *msrp = strstr(out, "m=message 40001");
    assert_true(audio && rejected && msrp && audio < rejected &&
                rejected < msrp);
    /* The worker's c= sits at session level and on the MSRP line. */
    assert_int_equal(count(out, "c=IN IP4 10.0.0.5"), 2);

    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(inspect(out, &info, err, sizeof(err)), 0);
    assert_string_equal(info.path, WORKER_PATH);
    assert_string_equal(info.setup, "passive");
    free(out);
}

static void test_rewrite_media_level_c_only(void **state)
{
    (void)state;
    const char *sdp = "v=0\r\n"
                      "o=a 1 1 IN IP4 192.0.2.1\r\n"
                      "s=-\r\n"
                      "t=0 0\r\n"
                      "m=message 7654 TCP/MSRP *\r\n"
                      "c=IN IP4 192.0.2.1\r\n"
                      "a=path:msrp://192.0.2.1:7654/s1;tcp\r\n";
    cp_sdp_rewrite_t rw = {WORKER_PATH, NULL, 1, 1};
    char *out = rewrite_ok(sdp, &rw);
    assert_int_equal(count(out, "c="), 1);
    char *c = strstr(out, "c=IN IP4 10.0.0.5");
    char *m = strstr(out, "m=message 40001");
    assert_true(c && m && m < c);
    assert_null(strstr(out, "192.0.2.1"));
    free(out);
}

static void test_rewrite_output_reparses(void **state)
{
    (void)state;
    /* Rewriting the output again with other values converges to the new
     * values, not to a mix. */
    cp_sdp_rewrite_t rw1 = {WORKER_PATH, "actpass", 1, 1};
    char *a = rewrite_ok(OFFER, &rw1);
    cp_sdp_rewrite_t rw2 = {"msrp://203.0.113.1:2000/other;tcp", "active",
                            UINT64_MAX, 0};
    char *b = rewrite_ok(a, &rw2);
    assert_true(has_line(b, "o=imsplit 18446744073709551615 0 IN IP4 "
                            "203.0.113.1"));
    assert_true(has_line(b, "c=IN IP4 203.0.113.1"));
    assert_true(has_line(b, "m=message 2000 TCP/MSRP *"));
    assert_null(strstr(b, "10.0.0.5"));
    cp_sdp_info_t info;
    char err[160];
    assert_int_equal(inspect(b, &info, err, sizeof(err)), 0);
    assert_string_equal(info.path, "msrp://203.0.113.1:2000/other;tcp");
    assert_string_equal(info.setup, "active");
    /* Same input, same parameters: same bytes. */
    char *c = rewrite_ok(a, &rw2);
    assert_string_equal(b, c);
    free(a);
    free(b);
    free(c);
}

static void test_rewrite_bad_parameters(void **state)
{
    (void)state;
    static const char *const bad_paths[] = {
        "",
        "   ",
        "msrp://10.0.0.5/x;tcp",
        "http://10.0.0.5:1/x;tcp",
        "msrp://10.0.0.5:1/x;tcp\r\na=evil:1",
        "msrp://10.0.0.5:1/x;tcp\tmsrp://10.0.0.6:1/y;tcp",
    };
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        cp_sdp_rewrite_t rw = {bad_paths[i], "actpass", 1, 1};
        char *out = (char *)0x1;
        char err[160] = "";
        assert_int_equal(cp_sdp_rewrite(OFFER, strlen(OFFER), &rw, &out, err,
                                        sizeof(err)),
                         -EINVAL);
        assert_null(out);
        assert_true(err[0] != '\0');
    }
    static const char *const bad_setups[] = {"", "act pass", "x\r\na=y",
                                             "waytoolongsetupvalue"};
    for (size_t i = 0; i < sizeof(bad_setups) / sizeof(bad_setups[0]); i++) {
        cp_sdp_rewrite_t rw = {WORKER_PATH, bad_setups[i], 1, 1};
        char *out = (char *)0x1;
        assert_int_equal(cp_sdp_rewrite(OFFER, strlen(OFFER), &rw, &out, NULL,
                                        0),
                         -EINVAL);
        assert_null(out);
    }
    char *out = NULL;
    cp_sdp_rewrite_t nopath = {NULL, "actpass", 1, 1};
    assert_int_equal(cp_sdp_rewrite(OFFER, strlen(OFFER), &nopath, &out, NULL,
                                    0),
                     -EINVAL);
    assert_int_equal(cp_sdp_rewrite(OFFER, strlen(OFFER), NULL, &out, NULL, 0),
                     -EINVAL);
    cp_sdp_rewrite_t rw = {WORKER_PATH, "actpass", 1, 1};
    assert_int_equal(cp_sdp_rewrite(OFFER, strlen(OFFER), &rw, NULL, NULL, 0),
                     -EINVAL);
}

static void test_rewrite_relay_chain_as_worker_path(void **state)
{
    (void)state;
    /* If the CP's own path were a chain, c= and m= name its first hop:
     * that is where the peer connects. */
    cp_sdp_rewrite_t rw = {"msrp://10.9.9.9:1111/hop;tcp "
                           "msrp://10.0.0.5:40001/leg;tcp",
                           "passive", 1, 1};
    char *out = rewrite_ok(OFFER, &rw);
    assert_true(has_line(out, "c=IN IP4 10.9.9.9"));
    assert_true(has_line(out, "m=message 1111 TCP/MSRP *"));
    assert_true(has_line(out, "a=path:msrp://10.9.9.9:1111/hop;tcp "
                              "msrp://10.0.0.5:40001/leg;tcp"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inspect_offer),
        cmocka_unit_test(test_inspect_answer_without_setup),
        cmocka_unit_test(test_inspect_session_level_setup),
        cmocka_unit_test(test_inspect_relay_chain),
        cmocka_unit_test(test_inspect_picks_first_active_msrp_line),
        cmocka_unit_test(test_inspect_refusals),
        cmocka_unit_test(test_refusal_reason_printable),
        cmocka_unit_test(test_inspect_bad_input_never_crashes),
        cmocka_unit_test(test_inspect_64k_garbage),
        cmocka_unit_test(test_inspect_path_too_long),
        cmocka_unit_test(test_rewrite_offer),
        cmocka_unit_test(test_rewrite_exact_output),
        cmocka_unit_test(test_lf_only_line_ends),
        cmocka_unit_test(test_rewrite_setup_replaced_added_removed),
        cmocka_unit_test(test_rewrite_setup_duplicates_and_session_level),
        cmocka_unit_test(test_rewrite_ipv6_path),
        cmocka_unit_test(test_rewrite_relay_chain_keeps_only_worker_path),
        cmocka_unit_test(test_rewrite_keeps_other_lines),
        cmocka_unit_test(test_rewrite_media_level_c_only),
        cmocka_unit_test(test_rewrite_output_reparses),
        cmocka_unit_test(test_rewrite_bad_parameters),
        cmocka_unit_test(test_rewrite_relay_chain_as_worker_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
