/* The session state machine, driven without SIP or workers: every action
 * goes to a recording fake, and each test checks the actions and the states
 * reached, ending with the session freed and nothing left in the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cp_session.h"

typedef struct {
    cp_sessions_t *table;
    int allocs[2];
    int invites;
    int answers;
    int rejects;
    int last_reject;
    int cancels;
    int byes[2];
    bool bye_reason[2];
    int releases[2];
    int release_reason[2];
    int stop_timers;
    int closed;
    int invite_rc;
    int release_rc;
    int bye_rc;
} fake_t;

static int f_allocate(void *c, cp_session_t *s, cp_dir_t dir)
{
    (void)s;
    ((fake_t *)c)->allocs[dir]++;
    return 0;
}

static int f_invite(void *c, cp_session_t *s)
{
    (void)s;
    ((fake_t *)c)->invites++;
    return ((fake_t *)c)->invite_rc;
}

static int f_answer(void *c, cp_session_t *s)
{
    (void)s;
    ((fake_t *)c)->answers++;
    return 0;
}

static void f_reject(void *c, cp_session_t *s, int status)
{
    (void)s;
    ((fake_t *)c)->rejects++;
    ((fake_t *)c)->last_reject = status;
}

static void f_cancel(void *c, cp_session_t *s)
{
    (void)s;
    ((fake_t *)c)->cancels++;
}

static int f_bye(void *c, cp_session_t *s, cp_dir_t dir, bool with_reason)
{
    (void)s;
    fake_t *f = c;
    f->byes[dir]++;
    f->bye_reason[dir] = with_reason;
    return f->bye_rc;
}

static int f_release(void *c, cp_session_t *s, cp_dir_t dir, int reason)
{
    (void)s;
    fake_t *f = c;
    f->releases[dir]++;
    f->release_reason[dir] = reason;
    return f->release_rc;
}

static void f_stop_timers(void *c, cp_session_t *s)
{
    (void)s;
    ((fake_t *)c)->stop_timers++;
}

static void f_closed(void *c, cp_session_t *s)
{
    fake_t *f = c;
    f->closed++;
    cp_session_free(f->table, &s);
}

static const cp_session_ops_t s_ops = {
    f_allocate, f_invite, f_answer, f_reject, f_cancel,
    f_bye,      f_release, f_stop_timers, f_closed,
};

static fake_t s_f;

static int setup(void **state)
{
    (void)state;
    memset(&s_f, 0, sizeof(s_f));
    s_f.table = cp_sessions_new(1000);
    return s_f.table ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(cp_sessions_count(s_f.table), 0);
    assert_int_equal(cp_sessions_pending(s_f.table), 0);
    cp_sessions_destroy(&s_f.table);
    return 0;
}

static cp_sess_state_t ev(cp_session_t *s, cp_sess_event_t e, cp_dir_t d,
                          int status)
{
    return cp_session_dispatch(s, e, d, status, &s_ops, &s_f);
}

/* A new session with both allocations sent, as the SIP layer creates it. */
static cp_session_t *new_session(void)
{
    cp_session_t *s = cp_session_new(s_f.table);
    assert_non_null(s);
    s->legs[0].media = CP_MEDIA_ALLOCATING;
    s->legs[1].media = CP_MEDIA_ALLOCATING;
    return s;
}

