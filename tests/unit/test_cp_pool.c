/* cp_pool: registration, restarts, placement and removal of workers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cp_pool.h"

static cp_worker_t *reg(cp_pool_t *p, const char *id, uint64_t epoch,
                        bool *restarted)
{
    return cp_pool_register(p, id, epoch, "127.0.0.1:2855", 100, 1000,
                            restarted);
}

static void test_register_new_and_again(void **st)
{
    (void)st;
    cp_pool_t *p = cp_pool_new();
    bool restarted = true;
    cp_worker_t *w = reg(p, "up-1", 7, &restarted);
    assert_non_null(w);
    assert_false(restarted);
    assert_int_equal(w->state, CP_WORKER_LIVE);
    /* The same epoch again (a resent Register) is not a restart. */
    assert_ptr_equal(reg(p, "up-1", 7, &restarted), w);
    assert_false(restarted);
    /* A new epoch is. */
    assert_ptr_equal(reg(p, "up-1", 8, &restarted), w);
    assert_true(restarted);
    assert_int_equal(cp_pool_size(p), 1);
    cp_pool_destroy(&p);
    assert_null(p);
}

static void test_dead_worker_back_is_restarted_and_live(void **st)
{
    (void)st;
    cp_pool_t *p = cp_pool_new();
    bool restarted;
    cp_worker_t *w = reg(p, "up-1", 7, &restarted);
    w->state = CP_WORKER_DEAD;
    assert_null(cp_pool_pick(p));
    assert_ptr_equal(reg(p, "up-1", 7, &restarted), w);
    assert_true(restarted);
    assert_int_equal(w->state, CP_WORKER_LIVE);
    cp_pool_destroy(&p);
}

static void test_draining_kept_on_same_epoch_cleared_on_new(void **st)
{
    (void)st;
    cp_pool_t *p = cp_pool_new();
    bool restarted;
    cp_worker_t *w = reg(p, "up-1", 7, &restarted);
    w->state = CP_WORKER_DRAINING;
    reg(p, "up-1", 7, &restarted);
    assert_int_equal(w->state, CP_WORKER_DRAINING);
    reg(p, "up-1", 9, &restarted);
    assert_int_equal(w->state, CP_WORKER_LIVE);
    cp_pool_destroy(&p);
}

static void test_pick_least_loaded_live(void **st)
{
    (void)st;
    cp_pool_t *p = cp_pool_new();
    bool restarted;
    cp_worker_t *a = reg(p, "up-1", 1, &restarted);
    cp_worker_t *b = reg(p, "up-2", 1, &restarted);
    cp_worker_t *c = reg(p, "up-3", 1, &restarted);
    a->sessions = 3;
    b->sessions = 1;
    c->sessions = 0;
    c->state = CP_WORKER_DRAINING;
    assert_ptr_equal(cp_pool_pick(p), b);
    b->state = CP_WORKER_DEAD;
    assert_ptr_equal(cp_pool_pick(p), a);
    /* Full: two legs per session must fit under the capacity. */
    a->sessions = 50;
    assert_null(cp_pool_pick(p));
    size_t counts[3];
    cp_pool_count(p, counts);
    assert_int_equal(counts[CP_WORKER_LIVE], 1);
    assert_int_equal(counts[CP_WORKER_DRAINING], 1);
    assert_int_equal(counts[CP_WORKER_DEAD], 1);
    cp_pool_destroy(&p);
}

static void test_remove(void **st)
{
    (void)st;
    cp_pool_t *p = cp_pool_new();
    bool restarted;
    cp_worker_t *a = reg(p, "up-1", 1, &restarted);
    cp_worker_t *b = reg(p, "up-2", 1, &restarted);
    cp_pool_remove(p, a);
    assert_null(cp_pool_find(p, "up-1"));
    assert_ptr_equal(cp_pool_find(p, "up-2"), b);
    assert_int_equal(cp_pool_size(p), 1);
    cp_pool_remove(p, b);
    assert_int_equal(cp_pool_size(p), 0);
    assert_null(cp_pool_pick(p));
    cp_pool_destroy(&p);
}

static void test_bad_ids_refused(void **st)
{
    (void)st;
    cp_pool_t *p = cp_pool_new();
    bool restarted;
    char big[CP_WORKER_ID_MAX + 4];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_null(reg(p, "", 1, &restarted));
    assert_null(reg(p, big, 1, &restarted));
    assert_int_equal(cp_pool_size(p), 0);
    cp_pool_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_new_and_again),
        cmocka_unit_test(test_dead_worker_back_is_restarted_and_live),
        cmocka_unit_test(test_draining_kept_on_same_epoch_cleared_on_new),
        cmocka_unit_test(test_pick_least_loaded_live),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_bad_ids_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
