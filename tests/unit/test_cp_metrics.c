/* cp_metrics: the CP's series as exported, SIP status labels, protocol
 * error kinds and the per-worker series with their cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_metrics.h"
#include "im_log.h"

static bool s_has(const char *text, const char *line)
{
    char want[256];
    snprintf(want, sizeof(want), "\n%s\n", line);
    return strstr(text, want) != NULL;
}

static void test_exported_from_start(void **state)
{
    (void)state;
    cp_metrics_t *m = cp_metrics_new();
    assert_non_null(m);
    assert_true(im_metrics_complete(m->reg));
    char *text = im_metrics_render(m->reg, NULL);
    assert_non_null(text);

    static const char *const kinds[] = {
        "empty",        "oversize",        "malformed",        "version",
        "no_body",      "bad_field",       "no_routing_frame", "bad_routing_id",
        "extra_frames", "unexpected_body", "not_registered",
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line),
                 "imsplit_cp_protocol_errors_total{kind=\"%s\"} 0", kinds[i]);
        assert_true(s_has(text, line));
    }
    assert_true(s_has(text, "imsplit_cp_sip_responses_total"
                            "{direction=\"sent\",code=\"200\"} 0"));
    assert_true(s_has(text, "imsplit_cp_sip_responses_total"
                            "{direction=\"received\",code=\"6xx\"} 0"));
    assert_true(s_has(text, "imsplit_cp_timer_lateness_seconds_bucket"
                            "{le=\"0.001\"} 0"));
    assert_true(s_has(text, "imsplit_cp_timer_lateness_seconds_bucket"
                            "{le=\"+Inf\"} 0"));
    assert_true(s_has(text, "imsplit_cp_timer_lateness_seconds_count 0"));
    assert_true(s_has(text, "imsplit_cp_release_latency_seconds_sum 0"));
    assert_true(s_has(text, "# TYPE imsplit_cp_worker_legs gauge"));
    assert_true(s_has(text, "# TYPE imsplit_cp_worker_sessions gauge"));
    assert_null(strstr(text, "imsplit_cp_worker_legs{"));
    static const char *const whys[] = {
        "no_sdp_offer",   "bad_sdp_offer",  "interval_too_small",
        "max_sessions",   "max_pending",    "no_live_worker",
        "shutting_down",
    };
    for (size_t i = 0; i < sizeof(whys) / sizeof(whys[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line),
                 "imsplit_cp_invites_rejected_total{why=\"%s\"} 0", whys[i]);
        assert_true(s_has(text, line));
    }
    assert_true(s_has(text, "imsplit_cp_ctl_send_failed_total"
                            "{why=\"queue_full\"} 0"));
    assert_true(s_has(text, "imsplit_cp_ctl_send_failed_total"
                            "{why=\"unroutable\"} 0"));
    assert_true(s_has(text, "imsplit_cp_sessions_pending 0"));
    cp_metrics_invite_rejected(m, CP_REJ_MAX_PENDING);
    cp_metrics_invite_rejected(m, CP_REJ_COUNT); /* out of range: ignored */
    assert_int_equal(im_metric_get(m->invites_rejected_total
                                       [CP_REJ_MAX_PENDING]), 1);
    assert_string_equal(cp_reject_name(CP_REJ_MAX_SESSIONS), "max_sessions");
    assert_string_equal(cp_reject_name(CP_REJ_COUNT), "?");
    cp_metrics_ctl_send_failed(m, CP_SENDFAIL_QUEUE_FULL);
    assert_int_equal(im_metric_get(m->ctl_send_failed_total
                                       [CP_SENDFAIL_QUEUE_FULL]), 1);
    assert_string_equal(cp_sendfail_name(CP_SENDFAIL_UNROUTABLE),
                        "unroutable");
    /* Names that were there before stay. */
    assert_true(s_has(text, "imsplit_cp_sessions_active 0"));
    assert_true(s_has(text, "imsplit_cp_workers{state=\"dead\"} 0"));
    free(text);
    cp_metrics_destroy(&m);
    assert_null(m);
}

static void test_protocol_error_kinds(void **state)
{
    (void)state;
    cp_metrics_t *m = cp_metrics_new();

    /* im_proto's kinds keep the names the log lines use. */
    for (int e = IM_PROTO_EMPTY; e <= IM_PROTO_BAD_FIELD; e++)
        assert_string_equal(cp_perr_name(cp_perr_from_proto((im_proto_err_t)e)),
                            im_proto_err_name((im_proto_err_t)e));
    cp_metrics_protocol_error(m, CP_PERR_EXTRA_FRAMES);
    cp_metrics_protocol_error(m, CP_PERR_EXTRA_FRAMES);
    cp_metrics_protocol_error(m, cp_perr_from_proto(IM_PROTO_OVERSIZE));
    cp_metrics_protocol_error(m, CP_PERR_COUNT); /* ignored */
    cp_metrics_protocol_error(m, (cp_perr_t)-1); /* ignored */
    assert_string_equal(cp_perr_name(CP_PERR_COUNT), "?");
    char *text = im_metrics_render(m->reg, NULL);
    assert_true(s_has(
        text, "imsplit_cp_protocol_errors_total{kind=\"extra_frames\"} 2"));
    assert_true(
        s_has(text, "imsplit_cp_protocol_errors_total{kind=\"oversize\"} 1"));
    free(text);
    cp_metrics_destroy(&m);
}

