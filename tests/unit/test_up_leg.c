/* up_leg: the worker's leg table, driven without a loop. Connections are
 * stand-ins recorded by the close op, so the two-phase release (out of the
 * tables at once, memory only after the close callback) is observable. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "im_msrp_uri.h"
#include "up_leg.h"

#define HOST "127.0.0.1"
#define CALL_ID "a84b4c76e66710@pc33.example.com"
#define PORT 2855u
#define BUF_START 2048u
#define BUF_MAX 65536u

struct up_conn {
    int id;
    int closes; /* times the table asked to close it */
};

typedef struct {
    up_conn_t *closed[16];
    size_t nclosed;
    size_t nreleased;
    size_t released_with_conn; /* the hook still saw the connection */
} fake_t;

static void s_fake_close(up_conn_t *conn, void *arg)
{
    fake_t *f = arg;
    conn->closes++;
    if (f->nclosed < 16)
        f->closed[f->nclosed++] = conn;
}

/* The hook runs once per release, after the leg left the tables but
 * before its connection is closed. */
static void s_fake_released(up_leg_t *leg, void *arg)
{
    fake_t *f = arg;
    assert_true(leg->released);
    if (!f)
        return;
    f->nreleased++;
    if (leg->conn) {
        assert_int_equal(leg->conn->closes, 0);
        f->released_with_conn++;
    }
}

static up_legs_t *s_table(uint32_t capacity, fake_t *fake)
{
    const up_leg_ops_t ops = {s_fake_close, s_fake_released};
    up_legs_t *t = up_legs_new(capacity, BUF_START, BUF_MAX, &ops, fake);
    assert_non_null(t);
    return t;
}

static up_leg_t *s_alloc(up_legs_t *t, uint64_t sid, up_dir_t dir,
                         uint64_t epoch)
{
    up_leg_t *leg = NULL;
    bool created = false;
    assert_int_equal(
        up_legs_allocate(t, sid, dir, epoch, CALL_ID, HOST, PORT, &leg,
                         &created),
        0);
    assert_true(created);
    assert_non_null(leg);
    return leg;
}

static void s_assert_empty(const up_legs_t *t)
{
    assert_int_equal(up_legs_count(t), 0);
    assert_int_equal(up_legs_sockets(t), 0);
    assert_int_equal(up_legs_buffer_bytes(t), 0);
    assert_int_equal(up_legs_zombies(t), 0);
}

static void test_create_find_release(void **state)
{
    (void)state;
    fake_t fake = {0};
    up_legs_t *t = s_table(10, &fake);
    up_leg_t *leg = s_alloc(t, 0x1122334455667788ull, UP_DIR_CLIENT, 7);
    assert_int_equal(up_legs_count(t), 1);
    assert_ptr_equal(up_legs_find(t, 0x1122334455667788ull, UP_DIR_CLIENT),
                     leg);
    assert_null(up_legs_find(t, 0x1122334455667788ull, UP_DIR_CONTROLLING));
    assert_null(up_legs_find(t, 0x1122334455667789ull, UP_DIR_CLIENT));

    /* The path is a valid MSRP URI naming this worker and the leg's id. */
    im_msrp_uri_t uri;
    assert_int_equal(im_msrp_uri_parse(leg->path, strlen(leg->path), &uri), 0);
    assert_string_equal(uri.host, HOST);
    assert_int_equal(uri.port, PORT);
    assert_string_equal(uri.session, leg->msrp_id);
    assert_int_equal(strlen(leg->msrp_id), UP_LEG_MSRP_ID_LEN);
    char want[UP_LEG_PATH_MAX];
    snprintf(want, sizeof(want), "msrp://%s:%u/%s;tcp", HOST, PORT,
             leg->msrp_id);
    assert_string_equal(leg->path, want);
    assert_int_equal(leg->cp_epoch, 7);

    leg->counters.bytes_in = 11;
    leg->counters.msgs_out = 2;
    up_leg_counters_t c = {0};
    assert_int_equal(
        up_legs_release(t, 0x1122334455667788ull, UP_DIR_CLIENT, &c), 0);
    assert_int_equal(c.bytes_in, 11);
    assert_int_equal(c.msgs_out, 2);
    assert_null(up_legs_find(t, 0x1122334455667788ull, UP_DIR_CLIENT));
    s_assert_empty(t);
    assert_int_equal(fake.nclosed, 0); /* it had no connection */
    up_legs_destroy(&t);
    assert_null(t);
    up_legs_destroy(&t); /* NULL-safe */
}

