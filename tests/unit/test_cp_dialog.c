/* cp_dialog: our tags round-trip and nothing else parses as one; From/To
 * become name-addrs without parameters; route sets keep or reverse the
 * Record-Route order; requests go to the target through loose routers and
 * to a strict router with the target last in Route. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <sofia-sip/sip_header.h>
#include <sofia-sip/url.h>

#include "cp_dialog.h"

static void test_tag_round_trip(void **st)
{
    (void)st;
    char tag[CP_DIALOG_TAG_LEN + 1];
    cp_dialog_tag(0x0661e7fbc6ad5b9dull, 1, 0xdeadbeef, tag);
    assert_string_equal(tag, "0661e7fbc6ad5b9d1deadbeef");
    uint64_t sid = 0;
    int dir = -1;
    uint32_t nonce = 0;
    assert_int_equal(cp_dialog_tag_parse(tag, &sid, &dir, &nonce), 0);
    assert_true(sid == 0x0661e7fbc6ad5b9dull);
    assert_int_equal(dir, 1);
    assert_true(nonce == 0xdeadbeef);
    cp_dialog_tag(1, 0, 0, tag);
    assert_string_equal(tag, "0000000000000001000000000");
    assert_int_equal(cp_dialog_tag_parse(tag, &sid, &dir, &nonce), 0);
    assert_true(sid == 1 && dir == 0 && nonce == 0);
}

static void test_tag_parse_refuses_others(void **st)
{
    (void)st;
    uint64_t sid;
    int dir;
    uint32_t nonce;
    const char *bad[] = {
        NULL,
        "",
        "82eSFBN933Npp",                /* NTA's own */
        "0661e7fbc6ad5b9d1deadbee",      /* one short */
        "0661e7fbc6ad5b9d1deadbeef0",    /* one long */
        "0661e7fbc6ad5b9d2deadbeef",     /* no such direction */
        "0661E7FBC6AD5B9D1deadbeef",     /* upper case is not ours */
        "0661e7fbc6ad5b9d1deadbeeg",
        "0661e7fbc6ad5b9-1deadbeef",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cp_dialog_tag_parse(bad[i], &sid, &dir, &nonce), -1);
}

static void test_name_addr(void **st)
{
    (void)st;
    su_home_t home[1] = {SU_HOME_INIT(home)};
    sip_from_t *f = sip_from_make(
        home, "\"IM Client\" <sip:alice@192.0.2.1;user=phone>;tag=abc;x=1");
    assert_non_null(f);
    assert_string_equal(cp_dialog_name_addr(home, f),
                        "\"IM Client\" <sip:alice@192.0.2.1;user=phone>");
    sip_to_t *t = sip_to_make(home, "sip:conf@example.com;tag=x");
    assert_non_null(t);
    assert_string_equal(cp_dialog_name_addr(home, t),
                        "<sip:conf@example.com>");
    assert_null(cp_dialog_name_addr(home, NULL));
    su_home_deinit(home);
}

static void test_route_set_order(void **st)
{
    (void)st;
    su_home_t home[1] = {SU_HOME_INIT(home)};
    sip_record_route_t *rr = sip_record_route_make(
        home, "<sip:p1.example.com;lr>, <sip:p2.example.com;lr;x=y>");
    assert_non_null(rr);
    assert_non_null(rr->r_next);
    assert_string_equal(cp_dialog_route_set(home, rr, false),
                        "<sip:p1.example.com;lr>, <sip:p2.example.com;lr;x=y>");
    assert_string_equal(cp_dialog_route_set(home, rr, true),
                        "<sip:p2.example.com;lr;x=y>, <sip:p1.example.com;lr>");
    assert_null(cp_dialog_route_set(home, NULL, true));
    su_home_deinit(home);
}

static void test_route_loose_and_strict(void **st)
{
    (void)st;
    su_home_t home[1] = {SU_HOME_INIT(home)};
    url_t const *ruri = NULL;
    sip_route_t *r = NULL;

    /* No route set: straight to the target. */
    assert_int_equal(cp_dialog_route(home, NULL, "sip:bob@192.0.2.9:5070",
                                     &ruri, &r), 0);
    assert_string_equal(url_as_string(home, ruri), "sip:bob@192.0.2.9:5070");
    assert_null(r);

    /* Loose routers: the target stays the request URI, Route is the set. */
    assert_int_equal(cp_dialog_route(home,
                                     "<sip:p1;lr>, <sip:p2;lr>",
                                     "sip:bob@192.0.2.9", &ruri, &r), 0);
    assert_string_equal(url_as_string(home, ruri), "sip:bob@192.0.2.9");
    assert_non_null(r);
    assert_string_equal(url_as_string(home, r->r_url), "sip:p1;lr");
    assert_non_null(r->r_next);
    assert_null(r->r_next->r_next);

    /* A strict router first: it is the request URI, the rest of the set
     * and then the target are the Route. */
    assert_int_equal(cp_dialog_route(home, "<sip:strict.example.com>, "
                                           "<sip:p2;lr>",
                                     "sip:bob@192.0.2.9", &ruri, &r), 0);
    assert_string_equal(url_as_string(home, ruri), "sip:strict.example.com");
    assert_non_null(r);
    assert_string_equal(url_as_string(home, r->r_url), "sip:p2;lr");
    assert_non_null(r->r_next);
    assert_string_equal(url_as_string(home, r->r_next->r_url),
                        "sip:bob@192.0.2.9");
    assert_null(r->r_next->r_next);

    /* Nowhere to send: no target and no strict router; a set that does not
     * parse. */
    assert_int_equal(cp_dialog_route(home, NULL, NULL, &ruri, &r), -1);
    assert_int_equal(cp_dialog_route(home, "<sip:p1;lr>", NULL, &ruri, &r),
                     -1);
    assert_int_equal(cp_dialog_route(home, "<<<", "sip:b@h", &ruri, &r), -1);
    su_home_deinit(home);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tag_round_trip),
        cmocka_unit_test(test_tag_parse_refuses_others),
        cmocka_unit_test(test_name_addr),
        cmocka_unit_test(test_route_set_order),
        cmocka_unit_test(test_route_loose_and_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
