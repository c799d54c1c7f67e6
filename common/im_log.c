#include "im_log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "im_clock.h"

_Atomic im_log_level_t im_log__level = IM_LOG_LEVEL_INFO;

static char s_comp[16] = "imsplit";

static const char *const s_level_names[] = {"error", "warn", "info", "debug"};

/* Long enough for any sane event; longer lines are cut so that a line is
 * still written with a single stdio call and never interleaves. */
#define IM_LOG_LINE_MAX 2048

/* Lines of the event-loop thread gathered between flushes (one write per
 * loop turn instead of one per line); other threads write at once. */
#define IM_LOG_BUF_SIZE (64 * 1024)
static char s_buf[IM_LOG_BUF_SIZE];
static size_t s_buf_len;
static pthread_t s_buf_owner;
static _Atomic bool s_buffering;

static void s_write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere to report it */
        }
        p += w;
        n -= (size_t)w;
    }
}

static bool s_is_buffering_thread(void)
{
    return atomic_load_explicit(&s_buffering, memory_order_relaxed) &&
           pthread_equal(pthread_self(), s_buf_owner);
}

void im_log_flush(void)
{
    if (!s_is_buffering_thread() || s_buf_len == 0)
        return;
    s_write_all(s_buf, s_buf_len);
    s_buf_len = 0;
}

static void s_flush_at_exit(void)
{
    im_log_flush();
}

void im_log_buffer_start(void)
{
    static bool registered;
    if (atomic_load(&s_buffering))
        return;
    s_buf_owner = pthread_self();
    s_buf_len = 0;
    atomic_store(&s_buffering, true);
    if (!registered && atexit(s_flush_at_exit) == 0)
        registered = true;
}

void im_log_buffer_stop(void)
{
    if (!s_is_buffering_thread())
        return;
    im_log_flush();
    atomic_store(&s_buffering, false);
}

void im_log_init(const char *component, im_log_level_t level)
{
    if (component)
        snprintf(s_comp, sizeof(s_comp), "%s", component);
    im_log_set_level(level);
}

static im_log_level_t s_clamp(im_log_level_t level)
{
    if ((int)level < IM_LOG_LEVEL_ERROR)
        return IM_LOG_LEVEL_ERROR;
    if (level > IM_LOG_LEVEL_DEBUG)
        return IM_LOG_LEVEL_DEBUG;
    return level;
}

void im_log_set_level(im_log_level_t level)
{
    atomic_store_explicit(&im_log__level, s_clamp(level), memory_order_relaxed);
}

im_log_level_t im_log_get_level(void)
{
    return atomic_load_explicit(&im_log__level, memory_order_relaxed);
}

im_log_level_t im_log_change_level(im_log_level_t level, const char *via)
{
    char q[64];

    level = s_clamp(level);
    im_log_level_t old =
        atomic_exchange_explicit(&im_log__level, level, memory_order_relaxed);
    /* Written past the level check: an operator must see every change,
     * including one to a level that hides it. */
    im_log_write(IM_LOG_LEVEL_INFO,
                 "event=log_level_changed from=%s to=%s via=%s",
                 im_log_level_name(old), im_log_level_name(level),
                 im_log_quote(q, sizeof(q), via ? via : "api"));
    return old;
}

const char *im_log_level_name(im_log_level_t level)
{
    if ((int)level < IM_LOG_LEVEL_ERROR || level > IM_LOG_LEVEL_DEBUG)
        return "?";
    return s_level_names[level];
}

int im_log_level_parse(const char *s, im_log_level_t *out)
{
    if (!s || !out)
        return -EINVAL;
    for (int i = 0; i <= IM_LOG_LEVEL_DEBUG; i++) {
        if (strcasecmp(s, s_level_names[i]) == 0) {
            *out = (im_log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = IM_LOG_LEVEL_WARN;
        return 0;
    }
    return -EINVAL;
}

void im_log_write(im_log_level_t level, const char *fmt, ...)
{
    char line[IM_LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    uint64_t mono_us;
    size_t n;
    int r;

    if ((int)level < IM_LOG_LEVEL_ERROR || level > IM_LOG_LEVEL_DEBUG)
        level = IM_LOG_LEVEL_ERROR;
    mono_us = im_clock_us();
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    r = snprintf(line, sizeof(line),
                 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ mono_us=%" PRIu64 " "
                 "level=%s comp=%s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, mono_us,
                 s_level_names[level], s_comp);
    if (r < 0)
        return;
    n = (size_t)r < sizeof(line) ? (size_t)r : sizeof(line) - 1;

    va_list ap;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (r < 0)
        r = 0;
    n += (size_t)r;
    /* Keep room for the newline even when the message was cut. */
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    if (s_is_buffering_thread()) {
        if (s_buf_len + n > sizeof(s_buf))
            im_log_flush();
        memcpy(s_buf + s_buf_len, line, n);
        s_buf_len += n;
        return;
    }
    fwrite(line, 1, n, stderr);
}

static int s_needs_quote(const char *s)
{
    if (*s == '\0')
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            return 1;
    }
    return 0;
}

bool im_log_limit(im_log_limit_t *l, uint64_t now_ms, uint64_t every_ms,
                  uint64_t *suppressed)
{
    if (l->started && now_ms < l->next_ms) {
        l->suppressed++;
        return false;
    }
    l->started = true;
    l->next_ms = now_ms + every_ms;
    if (suppressed)
        *suppressed = l->suppressed;
    l->suppressed = 0;
    return true;
}

const char *im_log_quote(char *buf, size_t size, const char *s)
{
    size_t o = 0;

    if (!buf || size == 0)
        return buf;
    if (!s)
        s = "";
    if (!s_needs_quote(s)) {
        snprintf(buf, size, "%s", s);
        return buf;
    }
    if (size < 3) {
        buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    /* Reserve one byte for the closing quote and one for the NUL. */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        size_t el;
        switch (*p) {
        case '"': memcpy(esc, "\\\"", 3); break;
        case '\\': memcpy(esc, "\\\\", 3); break;
        case '\n': memcpy(esc, "\\n", 3); break;
        case '\r': memcpy(esc, "\\r", 3); break;
        case '\t': memcpy(esc, "\\t", 3); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                snprintf(esc, sizeof(esc), "\\x%02x", *p);
            else {
                esc[0] = (char)*p;
                esc[1] = '\0';
            }
        }
        el = strlen(esc);
        if (o + el + 2 > size)
            break;
        memcpy(buf + o, esc, el);
        o += el;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
