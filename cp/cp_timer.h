/* cp_timer: drives the process's timing wheel from one su_timer.
 *
 * Every CP timer (session timers, refreshes, command resends, worker
 * liveness) lives in one im_wheel_t; this module keeps a single su_timer set
 * to the wheel's next deadline, so the su event loop wakes once per due
 * instant, not once per timer. Call cp_timer_kick() after arming a timer that
 * may be earlier than the current wake-up. */
#ifndef CP_TIMER_H
#define CP_TIMER_H

#include <stdint.h>

#include <sofia-sip/su_wait.h>

#include "im_timer.h"

typedef struct cp_timer_driver cp_timer_driver_t;

cp_timer_driver_t *cp_timer_driver_new(su_root_t *root, im_wheel_t *wheel);
void cp_timer_driver_destroy(cp_timer_driver_t **d_p);

/* Arms t at now + delay_ms and reschedules the wake-up if needed. */
void cp_timer_arm_in(cp_timer_driver_t *d, im_timer_t *t, uint64_t delay_ms);
void cp_timer_cancel(cp_timer_driver_t *d, im_timer_t *t);
/* Re-reads the wheel's next deadline and moves the su_timer if needed. */
void cp_timer_kick(cp_timer_driver_t *d);

#endif
