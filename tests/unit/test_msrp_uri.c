/* MSRP URIs (RFC 4975 section 9) as they appear in a=path and To-Path:
 * what parses, what is refused, and that formatting round-trips. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "im_msrp_uri.h"

static int parse(const char *s, im_msrp_uri_t *u)
{
    return im_msrp_uri_parse(s, strlen(s), u);
}

static void test_parse_ipv4(void **state)
{
    (void)state;
    im_msrp_uri_t u;
    assert_int_equal(parse("msrp://127.0.0.1:7654/jshA7weztas;tcp", &u), 0);
    assert_false(u.secure);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 7654);
    assert_string_equal(u.session, "jshA7weztas");
    assert_string_equal(u.transport, "tcp");
}

static void test_parse_secure_and_case(void **state)
{
    (void)state;
    im_msrp_uri_t u;
    assert_int_equal(parse("MSRPS://Relay.Example.com:2855/a1;TCP", &u), 0);
    assert_true(u.secure);
    assert_string_equal(u.host, "Relay.Example.com");
    assert_int_equal(u.port, 2855);
    assert_string_equal(u.session, "a1");
    assert_string_equal(u.transport, "tcp");
}

static void test_parse_ipv6(void **state)
{
    (void)state;
    im_msrp_uri_t u;
    assert_int_equal(parse("msrp://[2001:db8::1]:9000/s-1;tcp", &u), 0);
    assert_string_equal(u.host, "2001:db8::1");
    assert_int_equal(u.port, 9000);
    assert_string_equal(u.session, "s-1");

    assert_int_equal(parse("msrp://[::ffff:10.0.0.1]:1/x;tcp", &u), 0);
    assert_string_equal(u.host, "::ffff:10.0.0.1");
    assert_int_equal(parse("msrp://[::1]:65535/x;tcp", &u), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 65535);
}

static void test_parse_rfc_extras(void **state)
{
    (void)state;
    im_msrp_uri_t u;
    /* session-id allows "+", "=" and "/" besides unreserved. */
    assert_int_equal(parse("msrp://h:1/aB9-._~+=/x;tcp", &u), 0);
    assert_string_equal(u.session, "aB9-._~+=/x");
    /* URI parameters after the transport are accepted and not kept. */
    assert_int_equal(parse("msrp://h:1/s;tcp;foo=bar;baz", &u), 0);
    assert_string_equal(u.transport, "tcp");
    assert_string_equal(u.session, "s");
    /* userinfo is skipped. */
    assert_int_equal(parse("msrp://bob@h.example:12/s;tcp", &u), 0);
    assert_string_equal(u.host, "h.example");
    assert_int_equal(u.port, 12);
    /* Another transport token parses; callers decide what they use. */
    assert_int_equal(parse("msrp://h:1/s;ws", &u), 0);
    assert_string_equal(u.transport, "ws");
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "msrp",
        "msrp://",
        "http://h:1/s;tcp",
        "msrp:/h:1/s;tcp",
        "msrp://:1/s;tcp",           /* empty host */
        "msrp://h/s;tcp",            /* no port */
        "msrp://h:/s;tcp",           /* empty port */
        "msrp://h:0/s;tcp",          /* port 0 */
        "msrp://h:65536/s;tcp",      /* port too big */
        "msrp://h:99999999999999999999/s;tcp",
        "msrp://h:12a/s;tcp",
        "msrp://h:-1/s;tcp",
        "msrp://h:1:2/s;tcp",
        "msrp://h:1/;tcp",           /* empty session */
        "msrp://h:1;tcp",            /* no session */
        "msrp://h:1/s",              /* no transport */
        "msrp://h:1/s;",             /* empty transport */
        "msrp://h:1/s;tcptcptc",     /* transport too long */
        "msrp://h:1/s%20;tcp",       /* '%' not allowed in session */
        "msrp://h:1/a b;tcp",
        "msrp://h:1/a#b;tcp",
        "msrp://h:1/s;tcp;",         /* empty parameter */
        "msrp://h:1/s;tcp;=x",
        "msrp://h:1/s;tcp;a=",
        "msrp://h:1/s;tcp x",
        " msrp://h:1/s;tcp",
        "msrp://h:1/s;tcp ",
        "msrp://[::1:1/s;tcp",       /* unterminated literal */
        "msrp://[]:1/s;tcp",
        "msrp://[1.2.3.4]:1/s;tcp",  /* brackets need a v6 address */
        "msrp://[zz::1]:1/s;tcp",
        "msrp://[fe80::1%eth0]:1/s;tcp",
        "msrp://[::1]x:1/s;tcp",
        "msrp://h!st:1/s;tcp",
        "msrp://h\r\n:1/s;tcp",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        im_msrp_uri_t u;
        memset(&u, 0x5a, sizeof(u));
        if (parse(bad[i], &u) != -EINVAL)
            fail_msg("accepted: \"%s\"", bad[i]);
        /* A failed parse leaves the output alone. */
        assert_int_equal(u.port, 0x5a5a5a5au);
    }
    im_msrp_uri_t u;
    assert_int_equal(im_msrp_uri_parse(NULL, 0, &u), -EINVAL);
    assert_int_equal(im_msrp_uri_parse("msrp://h:1/s;tcp", 16, NULL), -EINVAL);
}

