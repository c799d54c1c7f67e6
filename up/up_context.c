#include "up_context.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "im_config.h"

#define UP_NOPTS 18

/* One option table for parsing and for --help. */
static void s_options(up_config_t *cfg, im_opt_t *opts)
{
    const im_opt_t table[UP_NOPTS] = {
        {"cp", IM_OPT_STRING, &cfg->cp, 0, 0,
         "ZeroMQ ROUTER endpoint of the CP"},
        {"id", IM_OPT_STRING, &cfg->id, 0, 0,
         "node id, also the ZeroMQ routing id"},
        {"msrp", IM_OPT_STRING, &cfg->msrp, 0, 0,
         "MSRP listen host:port (port 0: ephemeral)"},
        {"advertise", IM_OPT_STRING, &cfg->advertise, 0, 0,
         "host written in leg paths (default: the --msrp host)"},
        {"metrics", IM_OPT_STRING, &cfg->metrics, 0, 0,
         "HTTP host:port for /metrics /healthz /readyz /log-level (default: off)"},
        {"capacity", IM_OPT_UINT, &cfg->capacity, 1, 10000000,
         "maximum legs held at once"},
        {"leg-buffer", IM_OPT_UINT, &cfg->leg_buffer, 1024, 64u << 20,
         "bytes queued towards one leg before the other leg is no longer "
         "read (back-pressure)"},
        {"max-msg", IM_OPT_UINT, &cfg->max_msg, 1024, 0xffffffffu,
         "largest MSRP message relayed, bytes (413 beyond)"},
        {"max-unbound", IM_OPT_UINT, &cfg->max_unbound, 1, 1000000,
         "accepted MSRP connections waiting for their first SEND at most; "
         "beyond, the oldest is closed to make room"},
        {"txn-timeout-ms", IM_OPT_UINT, &cfg->txn_timeout_ms, 100, 600000,
         "a forwarded SEND unanswered this long fails with 408; also how "
         "long a frame waits for its leg to connect"},
        {"leg-idle-ms", IM_OPT_UINT, &cfg->leg_idle_ms, 0, 86400000,
         "report a leg idle (LegEvent) after this long without bytes; "
         "0 = off"},
        {"result-cache-ms", IM_OPT_UINT, &cfg->result_cache_ms, 1000,
         3600000,
         "how long the result of a CP command is kept to answer its resends "
         "(must exceed the CP's resend window)"},
        {"result-cache-max", IM_OPT_UINT, &cfg->result_cache_max, 1,
         10000000, "most command results kept (the oldest go first)"},
        {"drain-grace-ms", IM_OPT_UINT, &cfg->drain_grace_ms, 0, 86400000,
         "on SIGTERM take no new legs and wait this long for the live ones "
         "to be released, then cut them; 0: cut at once. A second SIGTERM "
         "cuts at once"},
        {"curve-server-key", IM_OPT_STRING, &cfg->curve_server_key, 0, 0,
         "CURVE-encrypt the control channel: the CP's public key (key file "
         "or Z85 text); off when unset"},
        {"curve-secret", IM_OPT_STRING, &cfg->curve_secret, 0, 0,
         "the worker's CURVE secret key (its public key must be on the "
         "CP's --curve-allow)"},
        {"log-level", IM_OPT_STRING, &cfg->log_level, 0, 0,
         "error|warn|info|debug"},
        {"help", IM_OPT_BOOL, &cfg->help, 0, 0, "print this help"},
    };
    memcpy(opts, table, sizeof(table));
}

static void s_defaults(up_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->cp = "tcp://127.0.0.1:5600";
    cfg->id = "up-1";
    cfg->msrp = "127.0.0.1:0";
    cfg->capacity = 100000;
    cfg->leg_buffer = 65536;
    cfg->max_msg = 64u << 20;
    cfg->txn_timeout_ms = 30000;
    cfg->max_unbound = 1024;
    cfg->leg_idle_ms = 0;
    cfg->result_cache_ms = 30000;
    cfg->result_cache_max = 65536;
    cfg->drain_grace_ms = 25000;
    cfg->log_level = "info";
}

int up_config_load(up_config_t *cfg, int argc, char **argv, char *err,
                   size_t err_size)
{
    im_opt_t opts[UP_NOPTS];
    s_defaults(cfg);
    s_options(cfg, opts);
    int rc = im_config_parse(opts, UP_NOPTS, argc, argv, NULL, NULL, err,
                             err_size);
    if (rc < 0 || cfg->help)
        return rc;
    size_t idlen = cfg->id ? strlen(cfg->id) : 0;
    if (idlen == 0 || idlen > UP_NODE_ID_MAX) {
        snprintf(err, err_size, "--id must have 1 to %d characters",
                 UP_NODE_ID_MAX);
        return -EINVAL;
    }
    if (!cfg->cp || !*cfg->cp) {
        snprintf(err, err_size, "--cp must not be empty");
        return -EINVAL;
    }
    if (!cfg->curve_server_key != !cfg->curve_secret) {
        snprintf(err, err_size,
                 "--curve-server-key and --curve-secret go together");
        return -EINVAL;
    }
    if (cfg->metrics && !*cfg->metrics)
        cfg->metrics = NULL;
    if (cfg->advertise && !*cfg->advertise)
        cfg->advertise = NULL;
    if (cfg->advertise && strlen(cfg->advertise) >= IM_MSRP_HOST_MAX) {
        snprintf(err, err_size, "--advertise is longer than %d characters",
                 IM_MSRP_HOST_MAX - 1);
        return -EINVAL;
    }
    return 0;
}

void up_config_usage(const char *prog)
{
    up_config_t cfg;
    im_opt_t opts[UP_NOPTS];
    s_defaults(&cfg);
    s_options(&cfg, opts);
    im_config_usage(stdout, prog, opts, UP_NOPTS);
}
