/* imsplit-up: a user-plane worker (MSRP legs) driven by imsplit-cp. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "im_clock.h"
#include "im_log.h"
#include "im_metrics.h"
#include "up_cache.h"
#include "up_context.h"
#include "up_handler.h"
#include "up_leg.h"
#include "up_legevent.h"
#include "up_metrics.h"
#include "up_msrp.h"
#include "up_path.h"
#include "up_timer.h"

/* /healthz fails when the loop has not ticked for this long. */
#define UP_STALL_MS 3000
/* First size of a leg's buffer (answers waiting for a forwarded frame to
 * end); it is allocated on first use and grows up to --leg-buffer. */
#define UP_LEG_BUFFER_START 2048

static up_context_t s_ctx;
static uv_signal_t s_signals[2];
static bool s_signals_open;
/* Bounds the drain that the first SIGTERM starts. */
static uv_timer_t s_grace;
static bool s_grace_open;
/* Writes the log lines of one loop turn before the loop waits (prepare
 * handles run after timers, just before the poll). Unreferenced: it does
 * not keep the loop alive. */
static uv_prepare_t s_log_flush;

/* Phase one of the teardown: everything that can call back is closed, so
 * the loop ends once the closes have run. Safe on a partial startup.
 * `reason` goes to the CP in a Deregister (NULL: none is sent). */
static void s_on_log_flush(uv_prepare_t *h)
{
    (void)h;
    im_log_flush();
}

static void s_stop(up_context_t *ctx, int signum, const char *reason)
{
    if (ctx->stopping)
        return;
    ctx->stopping = true;
    /* Counted before anything is released, for the operator. */
    size_t left = up_legs_count(ctx->legs);
    IM_LOG_INFO("event=shutdown node=%s signal=%d reason=%s legs_left=%zu "
                "sockets=%zu",
                ctx->cfg.id, signum, reason ? reason : "startup_failed", left,
                up_legs_sockets(ctx->legs));
    up_handler_release_all(ctx, "shutdown");
    /* The Deregister goes after the releases, before the channel closes. */
    up_handler_stop(ctx, reason);
    up_msrp_close(ctx->msrp);
    up_path_close(ctx->path);
    up_timer_driver_close(ctx->timers);
    if (s_grace_open) {
        s_grace_open = false;
        uv_close((uv_handle_t *)&s_grace, NULL);
    }
    if (s_signals_open) {
        s_signals_open = false;
        for (int i = 0; i < 2; i++)
            uv_close((uv_handle_t *)&s_signals[i], NULL);
    }
}

static void s_on_grace_over(uv_timer_t *t)
{
    up_context_t *ctx = t->data;
    IM_LOG_WARN("event=drain_grace_over node=%s legs_cut=%zu grace_ms=%u",
                ctx->cfg.id, up_legs_count(ctx->legs), ctx->cfg.drain_grace_ms);
    s_stop(ctx, SIGTERM, "shutdown");
}

/* The first SIGTERM/SIGINT drains: no new legs, the live ones carry on
 * until the CP releases them or the grace time is over, then the worker
 * leaves (exit 0). A second signal, or a grace of 0, cuts them at once. */
static void s_on_signal(uv_signal_t *h, int signum)
{
    up_context_t *ctx = h->data;
    if (ctx->stopping)
        return;
    if (s_grace_open || ctx->cfg.drain_grace_ms == 0 || !ctx->legs ||
        up_legs_count(ctx->legs) == 0) {
        s_stop(ctx, signum, "shutdown");
        return;
    }
    if (uv_timer_init(ctx->loop, &s_grace) < 0) {
        s_stop(ctx, signum, "shutdown");
        return;
    }
    s_grace.data = ctx;
    s_grace_open = true;
    (void)uv_timer_start(&s_grace, s_on_grace_over, ctx->cfg.drain_grace_ms,
                         0);
    IM_LOG_INFO("event=shutdown_draining node=%s signal=%d legs=%zu "
                "grace_ms=%u",
                ctx->cfg.id, signum, up_legs_count(ctx->legs),
                ctx->cfg.drain_grace_ms);
    up_handler_drain(ctx, "signal");
}

static void s_on_leave(up_context_t *ctx, const char *reason)
{
    s_stop(ctx, 0, reason);
}

