/* im_timer: the wheel is driven by a fake clock (plain integers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "im_timer.h"

#define MAX_EVENTS 4096

typedef struct {
    im_wheel_t *w;
    int ids[MAX_EVENTS];
    uint64_t at[MAX_EVENTS]; /* wheel time seen inside the callback */
    size_t n;
} s_log_t;

typedef struct {
    im_timer_t t;
    s_log_t *log;
    int id;
    /* Optional actions run from inside the callback. */
    im_timer_t *cancel_other;
    uint64_t rearm_period;
    int rearm_left;
    int free_self;
} s_item_t;

static void s_record(im_timer_t *t, void *arg)
{
    s_item_t *it = arg;
    s_log_t *log = it->log;

    assert_ptr_equal(t, &it->t);
    assert_false(im_timer_armed(t));
    if (log->n < MAX_EVENTS) {
        log->ids[log->n] = it->id;
        log->at[log->n] = im_wheel_now(log->w);
    }
    log->n++;
    if (it->cancel_other)
        im_wheel_cancel(log->w, it->cancel_other);
    if (it->rearm_left > 0) {
        it->rearm_left--;
        im_wheel_arm(log->w, t, im_wheel_now(log->w) + it->rearm_period);
    }
    if (it->free_self)
        free(it);
}

static void s_item(s_item_t *it, s_log_t *log, int id)
{
    memset(it, 0, sizeof(*it));
    it->log = log;
    it->id = id;
    im_timer_init(&it->t, s_record, it);
}

static void test_empty_wheel(void **state)
{
    (void)state;
    im_wheel_t *w = im_wheel_new(1000);
    assert_non_null(w);
    assert_int_equal(im_wheel_count(w), 0);
    assert_true(im_wheel_next_expiry(w) == UINT64_MAX);
    assert_int_equal(im_wheel_advance(w, 5000), 0);
    assert_true(im_wheel_now(w) == 5000);
    /* Time never goes backwards. */
    assert_int_equal(im_wheel_advance(w, 10), 0);
    assert_true(im_wheel_now(w) == 5000);
    im_wheel_destroy(&w);
    assert_null(w);
    im_wheel_destroy(&w);
    im_wheel_destroy(NULL);
}

static void test_ordering(void **state)
{
    (void)state;
    static const uint64_t deadlines[] = {500, 3, 70000, 256, 255, 1, 65536, 257,
                                         100, 9999999, 1000, 2};
    enum { N = sizeof(deadlines) / sizeof(deadlines[0]) };
    s_log_t log = {0};
    s_item_t items[N];

    log.w = im_wheel_new(0);
    for (int i = 0; i < N; i++) {
        s_item(&items[i], &log, i);
        im_wheel_arm(log.w, &items[i].t, deadlines[i]);
        assert_true(im_timer_armed(&items[i].t));
    }
    assert_int_equal(im_wheel_count(log.w), N);
    assert_int_equal(im_wheel_advance(log.w, 10000000), N);
    assert_int_equal(log.n, N);
    for (size_t k = 0; k < log.n; k++) {
        /* Each fired exactly at its deadline, in deadline order. */
        assert_true(log.at[k] == deadlines[log.ids[k]]);
        if (k)
            assert_true(log.at[k - 1] < log.at[k]);
    }
    assert_int_equal(im_wheel_count(log.w), 0);
    im_wheel_destroy(&log.w);
}

static void test_step_by_step(void **state)
{
    (void)state;
    s_log_t log = {0};
    s_item_t a, b;

    log.w = im_wheel_new(12345);
    s_item(&a, &log, 1);
    s_item(&b, &log, 2);
    im_wheel_arm(log.w, &a.t, 12345 + 300);
    im_wheel_arm(log.w, &b.t, 12345 + 301);
    for (uint64_t t = 12345; t < 12345 + 300; t++)
        assert_int_equal(im_wheel_advance(log.w, t), 0);
    assert_int_equal(im_wheel_advance(log.w, 12345 + 300), 1);
    assert_int_equal(log.ids[0], 1);
    assert_int_equal(im_wheel_advance(log.w, 12345 + 301), 1);
    assert_int_equal(log.ids[1], 2);
    im_wheel_destroy(&log.w);
}