static cp_session_t *established(void)
{
    cp_session_t *s = new_session();
    assert_int_equal(ev(s, CP_EV_ALLOCATED, CP_DIR_CLIENT, 0),
                     CP_SESS_ALLOCATING);
    assert_int_equal(ev(s, CP_EV_ALLOCATED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CALLING);
    assert_int_equal(s_f.invites, 1);
    assert_int_equal(ev(s, CP_EV_ANSWERED, CP_DIR_CONTROLLING, 200),
                     CP_SESS_ANSWERED);
    assert_int_equal(s_f.answers, 1);
    assert_int_equal(ev(s, CP_EV_CLIENT_ACK, CP_DIR_CLIENT, 0),
                     CP_SESS_ESTABLISHED);
    return s;
}

static void test_timer_expiry_releases_each_direction_on_its_bye(void **st)
{
    (void)st;
    cp_session_t *s = established();
    assert_int_equal(ev(s, CP_EV_TIMER_EXPIRED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_TERMINATING);
    /* BYE on both legs, both with the session-timer Reason. */
    assert_int_equal(s_f.byes[CP_DIR_CLIENT], 1);
    assert_int_equal(s_f.byes[CP_DIR_CONTROLLING], 1);
    assert_true(s_f.bye_reason[CP_DIR_CLIENT]);
    assert_true(s_f.bye_reason[CP_DIR_CONTROLLING]);
    assert_int_equal(s_f.stop_timers, 1);
    assert_int_equal(s->cause, CP_CAUSE_SESSION_TIMER_EXPIRED);
    /* Nothing released before a BYE completes. */
    assert_int_equal(s_f.releases[0] + s_f.releases[1], 0);

    /* The client's 200 releases the client direction only. */
    ev(s, CP_EV_BYE_DONE, CP_DIR_CLIENT, 200);
    assert_int_equal(s_f.releases[CP_DIR_CLIENT], 1);
    assert_int_equal(s_f.release_reason[CP_DIR_CLIENT], CP_REL_BYE_2XX);
    assert_int_equal(s_f.releases[CP_DIR_CONTROLLING], 0);

    /* The controlling side times out: still released, reason says so. */
    ev(s, CP_EV_BYE_DONE, CP_DIR_CONTROLLING, 408);
    assert_int_equal(s_f.releases[CP_DIR_CONTROLLING], 1);
    assert_int_equal(s_f.release_reason[CP_DIR_CONTROLLING],
                     CP_REL_BYE_TIMEOUT);

    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_TERMINATING);
    assert_int_equal(s_f.closed, 0);
    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0), CP_SESS_CLOSED);
    assert_int_equal(s_f.closed, 1);
}

static void test_bye_error_still_releases(void **st)
{
    (void)st;
    cp_session_t *s = established();
    ev(s, CP_EV_TIMER_EXPIRED, CP_DIR_CLIENT, 0);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CONTROLLING, 481);
    assert_int_equal(s_f.release_reason[CP_DIR_CONTROLLING], CP_REL_BYE_ERROR);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CLIENT, 200);
    ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
}

static void test_peer_bye_releases_that_leg_at_once(void **st)
{
    (void)st;
    cp_session_t *s = established();
    ev(s, CP_EV_BYE_RECEIVED, CP_DIR_CLIENT, 0);
    assert_int_equal(s_f.releases[CP_DIR_CLIENT], 1);
    assert_int_equal(s_f.release_reason[CP_DIR_CLIENT], CP_REL_PEER_BYE);
    assert_int_equal(s_f.byes[CP_DIR_CLIENT], 0);
    assert_int_equal(s_f.byes[CP_DIR_CONTROLLING], 1);
    assert_false(s_f.bye_reason[CP_DIR_CONTROLLING]);
    assert_int_equal(s_f.releases[CP_DIR_CONTROLLING], 0);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CONTROLLING, 200);
    assert_int_equal(s_f.releases[CP_DIR_CONTROLLING], 1);
    assert_int_equal(s->cause, CP_CAUSE_PEER_BYE);
    ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
}

static void test_crossing_byes(void **st)
{
    (void)st;
    cp_session_t *s = established();
    ev(s, CP_EV_TIMER_EXPIRED, CP_DIR_CLIENT, 0);
    /* The client's own BYE crosses ours: its dialog waits for our BYE's
     * final response, and the media is released once. */
    ev(s, CP_EV_BYE_RECEIVED, CP_DIR_CLIENT, 0);
    assert_int_equal(s_f.releases[CP_DIR_CLIENT], 0);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CLIENT, 200);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CONTROLLING, 200);
    assert_int_equal(s_f.releases[CP_DIR_CLIENT], 1);
    assert_int_equal(s_f.releases[CP_DIR_CONTROLLING], 1);
    ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
}

