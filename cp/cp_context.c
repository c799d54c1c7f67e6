#include "cp_context.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "im_zmq.h"

static const char *s_default_sip = "udp:127.0.0.1:5060";

#define CP_NOPTS 23

/* One option table for parsing and for --help. */
static void s_options(cp_config_t *cfg, im_opt_t *opts)
{
    const im_opt_t table[] = {
        {"sip", IM_OPT_LIST, &cfg->sip, 0, 0,
         "SIP listener transport:host:port (udp|tcp), repeatable"},
        {"ctl", IM_OPT_STRING, &cfg->ctl, 0, 0,
         "ZeroMQ ROUTER endpoint the workers connect to"},
        {"next-hop", IM_OPT_STRING, &cfg->next_hop, 0, 0,
         "SIP URI controlling-leg INVITEs are sent to (default: Request-URI)"},
        {"session-expires", IM_OPT_UINT, &cfg->session_expires, 1, 86400,
         "Session-Expires the CP asks for and grants, seconds"},
        {"min-se", IM_OPT_UINT, &cfg->min_se, 1, 86400,
         "Min-SE, seconds (below 90 is non-standard, for tests)"},
        {"metrics", IM_OPT_STRING, &cfg->metrics, 0, 0,
         "HTTP host:port for /metrics /healthz /readyz /log-level"},
        {"sip-t1", IM_OPT_UINT, &cfg->sip_t1, 10, 10000, "SIP T1, ms"},
        {"heartbeat-ms", IM_OPT_UINT, &cfg->heartbeat_ms, 50, 60000,
         "heartbeat interval to and from workers, ms"},
        {"liveness", IM_OPT_UINT, &cfg->liveness, 1, 100,
         "heartbeats missed before a worker is dead"},
        {"heap-trim-mb", IM_OPT_UINT, &cfg->heap_trim_mb, 0, 1048576,
         "give free heap pages back to the kernel once this many MiB are "
         "free (checked every heartbeat, at most every 2 s); 0: never"},
        {"max-sessions", IM_OPT_UINT, &cfg->max_sessions, 1, 10000000,
         "sessions above which INVITEs get 503"},
        {"max-pending", IM_OPT_UINT, &cfg->max_pending, 1, 10000000,
         "sessions being set up (INVITE received, client's ACK not yet) "
         "above which INVITEs get 503"},
        {"ctl-hwm", IM_OPT_UINT, &cfg->ctl_hwm, 16, 10000000,
         "messages queued towards one worker before sends to it fail "
         "(ZeroMQ high-water mark)"},
        {"bye-window", IM_OPT_UINT, &cfg->bye_window, 1, 1000000,
         "BYE transactions in flight at most; further BYEs wait in order "
         "(sessions ending all at once)"},
        {"command-timeout-ms", IM_OPT_UINT, &cfg->command_timeout_ms, 10,
         60000, "resend an unanswered worker command after this, ms"},
        {"command-tries", IM_OPT_UINT, &cfg->command_tries, 1, 100,
         "sends of a worker command before it is given up"},
        {"audit-ms", IM_OPT_UINT, &cfg->audit_ms, 0, 86400000,
         "compare leg inventories with each worker this often, ms "
         "(also after every registration; 0: only then)"},
        {"shutdown-grace-ms", IM_OPT_UINT, &cfg->shutdown_grace_ms, 0,
         3600000, "on SIGTERM new INVITEs get 503 and every session is "
         "ended (BYE both legs); exit when all are closed or after this"},
        {"curve-secret", IM_OPT_STRING, &cfg->curve_secret, 0, 0,
         "CURVE-encrypt the control channel with this secret key "
         "(key file or Z85 text); off when unset"},
        {"curve-allow", IM_OPT_LIST, &cfg->curve_allow, 0, 0,
         "public keys admitted with CURVE: a key, a file of keys, or a "
         "directory of *.pub files; repeatable"},
        {"node-id", IM_OPT_STRING, &cfg->node_id, 0, 0,
         "sender id of the CP on the control channel"},
        {"log-level", IM_OPT_STRING, &cfg->log_level, 0, 0,
         "error|warn|info|debug"},
        {"help", IM_OPT_BOOL, &cfg->help, 0, 0, "print this help"},
    };
    _Static_assert(sizeof(table) == sizeof(table[0]) * CP_NOPTS,
                   "CP_NOPTS must count the options");
    memcpy(opts, table, sizeof(table));
}

static void s_defaults(cp_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->ctl = "tcp://127.0.0.1:5600";
    cfg->session_expires = 1800;
    cfg->min_se = CP_ST_RFC_MIN_SE;
    cfg->sip_t1 = 500;
    cfg->bye_window = 256;
    cfg->heartbeat_ms = 1000;
    cfg->liveness = 3;
    cfg->max_sessions = 200000;
    cfg->max_pending = 2000;
    cfg->ctl_hwm = IM_ZMQ_HWM;
    cfg->heap_trim_mb = 16;
    cfg->command_timeout_ms = 1000;
    cfg->command_tries = 5;
    cfg->audit_ms = 30000;
    cfg->shutdown_grace_ms = 5000;
    cfg->log_level = "info";
    cfg->node_id = "cp";

}

int cp_config_load(cp_config_t *cfg, int argc, char **argv, char *err,
                   size_t err_size)
{
    im_opt_t opts[CP_NOPTS];
    s_defaults(cfg);
    s_options(cfg, opts);
    int rc = im_config_parse(opts, CP_NOPTS, argc, argv,
                             NULL, NULL, err, err_size);
    if (rc < 0)
        return rc;
    if (cfg->sip.count == 0) {
        cfg->sip.items[0] = s_default_sip;
        cfg->sip.count = 1;
    }
    if (!cfg->curve_secret && cfg->curve_allow.count) {
        snprintf(err, err_size, "--curve-allow needs --curve-secret");
        return -EINVAL;
    }
    if (cfg->curve_secret && !cfg->curve_allow.count) {
        snprintf(err, err_size, "--curve-secret needs --curve-allow: with "
                 "CURVE on, only listed keys are admitted");
        return -EINVAL;
    }
    if (cfg->min_se > cfg->session_expires) {
        snprintf(err, err_size, "--min-se %u is larger than --session-expires %u",
                 cfg->min_se, cfg->session_expires);
        return -EINVAL;
    }
    return 0;
}

void cp_config_usage(const char *prog)
{
    cp_config_t cfg;
    im_opt_t opts[CP_NOPTS];
    s_defaults(&cfg);
    s_options(&cfg, opts);
    im_config_usage(stdout, prog, opts, CP_NOPTS);
}

void cp_config_release(cp_config_t *cfg)
{
    im_strlist_free(&cfg->sip);
    im_strlist_free(&cfg->curve_allow);
}