static void test_sip_codes(void **state)
{
    (void)state;
    char buf[8];
    cp_metrics_t *m = cp_metrics_new();

    assert_string_equal(cp_metrics_sip_code_label(200, buf, sizeof(buf)),
                        "200");
    assert_string_equal(cp_metrics_sip_code_label(487, buf, sizeof(buf)),
                        "487");
    assert_string_equal(cp_metrics_sip_code_label(101, buf, sizeof(buf)),
                        "1xx");
    assert_string_equal(cp_metrics_sip_code_label(302, buf, sizeof(buf)),
                        "3xx");
    assert_string_equal(cp_metrics_sip_code_label(499, buf, sizeof(buf)),
                        "4xx");
    assert_string_equal(cp_metrics_sip_code_label(699, buf, sizeof(buf)),
                        "6xx");
    assert_null(cp_metrics_sip_code_label(99, buf, sizeof(buf)));
    assert_null(cp_metrics_sip_code_label(700, buf, sizeof(buf)));
    assert_null(cp_metrics_sip_code_label(-200, buf, sizeof(buf)));

    cp_metrics_sip_response(m, CP_SIP_SENT, 200);
    cp_metrics_sip_response(m, CP_SIP_SENT, 200);
    cp_metrics_sip_response(m, CP_SIP_RECEIVED, 180);
    cp_metrics_sip_response(m, CP_SIP_RECEIVED, 599);
    cp_metrics_sip_response(m, CP_SIP_RECEIVED, 1000); /* not counted */
    cp_metrics_sip_response(m, (cp_sip_way_t)5, 200);  /* not counted */
    char *text = im_metrics_render(m->reg, NULL);
    assert_true(s_has(text, "imsplit_cp_sip_responses_total"
                            "{direction=\"sent\",code=\"200\"} 2"));
    assert_true(s_has(text, "imsplit_cp_sip_responses_total"
                            "{direction=\"received\",code=\"200\"} 0"));
    assert_true(s_has(text, "imsplit_cp_sip_responses_total"
                            "{direction=\"received\",code=\"180\"} 1"));
    assert_true(s_has(text, "imsplit_cp_sip_responses_total"
                            "{direction=\"received\",code=\"5xx\"} 1"));
    free(text);
    cp_metrics_destroy(&m);
}

static void test_worker_series(void **state)
{
    (void)state;
    cp_metrics_t *m = cp_metrics_new();
    cp_worker_t w = {.id = "up-1", .legs_active = 6, .sessions = 3};

    cp_metrics_worker_add(m, &w);
    char *text = im_metrics_render(m->reg, NULL);
    assert_true(s_has(text, "imsplit_cp_worker_legs{worker=\"up-1\"} 6"));
    assert_true(s_has(text, "imsplit_cp_worker_sessions{worker=\"up-1\"} 3"));
    free(text);
    w.legs_active = 8;
    w.sessions = 4;
    cp_metrics_worker_sync(m, &w);
    /* A second registration (a restart) keeps one series. */
    cp_metrics_worker_add(m, &w);
    text = im_metrics_render(m->reg, NULL);
    assert_true(s_has(text, "imsplit_cp_worker_legs{worker=\"up-1\"} 8"));
    assert_true(s_has(text, "imsplit_cp_worker_sessions{worker=\"up-1\"} 4"));
    free(text);
    assert_int_equal(im_metric_family_size(m->worker_legs), 1);

    /* A worker whose id cannot be a label value works without series. */
    cp_worker_t odd = {.id = "up\x01"};
    cp_metrics_worker_add(m, &odd);
    cp_metrics_worker_sync(m, &odd);
    assert_int_equal(im_metric_family_size(m->worker_legs), 1);
    assert_int_equal(im_metric_family_size(m->worker_sessions), 1);

    cp_metrics_worker_remove(m, "up-1");
    cp_metrics_worker_remove(m, "up-1");
    cp_metrics_worker_sync(m, &w); /* no series: nothing happens */
    text = im_metrics_render(m->reg, NULL);
    assert_null(strstr(text, "worker=\"up-1\""));
    free(text);
    cp_metrics_destroy(&m);
}

static void test_worker_cap(void **state)
{
    (void)state;
    cp_metrics_t *m = cp_metrics_new();
    cp_worker_t w = {0};

    im_log_set_level(IM_LOG_LEVEL_ERROR);
    for (int i = 0; i < CP_METRICS_MAX_WORKERS + 10; i++) {
        snprintf(w.id, sizeof(w.id), "up-%d", i);
        w.legs_active = (uint32_t)i;
        cp_metrics_worker_add(m, &w);
    }
    assert_int_equal(im_metric_family_size(m->worker_legs),
                     CP_METRICS_MAX_WORKERS);
    assert_int_equal(im_metric_family_size(m->worker_sessions),
                     CP_METRICS_MAX_WORKERS);
    assert_true(m->worker_cap_logged);
    /* Room again: the next worker past the cap gets its series. */
    cp_metrics_worker_remove(m, "up-0");
    assert_false(m->worker_cap_logged);
    snprintf(w.id, sizeof(w.id), "up-%d", CP_METRICS_MAX_WORKERS + 20);
    cp_metrics_worker_add(m, &w);
    assert_non_null(im_metric_family_find(m->worker_legs, w.id));
    assert_non_null(im_metric_family_find(m->worker_sessions, w.id));
    im_log_set_level(IM_LOG_LEVEL_INFO);
    cp_metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exported_from_start),
        cmocka_unit_test(test_protocol_error_kinds),
        cmocka_unit_test(test_sip_codes),
        cmocka_unit_test(test_worker_series),
        cmocka_unit_test(test_worker_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
