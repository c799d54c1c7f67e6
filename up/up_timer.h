/* up_timer: drives the worker's timing wheel from one uv_timer_t.
 *
 * Every worker timer (registration, heartbeat, metrics tick, unbound MSRP
 * connections, connect timeouts) is an im_timer_t in one im_wheel_t; the
 * single libuv timer is kept at the wheel's next deadline.
 *
 * Teardown: up_timer_driver_close() closes the libuv handle; the driver may
 * be destroyed only after the loop has run the close. */
#ifndef UP_TIMER_H
#define UP_TIMER_H

#include <stdint.h>

#include <uv.h>

#include "im_timer.h"

typedef struct up_timer_driver up_timer_driver_t;

up_timer_driver_t *up_timer_driver_new(uv_loop_t *loop, im_wheel_t *wheel);
/* Stops and closes the libuv timer (idempotent). NULL-safe. */
void up_timer_driver_close(up_timer_driver_t *d);
/* Frees the driver. Call it after up_timer_driver_close() and a loop run
 * that completed the close. NULL-safe; sets *d_p to NULL. */
void up_timer_driver_destroy(up_timer_driver_t **d_p);

/* Arms t at now + delay_ms and moves the wake-up earlier if needed. */
void up_timer_arm_in(up_timer_driver_t *d, im_timer_t *t, uint64_t delay_ms);
void up_timer_cancel(up_timer_driver_t *d, im_timer_t *t);

#endif
