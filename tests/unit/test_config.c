/* im_config: flags, IMSPLIT_* environment fallbacks and their errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "im_config.h"

typedef struct {
    const char *ctl;
    uint32_t min_se;
    uint32_t se;
    bool help;
    bool verbose;
    im_strlist_t sip;
} s_cfg_t;

#define NOPTS 6

static void s_table(s_cfg_t *c, im_opt_t opts[NOPTS])
{
    memset(c, 0, sizeof(*c));
    c->ctl = "tcp://127.0.0.1:5600";
    c->min_se = 90;
    c->se = 1800;
    c->sip.items[0] = "udp:127.0.0.1:5060";
    c->sip.count = 1;
    im_opt_t t[NOPTS] = {
        {"ctl", IM_OPT_STRING, &c->ctl, 0, 0, "control endpoint"},
        {"min-se", IM_OPT_UINT, &c->min_se, 1, 86400, "Min-SE"},
        {"session-expires", IM_OPT_UINT, &c->se, 0, 0, "Session-Expires"},
        {"help", IM_OPT_BOOL, &c->help, 0, 0, "show help"},
        {"verbose", IM_OPT_BOOL, &c->verbose, 0, 0, "more logs"},
        {"sip", IM_OPT_LIST, &c->sip, 0, 0, "SIP listener"},
    };
    memcpy(opts, t, sizeof(t));
}

static int s_clear_env(void **state)
{
    (void)state;
    static const char *names[] = {"IMSPLIT_CTL", "IMSPLIT_MIN_SE",
                                  "IMSPLIT_SESSION_EXPIRES", "IMSPLIT_HELP",
                                  "IMSPLIT_VERBOSE", "IMSPLIT_SIP"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unsetenv(names[i]);
    return 0;
}

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void test_defaults_kept(void **state)
{
    (void)state;
    s_cfg_t c;
    im_opt_t o[NOPTS];
    char *argv[] = {"prog"};
    char err[128] = "";

    s_table(&c, o);
    assert_int_equal(im_config_parse(o, NOPTS, ARGC(argv), argv, NULL, NULL,
                                     err, sizeof(err)),
                     0);
    assert_string_equal(c.ctl, "tcp://127.0.0.1:5600");
    assert_int_equal(c.min_se, 90);
    assert_int_equal(c.sip.count, 1);
    assert_string_equal(c.sip.items[0], "udp:127.0.0.1:5060");
    assert_false(c.help);
}

static void test_flags(void **state)
{
    (void)state;
    s_cfg_t c;
    im_opt_t o[NOPTS];
    char *argv[] = {"prog", "--ctl", "tcp://0.0.0.0:1", "--min-se=120",
                    "--session-expires", "4000000000", "--help",
                    "--verbose=false"};
    char err[128] = "";

    s_table(&c, o);
    c.verbose = true;
    assert_int_equal(im_config_parse(o, NOPTS, ARGC(argv), argv, NULL, NULL,
                                     err, sizeof(err)),
                     0);
    assert_string_equal(err, "");
    assert_string_equal(c.ctl, "tcp://0.0.0.0:1");
    assert_int_equal(c.min_se, 120);
    assert_int_equal(c.se, 4000000000u);
    assert_true(c.help);
    assert_false(c.verbose);
}

static void test_list_from_flags(void **state)
{
    (void)state;
    s_cfg_t c;
    im_opt_t o[NOPTS];
    char *argv[] = {"prog", "--sip", "udp:1.2.3.4:5060", "--sip=tcp:1.2.3.4:5060"};

    s_table(&c, o);
    assert_int_equal(im_config_parse(o, NOPTS, ARGC(argv), argv, NULL, NULL,
                                     NULL, 0),
                     0);
    /* The flags replace the default list. */
    assert_int_equal(c.sip.count, 2);
    assert_string_equal(c.sip.items[0], "udp:1.2.3.4:5060");
    assert_string_equal(c.sip.items[1], "tcp:1.2.3.4:5060");
    assert_null(c.sip.env_copy);
    im_strlist_free(&c.sip);
}

static void test_list_from_env(void **state)
{
    (void)state;
    s_cfg_t c;
    im_opt_t o[NOPTS];
    char *argv[] = {"prog"};

    setenv("IMSPLIT_SIP", "udp:a:1, tcp:b:2,,tls:c:3 ", 1);
    s_table(&c, o);
    assert_int_equal(im_config_parse(o, NOPTS, ARGC(argv), argv, NULL, NULL,
                                     NULL, 0),
                     0);
    assert_int_equal(c.sip.count, 3);
    assert_string_equal(c.sip.items[0], "udp:a:1");
    assert_string_equal(c.sip.items[1], "tcp:b:2");
    assert_string_equal(c.sip.items[2], "tls:c:3");
    assert_non_null(c.sip.env_copy);
    im_strlist_free(&c.sip);
    assert_null(c.sip.env_copy);
    assert_int_equal(c.sip.count, 0);
    im_strlist_free(&c.sip);
}

