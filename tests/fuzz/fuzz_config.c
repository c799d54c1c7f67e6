/* fuzz_config: command-line flags and IMSPLIT_* environment (im_config)
 * as the daemons and imsplit-ctl load them, and the parsing the daemons
 * then do on the values (log level, host:port, CURVE keys, next hop).
 *
 * Input: byte 0 picks the table (0: imsplit-cp's cp_config_load, 1:
 * imsplit-up's up_config_load, 2: a table with every option type and
 * positional arguments, as imsplit-ctl uses); the rest is split at NUL
 * bytes into tokens. A token "IMSPLIT_NAME=value" is set in the
 * environment, every other token is the next argv element.
 *
 * Besides what the sanitizers catch (leaks of the list copies included),
 * the target aborts when a successful load leaves a value its header rules
 * out: a number outside its range, too many list items or positional
 * arguments, --min-se above --session-expires, a CURVE option without its
 * partner, an empty --id or --cp, or an error without a message. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/url.h>

#include "cp_context.h"
#include "im_config.h"
#include "im_curve.h"
#include "im_log.h"
#include "im_msrp_uri.h"
#include "up_context.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern char **environ;

#define S_CHECK(cond)                                                          \
    do {                                                                       \
        if (!(cond))                                                           \
            s_fail(__LINE__, #cond);                                           \
    } while (0)

static void s_fail(int line, const char *what)
{
    fprintf(stderr, "fuzz_config.c:%d: check failed: %s\n", line, what);
    abort();
}

#define S_TOKENS_MAX 64
#define S_ENV_MAX 16

/* What the daemons do with a value after loading it. */
static void s_hostport(const char *s)
{
    char host[IM_MSRP_HOST_MAX];
    unsigned port = 12345;
    if (im_config_split_hostport(s, host, sizeof(host), &port) == 0) {
        S_CHECK(strlen(host) < sizeof(host) && port <= 65535);
        char uri[256];
        (void)im_msrp_uri_format(uri, sizeof(uri), host, port ? port : 1,
                                 "sid");
    }
}

static void s_log_level(const char *s)
{
    im_log_level_t level;
    if (s && im_log_level_parse(s, &level) == 0)
        S_CHECK(level >= IM_LOG_LEVEL_ERROR && level <= IM_LOG_LEVEL_DEBUG);
}

/* Only inline keys: a key argument may also name a file to read. */
static void s_key(const char *s)
{
    im_curve_key_t key;
    if (s && strlen(s) == IM_CURVE_Z85_LEN &&
        im_curve_key_parse(s, &key) == 0) {
        char z85[IM_CURVE_Z85_LEN + 1];
        im_curve_key_z85(&key, z85);
        S_CHECK(strcmp(z85, s) == 0);
    }
}

static void s_cp(int argc, char **argv)
{
    cp_config_t cfg;
    char err[256];
    memset(err, 'x', sizeof(err));
    int rc = cp_config_load(&cfg, argc, argv, err, sizeof(err));
    S_CHECK(rc == 0 || rc == -EINVAL);
    S_CHECK(memchr(err, '\0', sizeof(err)));
    if (rc == 0) {
        S_CHECK(cfg.sip.count >= 1 && cfg.sip.count <= IM_STRLIST_MAX);
        S_CHECK(cfg.curve_allow.count <= IM_STRLIST_MAX);
        for (size_t i = 0; i < cfg.sip.count; i++)
            S_CHECK(cfg.sip.items[i]);
        S_CHECK(cfg.session_expires >= 1 && cfg.session_expires <= 86400);
        S_CHECK(cfg.min_se >= 1 && cfg.min_se <= cfg.session_expires);
        S_CHECK(cfg.liveness >= 1 && cfg.liveness <= 100);
        S_CHECK(cfg.command_tries >= 1 && cfg.command_tries <= 100);
        S_CHECK(cfg.sip_t1 >= 10 && cfg.sip_t1 <= 10000);
        S_CHECK(!cfg.curve_secret == !cfg.curve_allow.count);
        S_CHECK(cfg.ctl && cfg.log_level && cfg.node_id);
        s_log_level(cfg.log_level);
        if (cfg.metrics)
            s_hostport(cfg.metrics);
        s_key(cfg.curve_secret);
        for (size_t i = 0; i < cfg.curve_allow.count; i++)
            s_key(cfg.curve_allow.items[i]);
        if (cfg.next_hop) {
            su_home_t home[1] = {SU_HOME_INIT(home)};
            url_t *u = url_make(home, cfg.next_hop);
            if (u)
                (void)url_has_param(u, "transport=tcp");
            su_home_deinit(home);
        }
    } else {
        S_CHECK(err[0] != '\0');
    }
    cp_config_release(&cfg);
}