static void test_allocate_idempotent(void **state)
{
    (void)state;
    up_legs_t *t = s_table(10, NULL);
    up_leg_t *a = s_alloc(t, 42, UP_DIR_CONTROLLING, 1);
    char path[UP_LEG_PATH_MAX];
    snprintf(path, sizeof(path), "%s", a->path);

    up_leg_t *again = NULL;
    bool created = true;
    /* A retry from the CP, even one carrying another epoch or Call-ID, is
     * the same leg with the same path; the owner check tells them apart. */
    assert_int_equal(up_legs_allocate(t, 42, UP_DIR_CONTROLLING, 2, "other",
                                      HOST, PORT, &again, &created),
                     0);
    assert_false(created);
    assert_ptr_equal(again, a);
    assert_string_equal(again->path, path);
    assert_string_equal(again->call_id, CALL_ID);
    assert_int_equal(again->cp_epoch, 1);
    assert_int_equal(up_legs_count(t), 1);
    assert_int_equal(up_legs_buffer_bytes(t), 0);
    assert_true(up_leg_same_owner(a, 1, CALL_ID));
    assert_false(up_leg_same_owner(a, 2, CALL_ID));
    assert_false(up_leg_same_owner(a, 1, "other"));
    assert_false(up_leg_same_owner(a, 1, NULL));

    /* The other direction of the same session is another leg. */
    up_leg_t *b = s_alloc(t, 42, UP_DIR_CLIENT, 1);
    assert_ptr_not_equal(a, b);
    assert_string_not_equal(a->msrp_id, b->msrp_id);
    assert_int_equal(up_legs_count(t), 2);

    up_legs_release_all(t, NULL, NULL);
    s_assert_empty(t);
    up_legs_destroy(&t);
}

static void test_release_unknown(void **state)
{
    (void)state;
    up_legs_t *t = s_table(10, NULL);
    up_leg_counters_t c;
    assert_int_equal(up_legs_release(t, 1, UP_DIR_CLIENT, &c), -ENOENT);
    s_alloc(t, 1, UP_DIR_CLIENT, 1);
    assert_int_equal(up_legs_release(t, 1, UP_DIR_CONTROLLING, &c), -ENOENT);
    assert_int_equal(up_legs_count(t), 1);
    assert_int_equal(up_legs_release(t, 1, UP_DIR_CLIENT, NULL), 0);
    /* A retried release finds nothing and changes nothing. */
    assert_int_equal(up_legs_release(t, 1, UP_DIR_CLIENT, &c), -ENOENT);
    s_assert_empty(t);
    up_legs_destroy(&t);
}

static void test_capacity(void **state)
{
    (void)state;
    up_legs_t *t = s_table(3, NULL);
    s_alloc(t, 1, UP_DIR_CLIENT, 1);
    s_alloc(t, 1, UP_DIR_CONTROLLING, 1);
    s_alloc(t, 2, UP_DIR_CLIENT, 1);
    up_leg_t *leg = NULL;
    bool created = true;
    assert_int_equal(up_legs_allocate(t, 2, UP_DIR_CONTROLLING, 1, CALL_ID,
                                      HOST, PORT, &leg, &created),
                     -ENOSPC);
    assert_false(created);
    assert_int_equal(up_legs_count(t), 3);
    assert_int_equal(up_legs_buffer_bytes(t), 0); /* nothing until used */
    /* Full, but a retry of an existing leg still answers. */
    assert_int_equal(up_legs_allocate(t, 1, UP_DIR_CLIENT, 1, CALL_ID, HOST,
                                      PORT, &leg, &created),
                     0);
    assert_false(created);
    /* A release makes room. */
    assert_int_equal(up_legs_release(t, 1, UP_DIR_CLIENT, NULL), 0);
    s_alloc(t, 2, UP_DIR_CONTROLLING, 1);
    assert_int_equal(up_legs_count(t), 3);
    assert_int_equal(up_legs_release_all(t, NULL, NULL), 3);
    s_assert_empty(t);
    up_legs_destroy(&t);
}