static void test_ties_keep_arming_order(void **state)
{
    (void)state;
    s_log_t log = {0};
    s_item_t it[6];

    log.w = im_wheel_new(0);
    for (int i = 0; i < 6; i++)
        s_item(&it[i], &log, i);
    /* Same deadline reached through different levels: the earlier armed
     * (further away) timer must still fire first. */
    im_wheel_arm(log.w, &it[0].t, 70000); /* level 2 */
    im_wheel_advance(log.w, 10000);
    im_wheel_arm(log.w, &it[1].t, 70000); /* level 1 */
    im_wheel_advance(log.w, 69800);
    im_wheel_arm(log.w, &it[2].t, 70000); /* level 0 */
    im_wheel_arm(log.w, &it[3].t, 70000);
    im_wheel_arm(log.w, &it[4].t, 70001);
    im_wheel_arm(log.w, &it[5].t, 70000);
    assert_int_equal(im_wheel_advance(log.w, 80000), 6);
    int want[] = {0, 1, 2, 3, 5, 4};
    for (int i = 0; i < 6; i++)
        assert_int_equal(log.ids[i], want[i]);
    im_wheel_destroy(&log.w);
}

static void test_cancel(void **state)
{
    (void)state;
    s_log_t log = {0};
    s_item_t a, b, c;

    log.w = im_wheel_new(0);
    s_item(&a, &log, 1);
    s_item(&b, &log, 2);
    s_item(&c, &log, 3);
    im_wheel_arm(log.w, &a.t, 10);
    im_wheel_arm(log.w, &b.t, 100000);
    im_wheel_arm(log.w, &c.t, 10);
    im_wheel_cancel(log.w, &a.t);
    im_wheel_cancel(log.w, &b.t);
    im_wheel_cancel(log.w, &b.t); /* no-op */
    assert_false(im_timer_armed(&a.t));
    assert_false(im_timer_armed(&b.t));
    assert_int_equal(im_wheel_count(log.w), 1);
    assert_int_equal(im_wheel_advance(log.w, 200000), 1);
    assert_int_equal(log.ids[0], 3);
    /* Cancelled the only timer of a slot: nothing left to report. */
    im_wheel_arm(log.w, &a.t, 300000);
    im_wheel_cancel(log.w, &a.t);
    assert_true(im_wheel_next_expiry(log.w) == UINT64_MAX);
    im_wheel_destroy(&log.w);
}

static void test_rearm_changes_deadline(void **state)
{
    (void)state;
    s_log_t log = {0};
    s_item_t a;

    log.w = im_wheel_new(0);
    s_item(&a, &log, 1);
    im_wheel_arm(log.w, &a.t, 50);
    im_wheel_arm(log.w, &a.t, 5000);
    assert_int_equal(im_wheel_count(log.w), 1);
    assert_int_equal(im_wheel_advance(log.w, 4999), 0);
    assert_int_equal(im_wheel_advance(log.w, 5000), 1);
    assert_true(log.at[0] == 5000);
    im_wheel_destroy(&log.w);
}

static void test_rearm_inside_callback(void **state)
{
    (void)state;
    s_log_t log = {0};
    s_item_t a;

    log.w = im_wheel_new(0);
    s_item(&a, &log, 1);
    a.rearm_period = 10;
    a.rearm_left = 1000;
    im_wheel_arm(log.w, &a.t, 10);
    /* One call covers 100 periods: re-armed timers inside the span fire in
     * the same advance. */
    assert_int_equal(im_wheel_advance(log.w, 1000), 100);
    for (size_t k = 0; k < 100; k++)
        assert_true(log.at[k] == (k + 1) * 10);
    assert_true(im_timer_armed(&a.t));
    im_wheel_cancel(log.w, &a.t);
    assert_int_equal(im_wheel_count(log.w), 0);
    im_wheel_destroy(&log.w);
}