static void test_rejected_setup_releases_both(void **st)
{
    (void)st;
    cp_session_t *s = new_session();
    ev(s, CP_EV_ALLOCATED, CP_DIR_CLIENT, 0);
    ev(s, CP_EV_ALLOCATED, CP_DIR_CONTROLLING, 0);
    ev(s, CP_EV_REJECTED, CP_DIR_CONTROLLING, 486);
    assert_int_equal(s_f.rejects, 1);
    assert_int_equal(s_f.last_reject, 486);
    assert_int_equal(s_f.releases[0], 1);
    assert_int_equal(s_f.releases[1], 1);
    assert_int_equal(s_f.release_reason[0], CP_REL_SETUP_FAILED);
    assert_int_equal(s_f.byes[0] + s_f.byes[1], 0);
    ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
}

static void test_cancel_while_allocating_waits_for_allocation(void **st)
{
    (void)st;
    cp_session_t *s = new_session();
    ev(s, CP_EV_ALLOCATED, CP_DIR_CLIENT, 0);
    ev(s, CP_EV_CLIENT_CANCEL, CP_DIR_CLIENT, 0);
    /* The allocated leg is released now, the other once its result comes. */
    assert_int_equal(s_f.releases[CP_DIR_CLIENT], 1);
    assert_int_equal(s_f.releases[CP_DIR_CONTROLLING], 0);
    assert_int_equal(s_f.invites, 0);
    assert_int_equal(s_f.rejects, 0); /* NTA answered 487 */
    ev(s, CP_EV_ALLOCATED, CP_DIR_CONTROLLING, 0);
    assert_int_equal(s_f.releases[CP_DIR_CONTROLLING], 1);
    ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
}

static void test_cancel_while_calling(void **st)
{
    (void)st;
    cp_session_t *s = new_session();
    ev(s, CP_EV_ALLOCATED, CP_DIR_CLIENT, 0);
    ev(s, CP_EV_ALLOCATED, CP_DIR_CONTROLLING, 0);
    assert_int_equal(ev(s, CP_EV_CLIENT_CANCEL, CP_DIR_CLIENT, 0),
                     CP_SESS_CALLING);
    assert_int_equal(s_f.cancels, 1);
    assert_int_equal(s_f.releases[0] + s_f.releases[1], 0);
    ev(s, CP_EV_REJECTED, CP_DIR_CONTROLLING, 487);
    assert_int_equal(s_f.rejects, 0);
    assert_int_equal(s_f.releases[0], 1);
    assert_int_equal(s_f.releases[1], 1);
    ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
}

static void test_2xx_crossing_cancel_is_byed(void **st)
{
    (void)st;
    cp_session_t *s = new_session();
    ev(s, CP_EV_ALLOCATED, CP_DIR_CLIENT, 0);
    ev(s, CP_EV_ALLOCATED, CP_DIR_CONTROLLING, 0);
    ev(s, CP_EV_CLIENT_CANCEL, CP_DIR_CLIENT, 0);
    ev(s, CP_EV_ANSWERED, CP_DIR_CONTROLLING, 200);
    assert_int_equal(s_f.answers, 0);
    assert_int_equal(s_f.byes[CP_DIR_CONTROLLING], 1);
    assert_int_equal(s_f.byes[CP_DIR_CLIENT], 0);
    assert_int_equal(s_f.releases[CP_DIR_CLIENT], 1);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CONTROLLING, 200);
    ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
}