static void test_find_by_msrp_id(void **state)
{
    (void)state;
    up_legs_t *t = s_table(10, NULL);
    up_leg_t *a = s_alloc(t, 5, UP_DIR_CLIENT, 1);
    up_leg_t *b = s_alloc(t, 5, UP_DIR_CONTROLLING, 1);
    char id[UP_LEG_MSRP_ID_LEN + 1];
    memcpy(id, a->msrp_id, sizeof(id));
    assert_ptr_equal(up_legs_find_msrp(t, id, UP_LEG_MSRP_ID_LEN), a);
    assert_ptr_equal(up_legs_find_msrp(t, b->msrp_id, strlen(b->msrp_id)), b);
    /* Prefixes, other lengths and unknown ids find nothing. */
    assert_null(up_legs_find_msrp(t, id, UP_LEG_MSRP_ID_LEN - 1));
    assert_null(up_legs_find_msrp(t, "", 0));
    assert_null(up_legs_find_msrp(t, NULL, 0));
    char other[UP_LEG_MSRP_ID_LEN + 1];
    memcpy(other, id, sizeof(other));
    other[0] = other[0] == 'A' ? 'B' : 'A';
    assert_null(up_legs_find_msrp(t, other, UP_LEG_MSRP_ID_LEN));

    assert_int_equal(up_legs_release(t, 5, UP_DIR_CLIENT, NULL), 0);
    assert_null(up_legs_find_msrp(t, id, UP_LEG_MSRP_ID_LEN));
    assert_ptr_equal(up_legs_find_msrp(t, b->msrp_id, UP_LEG_MSRP_ID_LEN), b);
    up_legs_release_all(t, NULL, NULL);
    up_legs_destroy(&t);
}

static void test_buffers_and_sockets(void **state)
{
    (void)state;
    fake_t fake = {0};
    up_legs_t *t = s_table(10, &fake);
    up_leg_t *a = s_alloc(t, 9, UP_DIR_CLIENT, 1);
    up_leg_t *b = s_alloc(t, 9, UP_DIR_CONTROLLING, 1);
    /* An idle leg holds no buffer. */
    assert_int_equal(up_legs_buffer_bytes(t), 0);
    assert_null(a->buf);
    assert_int_equal(a->buf_cap, 0);

    /* Allocated on first use, counted, bounded, freed when done. */
    assert_int_equal(up_legs_buf_reserve(t, a, 100), 0);
    assert_int_equal(a->buf_cap, BUF_START);
    assert_int_equal(up_legs_buffer_bytes(t), BUF_START);
    assert_int_equal(up_legs_buf_reserve(t, a, BUF_START + 1), 0);
    assert_int_equal(a->buf_cap, 2 * BUF_START);
    assert_int_equal(up_legs_buffer_bytes(t), 2 * BUF_START);
    assert_int_equal(up_legs_buf_reserve(t, a, BUF_MAX), 0);
    assert_int_equal(a->buf_cap, BUF_MAX);
    assert_int_equal(up_legs_buf_reserve(t, a, BUF_MAX + 1), -ENOBUFS);
    assert_int_equal(a->buf_cap, BUF_MAX);
    assert_int_equal(up_legs_buffer_bytes(t), BUF_MAX);
    memset(a->buf, 0xab, a->buf_cap); /* the memory is really there */
    up_legs_buf_free(t, b); /* none: harmless */
    assert_int_equal(up_legs_buf_reserve(t, b, 10), 0);
    assert_int_equal(up_legs_buffer_bytes(t), BUF_MAX + BUF_START);
    up_legs_buf_free(t, b);
    assert_null(b->buf);
    assert_int_equal(up_legs_buffer_bytes(t), BUF_MAX);

    /* Bytes held elsewhere for a leg (partial input, writes in flight)
     * count too, never below zero. */
    up_legs_account(t, b, 300);
    assert_int_equal(b->held, 300);
    assert_int_equal(up_legs_buffer_bytes(t), BUF_MAX + 300);
    up_legs_account(t, b, -100);
    assert_int_equal(up_legs_buffer_bytes(t), BUF_MAX + 200);
    up_legs_account(t, b, -1000);
    assert_int_equal(b->held, 0);
    assert_int_equal(up_legs_buffer_bytes(t), BUF_MAX);
    up_legs_account(t, a, 50);

    struct up_conn ca = {1, 0}, cb = {2, 0}, cx = {3, 0};
    assert_int_equal(up_legs_attach_conn(t, a, &ca), 0);
    assert_int_equal(up_legs_attach_conn(t, b, &cb), 0);
    assert_int_equal(up_legs_sockets(t), 2);
    /* One connection per leg. */
    assert_int_equal(up_legs_attach_conn(t, a, &cx), -EBUSY);
    assert_ptr_equal(a->conn, &ca);
    assert_int_equal(up_legs_sockets(t), 2);

    /* The peer of b went away: the leg stays, its socket does not. */
    up_legs_detach_conn(t, b);
    assert_null(b->conn);
    assert_int_equal(up_legs_sockets(t), 1);
    up_legs_detach_conn(t, b); /* twice is harmless */
    assert_int_equal(up_legs_sockets(t), 1);
    assert_int_equal(up_legs_count(t), 2);

    /* Release: gauges drop at once; the leg with a connection waits for
     * the close callback before its memory goes. */
    assert_int_equal(up_legs_release(t, 9, UP_DIR_CLIENT, NULL), 0);
    assert_int_equal(up_legs_count(t), 1);
    assert_int_equal(up_legs_sockets(t), 0);
    assert_int_equal(up_legs_buffer_bytes(t), 0); /* a's buffer and held */
    assert_int_equal(fake.nclosed, 1);
    assert_ptr_equal(fake.closed[0], &ca);
    /* Accounting for a released leg is ignored: it left the count. */
    up_legs_account(t, a, 10);
    assert_int_equal(up_legs_buffer_bytes(t), 0);
    assert_int_equal(ca.closes, 1);
    assert_int_equal(up_legs_zombies(t), 1);
    assert_null(up_legs_find(t, 9, UP_DIR_CLIENT));
    assert_int_equal(up_legs_release(t, 9, UP_DIR_CLIENT, NULL), -ENOENT);

    assert_int_equal(up_legs_release(t, 9, UP_DIR_CONTROLLING, NULL), 0);
    assert_int_equal(fake.nclosed, 1); /* b's connection was detached */
    assert_int_equal(cb.closes, 0);
    assert_int_equal(up_legs_zombies(t), 1);

    assert_int_equal(fake.nreleased, 2);
    assert_int_equal(fake.released_with_conn, 1);

    /* The close callback of a's connection: now a's memory goes (ASan
     * would report the leak otherwise). */
    up_legs_conn_closed(t, a);
    s_assert_empty(t);
    up_legs_conn_closed(t, NULL);
    up_legs_destroy(&t);
}