static void s_up(int argc, char **argv)
{
    up_config_t cfg;
    char err[256];
    memset(err, 'x', sizeof(err));
    int rc = up_config_load(&cfg, argc, argv, err, sizeof(err));
    S_CHECK(rc == 0 || rc == -EINVAL);
    S_CHECK(memchr(err, '\0', sizeof(err)));
    if (rc != 0) {
        S_CHECK(err[0] != '\0');
        return;
    }
    if (cfg.help)
        return;
    S_CHECK(cfg.id && *cfg.id && strlen(cfg.id) <= UP_NODE_ID_MAX);
    S_CHECK(cfg.cp && *cfg.cp);
    S_CHECK(!cfg.curve_server_key == !cfg.curve_secret);
    S_CHECK(!cfg.advertise ||
            (*cfg.advertise && strlen(cfg.advertise) < IM_MSRP_HOST_MAX));
    S_CHECK(!cfg.metrics || *cfg.metrics);
    S_CHECK(cfg.capacity >= 1 && cfg.leg_buffer >= 1024 &&
            cfg.max_msg >= 1024 && cfg.txn_timeout_ms >= 100);
    s_log_level(cfg.log_level);
    if (cfg.msrp)
        s_hostport(cfg.msrp);
    if (cfg.metrics)
        s_hostport(cfg.metrics);
    s_key(cfg.curve_server_key);
    s_key(cfg.curve_secret);
}

/* Every option type, and positional arguments. */
static void s_table(int argc, char **argv)
{
    const char *str = "default";
    uint32_t num = 5, wide = 0;
    bool flag = false;
    im_strlist_t list = {{"a", "b"}, 2, NULL};
    const im_opt_t opts[] = {
        {"str", IM_OPT_STRING, &str, 0, 0, "a string"},
        {"num", IM_OPT_UINT, &num, 1, 100, "a number in [1, 100]"},
        {"wide", IM_OPT_UINT, &wide, 0, 0, "any 32-bit number"},
        {"flag", IM_OPT_BOOL, &flag, 0, 0, "a flag"},
        {"list", IM_OPT_LIST, &list, 0, 0, "a list"},
        {NULL, IM_OPT_STRING, NULL, 0, 0, NULL},
    };
    const char *pos[3] = {0};
    size_t npos = sizeof(pos) / sizeof(pos[0]);
    char err[64];
    int rc = im_config_parse(opts, sizeof(opts) / sizeof(opts[0]), argc, argv,
                             pos, &npos, err, sizeof(err));
    S_CHECK(rc == 0 || rc == -EINVAL);
    S_CHECK(npos <= 3);
    for (size_t i = 0; i < npos; i++)
        S_CHECK(pos[i]);
    if (rc == 0) {
        S_CHECK(str && num >= 1 && num <= 100);
        S_CHECK(list.count <= IM_STRLIST_MAX);
        for (size_t i = 0; i < list.count; i++)
            S_CHECK(list.items[i]);
    } else {
        S_CHECK(err[0] != '\0');
    }
    im_strlist_free(&list);
}

/* Runs start from an environment without IMSPLIT_* variables. */
static void s_clear_env(void)
{
    for (;;) {
        char name[256] = "";
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "IMSPLIT_", 8) == 0) {
                size_t n = strcspn(*e, "=");
                if (n < sizeof(name)) {
                    memcpy(name, *e, n);
                    name[n] = '\0';
                    break;
                }
            }
        }
        if (!name[0])
            return;
        unsetenv(name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool cleared;
    if (!cleared) {
        s_clear_env();
        cleared = true;
    }
    if (size < 1)
        return 0;
    unsigned table = data[0] % 3;
    /* NUL-terminated copy of the tokens. */
    char *text = malloc(size);
    S_CHECK(text);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';

    char *argv[S_TOKENS_MAX + 2];
    char *envs[S_ENV_MAX];
    int argc = 0;
    size_t nenv = 0;
    argv[argc++] = (char *)(table == 0   ? "imsplit-cp"
                            : table == 1 ? "imsplit-up"
                                         : "imsplit-ctl");
    for (char *t = text; t < text + size - 1 && argc <= S_TOKENS_MAX;
         t += strlen(t) + 1) {
        char *eq = strchr(t, '=');
        if (strncmp(t, "IMSPLIT_", 8) == 0 && eq && nenv < S_ENV_MAX) {
            *eq = '\0';
            if (setenv(t, eq + 1, 1) == 0)
                envs[nenv++] = t;
            else
                *eq = '=';
            continue;
        }
        argv[argc++] = t;
    }
    argv[argc] = NULL;

    if (table == 0)
        s_cp(argc, argv);
    else if (table == 1)
        s_up(argc, argv);
    else
        s_table(argc, argv);

    for (size_t i = 0; i < nenv; i++)
        unsetenv(envs[i]);
    free(text);
    return 0;
}
