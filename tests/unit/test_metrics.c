/* im_metrics: exposition text and the HTTP endpoint over a real socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "im_clock.h"
#include "im_log.h"
#include "im_metrics.h"

static size_t s_count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_render(void **state)
{
    (void)state;
    im_metrics_t *m = im_metrics_new();
    assert_non_null(m);

    im_metric_t *a = im_metrics_add(m, "imsplit_up_legs_released_total",
                                    "Legs released.", IM_METRIC_COUNTER,
                                    "direction=\"client\"");
    im_metric_t *g = im_metrics_add(m, "imsplit_up_legs_active",
                                    "Legs held now.\nSecond line \\ here",
                                    IM_METRIC_GAUGE, NULL);
    im_metric_t *b = im_metrics_add(m, "imsplit_up_legs_released_total",
                                    "Legs released.", IM_METRIC_COUNTER,
                                    "direction=\"controlling\"");
    assert_non_null(a);
    assert_non_null(g);
    assert_non_null(b);

    im_metric_inc(a);
    im_metric_inc(a);
    im_metric_add(b, 40);
    im_metric_add(b, -3);
    im_metric_set(g, -7);
    assert_int_equal(im_metric_get(a), 2);
    assert_int_equal(im_metric_get(b), 37);
    assert_int_equal(im_metric_get(g), -7);

    size_t len = 0;
    char *text = im_metrics_render(m, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    const char *want =
        "# HELP imsplit_up_legs_released_total Legs released.\n"
        "# TYPE imsplit_up_legs_released_total counter\n"
        "imsplit_up_legs_released_total{direction=\"client\"} 2\n"
        "imsplit_up_legs_released_total{direction=\"controlling\"} 37\n"
        "# HELP imsplit_up_legs_active Legs held now.\\nSecond line \\\\ here\n"
        "# TYPE imsplit_up_legs_active gauge\n"
        "imsplit_up_legs_active -7\n";
    assert_string_equal(text, want);
    assert_int_equal(s_count(text, "# TYPE imsplit_up_legs_released_total"), 1);
    free(text);

    /* A series registered and never touched is exported as 0. */
    assert_non_null(im_metrics_add(m, "imsplit_up_sockets_open", "Sockets.",
                                   IM_METRIC_GAUGE, ""));
    text = im_metrics_render(m, NULL);
    assert_non_null(strstr(text, "\nimsplit_up_sockets_open 0\n"));
    free(text);

    im_metric_inc(NULL);
    assert_int_equal(im_metric_get(NULL), 0);
    assert_null(im_metrics_add(m, "", "x", IM_METRIC_GAUGE, NULL));
    im_metrics_destroy(&m);
    assert_null(m);
    im_metrics_destroy(&m);
}

/* One HTTP/1.0 request on a fresh connection, with a body when body is not
 * NULL; returns the status code and copies the whole response into resp. */