static void test_list_too_long(void **state)
{
    (void)state;
    s_cfg_t c;
    im_opt_t o[NOPTS];
    char *argv[] = {"prog"};
    char err[128] = "";

    setenv("IMSPLIT_SIP", "a,b,c,d,e,f,g,h,i", 1);
    s_table(&c, o);
    assert_int_equal(im_config_parse(o, NOPTS, ARGC(argv), argv, NULL, NULL,
                                     err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "IMSPLIT_SIP"));
    im_strlist_free(&c.sip);
}

static void test_env_fallback_and_precedence(void **state)
{
    (void)state;
    s_cfg_t c;
    im_opt_t o[NOPTS];
    char *argv[] = {"prog", "--min-se", "200"};

    setenv("IMSPLIT_MIN_SE", "300", 1);
    setenv("IMSPLIT_SESSION_EXPIRES", "600", 1);
    setenv("IMSPLIT_CTL", "ipc:///tmp/x", 1);
    setenv("IMSPLIT_VERBOSE", "true", 1);
    setenv("IMSPLIT_SIP", "tcp:env:1", 1);
    s_table(&c, o);
    char *argv2[] = {"prog", "--min-se", "200", "--sip", "udp:flag:1"};
    (void)argv;
    assert_int_equal(im_config_parse(o, NOPTS, ARGC(argv2), argv2, NULL, NULL,
                                     NULL, 0),
                     0);
    assert_int_equal(c.min_se, 200);   /* flag beats env */
    assert_int_equal(c.se, 600);       /* env beats default */
    assert_string_equal(c.ctl, "ipc:///tmp/x");
    assert_true(c.verbose);
    assert_int_equal(c.sip.count, 1);
    assert_string_equal(c.sip.items[0], "udp:flag:1");
    im_strlist_free(&c.sip);

    setenv("IMSPLIT_VERBOSE", "0", 1);
    s_table(&c, o);
    c.verbose = true;
    assert_int_equal(im_config_parse(o, NOPTS, 1, argv, NULL, NULL, NULL, 0), 0);
    assert_false(c.verbose);
    im_strlist_free(&c.sip);
}

static void s_expect_error(char **argv, int argc, const char *want)
{
    s_cfg_t c;
    im_opt_t o[NOPTS];
    char err[160] = "";

    s_table(&c, o);
    assert_int_equal(
        im_config_parse(o, NOPTS, argc, argv, NULL, NULL, err, sizeof(err)),
        -EINVAL);
    if (!strstr(err, want))
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    im_strlist_free(&c.sip);
}

static void test_errors(void **state)
{
    (void)state;
    char *a1[] = {"prog", "--nope", "1"};
    s_expect_error(a1, ARGC(a1), "unknown option --nope");
    char *a2[] = {"prog", "--min-se"};
    s_expect_error(a2, ARGC(a2), "--min-se: missing value");
    char *a3[] = {"prog", "--min-se", "abc"};
    s_expect_error(a3, ARGC(a3), "--min-se: \"abc\" is not a number");
    char *a4[] = {"prog", "--min-se=12x"};
    s_expect_error(a4, ARGC(a4), "--min-se: \"12x\" is not a number");
    char *a5[] = {"prog", "--min-se", "-5"};
    s_expect_error(a5, ARGC(a5), "--min-se: \"-5\" is not a number");
    char *a6[] = {"prog", "--min-se", "90000"};
    s_expect_error(a6, ARGC(a6), "--min-se: 90000 is out of range [1, 86400]");
    char *a7[] = {"prog", "--min-se", "0"};
    s_expect_error(a7, ARGC(a7), "out of range");
    char *a8[] = {"prog", "--session-expires", "4294967296"};
    s_expect_error(a8, ARGC(a8), "out of range");
    char *a9[] = {"prog", "--verbose=maybe"};
    s_expect_error(a9, ARGC(a9), "--verbose: \"maybe\" is not a boolean");
    char *a10[] = {"prog", "stray"};
    s_expect_error(a10, ARGC(a10), "unexpected argument \"stray\"");
    char *a11[] = {"prog", "-x"};
    s_expect_error(a11, ARGC(a11), "unknown option -x");
    char *a12[] = {"prog", "--ctl", "--min-se", "5"};
    s_expect_error(a12, ARGC(a12), "--ctl: missing value");
    char *a13[] = {"prog", "--min-se="};
    s_expect_error(a13, ARGC(a13), "is not a number");

    setenv("IMSPLIT_MIN_SE", "ten", 1);
    char *a14[] = {"prog"};
    s_expect_error(a14, ARGC(a14), "IMSPLIT_MIN_SE: \"ten\" is not a number");
    unsetenv("IMSPLIT_MIN_SE");
    /* A flag overrides a broken environment value: it is never parsed. */
    setenv("IMSPLIT_MIN_SE", "ten", 1);
    s_cfg_t c;
    im_opt_t o[NOPTS];
    char *a15[] = {"prog", "--min-se", "95"};
    s_table(&c, o);
    assert_int_equal(im_config_parse(o, NOPTS, ARGC(a15), a15, NULL, NULL,
                                     NULL, 0),
                     0);
    assert_int_equal(c.min_se, 95);
}