static void test_alloc_failure_rejects_503(void **st)
{
    (void)st;
    cp_session_t *s = new_session();
    ev(s, CP_EV_ALLOC_FAILED, CP_DIR_CLIENT, 0);
    assert_int_equal(s_f.last_reject, 503);
    /* The other allocation is still out: released when it lands. */
    assert_int_equal(s->state, CP_SESS_TERMINATING);
    assert_int_equal(ev(s, CP_EV_ALLOC_FAILED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
    assert_int_equal(s_f.releases[0] + s_f.releases[1], 0);
}

static void test_worker_lost_ends_without_waiting(void **st)
{
    (void)st;
    cp_session_t *s = established();
    ev(s, CP_EV_WORKER_LOST, CP_DIR_CLIENT, 0);
    assert_int_equal(s_f.byes[0], 1);
    assert_int_equal(s_f.byes[1], 1);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CLIENT, 200);
    assert_int_equal(ev(s, CP_EV_BYE_DONE, CP_DIR_CONTROLLING, 200),
                     CP_SESS_CLOSED);
    /* The legs went with the worker: nothing is sent to it. */
    assert_int_equal(s_f.releases[0] + s_f.releases[1], 0);
}

static void test_worker_lost_while_allocating(void **st)
{
    (void)st;
    cp_session_t *s = new_session();
    ev(s, CP_EV_ALLOCATED, CP_DIR_CLIENT, 0);
    /* The controlling allocation will never be answered. */
    assert_int_equal(ev(s, CP_EV_WORKER_LOST, CP_DIR_CLIENT, 0),
                     CP_SESS_CLOSED);
    assert_int_equal(s_f.last_reject, 503);
    assert_int_equal(s_f.releases[0] + s_f.releases[1], 0);
}

static void test_worker_lost_while_releasing(void **st)
{
    (void)st;
    cp_session_t *s = established();
    ev(s, CP_EV_TIMER_EXPIRED, CP_DIR_CLIENT, 0);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CLIENT, 200);
    assert_int_equal(s_f.releases[CP_DIR_CLIENT], 1);
    /* The client release will never be acknowledged. */
    ev(s, CP_EV_WORKER_LOST, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(s, CP_EV_BYE_DONE, CP_DIR_CONTROLLING, 200),
                     CP_SESS_CLOSED);
    assert_int_equal(s_f.releases[CP_DIR_CONTROLLING], 0);
}

static void test_unexpected_events_are_counted_not_fatal(void **st)
{
    (void)st;
    uint64_t before = cp_session_unexpected_count();
    cp_session_t *s = established();
    /* A second ANSWERED, a BYE_DONE with no BYE out, a stray RELEASED. */
    ev(s, CP_EV_ANSWERED, CP_DIR_CONTROLLING, 200);
    ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(cp_session_unexpected_count(), before + 2);
    assert_int_equal(s->state, CP_SESS_ESTABLISHED);
    ev(s, CP_EV_TIMER_EXPIRED, CP_DIR_CLIENT, 0);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CLIENT, 200);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CLIENT, 200); /* duplicate */
    assert_int_equal(cp_session_unexpected_count(), before + 3);
    assert_int_equal(s_f.releases[CP_DIR_CLIENT], 1);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CONTROLLING, 200);
    ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
}

static void test_failed_bye_send_releases(void **st)
{
    (void)st;
    cp_session_t *s = established();
    s_f.bye_rc = -1;
    ev(s, CP_EV_TIMER_EXPIRED, CP_DIR_CLIENT, 0);
    assert_int_equal(s_f.releases[0], 1);
    assert_int_equal(s_f.releases[1], 1);
    assert_int_equal(s_f.release_reason[0], CP_REL_BYE_ERROR);
    ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
}

static void test_no_ack_ends_session(void **st)
{
    (void)st;
    cp_session_t *s = new_session();
    ev(s, CP_EV_ALLOCATED, CP_DIR_CLIENT, 0);
    ev(s, CP_EV_ALLOCATED, CP_DIR_CONTROLLING, 0);
    ev(s, CP_EV_ANSWERED, CP_DIR_CONTROLLING, 200);
    ev(s, CP_EV_CLIENT_NO_ACK, CP_DIR_CLIENT, 0);
    assert_int_equal(s_f.byes[0], 1);
    assert_int_equal(s_f.byes[1], 1);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CLIENT, 408);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CONTROLLING, 200);
    ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
}

