#include "cp_timer.h"

#include <stdlib.h>

#include "im_clock.h"
#include "im_log.h"

/* Upper bound on a single sleep; the wheel's next_expiry is only a lower
 * bound beyond its first level, so long sleeps are cut into steps. */
#define CP_TIMER_MAX_SLEEP_MS 250

struct cp_timer_driver {
    su_root_t *root;
    im_wheel_t *wheel;
    su_timer_t *su;
    uint64_t scheduled; /* absolute ms of the armed su_timer, 0 if none */
};

static void s_reschedule(cp_timer_driver_t *d, uint64_t now);

static void s_fire(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
    (void)magic;
    (void)t;
    cp_timer_driver_t *d = (cp_timer_driver_t *)arg;
    d->scheduled = 0;
    uint64_t now = im_clock_ms();
    im_wheel_advance(d->wheel, now);
    s_reschedule(d, im_clock_ms());
    /* The loop waits right after its timers: what they logged goes now. */
    im_log_flush();
}

static void s_reschedule(cp_timer_driver_t *d, uint64_t now)
{
    uint64_t next = im_wheel_next_expiry(d->wheel);
    if (next == UINT64_MAX) {
        if (d->scheduled) {
            su_timer_reset(d->su);
            d->scheduled = 0;
        }
        return;
    }
    if (next < now)
        next = now;
    if (next > now + CP_TIMER_MAX_SLEEP_MS)
        next = now + CP_TIMER_MAX_SLEEP_MS;
    if (d->scheduled && d->scheduled <= next)
        return;
    su_timer_reset(d->su);
    su_timer_set_interval(d->su, s_fire, (su_timer_arg_t *)d,
                          (su_duration_t)(next - now));
    d->scheduled = next;
}

cp_timer_driver_t *cp_timer_driver_new(su_root_t *root, im_wheel_t *wheel)
{
    cp_timer_driver_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->root = root;
    d->wheel = wheel;
    d->su = su_timer_create(su_root_task(root), 0);
    if (!d->su) {
        free(d);
        return NULL;
    }
    return d;
}

void cp_timer_driver_destroy(cp_timer_driver_t **d_p)
{
    if (!d_p || !*d_p)
        return;
    su_timer_destroy((*d_p)->su);
    free(*d_p);
    *d_p = NULL;
}

void cp_timer_arm_in(cp_timer_driver_t *d, im_timer_t *t, uint64_t delay_ms)
{
    /* No advance here: this runs inside timer callbacks too, and the wheel
     * must not be advanced re-entrantly. The wheel's time never runs ahead
     * of the clock, so now + delay is never in its past. */
    uint64_t now = im_clock_ms();
    im_wheel_arm(d->wheel, t, now + delay_ms);
    s_reschedule(d, now);
}

void cp_timer_cancel(cp_timer_driver_t *d, im_timer_t *t)
{
    im_wheel_cancel(d->wheel, t);
}

void cp_timer_kick(cp_timer_driver_t *d)
{
    s_reschedule(d, im_clock_ms());
}