static void test_positional(void **state)
{
    (void)state;
    s_cfg_t c;
    im_opt_t o[NOPTS];
    const char *pos[3];
    size_t npos = 3;
    char *argv[] = {"prog", "workers", "--ctl", "x", "drain", "--", "--up-1"};

    s_table(&c, o);
    assert_int_equal(im_config_parse(o, NOPTS, ARGC(argv), argv, pos, &npos,
                                     NULL, 0),
                     0);
    assert_int_equal(npos, 3);
    assert_string_equal(pos[0], "workers");
    assert_string_equal(pos[1], "drain");
    assert_string_equal(pos[2], "--up-1");
    assert_string_equal(c.ctl, "x");
    /* "-" is a positional too, and there is no room left for it. */
    npos = 3;
    char err[128];
    char *argv2[] = {"prog", "a", "b", "c", "-"};
    assert_int_equal(im_config_parse(o, NOPTS, ARGC(argv2), argv2, pos, &npos,
                                     err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "too many arguments"));
}

static void test_env_name(void **state)
{
    (void)state;
    char buf[64];
    im_config_env_name("session-expires", buf, sizeof(buf));
    assert_string_equal(buf, "IMSPLIT_SESSION_EXPIRES");
    im_config_env_name("ctl", buf, sizeof(buf));
    assert_string_equal(buf, "IMSPLIT_CTL");
    im_config_env_name("session-expires", buf, 12);
    assert_string_equal(buf, "IMSPLIT_SES");
}

static void test_usage(void **state)
{
    (void)state;
    s_cfg_t c;
    im_opt_t o[NOPTS];
    char text[2048] = "";
    FILE *f = fmemopen(text, sizeof(text) - 1, "w");

    assert_non_null(f);
    s_table(&c, o);
    im_config_usage(f, "imsplit-cp", o, NOPTS);
    fclose(f);
    assert_non_null(strstr(text, "usage: imsplit-cp"));
    assert_non_null(strstr(text, "--min-se N"));
    assert_non_null(strstr(text, "Min-SE [1..86400]"));
    assert_non_null(strstr(text, "--sip VALUE"));
    assert_non_null(strstr(text, "IMSPLIT_"));
}

static void test_split_hostport(void **state)
{
    (void)state;
    char host[64];
    unsigned port = 1;

    assert_int_equal(im_config_split_hostport("127.0.0.1:9100", host,
                                              sizeof(host), &port),
                     0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9100);
    assert_int_equal(im_config_split_hostport("[::1]:0", host, sizeof(host),
                                              &port),
                     0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(im_config_split_hostport("localhost:65535", host,
                                              sizeof(host), &port),
                     0);
    assert_int_equal(port, 65535);
    assert_int_equal(im_config_split_hostport(":80", host, sizeof(host), &port),
                     0);
    assert_string_equal(host, "");

    static const char *bad[] = {"127.0.0.1", "127.0.0.1:", "h:65536",
                                "h:12a",     "::1:80",     "[::1]80",
                                "[::1",      "h:-1",       ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(im_config_split_hostport(bad[i], host, sizeof(host),
                                                  &port),
                         -EINVAL);
    assert_int_equal(im_config_split_hostport("averyveryverylonghost:1", host,
                                              8, &port),
                     -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_kept, s_clear_env),
        cmocka_unit_test_setup(test_flags, s_clear_env),
        cmocka_unit_test_setup(test_list_from_flags, s_clear_env),
        cmocka_unit_test_setup(test_list_from_env, s_clear_env),
        cmocka_unit_test_setup(test_list_too_long, s_clear_env),
        cmocka_unit_test_setup(test_env_fallback_and_precedence, s_clear_env),
        cmocka_unit_test_setup(test_errors, s_clear_env),
        cmocka_unit_test_setup(test_positional, s_clear_env),
        cmocka_unit_test_setup(test_env_name, s_clear_env),
        cmocka_unit_test_setup(test_usage, s_clear_env),
        cmocka_unit_test_setup(test_split_hostport, s_clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