static void test_rearm_at_now_waits_for_next_advance(void **state)
{
    (void)state;
    s_log_t log = {0};
    s_item_t a;

    log.w = im_wheel_new(0);
    s_item(&a, &log, 1);
    a.rearm_period = 0; /* re-arm at the current time */
    a.rearm_left = 5;
    im_wheel_arm(log.w, &a.t, 5);
    assert_int_equal(im_wheel_advance(log.w, 5), 1);
    assert_int_equal(im_wheel_advance(log.w, 5), 1);
    assert_int_equal(im_wheel_advance(log.w, 6), 1);
    assert_int_equal(log.n, 3);
    im_wheel_cancel(log.w, &a.t);
    im_wheel_destroy(&log.w);
}

static void test_past_deadline(void **state)
{
    (void)state;
    s_log_t log = {0};
    s_item_t a, b;

    log.w = im_wheel_new(1000);
    s_item(&a, &log, 1);
    s_item(&b, &log, 2);
    im_wheel_arm(log.w, &a.t, 10);
    im_wheel_arm(log.w, &b.t, 1000);
    assert_true(im_wheel_next_expiry(log.w) <= 1000);
    assert_int_equal(im_wheel_advance(log.w, 1000), 2);
    assert_int_equal(log.ids[0], 1);
    assert_int_equal(log.ids[1], 2);
    im_wheel_destroy(&log.w);
}

static void test_cancel_other_inside_callback(void **state)
{
    (void)state;
    s_log_t log = {0};
    s_item_t a, b, c, d;

    log.w = im_wheel_new(0);
    s_item(&a, &log, 1);
    s_item(&b, &log, 2);
    s_item(&c, &log, 3);
    s_item(&d, &log, 4);
    /* a and b share a slot and a deadline: a cancels b while b is waiting
     * in the list being fired. a also cancels d, due later. */
    a.cancel_other = &b.t;
    c.cancel_other = &d.t;
    im_wheel_arm(log.w, &a.t, 100);
    im_wheel_arm(log.w, &b.t, 100);
    im_wheel_arm(log.w, &c.t, 100);
    im_wheel_arm(log.w, &d.t, 100000);
    assert_int_equal(im_wheel_advance(log.w, 200000), 2);
    assert_int_equal(log.ids[0], 1);
    assert_int_equal(log.ids[1], 3);
    assert_false(im_timer_armed(&b.t));
    assert_false(im_timer_armed(&d.t));
    assert_int_equal(im_wheel_count(log.w), 0);
    im_wheel_destroy(&log.w);
}

static void test_free_inside_callback(void **state)
{
    (void)state;
    s_log_t log = {0};

    log.w = im_wheel_new(0);
    for (int i = 0; i < 50; i++) {
        s_item_t *it = malloc(sizeof(*it));
        assert_non_null(it);
        s_item(it, &log, i);
        it->free_self = 1;
        im_wheel_arm(log.w, &it->t, 1 + (uint64_t)(i % 3));
    }
    assert_int_equal(im_wheel_advance(log.w, 10), 50);
    assert_int_equal(im_wheel_count(log.w), 0);
    im_wheel_destroy(&log.w);
}

static void test_far_deadlines_all_levels(void **state)
{
    (void)state;
    const uint64_t start = 123456789;
    static const uint64_t offs[] = {
        1, 255, 256, 257, 65535, 65536, 65537, (1u << 24) - 1, 1u << 24,
        (1u << 24) + 1, UINT64_C(0xffffffff), UINT64_C(1) << 32,
        (UINT64_C(1) << 32) + 12345, (UINT64_C(1) << 33) + 7,
        (UINT64_C(1) << 40) + 3};
    enum { N = sizeof(offs) / sizeof(offs[0]) };
    s_log_t log = {0};
    s_item_t items[N];

    log.w = im_wheel_new(start);
    for (int i = 0; i < N; i++) {
        s_item(&items[i], &log, i);
        im_wheel_arm(log.w, &items[i].t, start + offs[i]);
    }
    for (int i = 0; i < N; i++) {
        uint64_t e = start + offs[i];
        assert_int_equal(im_wheel_advance(log.w, e - 1), 0);
        uint64_t next = im_wheel_next_expiry(log.w);
        /* One tick away: the bound is strictly after now, so exact. */
        assert_true(next == e);
        assert_int_equal(im_wheel_advance(log.w, e), 1);
        assert_int_equal(log.ids[i], i);
        assert_true(log.at[i] == e);
    }
    assert_int_equal(im_wheel_count(log.w), 0);
    im_wheel_destroy(&log.w);
}

