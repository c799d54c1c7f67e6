/* im_log: level parsing, logfmt quoting and the line format on stderr. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "im_clock.h"
#include "im_log.h"

static void test_level_parse(void **state)
{
    (void)state;
    im_log_level_t l = IM_LOG_LEVEL_INFO;

    assert_int_equal(im_log_level_parse("error", &l), 0);
    assert_int_equal(l, IM_LOG_LEVEL_ERROR);
    assert_int_equal(im_log_level_parse("warn", &l), 0);
    assert_int_equal(l, IM_LOG_LEVEL_WARN);
    assert_int_equal(im_log_level_parse("info", &l), 0);
    assert_int_equal(l, IM_LOG_LEVEL_INFO);
    assert_int_equal(im_log_level_parse("DEBUG", &l), 0);
    assert_int_equal(l, IM_LOG_LEVEL_DEBUG);
    l = IM_LOG_LEVEL_INFO;
    assert_int_equal(im_log_level_parse("verbose", &l), -EINVAL);
    assert_int_equal(im_log_level_parse("", &l), -EINVAL);
    assert_int_equal(im_log_level_parse(NULL, &l), -EINVAL);
    assert_int_equal(l, IM_LOG_LEVEL_INFO);
}

static void test_quote(void **state)
{
    (void)state;
    char buf[64];

    assert_string_equal(im_log_quote(buf, sizeof(buf), "plain"), "plain");
    assert_string_equal(im_log_quote(buf, sizeof(buf), "abc@10.0.0.1"),
                        "abc@10.0.0.1");
    assert_string_equal(im_log_quote(buf, sizeof(buf), "two words"),
                        "\"two words\"");
    assert_string_equal(im_log_quote(buf, sizeof(buf), "a=b"), "\"a=b\"");
    assert_string_equal(im_log_quote(buf, sizeof(buf), "say \"hi\""),
                        "\"say \\\"hi\\\"\"");
    assert_string_equal(im_log_quote(buf, sizeof(buf), "back\\slash"),
                        "\"back\\\\slash\"");
    assert_string_equal(im_log_quote(buf, sizeof(buf), "l1\nl2\t\x01"),
                        "\"l1\\nl2\\t\\x01\"");
    assert_string_equal(im_log_quote(buf, sizeof(buf), ""), "\"\"");
    assert_string_equal(im_log_quote(buf, sizeof(buf), NULL), "\"\"");

    /* Truncation keeps a closed quote and never splits an escape. */
    char small[8];
    assert_string_equal(im_log_quote(small, sizeof(small), "a b c d e f"),
                        "\"a b c\"");
    assert_string_equal(im_log_quote(small, sizeof(small), "\"\"\"\"\"\""),
                        "\"\\\"\\\"\"");
    assert_string_equal(im_log_quote(small, sizeof(small), "abcdefghijk"),
                        "abcdefg");
    assert_int_equal(strlen(small), 7);
}