static void test_parse_length_limits(void **state)
{
    (void)state;
    char host[IM_MSRP_HOST_MAX + 1];
    char sess[IM_MSRP_SESSION_MAX + 1];
    char uri[256];
    im_msrp_uri_t u;

    memset(host, 'h', IM_MSRP_HOST_MAX - 1);
    host[IM_MSRP_HOST_MAX - 1] = '\0';
    snprintf(uri, sizeof(uri), "msrp://%s:1/s;tcp", host);
    assert_int_equal(parse(uri, &u), 0);
    assert_string_equal(u.host, host);
    host[IM_MSRP_HOST_MAX - 1] = 'h';
    host[IM_MSRP_HOST_MAX] = '\0';
    snprintf(uri, sizeof(uri), "msrp://%s:1/s;tcp", host);
    assert_int_equal(parse(uri, &u), -EINVAL);

    memset(sess, 's', IM_MSRP_SESSION_MAX - 1);
    sess[IM_MSRP_SESSION_MAX - 1] = '\0';
    snprintf(uri, sizeof(uri), "msrp://h:1/%s;tcp", sess);
    assert_int_equal(parse(uri, &u), 0);
    assert_string_equal(u.session, sess);
    sess[IM_MSRP_SESSION_MAX - 1] = 's';
    sess[IM_MSRP_SESSION_MAX] = '\0';
    snprintf(uri, sizeof(uri), "msrp://h:1/%s;tcp", sess);
    assert_int_equal(parse(uri, &u), -EINVAL);
}

/* The parser reads exactly len bytes: no NUL needed after them (ASan
 * catches an over-read of the exact-size heap copy), and bytes past len
 * are not part of the URI. */
static void test_parse_honours_len(void **state)
{
    (void)state;
    const char *text = "msrp://10.1.2.3:2855/abc;tcp";
    size_t n = strlen(text);
    char *exact = malloc(n);
    assert_non_null(exact);
    memcpy(exact, text, n);
    im_msrp_uri_t u;
    assert_int_equal(im_msrp_uri_parse(exact, n, &u), 0);
    assert_string_equal(u.session, "abc");
    /* Cut inside the transport: "t" is still a valid transport token. */
    assert_int_equal(im_msrp_uri_parse(exact, n - 2, &u), 0);
    assert_string_equal(u.transport, "t");
    /* Cut before the transport. */
    assert_int_equal(im_msrp_uri_parse(exact, n - 3, &u), -EINVAL);
    for (size_t k = 0; k < n - 3; k++)
        assert_int_equal(im_msrp_uri_parse(exact, k, &u), -EINVAL);
    free(exact);

    /* Trailing bytes past len are ignored. */
    assert_int_equal(im_msrp_uri_parse("msrp://h:1/s;tcp GARBAGE", 16, &u), 0);
    assert_string_equal(u.transport, "tcp");
    /* A NUL inside len is not part of any valid URI. */
    static const char nul[] = "msrp://h:1/s\0x;tcp";
    assert_int_equal(im_msrp_uri_parse(nul, sizeof(nul) - 1, &u), -EINVAL);
    static const char nul_host[] = "msrp://h\0:1/s;tcp";
    assert_int_equal(im_msrp_uri_parse(nul_host, sizeof(nul_host) - 1, &u),
                     -EINVAL);
}

