/* RFC 4028 negotiation: headers read from real SIP text through sofia's
 * parser, the UAS answer, the UAC offer / 2xx / 422 handling, and the exact
 * timer deadlines in milliseconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>

#include "cp_st.h"

static const cp_st_config_t CFG = {.session_expires = 1800, .min_se = 90};

/* Parses start_line + the common headers + hdrs and extracts the
 * session-timer view; the message is destroyed before returning. */
static void from_text(const char *start_line, const char *hdrs,
                      cp_st_msg_t *out)
{
    char buf[4096];
    int n = snprintf(buf, sizeof(buf),
                     "%s\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK77\r\n"
                     "From: <sip:alice@example.com>;tag=a1\r\n"
                     "To: <sip:bob@example.com>\r\n"
                     "Call-ID: st-test@127.0.0.1\r\n"
                     "CSeq: 1 INVITE\r\n"
                     "Max-Forwards: 70\r\n"
                     "%s"
                     "Content-Length: 0\r\n"
                     "\r\n",
                     start_line, hdrs);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    msg_t *msg = msg_make(sip_default_mclass(), 0, buf, n);
    assert_non_null(msg);
    sip_t *sip = sip_object(msg);
    assert_non_null(sip);
    memset(out, 0x5a, sizeof(*out));
    cp_st_from_sip(sip, out);
    msg_destroy(msg);
}

static void req(const char *hdrs, cp_st_msg_t *out)
{
    from_text("INVITE sip:bob@example.com SIP/2.0", hdrs, out);
}

static void resp(const char *status_line, const char *hdrs, cp_st_msg_t *out)
{
    from_text(status_line, hdrs, out);
}

/* ---- cp_st_from_sip ---------------------------------------------------- */

static void test_from_sip_full(void **state)
{
    (void)state;
    cp_st_msg_t m;
    req("Supported: timer\r\nSession-Expires: 1800;refresher=uac\r\n"
        "Min-SE: 90\r\n", &m);
    assert_true(m.supported_timer);
    assert_false(m.require_timer);
    assert_true(m.has_se);
    assert_int_equal(m.se, 1800);
    assert_int_equal(m.refresher, CP_ST_REFRESHER_UAC);
    assert_true(m.has_min_se);
    assert_int_equal(m.min_se, 90);
}

static void test_from_sip_case_and_lists(void **state)
{
    (void)state;
    cp_st_msg_t m;
    /* Feature tags and the refresher value compare case-insensitively;
     * "timer" may be anywhere in any Supported header. */
    req("Supported: 100rel, path\r\nSupported: TIMER\r\n"
        "Session-Expires: 600;REFRESHER=UAS\r\n", &m);
    assert_true(m.supported_timer);
    assert_false(m.require_timer);
    assert_int_equal(m.se, 600);
    assert_int_equal(m.refresher, CP_ST_REFRESHER_UAS);
    assert_false(m.has_min_se);

    /* Require alone implies support. Compact form "x" for the header. */
    req("Require: timer\r\nx: 300\r\n", &m);
    assert_true(m.supported_timer);
    assert_true(m.require_timer);
    assert_true(m.has_se);
    assert_int_equal(m.se, 300);
    assert_int_equal(m.refresher, CP_ST_REFRESHER_ABSENT);

    /* "timers" is not "timer". */
    req("Supported: timers, xtimer\r\n", &m);
    assert_false(m.supported_timer);
}

static void test_from_sip_absent(void **state)
{
    (void)state;
    cp_st_msg_t m;
    req("", &m);
    assert_false(m.supported_timer);
    assert_false(m.require_timer);
    assert_false(m.has_se);
    assert_int_equal(m.se, 0);
    assert_int_equal(m.refresher, CP_ST_REFRESHER_ABSENT);
    assert_false(m.has_min_se);
    assert_int_equal(m.min_se, 0);

    memset(&m, 0x5a, sizeof(m));
    cp_st_from_sip(NULL, &m);
    assert_false(m.has_se);
    assert_false(m.supported_timer);
    cp_st_from_sip(NULL, NULL); /* must not crash */
}

