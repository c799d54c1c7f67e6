/* im_log: one logfmt line per event on stderr.
 *
 * Every line is `ts=<iso8601> mono_us=<n> level=<lvl> comp=<component>
 * <fields>`: ts is UTC wall-clock time to the millisecond, mono_us
 * CLOCK_MONOTONIC in microseconds (im_clock_us), read as the line is written.
 * CLOCK_MONOTONIC is system-wide, so the mono_us of lines from different
 * processes on one host compare directly (e.g. the CP's event=bye_completed
 * with the worker's event=leg_released). Callers pass the fields as a printf
 * format of `key=value` pairs, e.g.
 *   IM_LOG_INFO("event=session_created sid=%016" PRIx64 " call_id=%s", ...);
 * Values that may contain spaces must be quoted by the caller (im_log_quote).
 * The level check happens before any formatting, so a disabled level costs a
 * single comparison (a relaxed atomic load). Not thread-safe beyond what
 * stdio gives (one fwrite per line): daemons log from their event-loop
 * thread (gathered per loop turn, im_log_buffer_start below), and the ZAP
 * handler thread (im_curve) and the metrics HTTP thread (im_metrics,
 * PUT /log-level) log through a single write per line.
 * The level may be changed from any thread at any time and applies to the
 * next line. */
#ifndef IM_LOG_H
#define IM_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    IM_LOG_LEVEL_ERROR = 0,
    IM_LOG_LEVEL_WARN = 1,
    IM_LOG_LEVEL_INFO = 2,
    IM_LOG_LEVEL_DEBUG = 3,
} im_log_level_t;

extern _Atomic im_log_level_t im_log__level;

/* Sets the component name printed as comp=... ("cp", "up", "ctl"). Call
 * before any other thread logs. */
void im_log_init(const char *component, im_log_level_t level);
/* Sets the level silently (start-up, tests); out-of-range values are
 * clamped. */
void im_log_set_level(im_log_level_t level);
im_log_level_t im_log_get_level(void);
/* Sets the level at run time and writes, whatever the new level,
 * `event=log_level_changed from=<old> to=<new> via=<via>`. Returns the
 * old level. */
im_log_level_t im_log_change_level(im_log_level_t level, const char *via);
/* Parses "error|warn|info|debug" (any case, "warning" too); returns 0 or
 * -EINVAL. */
int im_log_level_parse(const char *s, im_log_level_t *out);
/* "error", "warn", "info", "debug" ("?" out of range). */
const char *im_log_level_name(im_log_level_t level);

void im_log_write(im_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Per-loop-turn buffering for a daemon's event-loop thread: after
 * im_log_buffer_start(), lines that thread writes are gathered in memory
 * (64 KiB, written out whenever full) and go out in one write(2) at
 * im_log_flush(), which the loop calls once per turn before it waits
 * (and at exit). Lines of other threads are written at once. A line keeps
 * the ts= and mono_us= of the moment it was logged. At most one loop
 * turn's lines are lost if the process dies abruptly. */
void im_log_buffer_start(void);
/* Writes what the calling thread has buffered; no-op on other threads. */
void im_log_flush(void);
/* Flushes and writes every later line at once again. */
void im_log_buffer_stop(void);

/* Rate limit for a log line that a peer can trigger at will (a flood of
 * refused requests must not become a flood of lines). The first call
 * passes; then at most one per `every_ms`. A call that passes returns true
 * and sets *suppressed to the calls refused since the last one that passed
 * (print it as suppressed=N). Zero-initialise the struct; one per kind of
 * line, used from one thread. */
typedef struct {
    uint64_t next_ms;
    uint64_t suppressed;
    bool started;
} im_log_limit_t;

bool im_log_limit(im_log_limit_t *l, uint64_t now_ms, uint64_t every_ms,
                 uint64_t *suppressed);

/* Copies s into buf as a logfmt value: quoted and escaped when it contains
 * spaces, quotes, '=' or control characters; truncated to fit. Returns buf. */
const char *im_log_quote(char *buf, size_t size, const char *s);

#define IM_LOG(lvl, ...)                                                       \
    do {                                                                       \
        if ((lvl) <=                                                           \
            atomic_load_explicit(&im_log__level, memory_order_relaxed))        \
            im_log_write((lvl), __VA_ARGS__);                                  \
    } while (0)
#define IM_LOG_ERROR(...) IM_LOG(IM_LOG_LEVEL_ERROR, __VA_ARGS__)
#define IM_LOG_WARN(...) IM_LOG(IM_LOG_LEVEL_WARN, __VA_ARGS__)
#define IM_LOG_INFO(...) IM_LOG(IM_LOG_LEVEL_INFO, __VA_ARGS__)
#define IM_LOG_DEBUG(...) IM_LOG(IM_LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