static void assert_last(const char *path, const char *want)
{
    const char *start = NULL;
    size_t len = 0;
    assert_int_equal(im_msrp_path_last(path, &start, &len), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(start, want, len);
    assert_true(start >= path && start + len <= path + strlen(path));
}

static void test_path_last(void **state)
{
    (void)state;
    assert_last("msrp://a:1/x;tcp", "msrp://a:1/x;tcp");
    assert_last("msrp://relay:1/r;tcp msrp://b:2/y;tcp", "msrp://b:2/y;tcp");
    assert_last("msrp://r1:1/a;tcp msrp://r2:2/b;tcp msrp://c:3/c;tcp",
                "msrp://c:3/c;tcp");
    assert_last("  msrp://a:1/x;tcp  \r\n", "msrp://a:1/x;tcp");
    assert_last("msrp://a:1/x;tcp\tmsrp://b:2/y;tcp", "msrp://b:2/y;tcp");

    const char *start = NULL;
    size_t len = 99;
    assert_int_equal(im_msrp_path_last("", &start, &len), -EINVAL);
    assert_int_equal(im_msrp_path_last("   \t ", &start, &len), -EINVAL);
    assert_int_equal(im_msrp_path_last(NULL, &start, &len), -EINVAL);
    assert_null(start);
    assert_int_equal(len, 99);
}

static void test_format(void **state)
{
    (void)state;
    char buf[128];
    int n = im_msrp_uri_format(buf, sizeof(buf), "127.0.0.1", 7654, "abc");
    assert_string_equal(buf, "msrp://127.0.0.1:7654/abc;tcp");
    assert_int_equal(n, (int)strlen(buf));

    n = im_msrp_uri_format(buf, sizeof(buf), "2001:db8::5", 2855, "q");
    assert_string_equal(buf, "msrp://[2001:db8::5]:2855/q;tcp");
    assert_int_equal(n, (int)strlen(buf));

    /* Already bracketed hosts are not bracketed twice. */
    im_msrp_uri_format(buf, sizeof(buf), "[::1]", 1, "q");
    assert_string_equal(buf, "msrp://[::1]:1/q;tcp");
}

static void test_format_truncates(void **state)
{
    (void)state;
    char buf[12];
    memset(buf, 'X', sizeof(buf));
    int n = im_msrp_uri_format(buf, sizeof(buf), "127.0.0.1", 7654, "abc");
    assert_int_equal(n, (int)strlen("msrp://127.0.0.1:7654/abc;tcp"));
    assert_string_equal(buf, "msrp://127.");
    assert_int_equal(im_msrp_uri_format(NULL, 0, "h", 1, "s"),
                     (int)strlen("msrp://h:1/s;tcp"));
    assert_int_equal(im_msrp_uri_format(buf, sizeof(buf), NULL, 1, "s"),
                     -EINVAL);
    assert_int_equal(im_msrp_uri_format(buf, sizeof(buf), "h", 1, NULL),
                     -EINVAL);
}

static void test_format_parse_round_trip(void **state)
{
    (void)state;
    static const struct {
        const char *host;
        unsigned port;
        const char *session;
    } cases[] = {
        {"192.0.2.10", 1, "a"},
        {"fd00::abcd", 65535, "Zz09-._~"},
        {"worker-1.imsplit.svc", 40001, "k3J9xQpL2mN8vB7c"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[160];
        int n = im_msrp_uri_format(buf, sizeof(buf), cases[i].host,
                                   cases[i].port, cases[i].session);
        assert_true(n > 0 && (size_t)n < sizeof(buf));
        im_msrp_uri_t u;
        assert_int_equal(im_msrp_uri_parse(buf, (size_t)n, &u), 0);
        assert_false(u.secure);
        assert_string_equal(u.host, cases[i].host);
        assert_int_equal(u.port, cases[i].port);
        assert_string_equal(u.session, cases[i].session);
        assert_string_equal(u.transport, "tcp");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ipv4),
        cmocka_unit_test(test_parse_secure_and_case),
        cmocka_unit_test(test_parse_ipv6),
        cmocka_unit_test(test_parse_rfc_extras),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_length_limits),
        cmocka_unit_test(test_parse_honours_len),
        cmocka_unit_test(test_path_last),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_truncates),
        cmocka_unit_test(test_format_parse_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