static int s_setup_signals(up_context_t *ctx)
{
    const int sigs[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        int rc = uv_signal_init(ctx->loop, &s_signals[i]);
        if (rc < 0) {
            /* Close the ones already open with the rest of the loop. */
            for (int k = 0; k < i; k++)
                uv_close((uv_handle_t *)&s_signals[k], NULL);
            return rc;
        }
        s_signals[i].data = ctx;
    }
    s_signals_open = true;
    for (int i = 0; i < 2; i++) {
        int rc = uv_signal_start(&s_signals[i], s_on_signal, sigs[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int main(int argc, char **argv)
{
    up_context_t *ctx = &s_ctx;
    char err[256] = "";
    if (up_config_load(&ctx->cfg, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "imsplit-up: %s\n", err);
        return 64;
    }
    if (ctx->cfg.help) {
        up_config_usage(argv[0]);
        return 0;
    }
    im_log_level_t level;
    if (im_log_level_parse(ctx->cfg.log_level, &level) < 0) {
        fprintf(stderr, "imsplit-up: --log-level: unknown level \"%s\"\n",
                ctx->cfg.log_level);
        return 64;
    }
    im_log_init("up", level);
    signal(SIGPIPE, SIG_IGN);
    ctx->epoch = im_clock_epoch();

    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc < 0) {
        IM_LOG_ERROR("event=startup_failed why=loop err=\"%s\"",
                     uv_strerror(rc));
        return 1;
    }
    ctx->loop = &loop;
    int exit_code = 1;
    uv_prepare_init(&loop, &s_log_flush);
    uv_prepare_start(&s_log_flush, s_on_log_flush);
    uv_unref((uv_handle_t *)&s_log_flush);
    im_log_buffer_start();

    ctx->wheel = im_wheel_new(im_clock_ms());
    ctx->timers = ctx->wheel ? up_timer_driver_new(&loop, ctx->wheel) : NULL;
    ctx->metrics = up_metrics_new();
    ctx->cache =
        up_cache_new(ctx->cfg.result_cache_max, ctx->cfg.result_cache_ms);
    if (!ctx->timers || !ctx->metrics || !ctx->cache) {
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
        im_metrics_set_stall_ms(ctx->metrics->reg, UP_STALL_MS);
    }
    ctx->msrp = up_msrp_new(ctx);
    if (!ctx->msrp)
        goto out;
    const up_leg_ops_t ops = {up_msrp_conn_close, up_msrp_leg_released};
    size_t start = ctx->cfg.leg_buffer < UP_LEG_BUFFER_START
                       ? ctx->cfg.leg_buffer
                       : UP_LEG_BUFFER_START;
    ctx->legs = up_legs_new(ctx->cfg.capacity, start,
                            (size_t)ctx->cfg.leg_buffer + UP_MSRP_BUFFER_SLACK,
                            &ops, ctx->msrp);
    if (!ctx->legs) {
        IM_LOG_ERROR("event=startup_failed why=out_of_memory");
        goto out;
    }
    up_metrics_sync(ctx->metrics, ctx->legs);
    /* Each leg may have an event or two in flight, never many more. */
    ctx->legevents = up_legevents_new(ctx, (size_t)ctx->cfg.capacity * 2,
                                      UP_LEGEVENT_BASE_MS);
    if (!ctx->legevents) {
        IM_LOG_ERROR("event=startup_failed why=out_of_memory");
        goto out;
    }
    ctx->path = up_path_new(ctx);
    if (!ctx->path) {
        IM_LOG_ERROR("event=startup_failed why=ctl_connect endpoint=%s",
                     ctx->cfg.cp);
        goto out;
    }
    rc = s_setup_signals(ctx);
    if (rc < 0) {
        IM_LOG_ERROR("event=startup_failed why=signals err=\"%s\"",
                     uv_strerror(rc));
        goto out;
    }
    ctx->stop = s_on_leave;
    if (up_handler_start(ctx) < 0)
        goto out;
    IM_LOG_INFO("event=started node=%s epoch=%" PRIu64 " cp=%s msrp=%s "
                "capacity=%u leg_buffer=%u max_msg=%u txn_timeout_ms=%u "
                "leg_idle_ms=%u result_cache_ms=%u result_cache_max=%u "
                "metrics=%s",
                ctx->cfg.id, ctx->epoch, ctx->cfg.cp, ctx->msrp_address,
                ctx->cfg.capacity, ctx->cfg.leg_buffer, ctx->cfg.max_msg,
                ctx->cfg.txn_timeout_ms, ctx->cfg.leg_idle_ms,
                ctx->cfg.result_cache_ms, ctx->cfg.result_cache_max,
                ctx->cfg.metrics ? ctx->cfg.metrics : "off");
    uv_run(&loop, UV_RUN_DEFAULT);
    exit_code = 0;
out:
    im_log_buffer_stop();
    uv_close((uv_handle_t *)&s_log_flush, NULL);
    s_stop(ctx, 0, NULL);
    /* Phase two: run the closes, then free what they no longer touch. */
    uv_run(&loop, UV_RUN_DEFAULT);
    if (up_legs_zombies(ctx->legs) || up_msrp_loose(ctx->msrp)) {
        IM_LOG_ERROR("event=shutdown_incomplete zombies=%zu loose=%zu",
                     up_legs_zombies(ctx->legs), up_msrp_loose(ctx->msrp));
        exit_code = 1;
    }
    up_path_destroy(&ctx->path);
    up_msrp_destroy(&ctx->msrp);
    up_legs_destroy(&ctx->legs);
    up_legevents_destroy(&ctx->legevents);
    up_cache_destroy(&ctx->cache);
    up_timer_driver_destroy(&ctx->timers);
    im_wheel_destroy(&ctx->wheel);
    up_metrics_destroy(&ctx->metrics);
    rc = uv_loop_close(&loop);
    if (rc < 0) {
        IM_LOG_ERROR("event=shutdown_incomplete why=handles_open err=\"%s\"",
                     uv_strerror(rc));
        exit_code = 1;
    }
    IM_LOG_INFO("event=stopped node=%s", ctx->cfg.id);
    return exit_code;
}