typedef struct {
    uint64_t sids[16];
    size_t n;
} seen_t;

static void s_seen(const up_leg_t *leg, void *arg)
{
    seen_t *s = arg;
    if (s->n < 16)
        s->sids[s->n++] = leg->session_id;
}

static bool s_seen_has(const seen_t *s, uint64_t sid)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->sids[i] == sid)
            return true;
    }
    return false;
}

static void test_release_old_epoch(void **state)
{
    (void)state;
    fake_t fake = {0};
    up_legs_t *t = s_table(100, &fake);
    const uint64_t old_epoch = 1000, new_epoch = 2000;
    up_leg_t *o1 = s_alloc(t, 1, UP_DIR_CLIENT, old_epoch);
    s_alloc(t, 1, UP_DIR_CONTROLLING, old_epoch);
    s_alloc(t, 2, UP_DIR_CLIENT, old_epoch);
    s_alloc(t, 3, UP_DIR_CLIENT, new_epoch);
    s_alloc(t, 3, UP_DIR_CONTROLLING, new_epoch);
    struct up_conn c1 = {1, 0};
    assert_int_equal(up_legs_attach_conn(t, o1, &c1), 0);

    seen_t seen = {0};
    assert_int_equal(up_legs_release_stale(t, new_epoch, s_seen, &seen), 3);
    assert_int_equal(seen.n, 3);
    assert_true(s_seen_has(&seen, 1));
    assert_true(s_seen_has(&seen, 2));
    assert_false(s_seen_has(&seen, 3));
    assert_null(up_legs_find(t, 1, UP_DIR_CLIENT));
    assert_null(up_legs_find(t, 1, UP_DIR_CONTROLLING));
    assert_null(up_legs_find(t, 2, UP_DIR_CLIENT));
    assert_non_null(up_legs_find(t, 3, UP_DIR_CLIENT));
    assert_non_null(up_legs_find(t, 3, UP_DIR_CONTROLLING));
    assert_int_equal(up_legs_count(t), 2);
    assert_int_equal(up_legs_sockets(t), 0);
    assert_int_equal(up_legs_buffer_bytes(t), 0);
    assert_int_equal(fake.nclosed, 1);
    assert_int_equal(c1.closes, 1);

    /* Nothing left of another epoch: a second pass releases nothing. */
    assert_int_equal(up_legs_release_stale(t, new_epoch, NULL, NULL), 0);
    up_legs_conn_closed(t, o1);
    assert_int_equal(up_legs_zombies(t), 0);

    seen.n = 0;
    assert_int_equal(up_legs_release_all(t, s_seen, &seen), 2);
    assert_int_equal(seen.n, 2);
    s_assert_empty(t);
    up_legs_destroy(&t);
}

