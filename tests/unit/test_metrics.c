/* im_metrics: exposition text and the HTTP endpoint over a real socket. */
#include <arpa/inet.h>
#include <netinet/in.h>
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

/* One HTTP/1.0 request on a fresh connection; returns the status code and
 * copies the whole response into resp. */
static int s_http_get(unsigned port, const char *path, char *resp, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    struct timeval tv = {.tv_sec = 5};
    char req[256];
    size_t got = 0;
    int status = -1;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_failed_registration_is_remembered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