static void test_next_expiry(void **state)
{
    (void)state;
    s_log_t log = {0};
    s_item_t a, b, c;

    log.w = im_wheel_new(1000);
    s_item(&a, &log, 1);
    s_item(&b, &log, 2);
    s_item(&c, &log, 3);
    assert_true(im_wheel_next_expiry(log.w) == UINT64_MAX);

    im_wheel_arm(log.w, &a.t, 1100);
    assert_true(im_wheel_next_expiry(log.w) == 1100);
    /* Within 256 ms but parked on level 1: still exact. */
    im_wheel_cancel(log.w, &a.t);
    im_wheel_arm(log.w, &a.t, 1300);
    im_wheel_advance(log.w, 1100);
    assert_true(im_wheel_next_expiry(log.w) == 1300);

    /* Far away: a lower bound that never passes the deadline. */
    im_wheel_cancel(log.w, &a.t);
    im_wheel_arm(log.w, &b.t, 5000000);
    uint64_t lb = im_wheel_next_expiry(log.w);
    assert_true(lb > 1100 && lb <= 5000000);
    /* Following the bound reaches the deadline without firing early. */
    int hops = 0;
    while (im_wheel_count(log.w) && hops < 100) {
        uint64_t n = im_wheel_next_expiry(log.w);
        assert_true(n <= 5000000);
        size_t fired = im_wheel_advance(log.w, n);
        assert_true(fired == 0 || n == 5000000);
        hops++;
    }
    assert_int_equal(log.n, 1);
    assert_true(log.at[0] == 5000000);
    assert_true(hops <= 8);

    /* The nearest of several timers wins. */
    im_wheel_arm(log.w, &a.t, 5000000 + 70000);
    im_wheel_arm(log.w, &c.t, 5000000 + 20);
    assert_true(im_wheel_next_expiry(log.w) == 5000000 + 20);
    im_wheel_cancel(log.w, &a.t);
    im_wheel_cancel(log.w, &c.t);
    im_wheel_destroy(&log.w);
}

static void test_large_jump(void **state)
{
    (void)state;
    s_log_t log = {0};
    enum { N = 1000 };
    s_item_t *items = calloc(N, sizeof(*items));
    uint64_t ten_hours = UINT64_C(10) * 3600 * 1000;

    assert_non_null(items);
    srand(42);
    log.w = im_wheel_new(77);
    for (int i = 0; i < N; i++) {
        s_item(&items[i], &log, i);
        im_wheel_arm(log.w, &items[i].t,
                     77 + 1 + ((uint64_t)rand() * 7919u) % ten_hours);
    }
    assert_int_equal(im_wheel_advance(log.w, 77 + ten_hours), N);
    for (size_t k = 0; k < log.n; k++) {
        assert_true(log.at[k] == items[log.ids[k]].t.expires);
        if (k)
            assert_true(log.at[k - 1] <= log.at[k]);
    }
    /* An empty wheel jumps a century at once. */
    assert_int_equal(im_wheel_advance(log.w, UINT64_C(1) << 45), 0);
    assert_true(im_wheel_now(log.w) == UINT64_C(1) << 45);
    im_wheel_destroy(&log.w);
    free(items);
}

/* --- 100k timers, and a random comparison against a plain model ------- */

