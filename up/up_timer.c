#include "up_timer.h"

#include <stdbool.h>
#include <stdlib.h>

#include "im_clock.h"

/* Upper bound on one sleep: beyond its first level the wheel's next expiry
 * is only a lower bound, so long sleeps are cut into steps. */
#define UP_TIMER_MAX_SLEEP_MS 250

struct up_timer_driver {
    im_wheel_t *wheel;
    uv_timer_t uv;
    uint64_t scheduled; /* absolute ms of the armed uv timer, 0 if none */
    bool closed;
};

static void s_reschedule(up_timer_driver_t *d, uint64_t now);

static void s_fire(uv_timer_t *t)
{
    up_timer_driver_t *d = t->data;
    d->scheduled = 0;
    im_wheel_advance(d->wheel, im_clock_ms());
    if (!d->closed)
        s_reschedule(d, im_clock_ms());
}

static void s_reschedule(up_timer_driver_t *d, uint64_t now)
{
    if (d->closed)
        return;
    uint64_t next = im_wheel_next_expiry(d->wheel);
    if (next == UINT64_MAX) {
        if (d->scheduled) {
            uv_timer_stop(&d->uv);
            d->scheduled = 0;
        }
        return;
    }
    if (next < now)
        next = now;
    if (next > now + UP_TIMER_MAX_SLEEP_MS)
        next = now + UP_TIMER_MAX_SLEEP_MS;
    if (d->scheduled && d->scheduled <= next)
        return;
    /* libuv measures from its cached loop time, which may lag the clock:
     * at worst the wake-up is early and simply reschedules. */
    uv_timer_start(&d->uv, s_fire, next - now, 0);
    d->scheduled = next;
}

up_timer_driver_t *up_timer_driver_new(uv_loop_t *loop, im_wheel_t *wheel)
{
    up_timer_driver_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->wheel = wheel;
    if (uv_timer_init(loop, &d->uv) < 0) {
        free(d);
        return NULL;
    }
    d->uv.data = d;
    return d;
}

void up_timer_driver_close(up_timer_driver_t *d)
{
    if (!d || d->closed)
        return;
    d->closed = true;
    uv_timer_stop(&d->uv);
    uv_close((uv_handle_t *)&d->uv, NULL);
}

void up_timer_driver_destroy(up_timer_driver_t **d_p)
{
    if (!d_p || !*d_p)
        return;
    free(*d_p);
    *d_p = NULL;
}

void up_timer_arm_in(up_timer_driver_t *d, im_timer_t *t, uint64_t delay_ms)
{
    /* No advance here: this runs inside timer callbacks too, and the wheel
     * must not be advanced re-entrantly. */
    uint64_t now = im_clock_ms();
    im_wheel_arm(d->wheel, t, now + delay_ms);
    s_reschedule(d, now);
}

void up_timer_cancel(up_timer_driver_t *d, im_timer_t *t)
{
    if (d)
        im_wheel_cancel(d->wheel, t);
}