static void test_from_sip_malformed(void **state)
{
    (void)state;
    cp_st_msg_t m;
    req("Supported: timer\r\nSession-Expires: abc\r\nMin-SE: -5\r\n", &m);
    assert_true(m.supported_timer);
    assert_false(m.has_se);
    assert_false(m.has_min_se);

    req("Session-Expires:\r\n", &m);
    assert_false(m.has_se);

    /* A refresher that is neither uac nor uas reads as absent; the
     * interval itself is still valid. */
    req("Session-Expires: 1800;refresher=foo\r\n", &m);
    assert_true(m.has_se);
    assert_int_equal(m.se, 1800);
    assert_int_equal(m.refresher, CP_ST_REFRESHER_ABSENT);
    req("Session-Expires: 1800;refresher\r\n", &m);
    assert_true(m.has_se);
    assert_int_equal(m.refresher, CP_ST_REFRESHER_ABSENT);
}

static void test_from_sip_huge_values_clamp(void **state)
{
    (void)state;
    cp_st_msg_t m;
    req("Session-Expires: 99999999999\r\nMin-SE: 4294967296\r\n", &m);
    assert_true(m.has_se);
    assert_int_equal(m.se, UINT32_MAX);
    assert_true(m.has_min_se);
    assert_int_equal(m.min_se, UINT32_MAX);

    /* Beyond unsigned long: sofia saturates, we clamp. */
    req("Session-Expires: 99999999999999999999999\r\n", &m);
    assert_true(m.has_se);
    assert_int_equal(m.se, UINT32_MAX);

    req("Session-Expires: 4294967295\r\n", &m);
    assert_int_equal(m.se, UINT32_MAX);
    req("Session-Expires: 4294967294\r\n", &m);
    assert_int_equal(m.se, UINT32_MAX - 1);
}

/* ---- cp_st_uas_answer ------------------------------------------------- */

static void answer(const char *hdrs, cp_st_uas_answer_t *a)
{
    cp_st_msg_t m;
    req(hdrs, &m);
    memset(a, 0x5a, sizeof(*a));
    cp_st_uas_answer(&CFG, &m, a);
}