static void test_leg_event_ends_session_with_byes(void **st)
{
    (void)st;
    cp_session_t *s = established();
    assert_int_equal(ev(s, CP_EV_LEG_EVENT, CP_DIR_CONTROLLING, 0),
                     CP_SESS_TERMINATING);
    assert_int_equal(s->cause, CP_CAUSE_LEG_EVENT);
    assert_int_equal(s_f.byes[0], 1);
    assert_int_equal(s_f.byes[1], 1);
    assert_false(s_f.bye_reason[0]);
    /* A second event while ending changes nothing. */
    ev(s, CP_EV_LEG_EVENT, CP_DIR_CLIENT, 0);
    assert_int_equal(s_f.byes[0], 1);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CLIENT, 200);
    ev(s, CP_EV_BYE_DONE, CP_DIR_CONTROLLING, 200);
    ev(s, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(s, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
}

static void test_table_lookup_and_growth(void **st)
{
    (void)st;
    enum { N = 5000 };
    static cp_session_t *all[N];
    for (int i = 0; i < N; i++)
        all[i] = cp_session_new(s_f.table);
    assert_int_equal(cp_sessions_count(s_f.table), N);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(cp_session_find(s_f.table, all[i]->id), all[i]);
    assert_null(cp_session_find(s_f.table, all[N - 1]->id + 1));
    for (int i = 0; i < N; i++)
        cp_session_free(s_f.table, &all[i]);
    assert_null(all[0]);
}

/* A session counts as a set-up in progress from its creation to the
 * client's ACK, and no longer once it ends, whichever way. */
static void test_pending_count(void **st)
{
    (void)st;
    cp_session_t *a = new_session();
    cp_session_t *b = new_session();
    cp_session_t *c = new_session();
    assert_int_equal(cp_sessions_pending(s_f.table), 3);
    ev(a, CP_EV_ALLOCATED, CP_DIR_CLIENT, 0);
    ev(a, CP_EV_ALLOCATED, CP_DIR_CONTROLLING, 0);
    assert_int_equal(a->state, CP_SESS_CALLING);
    ev(a, CP_EV_ANSWERED, CP_DIR_CONTROLLING, 200);
    assert_int_equal(cp_sessions_pending(s_f.table), 3);
    ev(a, CP_EV_CLIENT_ACK, CP_DIR_CLIENT, 0);
    assert_int_equal(cp_sessions_pending(s_f.table), 2);
    /* A failed set-up stops counting as soon as it is ending. */
    ev(b, CP_EV_ALLOC_FAILED, CP_DIR_CLIENT, 0);
    assert_int_equal(b->state, CP_SESS_TERMINATING);
    assert_int_equal(cp_sessions_pending(s_f.table), 1);
    ev(b, CP_EV_ALLOC_FAILED, CP_DIR_CONTROLLING, 0);
    /* Freed straight from a set-up state (the SIP layer's own failure
     * paths) it is uncounted too. */
    cp_session_free(s_f.table, &c);
    assert_int_equal(cp_sessions_pending(s_f.table), 0);
    assert_int_equal(cp_sessions_count(s_f.table), 1);
    ev(a, CP_EV_BYE_RECEIVED, CP_DIR_CLIENT, 0);
    ev(a, CP_EV_BYE_DONE, CP_DIR_CONTROLLING, 200);
    ev(a, CP_EV_RELEASED, CP_DIR_CLIENT, 0);
    assert_int_equal(ev(a, CP_EV_RELEASED, CP_DIR_CONTROLLING, 0),
                     CP_SESS_CLOSED);
    assert_int_equal(cp_sessions_pending(s_f.table), 0);
}

/* A session's strings live in its own block while they fit; what does not
 * is malloc'd (counted) and freed with the session (ASan: no leak). */
static void test_string_store(void **st)
{
    (void)st;
    cp_session_t *s = cp_session_new(s_f.table);
    assert_non_null(s);
    assert_int_equal(cp_sessions_store_bytes(s_f.table) % 4096, 0);
    assert_true(cp_sessions_store_bytes(s_f.table) >= CP_SESSION_BLOCK);
    char *a = cp_session_strdup(s, "sip:alice@example.com");
    assert_string_equal(a, "sip:alice@example.com");
    assert_true(a >= (char *)s && a < (char *)s + CP_SESSION_BLOCK);
    char *b = cp_session_strndup(s, "msrp://x;tcp trailing", 12);
    assert_string_equal(b, "msrp://x;tcp");
    assert_null(cp_session_strdup(s, NULL));
    /* The last string taken gives its room back; an earlier one keeps it
     * until the session goes. */
    uint16_t used = s->strs_used;
    cp_session_strfree(s, b);
    assert_true(s->strs_used < used);
    char *b2 = cp_session_strdup(s, "again");
    assert_ptr_equal(b2, b);
    cp_session_strfree(s, a);
    assert_string_equal(b2, "again");
    /* strset replaces (and frees) in place. */
    char *slot = NULL;
    cp_session_strset(s, &slot, "one");
    assert_string_equal(slot, "one");
    cp_session_strset(s, &slot, NULL);
    assert_null(slot);
    /* Past the block's room a string is malloc'd and counted. */
    uint64_t spills = cp_session_str_spills();
    char big[CP_SESSION_BLOCK];
    memset(big, 'r', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    s->legs[CP_DIR_CLIENT].route = cp_session_strdup(s, big);
    assert_non_null(s->legs[CP_DIR_CLIENT].route);
    assert_true(s->legs[CP_DIR_CLIENT].route < (char *)s ||
                s->legs[CP_DIR_CLIENT].route >= (char *)s + CP_SESSION_BLOCK);
    assert_int_equal(cp_session_str_spills(), spills + 1);
    assert_string_equal(s->legs[CP_DIR_CLIENT].route, big);
    /* Fill the block with small strings: each fits until the room is gone,
     * then they spill; nothing overlaps. */
    char *prev = NULL;
    for (int i = 0; i < 200; i++) {
        char *p = cp_session_strdup(s, "0123456789");
        assert_non_null(p);
        assert_string_equal(p, "0123456789");
        if (prev)
            assert_string_equal(prev, "0123456789");
        bool spilled = p < (char *)s || p >= (char *)s + CP_SESSION_BLOCK;
        if (spilled)
            cp_session_strfree(s, p); /* malloc'd: freed at once */
        prev = spilled ? NULL : p;
    }
    assert_true(s->strs_used <= s->strs_size);
    assert_true(cp_session_str_spills() > spills + 1);
    s->legs[CP_DIR_CONTROLLING].sdp_out = cp_session_strdup(s, big);
    cp_session_free(s_f.table, &s);
    assert_null(s);
}

static void test_bye_reason_mapping(void **st)
{
    (void)st;
    assert_int_equal(cp_session_bye_reason(200), CP_REL_BYE_2XX);
    assert_int_equal(cp_session_bye_reason(299), CP_REL_BYE_2XX);
    assert_int_equal(cp_session_bye_reason(408), CP_REL_BYE_TIMEOUT);
    assert_int_equal(cp_session_bye_reason(481), CP_REL_BYE_ERROR);
    assert_int_equal(cp_session_bye_reason(503), CP_REL_BYE_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_timer_expiry_releases_each_direction_on_its_bye, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_bye_error_still_releases, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_peer_bye_releases_that_leg_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crossing_byes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_setup_releases_both,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_cancel_while_allocating_waits_for_allocation, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_cancel_while_calling, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_2xx_crossing_cancel_is_byed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_rejects_503, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_lost_ends_without_waiting,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_lost_while_allocating,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_lost_while_releasing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_unexpected_events_are_counted_not_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_bye_send_releases, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_ack_ends_session, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_leg_event_ends_session_with_byes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_count, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_table_lookup_and_growth, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bye_reason_mapping, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_string_store, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