static void test_many_legs(void **state)
{
    (void)state;
    enum { N = 5000 };
    up_legs_t *t = up_legs_new(2 * N, 64, 128, NULL, NULL);
    assert_non_null(t);
    for (uint64_t i = 0; i < N; i++) {
        s_alloc(t, i * 0x10001ull, UP_DIR_CLIENT, 1);
        s_alloc(t, i * 0x10001ull, UP_DIR_CONTROLLING, 1);
    }
    assert_int_equal(up_legs_count(t), 2 * N);
    for (uint64_t i = 0; i < N; i++) {
        up_leg_t *leg = up_legs_find(t, i * 0x10001ull, UP_DIR_CONTROLLING);
        assert_non_null(leg);
        assert_ptr_equal(up_legs_find_msrp(t, leg->msrp_id,
                                           UP_LEG_MSRP_ID_LEN),
                         leg);
    }
    /* Release every other session, both directions, then the rest. */
    for (uint64_t i = 0; i < N; i += 2) {
        assert_int_equal(up_legs_release(t, i * 0x10001ull, UP_DIR_CLIENT,
                                         NULL),
                         0);
        assert_int_equal(up_legs_release(t, i * 0x10001ull,
                                         UP_DIR_CONTROLLING, NULL),
                         0);
    }
    assert_int_equal(up_legs_count(t), N);
    assert_null(up_legs_find(t, 0, UP_DIR_CLIENT));
    assert_non_null(up_legs_find(t, 0x10001ull, UP_DIR_CLIENT));
    assert_int_equal(up_legs_release_all(t, NULL, NULL), N);
    s_assert_empty(t);
    up_legs_destroy(&t);
}

static void test_peer_path(void **state)
{
    (void)state;
    up_legs_t *t = s_table(2, NULL);
    up_leg_t *leg = s_alloc(t, 1, UP_DIR_CLIENT, 1);
    assert_null(leg->peer_path);
    assert_int_equal(up_leg_set_peer_path(leg, ""), -EINVAL);
    assert_int_equal(up_leg_set_peer_path(leg, NULL), -EINVAL);
    assert_int_equal(
        up_leg_set_peer_path(leg, "msrp://10.0.0.1:7000/abc;tcp"), 0);
    assert_string_equal(leg->peer_path, "msrp://10.0.0.1:7000/abc;tcp");
    char long_path[UP_LEG_PEER_PATH_MAX + 2];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    assert_int_equal(up_leg_set_peer_path(leg, long_path), -EINVAL);
    assert_string_equal(leg->peer_path, "msrp://10.0.0.1:7000/abc;tcp");
    assert_int_equal(
        up_leg_set_peer_path(leg, "msrp://10.0.0.2:7000/def;tcp"), 0);
    assert_string_equal(leg->peer_path, "msrp://10.0.0.2:7000/def;tcp");
    up_legs_release_all(t, NULL, NULL);
    up_legs_destroy(&t);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    assert_null(up_legs_new(0, 1, 1, NULL, NULL));
    assert_null(up_legs_new(1, 0, 1, NULL, NULL));
    assert_null(up_legs_new(1, 2, 1, NULL, NULL));
    up_legs_t *t = s_table(2, NULL);
    up_leg_t *leg = NULL;
    bool created = true;
    assert_int_equal(up_legs_allocate(t, 1, (up_dir_t)7, 1, NULL, HOST, PORT,
                                      &leg, &created),
                     -EINVAL);
    assert_int_equal(up_legs_allocate(t, 1, UP_DIR_CLIENT, 1, CALL_ID, HOST,
                                      0, &leg, &created),
                     -EINVAL);
    assert_int_equal(up_legs_allocate(t, 1, UP_DIR_CLIENT, 1, CALL_ID, "",
                                      PORT, &leg, &created),
                     -EINVAL);
    assert_false(created);
    s_assert_empty(t);
    up_legs_destroy(&t);
}

static void test_random_id(void **state)
{
    (void)state;
    char a[UP_LEG_MSRP_ID_LEN + 1], b[UP_LEG_MSRP_ID_LEN + 1];
    assert_int_equal(up_leg_random_id(a, UP_LEG_MSRP_ID_LEN), 0);
    assert_int_equal(up_leg_random_id(b, UP_LEG_MSRP_ID_LEN), 0);
    assert_int_equal(strlen(a), UP_LEG_MSRP_ID_LEN);
    for (size_t i = 0; i < UP_LEG_MSRP_ID_LEN; i++) {
        char c = a[i];
        assert_true((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9'));
    }
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_find_release),
        cmocka_unit_test(test_allocate_idempotent),
        cmocka_unit_test(test_release_unknown),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_find_by_msrp_id),
        cmocka_unit_test(test_buffers_and_sockets),
        cmocka_unit_test(test_release_old_epoch),
        cmocka_unit_test(test_many_legs),
        cmocka_unit_test(test_peer_path),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_random_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