typedef struct {
    im_timer_t t;
    uint64_t seq; /* arming order */
    int pending;  /* armed at or before the wheel's time */
    uint64_t fired_at;
    int fired;
} s_big_t;

static uint64_t s_last_expires, s_last_key2, s_fired_total;
static int s_order_ok = 1;
static im_wheel_t *s_big_wheel;

static void s_big_cb(im_timer_t *t, void *arg)
{
    s_big_t *b = arg;
    (void)t;
    b->fired = 1;
    b->fired_at = im_wheel_now(s_big_wheel);
    s_fired_total++;
    if (!b->pending) {
        if (b->t.expires < s_last_expires ||
            (b->t.expires == s_last_expires && b->seq < s_last_key2))
            s_order_ok = 0;
        if (b->fired_at != b->t.expires)
            s_order_ok = 0;
        s_last_expires = b->t.expires;
        s_last_key2 = b->seq;
    }
}

static uint64_t s_rng = 88172645463325252ull;
static uint64_t s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static void test_100k_timers(void **state)
{
    (void)state;
    enum { N = 100000 };
    s_big_t *b = calloc(N, sizeof(*b));
    uint64_t seq = 0;
    size_t cancelled = 0, fired = 0;

    assert_non_null(b);
    s_big_wheel = im_wheel_new(5);
    s_last_expires = 0;
    s_last_key2 = 0;
    s_fired_total = 0;
    s_order_ok = 1;
    for (int i = 0; i < N; i++) {
        im_timer_init(&b[i].t, s_big_cb, &b[i]);
        b[i].seq = ++seq;
        im_wheel_arm(s_big_wheel, &b[i].t, 6 + s_rand() % 3600000);
    }
    assert_int_equal(im_wheel_count(s_big_wheel), N);
    for (int i = 0; i < N; i += 3) {
        im_wheel_cancel(s_big_wheel, &b[i].t);
        cancelled++;
    }
    assert_int_equal(im_wheel_count(s_big_wheel), N - cancelled);
    for (uint64_t now = 5; now <= 3600010; now += 997)
        fired += im_wheel_advance(s_big_wheel, now);
    fired += im_wheel_advance(s_big_wheel, 3600010);
    assert_int_equal(fired, N - cancelled);
    assert_true(s_order_ok);
    for (int i = 0; i < N; i++)
        assert_int_equal(b[i].fired, i % 3 != 0);
    assert_int_equal(im_wheel_count(s_big_wheel), 0);
    im_wheel_destroy(&s_big_wheel);
    free(b);
}