/* Runs fn with stderr redirected to a temporary file; returns its text. */
static char *s_capture(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    /* Room for every line s_emit_while_flipping() can write (2000 lines
     * of about 100 bytes): a cut last line would look malformed. */
    static char out[1 << 20];
    size_t n;

    assert_non_null(tmp);
    fflush(stderr);
    dup2(fileno(tmp), STDERR_FILENO);
    fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    n = fread(out, 1, sizeof(out) - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return out;
}

/* Checks the two stamps every line starts with, `ts=YYYY-MM-DDTHH:MM:SS.mmmZ
 * mono_us=N `, with N within [lo, hi]; returns what follows them. */
static const char *s_after_stamps(const char *line, uint64_t lo, uint64_t hi)
{
    assert_int_equal(strncmp(line, "ts=", 3), 0);
    assert_int_equal(line[7], '-');
    assert_int_equal(line[13], 'T');
    assert_int_equal(line[22], '.');
    assert_int_equal(line[26], 'Z');
    assert_int_equal(line[27], ' ');
    assert_int_equal(strncmp(line + 28, "mono_us=", 8), 0);
    const char *p = line + 36;
    char *end;
    assert_true(*p >= '0' && *p <= '9');
    unsigned long long us = strtoull(p, &end, 10);
    assert_int_equal(*end, ' ');
    assert_true(us >= lo && us <= hi);
    return end + 1;
}

static void s_emit_lines(void)
{
    im_log_init("cp", IM_LOG_LEVEL_INFO);
    IM_LOG_INFO("event=session_created sid=%016x", 0xabcu);
    IM_LOG_DEBUG("event=hidden");
    IM_LOG_ERROR("event=boom n=%d", 3);
    im_log_set_level(IM_LOG_LEVEL_DEBUG);
    IM_LOG_DEBUG("event=shown");
    im_log_set_level(IM_LOG_LEVEL_ERROR);
    IM_LOG_WARN("event=hidden_too");
}

static void test_line_format(void **state)
{
    (void)state;
    uint64_t before = im_clock_us();
    char *out = s_capture(s_emit_lines);
    uint64_t after = im_clock_us();
    char *lines[8];
    const char *rest[8];
    int n = 0;

    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l && n < 8;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    assert_int_equal(n, 3);
    /* mono_us is the monotonic clock as each line was written: in order,
     * and within the capture. */
    uint64_t prev = before;
    for (int i = 0; i < n; i++) {
        rest[i] = s_after_stamps(lines[i], prev, after);
        prev = strtoull(lines[i] + 36, NULL, 10);
    }
    assert_string_equal(rest[0], "level=info comp=cp event=session_created "
                                 "sid=0000000000000abc");
    assert_string_equal(rest[1], "level=error comp=cp event=boom n=3");
    assert_string_equal(rest[2], "level=debug comp=cp event=shown");
    im_log_set_level(IM_LOG_LEVEL_INFO);
}

static void s_emit_long(void)
{
    static char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    im_log_init("up", IM_LOG_LEVEL_INFO);
    IM_LOG_INFO("event=long v=%s", big);
    IM_LOG_INFO("event=after");
}

static void test_long_line_truncated(void **state)
{
    (void)state;
    char *out = s_capture(s_emit_long);
    char *nl = strchr(out, '\n');

    assert_non_null(nl);
    assert_true(nl - out < 4096);
    assert_true(nl - out > 1000);
    /* The next event still starts on its own line. */
    assert_non_null(strstr(nl + 1, "level=info comp=up event=after\n"));
}

static void test_clock(void **state)
{
    (void)state;
    uint64_t a = im_clock_ms(), ua = im_clock_us();
    usleep(20000);
    uint64_t b = im_clock_ms(), ub = im_clock_us();
    assert_true(b >= a + 15);
    assert_true(ub >= ua + 15000);
    uint64_t e1 = im_clock_epoch();
    usleep(10);
    uint64_t e2 = im_clock_epoch();
    assert_true(e1 != 0);
    assert_true(e1 != e2);
}

static void s_emit_changes(void)
{
    im_log_init("up", IM_LOG_LEVEL_INFO);
    assert_int_equal(im_log_change_level(IM_LOG_LEVEL_ERROR, "http"),
                     IM_LOG_LEVEL_INFO);
    IM_LOG_INFO("event=hidden");
    /* The line about a change shows whatever the new level hides. */
    assert_int_equal(im_log_change_level(IM_LOG_LEVEL_DEBUG, "sig usr1"),
                     IM_LOG_LEVEL_ERROR);
    IM_LOG_DEBUG("event=shown");
    assert_int_equal(im_log_change_level((im_log_level_t)42, NULL),
                     IM_LOG_LEVEL_DEBUG);
}

static void test_change_level(void **state)
{
    (void)state;
    char *out = s_capture(s_emit_changes);
    const char *want[] = {
        "level=info comp=up event=log_level_changed from=info to=error "
        "via=http",
        "level=info comp=up event=log_level_changed from=error to=debug "
        "via=\"sig usr1\"",
        "level=debug comp=up event=shown",
        "level=info comp=up event=log_level_changed from=debug to=debug "
        "via=api",
    };
    char *lines[8];
    int n = 0;

    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l && n < 8;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++)
        assert_string_equal(s_after_stamps(lines[i], 0, UINT64_MAX), want[i]);
    /* Out-of-range levels were clamped. */
    assert_int_equal(im_log_get_level(), IM_LOG_LEVEL_DEBUG);
    im_log_set_level((im_log_level_t)-3);
    assert_int_equal(im_log_get_level(), IM_LOG_LEVEL_ERROR);
    assert_string_equal(im_log_level_name(IM_LOG_LEVEL_WARN), "warn");
    assert_string_equal(im_log_level_name((im_log_level_t)9), "?");
    im_log_set_level(IM_LOG_LEVEL_INFO);
}

/* Another thread changes the level while this one logs: each line is
 * whole, and the level seen by the macro is one of the two. */
static void *s_flip_levels(void *arg)
{
    atomic_bool *stop = arg;
    for (unsigned i = 0; !atomic_load(stop); i++)
        im_log_set_level((i & 1) ? IM_LOG_LEVEL_DEBUG : IM_LOG_LEVEL_ERROR);
    return NULL;
}