static int s_http(unsigned port, const char *method, const char *path,
                  const char *body, char *resp, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    struct timeval tv = {.tv_sec = 5};
    char req[1024];
    size_t got = 0;
    int status = -1;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int n = body ? snprintf(req, sizeof(req),
                            "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                            "Content-Length: %zu\r\n\r\n%s",
                            method, path, strlen(body), body)
                 : snprintf(req, sizeof(req),
                            "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                            method, path);
    assert_true(n > 0 && (size_t)n < sizeof(req));
    assert_int_equal(write(fd, req, (size_t)n), n);
    for (;;) {
        ssize_t r = read(fd, resp + got, size - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == size - 1)
            break;
    }
    resp[got] = '\0';
    close(fd);
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    return status;
}

static int s_http_get(unsigned port, const char *path, char *resp, size_t size)
{
    return s_http(port, "GET", path, NULL, resp, size);
}

/* The body of an HTTP response (after the blank line). */
static const char *s_body(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

static void s_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_http(void **state)
{
    (void)state;
    im_metrics_t *m = im_metrics_new();
    char resp[8192];

    assert_non_null(m);
    im_metric_t *s = im_metrics_add(m, "imsplit_cp_sessions_active",
                                    "Sessions.", IM_METRIC_GAUGE, NULL);
    im_metric_set(s, 12);
    assert_int_equal(im_metrics_port(m), 0);
    assert_int_equal(im_metrics_listen(m, "127.0.0.1:0"), 0);
    unsigned port = im_metrics_port(m);
    assert_true(port > 0);
    assert_true(im_metrics_listen(m, "127.0.0.1:0") < 0);

    assert_int_equal(s_http_get(port, "/metrics", resp, sizeof(resp)), 200);
    assert_non_null(strstr(resp, "\r\n\r\n# HELP imsplit_cp_sessions_active"));
    assert_non_null(strstr(resp, "\nimsplit_cp_sessions_active 12\n"));
    assert_non_null(strstr(resp, "text/plain; version=0.0.4"));

    /* Values are read at scrape time. */
    im_metric_set(s, 13);
    assert_int_equal(s_http_get(port, "/metrics", resp, sizeof(resp)), 200);
    assert_non_null(strstr(resp, "\nimsplit_cp_sessions_active 13\n"));

    im_metrics_loop_tick(m, im_clock_ms());
    assert_int_equal(s_http_get(port, "/healthz", resp, sizeof(resp)), 200);
    assert_non_null(strstr(resp, "\r\n\r\nok\n"));
    im_metrics_set_stall_ms(m, 30);
    s_sleep_ms(120);
    assert_int_equal(s_http_get(port, "/healthz", resp, sizeof(resp)), 503);
    im_metrics_loop_tick(m, im_clock_ms());
    assert_int_equal(s_http_get(port, "/healthz", resp, sizeof(resp)), 200);

    assert_int_equal(s_http_get(port, "/readyz", resp, sizeof(resp)), 503);
    im_metrics_set_ready(m, true);
    assert_int_equal(s_http_get(port, "/readyz", resp, sizeof(resp)), 200);
    im_metrics_set_ready(m, false);
    assert_int_equal(s_http_get(port, "/readyz", resp, sizeof(resp)), 503);

    assert_int_equal(s_http_get(port, "/", resp, sizeof(resp)), 404);
    assert_int_equal(s_http_get(port, "/metricsx", resp, sizeof(resp)), 404);

    im_metrics_destroy(&m);
    assert_null(m);
    /* The listener is gone with the registry. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_not_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
}

static void test_failed_registration_is_remembered(void **state)
{
    (void)state;
    im_metrics_t *m = im_metrics_new();
    assert_non_null(m);
    assert_non_null(im_metrics_add(m, "a_total", "A", IM_METRIC_COUNTER, NULL));
    assert_true(im_metrics_complete(m));
    assert_null(im_metrics_add(m, "", "no name", IM_METRIC_COUNTER, NULL));
    assert_false(im_metrics_complete(m));
    /* Later successes do not hide the hole. */
    assert_non_null(im_metrics_add(m, "b_total", "B", IM_METRIC_COUNTER, NULL));
    assert_false(im_metrics_complete(m));
    im_metrics_destroy(&m);
    assert_false(im_metrics_complete(NULL));
}

static void test_listen_errors(void **state)
{
    (void)state;
    im_metrics_t *m = im_metrics_new();
    im_metrics_t *m2 = im_metrics_new();

    assert_true(im_metrics_listen(m, "127.0.0.1") < 0);
    assert_int_equal(im_metrics_listen(m, "127.0.0.1:0"), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", im_metrics_port(m));
    /* The port is taken. */
    assert_true(im_metrics_listen(m2, addr) < 0);
    im_metrics_destroy(&m2);
    im_metrics_destroy(&m);
}

static void test_histogram_render(void **state)
{
    (void)state;
    static const double bounds[] = {0.001, 0.01, 0.1, 1};
    im_metrics_t *m = im_metrics_new();
    assert_non_null(m);

    im_metric_t *plain = im_metrics_add_histogram(
        m, "imsplit_cp_release_latency_seconds", "Release latency.", NULL,
        bounds, 4);
    im_metric_t *a = im_metrics_add_histogram(
        m, "imsplit_x_seconds", "By kind.", "kind=\"a\"", bounds, 4);
    im_metric_t *b = im_metrics_add_histogram(
        m, "imsplit_x_seconds", "By kind.", "kind=\"b\",dir=\"in\"", bounds,
        4);
    assert_non_null(plain);
    assert_non_null(a);
    assert_non_null(b);

    /* A value equal to a bound falls in that bound's bucket (le). */
    im_metric_observe(plain, 0.001);
    im_metric_observe(plain, 0.0005);
    im_metric_observe(plain, 0.05);
    im_metric_observe(plain, 2.5);
    im_metric_observe(plain, NAN); /* ignored */
    im_metric_observe(a, 1);
    assert_int_equal(im_metric_get(plain), 4);
    assert_true(fabs(im_metric_sum(plain) - 2.5515) < 1e-12);

    char *text = im_metrics_render(m, NULL);
    assert_non_null(text);
    const char *want =
        "# HELP imsplit_cp_release_latency_seconds Release latency.\n"
        "# TYPE imsplit_cp_release_latency_seconds histogram\n"
        "imsplit_cp_release_latency_seconds_bucket{le=\"0.001\"} 2\n"
        "imsplit_cp_release_latency_seconds_bucket{le=\"0.01\"} 2\n"
        "imsplit_cp_release_latency_seconds_bucket{le=\"0.1\"} 3\n"
        "imsplit_cp_release_latency_seconds_bucket{le=\"1\"} 3\n"
        "imsplit_cp_release_latency_seconds_bucket{le=\"+Inf\"} 4\n"
        "imsplit_cp_release_latency_seconds_sum 2.5515\n"
        "imsplit_cp_release_latency_seconds_count 4\n"
        "# HELP imsplit_x_seconds By kind.\n"
        "# TYPE imsplit_x_seconds histogram\n"
        "imsplit_x_seconds_bucket{kind=\"a\",le=\"0.001\"} 0\n"
        "imsplit_x_seconds_bucket{kind=\"a\",le=\"0.01\"} 0\n"
        "imsplit_x_seconds_bucket{kind=\"a\",le=\"0.1\"} 0\n"
        "imsplit_x_seconds_bucket{kind=\"a\",le=\"1\"} 1\n"
        "imsplit_x_seconds_bucket{kind=\"a\",le=\"+Inf\"} 1\n"
        "imsplit_x_seconds_sum{kind=\"a\"} 1\n"
        "imsplit_x_seconds_count{kind=\"a\"} 1\n"
        "imsplit_x_seconds_bucket{kind=\"b\",dir=\"in\",le=\"0.001\"} 0\n"
        "imsplit_x_seconds_bucket{kind=\"b\",dir=\"in\",le=\"0.01\"} 0\n"
        "imsplit_x_seconds_bucket{kind=\"b\",dir=\"in\",le=\"0.1\"} 0\n"
        "imsplit_x_seconds_bucket{kind=\"b\",dir=\"in\",le=\"1\"} 0\n"
        "imsplit_x_seconds_bucket{kind=\"b\",dir=\"in\",le=\"+Inf\"} 0\n"
        "imsplit_x_seconds_sum{kind=\"b\",dir=\"in\"} 0\n"
        "imsplit_x_seconds_count{kind=\"b\",dir=\"in\"} 0\n";
    assert_string_equal(text, want);
    free(text);
    im_metrics_destroy(&m);
}

static void test_histogram_rules(void **state)
{
    (void)state;
    static const double ok[] = {0.5, 1};
    static const double unsorted[] = {1, 0.5};
    static const double dup[] = {1, 1};
    static const double inf[] = {1, INFINITY};
    static const double other[] = {0.5, 2};
    im_metrics_t *m = im_metrics_new();

    assert_null(im_metrics_add_histogram(m, "h1", "H", NULL, unsorted, 2));
    assert_false(im_metrics_complete(m));
    im_metrics_destroy(&m);
    m = im_metrics_new();
    assert_null(im_metrics_add_histogram(m, "h1", "H", NULL, dup, 2));
    assert_null(im_metrics_add_histogram(m, "h1", "H", NULL, inf, 2));
    assert_null(im_metrics_add_histogram(m, "h1", "H", NULL, ok, 0));
    assert_null(im_metrics_add_histogram(m, "h1", "H", NULL, NULL, 2));
    assert_null(im_metrics_add(m, "h2", "H", IM_METRIC_HISTOGRAM, NULL));
    im_metrics_destroy(&m);

    m = im_metrics_new();
    im_metric_t *h = im_metrics_add_histogram(m, "h", "H", "a=\"1\"", ok, 2);
    im_metric_t *c = im_metrics_add(m, "c_total", "C", IM_METRIC_COUNTER, NULL);
    assert_non_null(h);
    assert_non_null(c);
    assert_true(im_metrics_complete(m));
    /* One name, one type and one set of bounds. */
    assert_null(im_metrics_add_histogram(m, "h", "H", "a=\"2\"", other, 2));
    assert_null(im_metrics_add(m, "h", "H", IM_METRIC_GAUGE, "a=\"3\""));
    assert_null(im_metrics_add(m, "c_total", "C", IM_METRIC_GAUGE, "x=\"y\""));
    assert_null(im_metrics_add_histogram(m, "c_total", "C", NULL, ok, 2));
    assert_false(im_metrics_complete(m));
    /* Updates of the wrong kind are ignored. */
    im_metric_inc(h);
    im_metric_set(h, 7);
    im_metric_observe(c, 3);
    im_metric_observe(NULL, 1);
    assert_int_equal(im_metric_get(h), 0);
    assert_int_equal(im_metric_get(c), 0);
    assert_true(im_metric_sum(c) == 0);
    assert_true(im_metric_sum(NULL) == 0);
    im_metric_observe(h, -1);
    im_metric_observe(h, 0.75);
    im_metric_observe(h, 1e9);
    assert_int_equal(im_metric_get(h), 3);
    char *text = im_metrics_render(m, NULL);
    assert_non_null(strstr(text, "\nh_bucket{a=\"1\",le=\"0.5\"} 1\n"
                                 "h_bucket{a=\"1\",le=\"1\"} 2\n"
                                 "h_bucket{a=\"1\",le=\"+Inf\"} 3\n"
                                 "h_sum{a=\"1\"} 9.9999999975e+08\n"
                                 "h_count{a=\"1\"} 3\n"));
    free(text);
    im_metrics_destroy(&m);
}

/* Bounds and sums print like Prometheus' own clients: shortest
 * round-trip digits, exponent form only for very small or large values. */
static void test_float_format(void **state)
{
    (void)state;
    static const double bounds[] = {1e-05, 0.0005, 0.1, 0.25, 10, 123456,
                                    1e6, 2.5e7};
    static const char *const les[] = {"1e-05", "0.0005", "0.1", "0.25",
                                      "10", "123456", "1e+06", "2.5e+07"};
    im_metrics_t *m = im_metrics_new();
    im_metric_t *h = im_metrics_add_histogram(m, "f", "F", NULL, bounds, 8);
    char want[64];

    im_metric_observe(h, 0.1);
    im_metric_observe(h, 0.2);
    char *text = im_metrics_render(m, NULL);
    for (int i = 0; i < 8; i++) {
        snprintf(want, sizeof(want), "\nf_bucket{le=\"%s\"} ", les[i]);
        assert_non_null(strstr(text, want));
    }
    /* 0.1 + 0.2 is not 0.3 in binary: all the digits it needs. */
    assert_non_null(strstr(text, "\nf_sum 0.30000000000000004\n"));
    free(text);
    im_metrics_destroy(&m);

    m = im_metrics_new();
    h = im_metrics_add_histogram(m, "g", "G", NULL, bounds, 8);
    text = im_metrics_render(m, NULL);
    assert_non_null(strstr(text, "\ng_sum 0\n"));
    free(text);
    im_metric_observe(h, 3e7);
    im_metric_observe(h, -1e-7);
    text = im_metrics_render(m, NULL);
    assert_non_null(strstr(text, "\ng_sum 2.99999999999999e+07\n"));
    free(text);
    im_metrics_destroy(&m);
}

static void test_family(void **state)
{
    (void)state;
    im_metrics_t *m = im_metrics_new();
    im_metric_t *s1 = NULL, *s2 = NULL, *again = NULL;

    im_metric_family_t *f = im_metrics_add_family(
        m, "imsplit_cp_worker_legs", "Legs per worker.", IM_METRIC_GAUGE,
        "worker", 3);
    assert_non_null(f);
    assert_non_null(im_metrics_add(m, "imsplit_after", "After.",
                                   IM_METRIC_COUNTER, NULL));
    /* The name is taken, whatever the kind of the new registration. */
    assert_null(im_metrics_add_family(m, "imsplit_cp_worker_legs", "X",
                                      IM_METRIC_GAUGE, "worker", 3));
    assert_null(im_metrics_add(m, "imsplit_cp_worker_legs", "X",
                               IM_METRIC_GAUGE, "worker=\"x\""));
    assert_null(im_metrics_add_family(m, "imsplit_after", "X",
                                      IM_METRIC_COUNTER, "worker", 3));
    assert_null(im_metrics_add_family(m, "h", "X", IM_METRIC_HISTOGRAM,
                                      "worker", 3));

    /* Empty: HELP and TYPE only. */
    char *text = im_metrics_render(m, NULL);
    assert_string_equal(text,
                        "# HELP imsplit_cp_worker_legs Legs per worker.\n"
                        "# TYPE imsplit_cp_worker_legs gauge\n"
                        "# HELP imsplit_after After.\n"
                        "# TYPE imsplit_after counter\n"
                        "imsplit_after 0\n");
    free(text);

    assert_int_equal(im_metric_family_add(f, "up-1", &s1), 0);
    assert_int_equal(im_metric_family_add(f, "odd \"id\\", &s2), 0);
    assert_int_equal(im_metric_family_add(f, "up-1", &again), 0);
    assert_ptr_equal(again, s1);
    assert_int_equal(im_metric_family_size(f), 2);
    assert_ptr_equal(im_metric_family_find(f, "up-1"), s1);
    assert_null(im_metric_family_find(f, "up-2"));
    im_metric_set(s1, 12);
    im_metric_set(s2, 3);
    text = im_metrics_render(m, NULL);
    assert_string_equal(text,
                        "# HELP imsplit_cp_worker_legs Legs per worker.\n"
                        "# TYPE imsplit_cp_worker_legs gauge\n"
                        "imsplit_cp_worker_legs{worker=\"up-1\"} 12\n"
                        "imsplit_cp_worker_legs{worker=\"odd \\\"id\\\\\"} 3\n"
                        "# HELP imsplit_after After.\n"
                        "# TYPE imsplit_after counter\n"
                        "imsplit_after 0\n");
    free(text);

    /* Values a scrape could not carry are refused. */
    char longv[IM_METRIC_LABEL_VALUE_MAX + 2];
    memset(longv, 'a', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    assert_int_equal(im_metric_family_add(f, "", &again), -EINVAL);
    assert_null(again);
    assert_int_equal(im_metric_family_add(f, NULL, NULL), -EINVAL);
    assert_int_equal(im_metric_family_add(f, "nl\n", NULL), -EINVAL);
    assert_int_equal(im_metric_family_add(f, "caf\xc3\xa9", NULL), -EINVAL);
    assert_int_equal(im_metric_family_add(f, longv, NULL), -EINVAL);
    longv[IM_METRIC_LABEL_VALUE_MAX] = '\0';
    assert_int_equal(im_metric_family_add(f, longv, NULL), 0);
    /* The cap. */
    assert_int_equal(im_metric_family_add(f, "up-4", &again), -ENOSPC);
    assert_null(again);
    assert_int_equal(im_metric_family_size(f), 3);

    /* Removal, from the middle and the ends; a removed value comes back
     * at 0, last. */
    assert_true(im_metric_family_remove(f, "odd \"id\\"));
    assert_false(im_metric_family_remove(f, "odd \"id\\"));
    assert_false(im_metric_family_remove(f, NULL));
    assert_true(im_metric_family_remove(f, longv));
    assert_int_equal(im_metric_family_add(f, "up-4", &s2), 0);
    assert_true(im_metric_family_remove(f, "up-1"));
    assert_int_equal(im_metric_family_add(f, "up-1", &s1), 0);
    text = im_metrics_render(m, NULL);
    assert_non_null(strstr(text, "# TYPE imsplit_cp_worker_legs gauge\n"
                                 "imsplit_cp_worker_legs{worker=\"up-4\"} 0\n"
                                 "imsplit_cp_worker_legs{worker=\"up-1\"} 0\n"
                                 "# HELP imsplit_after"));
    free(text);
    assert_true(im_metrics_complete(m) == false); /* the refused registrations */
    assert_int_equal(im_metric_family_size(NULL), 0);
    assert_null(im_metric_family_find(NULL, "x"));
    im_metrics_destroy(&m);
}

/* ---- concurrency: the loop thread changes, the HTTP thread renders ------ */

typedef struct {
    im_metrics_t *m;
    atomic_bool stop;
    unsigned renders;
    unsigned bad;
    char why[160];
} s_scraper_t;

/* Checks the histogram "h" in a render: buckets never decrease, +Inf
 * equals _count, and _sum matches the buckets exactly (every observation
 * is 1 or 2, which land in le="1" and le="2"), which holds only for a
 * snapshot. */
static bool s_hist_consistent(const char *text, char *why, size_t size)
{
    static const char *const les[] = {"0.5", "1", "1.5", "2", "+Inf"};
    unsigned long long c[5], prev = 0, count;
    double sum;
    char key[48];
    const char *p = NULL;

    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "\nh_bucket{le=\"%s\"} ", les[i]);
        p = strstr(text, key);
        if (!p || sscanf(p + strlen(key), "%llu", &c[i]) != 1) {
            snprintf(why, size, "no bucket %s", les[i]);
            return false;
        }
        if (c[i] < prev) {
            snprintf(why, size, "bucket %s decreases", les[i]);
            return false;
        }
        prev = c[i];
    }
    p = strstr(p, "\nh_sum ");
    if (!p || sscanf(p, "\nh_sum %lf\nh_count %llu", &sum, &count) != 2) {
        snprintf(why, size, "no h_sum/h_count");
        return false;
    }
    if (c[4] != count) {
        snprintf(why, size, "+Inf %llu != count %llu", c[4], count);
        return false;
    }
    if (sum != (double)c[1] + 2.0 * (double)(c[3] - c[2])) {
        snprintf(why, size, "sum %.17g does not match buckets %llu/%llu",
                 sum, c[1], c[3] - c[2]);
        return false;
    }
    return true;
}

static void *s_scrape_loop(void *arg)
{
    s_scraper_t *sc = arg;
    while (!atomic_load(&sc->stop)) {
        size_t len = 0;
        char *text = im_metrics_render(sc->m, &len);
        if (!text || len != strlen(text) ||
            !s_hist_consistent(text, sc->why, sizeof(sc->why)))
            sc->bad++;
        free(text);
        sc->renders++;
    }
    return NULL;
}

static void test_family_concurrent_render(void **state)
{
    (void)state;
    static const double bounds[] = {0.5, 1, 1.5, 2};
    s_scraper_t sc = {0};
    pthread_t th;
    char id[32];

    sc.m = im_metrics_new();
    im_metric_family_t *f = im_metrics_add_family(
        sc.m, "w_legs", "Legs.", IM_METRIC_GAUGE, "worker", 64);
    im_metric_t *h = im_metrics_add_histogram(sc.m, "h", "H.", NULL, bounds,
                                              4);
    assert_non_null(f);
    assert_non_null(h);
    atomic_init(&sc.stop, false);
    assert_int_equal(pthread_create(&th, NULL, s_scrape_loop, &sc), 0);
    uint64_t until = im_clock_ms() + 300;
    for (unsigned i = 0; im_clock_ms() < until || sc.renders < 50; i++) {
        im_metric_t *s = NULL;
        snprintf(id, sizeof(id), "up-%u", i % 97);
        if (im_metric_family_find(f, id))
            assert_true(im_metric_family_remove(f, id));
        else if (im_metric_family_add(f, id, &s) == 0)
            im_metric_set(s, (int64_t)i);
        im_metric_observe(h, (i & 1) ? 1.0 : 2.0);
    }
    atomic_store(&sc.stop, true);
    pthread_join(th, NULL);
    if (sc.bad)
        fail_msg("%u of %u renders inconsistent: %s", sc.bad, sc.renders,
                 sc.why);
    assert_true(sc.renders >= 50);
    im_metrics_destroy(&sc.m);
}

/* The same over HTTP: scrapes while series come and go. */
static void test_family_http(void **state)
{
    (void)state;
    im_metrics_t *m = im_metrics_new();
    char resp[16384];
    im_metric_t *s = NULL;

    im_metric_family_t *f = im_metrics_add_family(
        m, "imsplit_cp_worker_sessions", "Sessions.", IM_METRIC_GAUGE,
        "worker", 8);
    assert_int_equal(im_metrics_listen(m, "127.0.0.1:0"), 0);
    unsigned port = im_metrics_port(m);
    assert_int_equal(im_metric_family_add(f, "up-1", &s), 0);
    im_metric_set(s, 4);
    assert_int_equal(s_http_get(port, "/metrics", resp, sizeof(resp)), 200);
    assert_non_null(
        strstr(resp, "\nimsplit_cp_worker_sessions{worker=\"up-1\"} 4\n"));
    assert_true(im_metric_family_remove(f, "up-1"));
    assert_int_equal(s_http_get(port, "/metrics", resp, sizeof(resp)), 200);
    assert_null(strstr(resp, "worker=\"up-1\""));
    assert_non_null(strstr(resp, "# TYPE imsplit_cp_worker_sessions gauge\n"));
    im_metrics_destroy(&m);
}

/* ---- /log-level ----------------------------------------------------------- */

static void test_log_level_http(void **state)
{
    (void)state;
    im_metrics_t *m = im_metrics_new();
    char resp[4096];
    char big[200];

    /* The change lines go to stderr; keep the test output quiet. */
    im_log_set_level(IM_LOG_LEVEL_INFO);
    assert_int_equal(im_metrics_listen(m, "127.0.0.1:0"), 0);
    unsigned port = im_metrics_port(m);

    assert_int_equal(s_http_get(port, "/log-level", resp, sizeof(resp)), 200);
    assert_string_equal(s_body(resp), "info\n");

    assert_int_equal(s_http(port, "PUT", "/log-level", "debug", resp,
                            sizeof(resp)), 200);
    assert_string_equal(s_body(resp), "debug\n");
    assert_int_equal(im_log_get_level(), IM_LOG_LEVEL_DEBUG);
    assert_int_equal(s_http_get(port, "/log-level", resp, sizeof(resp)), 200);
    assert_string_equal(s_body(resp), "debug\n");

    assert_int_equal(s_http(port, "PUT", "/log-level", "level=warn\n", resp,
                            sizeof(resp)), 200);
    assert_int_equal(im_log_get_level(), IM_LOG_LEVEL_WARN);
    assert_int_equal(s_http(port, "PUT", "/log-level?level=error", NULL, resp,
                            sizeof(resp)), 200);
    assert_string_equal(s_body(resp), "error\n");
    assert_int_equal(im_log_get_level(), IM_LOG_LEVEL_ERROR);
    /* The query wins over the body. */
    assert_int_equal(s_http(port, "PUT", "/log-level?level=INFO", "debug", resp,
                            sizeof(resp)), 200);
    assert_int_equal(im_log_get_level(), IM_LOG_LEVEL_INFO);

    /* Refusals leave the level alone and say why. */
    assert_int_equal(s_http(port, "PUT", "/log-level", "verbose", resp,
                            sizeof(resp)), 400);
    assert_non_null(strstr(s_body(resp), "unknown level"));
    assert_int_equal(s_http(port, "PUT", "/log-level?level=", "", resp,
                            sizeof(resp)), 400);
    assert_non_null(strstr(s_body(resp), "missing level"));
    assert_int_equal(s_http(port, "PUT", "/log-level", NULL, resp,
                            sizeof(resp)), 400);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(s_http(port, "PUT", "/log-level", big, resp,
                            sizeof(resp)), 413);
    assert_int_equal(s_http(port, "DELETE", "/log-level", NULL, resp,
                            sizeof(resp)), 405);
    assert_non_null(strstr(resp, "Allow: GET, HEAD, PUT"));
    assert_int_equal(s_http(port, "PUT", "/metrics", "x", resp, sizeof(resp)),
                     405);
    assert_int_equal(s_http(port, "POST", "/log-level", "debug", resp,
                            sizeof(resp)), 405);
    assert_int_equal(im_log_get_level(), IM_LOG_LEVEL_INFO);

    /* The server still serves after all that. */
    assert_int_equal(s_http_get(port, "/metrics", resp, sizeof(resp)), 200);
    im_metrics_destroy(&m);
    im_log_set_level(IM_LOG_LEVEL_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_failed_registration_is_remembered),
        cmocka_unit_test(test_histogram_render),
        cmocka_unit_test(test_histogram_rules),
        cmocka_unit_test(test_float_format),
        cmocka_unit_test(test_family),
        cmocka_unit_test(test_family_concurrent_render),
        cmocka_unit_test(test_family_http),
        cmocka_unit_test(test_log_level_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