static int s_cmp_key(const s_big_t *x, const s_big_t *y)
{
    /* Past-due timers first in arming order, then (deadline, arming). */
    if (x->pending != y->pending)
        return x->pending ? -1 : 1;
    if (!x->pending && x->t.expires != y->t.expires)
        return x->t.expires < y->t.expires ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

static s_big_t *s_model_order[4096];
static size_t s_model_n;
static s_big_t *s_seen_order[4096];
static size_t s_seen_n;

static void s_model_cb(im_timer_t *t, void *arg)
{
    (void)t;
    s_big_t *b = arg;
    b->fired_at = im_wheel_now(s_big_wheel);
    if (s_seen_n < 4096)
        s_seen_order[s_seen_n] = b;
    s_seen_n++;
}

static void test_random_against_model(void **state)
{
    (void)state;
    enum { N = 300 };
    static s_big_t b[N];
    uint64_t seq = 0;
    uint64_t now = 1000000;

    s_big_wheel = im_wheel_new(now);
    for (int i = 0; i < N; i++)
        im_timer_init(&b[i].t, s_model_cb, &b[i]);
    for (int round = 0; round < 3000; round++) {
        int ops = (int)(s_rand() % 8);
        for (int k = 0; k < ops; k++) {
            s_big_t *x = &b[s_rand() % N];
            uint64_t r = s_rand() % 10;
            if (r < 2) {
                im_wheel_cancel(s_big_wheel, &x->t);
                continue;
            }
            uint64_t d;
            switch (s_rand() % 5) {
            case 0: d = s_rand() % 300; break;
            case 1: d = s_rand() % 70000; break;
            case 2: d = s_rand() % 20000000; break;
            case 3: d = s_rand() % (UINT64_C(1) << 34); break;
            default: d = 0; break;
            }
            uint64_t e = (s_rand() % 16 == 0) ? now - (s_rand() % 100) : now + d;
            x->seq = ++seq;
            x->pending = e <= now;
            im_wheel_arm(s_big_wheel, &x->t, e);
        }
        uint64_t step;
        switch (s_rand() % 4) {
        case 0: step = s_rand() % 3; break;
        case 1: step = s_rand() % 1000; break;
        case 2: step = s_rand() % 100000; break;
        default: step = s_rand() % (UINT64_C(1) << 33); break;
        }
        now += step;
        /* The model: everything due, sorted by its key. */
        s_model_n = 0;
        for (int i = 0; i < N; i++) {
            if (im_timer_armed(&b[i].t) &&
                (b[i].pending || b[i].t.expires <= now))
                s_model_order[s_model_n++] = &b[i];
        }
        for (size_t i = 1; i < s_model_n; i++)
            for (size_t j = i; j > 0 && s_cmp_key(s_model_order[j - 1],
                                                  s_model_order[j]) > 0;
                 j--) {
                s_big_t *tmp = s_model_order[j];
                s_model_order[j] = s_model_order[j - 1];
                s_model_order[j - 1] = tmp;
            }
        s_seen_n = 0;
        size_t fired = im_wheel_advance(s_big_wheel, now);
        assert_int_equal(fired, s_model_n);
        assert_int_equal(s_seen_n, s_model_n);
        for (size_t i = 0; i < s_model_n; i++) {
            assert_ptr_equal(s_seen_order[i], s_model_order[i]);
            if (!s_seen_order[i]->pending)
                assert_true(s_seen_order[i]->fired_at ==
                            s_seen_order[i]->t.expires);
            s_seen_order[i]->pending = 0;
        }
        uint64_t next = im_wheel_next_expiry(s_big_wheel);
        for (int i = 0; i < N; i++)
            if (im_timer_armed(&b[i].t))
                assert_true(next <= b[i].t.expires);
    }
    for (int i = 0; i < N; i++)
        im_wheel_cancel(s_big_wheel, &b[i].t);
    assert_int_equal(im_wheel_count(s_big_wheel), 0);
    im_wheel_destroy(&s_big_wheel);
}

static void test_destroy_forgets_timers(void **state)
{
    (void)state;
    s_log_t log = {0};
    s_item_t a, b, c;

    log.w = im_wheel_new(0);
    s_item(&a, &log, 1);
    s_item(&b, &log, 2);
    s_item(&c, &log, 3);
    im_wheel_arm(log.w, &a.t, 10);
    im_wheel_arm(log.w, &b.t, UINT64_C(1) << 35);
    im_wheel_arm(log.w, &c.t, 0); /* pending */
    im_wheel_destroy(&log.w);
    assert_false(im_timer_armed(&a.t));
    assert_false(im_timer_armed(&b.t));
    assert_false(im_timer_armed(&c.t));
    assert_int_equal(log.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_wheel),
        cmocka_unit_test(test_ordering),
        cmocka_unit_test(test_step_by_step),
        cmocka_unit_test(test_ties_keep_arming_order),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_rearm_changes_deadline),
        cmocka_unit_test(test_rearm_inside_callback),
        cmocka_unit_test(test_rearm_at_now_waits_for_next_advance),
        cmocka_unit_test(test_past_deadline),
        cmocka_unit_test(test_cancel_other_inside_callback),
        cmocka_unit_test(test_free_inside_callback),
        cmocka_unit_test(test_far_deadlines_all_levels),
        cmocka_unit_test(test_next_expiry),
        cmocka_unit_test(test_large_jump),
        cmocka_unit_test(test_100k_timers),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_destroy_forgets_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
