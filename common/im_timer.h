/* im_timer: a hierarchical timing wheel with millisecond resolution.
 *
 * One wheel holds every timer of a process. Arm and cancel are O(1); advance
 * moves the wheel to `now` and calls each expired timer's callback once.
 * Time is passed in by the caller (no clock is read here), so tests drive the
 * wheel with a fake clock and the daemons with im_clock_ms().
 *
 * Ownership: the im_timer_t node is embedded in the caller's object and owned
 * by it; the wheel only links it. An object that owns an armed timer must
 * cancel it before it is freed. A callback may arm, re-arm or cancel any timer
 * (including its own) and may free the object that embeds the fired timer
 * (it is unlinked before the callback runs).
 *
 * Levels: 4 levels of 256 slots cover 2^32 ms (~49 days); later deadlines are
 * clamped to the horizon and re-cascaded, so they still fire on time. */
#ifndef IM_TIMER_H
#define IM_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct im_timer im_timer_t;
typedef struct im_wheel im_wheel_t;
typedef void im_timer_cb(im_timer_t *timer, void *arg);

struct im_timer {
    im_timer_t *next; /* NULL when not armed */
    im_timer_t *prev;
    uint64_t expires; /* absolute ms */
    im_timer_cb *cb;
    void *arg;
};

/* Creates a wheel whose current time is now_ms. NULL on allocation failure. */
im_wheel_t *im_wheel_new(uint64_t now_ms);
/* Frees the wheel; armed timers are simply forgotten (their nodes are reset
 * so im_timer_armed() is false). NULL-safe; sets *wheel_p to NULL. */
void im_wheel_destroy(im_wheel_t **wheel_p);

void im_timer_init(im_timer_t *timer, im_timer_cb *cb, void *arg);
bool im_timer_armed(const im_timer_t *timer);

/* Arms (or re-arms) timer to fire at expires_ms. A deadline at or before the
 * wheel's current time fires on the next im_wheel_advance(). */
void im_wheel_arm(im_wheel_t *wheel, im_timer_t *timer, uint64_t expires_ms);
/* Cancels an armed timer; no-op if not armed. */
void im_wheel_cancel(im_wheel_t *wheel, im_timer_t *timer);

/* Advances to now_ms, firing every timer with expires <= now_ms in deadline
 * order (ties in arming order). Returns the number fired. */
size_t im_wheel_advance(im_wheel_t *wheel, uint64_t now_ms);

/* The earliest deadline that may be due, for scheduling the driver's next
 * wake-up: exact when a timer is within 256 ms of the wheel's time, otherwise
 * a lower bound no later than the true deadline. UINT64_MAX when empty. */
uint64_t im_wheel_next_expiry(const im_wheel_t *wheel);

size_t im_wheel_count(const im_wheel_t *wheel);
uint64_t im_wheel_now(const im_wheel_t *wheel);

#endif
