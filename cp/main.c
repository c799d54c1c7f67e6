/* imsplit-cp: the control plane (Participating IM Function B2BUA). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>

#include "cp_context.h"
#include "cp_handler.h"
#include "cp_metrics.h"
#include "cp_path.h"
#include "cp_pool.h"
#include "cp_session.h"
#include "cp_sip.h"
#include "cp_timer.h"
#include "im_clock.h"
#include "im_log.h"

/* Graceful stop: how long sessions get to end with BYEs before exit. */

static int s_sigpipe[2] = {-1, -1};
static int s_sigwait_index = -1;
static cp_context_t s_ctx;
static im_timer_t s_stop_timer;
static uint64_t s_stop_deadline;

static void s_flush_log(su_prepoll_magic_t *magic, su_root_t *root)
{
    (void)magic;
    (void)root;
    im_log_flush();
}

static void s_on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int saved = errno;
    if (write(s_sigpipe[1], &b, 1) < 0) {
        /* Nothing safe to do in a handler; a full pipe already wakes us. */
    }
    errno = saved;
}

static void s_check_stopped(im_timer_t *t, void *arg)
{
    cp_context_t *ctx = arg;
    if (cp_sessions_count(ctx->sessions) == 0 ||
        im_clock_ms() >= s_stop_deadline) {
        su_root_break(ctx->root);
        return;
    }
    cp_timer_arm_in(ctx->timers, t, 50);
}

static int s_on_sigpipe(su_root_magic_t *magic, su_wait_t *w,
                        su_wakeup_arg_t *arg)
{
    (void)magic;
    (void)w;
    cp_context_t *ctx = (cp_context_t *)arg;
    unsigned char b = 0;
    while (read(s_sigpipe[0], &b, 1) == 1) {
        if (ctx->stopping) {
            IM_LOG_WARN("event=stop_now signal=%d", b);
            su_root_break(ctx->root);
            return 0;
        }
        ctx->stopping = true;
        IM_LOG_INFO("event=stopping signal=%d sessions=%zu", b,
                    cp_sessions_count(ctx->sessions));
        cp_sip_shutdown_sessions(ctx);
        s_stop_deadline = im_clock_ms() + ctx->cfg.shutdown_grace_ms;
        im_timer_init(&s_stop_timer, s_check_stopped, ctx);
        cp_timer_arm_in(ctx->timers, &s_stop_timer, 0);
    }
    return 0;
}

static int s_setup_signals(su_root_t *root, cp_context_t *ctx)
{
    if (pipe2(s_sigpipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return -errno;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    su_wait_t w;
    if (su_wait_create(&w, s_sigpipe[0], SU_WAIT_IN) < 0)
        return -errno;
    s_sigwait_index = su_root_register(root, &w, s_on_sigpipe,
                                       (su_wakeup_arg_t *)ctx, 0);
    return s_sigwait_index < 0 ? -EIO : 0;
}

int main(int argc, char **argv)
{
    cp_context_t *ctx = &s_ctx;
    char err[256];
    int rc = 1;
    if (cp_config_load(&ctx->cfg, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "imsplit-cp: %s\n", err);
        cp_config_release(&ctx->cfg);
        return 64;
    }
    if (ctx->cfg.help) {
        cp_config_usage(argv[0]);
        cp_config_release(&ctx->cfg);
        return 0;
    }
    im_log_level_t level;
    if (im_log_level_parse(ctx->cfg.log_level, &level) < 0) {
        fprintf(stderr, "imsplit-cp: --log-level: unknown level \"%s\"\n",
                ctx->cfg.log_level);
        cp_config_release(&ctx->cfg);
        return 64;
    }
    im_log_init("cp", level);
    if (ctx->cfg.min_se < CP_ST_RFC_MIN_SE)
        IM_LOG_WARN("event=config_nonstandard option=min-se value=%u "
                    "rfc4028_floor=%u", ctx->cfg.min_se, CP_ST_RFC_MIN_SE);

    ctx->epoch = im_clock_epoch();
    ctx->st.session_expires = ctx->cfg.session_expires;
    ctx->st.min_se = ctx->cfg.min_se;

    su_init();
    ctx->root = su_root_create(NULL);
    if (!ctx->root)
        goto out;
    /* Keep sofia from starting a stack thread of its own. */
    su_root_threading(ctx->root, 0);

    ctx->wheel = im_wheel_new(im_clock_ms());
    ctx->timers = ctx->wheel ? cp_timer_driver_new(ctx->root, ctx->wheel)
                             : NULL;
    ctx->metrics = cp_metrics_new();
    ctx->pool = cp_pool_new();
    ctx->sessions = cp_sessions_new(ctx->epoch);
    if (!ctx->timers || !ctx->metrics || !ctx->pool || !ctx->sessions) {
        IM_LOG_ERROR("event=startup_failed why=out_of_memory");
        goto out;
    }
    if (ctx->cfg.metrics) {
        int mrc = im_metrics_listen(ctx->metrics->reg, ctx->cfg.metrics);
        if (mrc < 0) {
            IM_LOG_ERROR("event=metrics_listen_failed addr=%s err=\"%s\"",
                         ctx->cfg.metrics, strerror(-mrc));
            goto out;
        }
        im_metrics_set_stall_ms(ctx->metrics->reg,
                                (uint64_t)ctx->cfg.heartbeat_ms * 5);
    }
    ctx->path = cp_path_new(ctx);
    if (!ctx->path) {
        IM_LOG_ERROR("event=startup_failed why=ctl_bind endpoint=%s",
                     ctx->cfg.ctl);
        goto out;
    }
    if (cp_sip_start(ctx) < 0)
        goto out;
    if (s_setup_signals(ctx->root, ctx) < 0) {
        IM_LOG_ERROR("event=startup_failed why=signals");
        goto out;
    }
    cp_handler_start(ctx);
    IM_LOG_INFO("event=started epoch=%llu ctl=%s next_hop=%s "
                "session_expires=%u min_se=%u",
                (unsigned long long)ctx->epoch, ctx->cfg.ctl,
                ctx->cfg.next_hop ? ctx->cfg.next_hop : "request-uri",
                ctx->cfg.session_expires, ctx->cfg.min_se);
    /* Log lines go out once per loop turn: before each wait (prepoll),
     * and after the timer wheel ran (cp_timer), since the loop waits
     * right after running timers. */
    im_log_buffer_start();
    su_root_add_prepoll(ctx->root, s_flush_log, NULL);
    su_root_run(ctx->root);
    su_root_remove_prepoll(ctx->root);
    im_log_buffer_stop();
    IM_LOG_INFO("event=stopped sessions_left=%zu commands_pending=%zu",
                cp_sessions_count(ctx->sessions), cp_path_pending(ctx->path));
    rc = 0;
out:
    if (ctx->timers) {
        cp_handler_stop(ctx);
        cp_timer_cancel(ctx->timers, &s_stop_timer);
    }
    cp_sip_stop(ctx);
    cp_path_destroy(&ctx->path);
    cp_sessions_destroy(&ctx->sessions);
    cp_pool_destroy(&ctx->pool);
    cp_metrics_destroy(&ctx->metrics);
    cp_timer_driver_destroy(&ctx->timers);
    im_wheel_destroy(&ctx->wheel);
    if (ctx->root) {
        if (s_sigwait_index >= 0)
            su_root_deregister(ctx->root, s_sigwait_index);
        su_root_destroy(ctx->root);
    }
    su_deinit();
    cp_config_release(&ctx->cfg);
    if (s_sigpipe[0] >= 0) {
        close(s_sigpipe[0]);
        close(s_sigpipe[1]);
    }
    return rc;
}