static void s_emit_while_flipping(void)
{
    atomic_bool stop;
    pthread_t th;

    im_log_init("cp", IM_LOG_LEVEL_ERROR);
    atomic_init(&stop, false);
    assert_int_equal(pthread_create(&th, NULL, s_flip_levels, &stop), 0);
    for (int i = 0; i < 2000; i++)
        IM_LOG_DEBUG("event=flip i=%d", i);
    atomic_store(&stop, true);
    pthread_join(th, NULL);
    im_log_set_level(IM_LOG_LEVEL_INFO);
}

static void test_level_from_another_thread(void **state)
{
    (void)state;
    char *out = s_capture(s_emit_while_flipping);
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        assert_non_null(strstr(l, " level=debug comp=cp event=flip i="));
    }
}

/* Buffering: the loop thread's lines stay in memory until im_log_flush()
 * (or a full buffer), in order; another thread's lines go out at once. */
static char s_seen_before_flush[4096];

static void *s_other_thread_line(void *arg)
{
    (void)arg;
    IM_LOG_INFO("event=from_other_thread");
    im_log_flush(); /* not the buffering thread: nothing to do */
    return NULL;
}

static void s_emit_buffered(void)
{
    pthread_t th;
    im_log_init("cp", IM_LOG_LEVEL_INFO);
    im_log_buffer_start();
    IM_LOG_INFO("event=first n=%d", 1);
    IM_LOG_INFO("event=second n=%d", 2);
    assert_int_equal(pthread_create(&th, NULL, s_other_thread_line, NULL), 0);
    pthread_join(th, NULL);
    /* What reached the file so far: only the other thread's line. */
    off_t end = lseek(STDERR_FILENO, 0, SEEK_CUR);
    assert_true(end > 0 && (size_t)end < sizeof(s_seen_before_flush));
    assert_int_equal(pread(STDERR_FILENO, s_seen_before_flush, (size_t)end, 0),
                     end);
    s_seen_before_flush[end] = '\0';
    im_log_flush();
    IM_LOG_INFO("event=third n=%d", 3);
    /* More than the 64 KiB buffer holds: it writes itself out when full. */
    for (int i = 0; i < 1000; i++)
        IM_LOG_INFO("event=bulk i=%d pad=%0100d", i, 0);
    im_log_buffer_stop();
    IM_LOG_INFO("event=after_stop");
}

static void test_buffered(void **state)
{
    (void)state;
    char *out = s_capture(s_emit_buffered);
    assert_non_null(strstr(s_seen_before_flush, "event=from_other_thread"));
    assert_null(strstr(s_seen_before_flush, "event=first"));
    const char *first = strstr(out, "event=first n=1");
    const char *second = strstr(out, "event=second n=2");
    const char *third = strstr(out, "event=third n=3");
    const char *bulk0 = strstr(out, "event=bulk i=0 ");
    const char *bulk999 = strstr(out, "event=bulk i=999 ");
    const char *after = strstr(out, "event=after_stop");
    assert_non_null(first);
    assert_true(first < second && second < third && third < bulk0 &&
                bulk0 < bulk999 && bulk999 < after);
    int lines = 0;
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        assert_int_equal(strncmp(l, "ts=", 3), 0);
        lines++;
    }
    assert_int_equal(lines, 1 + 2 + 1 + 1000 + 1);
}

/* A rate-limited line: the first passes, then one per period, each
 * telling how many were held back since the last. */
static void test_limit(void **state)
{
    (void)state;
    im_log_limit_t l = {0};
    uint64_t n = 99;
    assert_true(im_log_limit(&l, 5000, 1000, &n));
    assert_int_equal(n, 0);
    for (uint64_t t = 5000; t < 6000; t += 100)
        assert_false(im_log_limit(&l, t, 1000, &n));
    assert_true(im_log_limit(&l, 6000, 1000, &n));
    assert_int_equal(n, 10);
    assert_false(im_log_limit(&l, 6999, 1000, &n));
    /* A long quiet spell: the next call passes at once. */
    assert_true(im_log_limit(&l, 60000, 1000, NULL));
    assert_true(im_log_limit(&l, 61000, 1000, &n));
    assert_int_equal(n, 0);
    /* Starting at clock 0 is no special case. */
    im_log_limit_t z = {0};
    assert_true(im_log_limit(&z, 0, 10, &n));
    assert_false(im_log_limit(&z, 0, 10, &n));
    assert_true(im_log_limit(&z, 10, 10, &n));
    assert_int_equal(n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_line_format),
        cmocka_unit_test(test_long_line_truncated),
        cmocka_unit_test(test_clock),
        cmocka_unit_test(test_change_level),
        cmocka_unit_test(test_level_from_another_thread),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_buffered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
