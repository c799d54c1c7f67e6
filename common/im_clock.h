/* im_clock: monotonic milliseconds and wall-clock helpers. */
#ifndef IM_CLOCK_H
#define IM_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t im_clock_ms(void);
/* CLOCK_MONOTONIC in microseconds. */
uint64_t im_clock_us(void);
/* A value that differs on every process start (wall-clock microseconds
 * mixed with the pid); used as a process epoch. Never 0. */
uint64_t im_clock_epoch(void);

#endif