static void test_uas_refresher_uac(void **state)
{
    (void)state;
    cp_st_uas_answer_t a;
    answer("Supported: timer\r\nSession-Expires: 1200;refresher=uac\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 1200);
    assert_int_equal(a.refresher, CP_ST_REFRESHER_UAC);
    assert_true(a.require_timer);
    assert_int_equal(a.role, CP_ST_ROLE_PEER_REFRESHES);
}

static void test_uas_refresher_uas(void **state)
{
    (void)state;
    cp_st_uas_answer_t a;
    answer("Supported: timer\r\nSession-Expires: 600;refresher=uas\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 600);
    assert_int_equal(a.refresher, CP_ST_REFRESHER_UAS);
    assert_false(a.require_timer);
    assert_int_equal(a.role, CP_ST_ROLE_WE_REFRESH);
}

static void test_uas_refresher_absent(void **state)
{
    (void)state;
    cp_st_uas_answer_t a;
    /* UAC supports timer: it is asked to refresh. Above our interval: ours. */
    answer("Supported: timer\r\nSession-Expires: 3600\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 1800);
    assert_int_equal(a.refresher, CP_ST_REFRESHER_UAC);
    assert_true(a.require_timer);
    assert_int_equal(a.role, CP_ST_ROLE_PEER_REFRESHES);

    /* Session-Expires inserted by a proxy for a UAC without timer. */
    answer("Session-Expires: 1000\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 1000);
    assert_int_equal(a.refresher, CP_ST_REFRESHER_UAS);
    assert_false(a.require_timer);
    assert_int_equal(a.role, CP_ST_ROLE_WE_REFRESH);
}

static void test_uas_no_se_inserts_default(void **state)
{
    (void)state;
    cp_st_uas_answer_t a;
    answer("Supported: timer\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 1800);
    assert_int_equal(a.refresher, CP_ST_REFRESHER_UAC);
    assert_true(a.require_timer);
    assert_int_equal(a.role, CP_ST_ROLE_PEER_REFRESHES);

    answer("", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 1800);
    assert_int_equal(a.refresher, CP_ST_REFRESHER_UAS);
    assert_false(a.require_timer);
    assert_int_equal(a.role, CP_ST_ROLE_WE_REFRESH);

    /* The request's Min-SE raises the inserted interval. */
    answer("Supported: timer\r\nMin-SE: 2400\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 2400);

    /* A malformed Session-Expires is treated as absent. */
    answer("Supported: timer\r\nSession-Expires: soon\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 1800);
}

static void test_uas_below_min_se_422(void **state)
{
    (void)state;
    cp_st_uas_answer_t a;
    answer("Supported: timer\r\nSession-Expires: 60\r\n", &a);
    assert_int_equal(a.status, 422);
    assert_int_equal(a.min_se, 90);
    assert_int_equal(a.role, CP_ST_ROLE_NONE);

    answer("Supported: timer\r\nSession-Expires: 0\r\n", &a);
    assert_int_equal(a.status, 422);
    assert_int_equal(a.min_se, 90);

    /* 89 is one below the floor, 90 is on it. */
    answer("Supported: timer\r\nSession-Expires: 89\r\n", &a);
    assert_int_equal(a.status, 422);
    answer("Supported: timer\r\nSession-Expires: 90\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 90);
}

static void test_uas_below_min_se_no_support_raises(void **state)
{
    (void)state;
    cp_st_uas_answer_t a;
    answer("Session-Expires: 60\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 90);
    assert_int_equal(a.refresher, CP_ST_REFRESHER_UAS);
    assert_false(a.require_timer);
    assert_int_equal(a.role, CP_ST_ROLE_WE_REFRESH);

    /* A refresher=uac put there by a proxy cannot bind a UAC that does not
     * support timer: the CP refreshes. */
    answer("Session-Expires: 60;refresher=uac\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 90);
    assert_int_equal(a.refresher, CP_ST_REFRESHER_UAS);
    assert_false(a.require_timer);
    assert_int_equal(a.role, CP_ST_ROLE_WE_REFRESH);
}

static void test_uas_request_min_se_bigger_than_se(void **state)
{
    (void)state;
    cp_st_uas_answer_t a;
    /* The floor is max(ours, the request's Min-SE). */
    answer("Supported: timer\r\nSession-Expires: 1000\r\nMin-SE: 1200\r\n", &a);
    assert_int_equal(a.status, 422);
    assert_int_equal(a.min_se, 1200);

    answer("Session-Expires: 1000\r\nMin-SE: 1200\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 1200);

    /* Request Min-SE above our interval: the grant is never below it. */
    answer("Supported: timer\r\nSession-Expires: 7200\r\nMin-SE: 3600\r\n",
           &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 3600);

    /* Request Min-SE below ours changes nothing. */
    answer("Supported: timer\r\nSession-Expires: 200\r\nMin-SE: 30\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 200);
    answer("Supported: timer\r\nSession-Expires: 60\r\nMin-SE: 30\r\n", &a);
    assert_int_equal(a.status, 422);
    assert_int_equal(a.min_se, 90);
}

static void test_uas_huge_values(void **state)
{
    (void)state;
    cp_st_uas_answer_t a;
    answer("Supported: timer\r\nSession-Expires: 99999999999999\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 1800);

    answer("Supported: timer\r\nMin-SE: 99999999999999\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, UINT32_MAX);

    answer("Supported: timer\r\nSession-Expires: 100\r\n"
           "Min-SE: 99999999999999\r\n", &a);
    assert_int_equal(a.status, 422);
    assert_int_equal(a.min_se, UINT32_MAX);
}

static void test_uas_small_test_config(void **state)
{
    (void)state;
    const cp_st_config_t cfg = {.session_expires = 4, .min_se = 2};
    cp_st_msg_t m = {.supported_timer = true, .has_se = true, .se = 3};
    cp_st_uas_answer_t a;
    cp_st_uas_answer(&cfg, &m, &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.se, 3);
    m.se = 1;
    cp_st_uas_answer(&cfg, &m, &a);
    assert_int_equal(a.status, 422);
    assert_int_equal(a.min_se, 2);
}

/* ---- UAC side --------------------------------------------------------- */

static void test_uac_offer(void **state)
{
    (void)state;
    cp_st_msg_t o;
    memset(&o, 0x5a, sizeof(o));
    cp_st_uac_offer(&CFG, 1800, false, &o);
    assert_true(o.supported_timer);
    assert_false(o.require_timer);
    assert_true(o.has_se);
    assert_int_equal(o.se, 1800);
    assert_int_equal(o.refresher, CP_ST_REFRESHER_ABSENT);
    assert_true(o.has_min_se);
    assert_int_equal(o.min_se, 90);

    cp_st_uac_offer(&CFG, 600, true, &o);
    assert_int_equal(o.se, 600);
    assert_int_equal(o.refresher, CP_ST_REFRESHER_UAC);

    /* Never below the request's own Min-SE; 0 means the configured one. */
    cp_st_uac_offer(&CFG, 30, false, &o);
    assert_int_equal(o.se, 90);
    cp_st_uac_offer(&CFG, 0, false, &o);
    assert_int_equal(o.se, 1800);
}

static void result(const char *hdrs, cp_st_uac_result_t *r)
{
    cp_st_msg_t m;
    resp("SIP/2.0 200 OK", hdrs, &m);
    memset(r, 0x5a, sizeof(*r));
    cp_st_uac_result(&m, r);
}

static void test_uac_result_mapping(void **state)
{
    (void)state;
    cp_st_uac_result_t r;
    /* refresher names the role in this transaction, where the CP is the
     * UAC: uac means the CP refreshes. */
    result("Require: timer\r\nSession-Expires: 1200;refresher=uac\r\n", &r);
    assert_int_equal(r.se, 1200);
    assert_int_equal(r.role, CP_ST_ROLE_WE_REFRESH);

    result("Session-Expires: 900;refresher=uas\r\n", &r);
    assert_int_equal(r.se, 900);
    assert_int_equal(r.role, CP_ST_ROLE_PEER_REFRESHES);

    /* Absent refresher is invalid in a 2xx; the CP takes the job. */
    result("Session-Expires: 900\r\n", &r);
    assert_int_equal(r.se, 900);
    assert_int_equal(r.role, CP_ST_ROLE_WE_REFRESH);

    result("Supported: timer\r\n", &r);
    assert_int_equal(r.se, 0);
    assert_int_equal(r.role, CP_ST_ROLE_NONE);

    result("Session-Expires: never;refresher=uas\r\n", &r);
    assert_int_equal(r.se, 0);
    assert_int_equal(r.role, CP_ST_ROLE_NONE);

    result("Session-Expires: 0;refresher=uas\r\n", &r);
    assert_int_equal(r.se, 0);
    assert_int_equal(r.role, CP_ST_ROLE_NONE);
}

static uint32_t retry(uint32_t sent, const char *hdrs)
{
    cp_st_msg_t m;
    resp("SIP/2.0 422 Session Interval Too Small", hdrs, &m);
    return cp_st_uac_retry_se(&CFG, sent, &m);
}

static void test_uac_retry_after_422(void **state)
{
    (void)state;
    assert_int_equal(retry(1800, "Min-SE: 3600\r\n"), 3600);
    assert_int_equal(retry(90, "Min-SE: 120\r\n"), 120);
    /* Never below our own Min-SE. */
    assert_int_equal(retry(30, "Min-SE: 60\r\n"), 90);
    /* Pointless retries. */
    assert_int_equal(retry(1800, "Min-SE: 1800\r\n"), 0);
    assert_int_equal(retry(1800, "Min-SE: 900\r\n"), 0);
    assert_int_equal(retry(1800, ""), 0);
    assert_int_equal(retry(1800, "Min-SE: lots\r\n"), 0);
    assert_int_equal(retry(1800, "Min-SE: 99999999999\r\n"), UINT32_MAX);
    assert_int_equal(retry(UINT32_MAX, "Min-SE: 99999999999\r\n"), 0);
}

/* ---- deadlines -------------------------------------------------------- */

static void test_deadlines(void **state)
{
    (void)state;
    /* SE - min(32, SE/3), computed in ms with integer division. */
    assert_int_equal(cp_st_expire_after_ms(90), 60000);     /* 90-30 */
    assert_int_equal(cp_st_expire_after_ms(1800), 1768000); /* 1800-32 */
    assert_int_equal(cp_st_expire_after_ms(30), 20000);     /* 30-10 */
    assert_int_equal(cp_st_expire_after_ms(1), 667);        /* 1000-333 */
    assert_int_equal(cp_st_expire_after_ms(95), 63334);     /* 95000-31666 */
    assert_int_equal(cp_st_expire_after_ms(96), 64000);     /* cap reached */
    assert_int_equal(cp_st_expire_after_ms(97), 65000);
    assert_int_equal(cp_st_expire_after_ms(0), 0);
    assert_int_equal(cp_st_expire_after_ms(UINT32_MAX),
                     UINT64_C(4294967295000) - 32000);

    assert_int_equal(cp_st_refresh_after_ms(90), 45000);
    assert_int_equal(cp_st_refresh_after_ms(1800), 900000);
    assert_int_equal(cp_st_refresh_after_ms(1), 500);
    assert_int_equal(cp_st_refresh_after_ms(0), 0);
    assert_int_equal(cp_st_refresh_after_ms(UINT32_MAX),
                     UINT64_C(2147483647500));

    /* The refresher always acts before the other side gives up. */
    for (uint32_t se = 1; se < 5000; se++)
        assert_true(cp_st_refresh_after_ms(se) < cp_st_expire_after_ms(se));
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(cp_st_refresher_name(CP_ST_REFRESHER_UAC), "uac");
    assert_string_equal(cp_st_refresher_name(CP_ST_REFRESHER_UAS), "uas");
    assert_string_equal(cp_st_refresher_name(CP_ST_REFRESHER_ABSENT), "");
    assert_string_equal(cp_st_role_name(CP_ST_ROLE_NONE), "none");
    assert_string_equal(cp_st_role_name(CP_ST_ROLE_WE_REFRESH), "cp");
    assert_string_equal(cp_st_role_name(CP_ST_ROLE_PEER_REFRESHES), "peer");
}

/* A whole negotiation across the B2BUA: the client's INVITE, the CP's
 * offer to the controlling side, its 422, the retry and the final 2xx. */
static void test_b2bua_flow(void **state)
{
    (void)state;
    cp_st_uas_answer_t a;
    answer("Supported: timer\r\nSession-Expires: 1800;refresher=uas\r\n"
           "Min-SE: 90\r\n", &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.role, CP_ST_ROLE_WE_REFRESH);

    cp_st_msg_t offer;
    cp_st_uac_offer(&CFG, CFG.session_expires, false, &offer);
    uint32_t se = retry(offer.se, "Min-SE: 2000\r\n");
    assert_int_equal(se, 2000);
    cp_st_uac_offer(&CFG, se, false, &offer);
    assert_int_equal(offer.se, 2000);

    cp_st_uac_result_t r;
    result("Require: timer\r\nSession-Expires: 2000;refresher=uas\r\n", &r);
    assert_int_equal(r.se, 2000);
    assert_int_equal(r.role, CP_ST_ROLE_PEER_REFRESHES);
    assert_int_equal(cp_st_expire_after_ms(r.se), 1968000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_sip_full),
        cmocka_unit_test(test_from_sip_case_and_lists),
        cmocka_unit_test(test_from_sip_absent),
        cmocka_unit_test(test_from_sip_malformed),
        cmocka_unit_test(test_from_sip_huge_values_clamp),
        cmocka_unit_test(test_uas_refresher_uac),
        cmocka_unit_test(test_uas_refresher_uas),
        cmocka_unit_test(test_uas_refresher_absent),
        cmocka_unit_test(test_uas_no_se_inserts_default),
        cmocka_unit_test(test_uas_below_min_se_422),
        cmocka_unit_test(test_uas_below_min_se_no_support_raises),
        cmocka_unit_test(test_uas_request_min_se_bigger_than_se),
        cmocka_unit_test(test_uas_huge_values),
        cmocka_unit_test(test_uas_small_test_config),
        cmocka_unit_test(test_uac_offer),
        cmocka_unit_test(test_uac_result_mapping),
        cmocka_unit_test(test_uac_retry_after_422),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_b2bua_flow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
