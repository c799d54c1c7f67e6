/* fuzz_sip: a SIP message from a peer as the CP reads it. sofia-sip parses
 * the input (msg_make with sip_default_mclass(), as NTA does for a
 * datagram); then the CP's own logic runs on what it extracted:
 *
 * - RFC 4028 (cp_st): cp_st_from_sip, the UAS answer to a request under
 *   several configurations, the UAC reading of a 2xx and of a 422, the
 *   offer of a refresh, and the timer deadlines;
 * - SDP (cp_sdp): a body with Content-Type application/sdp is inspected
 *   and rewritten for the other hop, as for an INVITE or its 2xx;
 * - the values the CP logs (Call-ID, reason phrase) through im_log_quote;
 * - the headers the B2BUA hands on to NTA (caller preferences, Subject,
 *   Priority, unknown headers, Record-Route and Contact for the route set,
 *   From/To/Call-ID of the new legs, Reason) are copied and encoded again,
 *   which is what NTA does with them;
 * - the dialog the CP keeps (cp_dialog): route sets, name-addrs, where its
 *   requests go, and our tags.
 *
 * Besides what the sanitizers catch, the target aborts when a cp_st result
 * breaks RFC 4028 as cp_st.h states it (an interval below the floor, a 422
 * without reason, Require: timer towards a UAC without timer support, a
 * refresh that is not before the expiry, ...). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/su_string.h>
#include <sofia-sip/url.h>

#include "cp_dialog.h"
#include "cp_sdp.h"
#include "cp_st.h"
#include "im_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_CHECK(cond)                                                          \
    do {                                                                       \
        if (!(cond))                                                           \
            s_fail(__LINE__, #cond);                                           \
    } while (0)

static void s_fail(int line, const char *what)
{
    fprintf(stderr, "fuzz_sip.c:%d: check failed: %s\n", line, what);
    abort();
}

/* --session-expires / --min-se pairs: the defaults, the test setups and the
 * extremes the flags allow. */
static const cp_st_config_t s_cfgs[] = {
    {1800, 90}, {90, 90}, {60, 30}, {86400, 1}, {1, 1}, {86400, 86400},
};

static uint32_t s_max(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}

static void s_check_deadlines(uint32_t se)
{
    uint64_t refresh = cp_st_refresh_after_ms(se);
    uint64_t expire = cp_st_expire_after_ms(se);
    S_CHECK(refresh <= (uint64_t)se * 1000);
    S_CHECK(expire <= (uint64_t)se * 1000);
    /* The refresher sends its refresh before the other side gives up. */
    S_CHECK(se == 0 || refresh < expire);
}

static void s_check_st(const cp_st_msg_t *m)
{
    S_CHECK(!m->require_timer || m->supported_timer);
    S_CHECK(m->refresher <= CP_ST_REFRESHER_UAS);
    S_CHECK(m->has_se ||
            (m->se == 0 && m->refresher == CP_ST_REFRESHER_ABSENT));
    S_CHECK(m->has_min_se || m->min_se == 0);
    s_check_deadlines(m->se);

    for (size_t i = 0; i < sizeof(s_cfgs) / sizeof(s_cfgs[0]); i++) {
        const cp_st_config_t *cfg = &s_cfgs[i];
        uint32_t floor =
            m->has_min_se ? s_max(cfg->min_se, m->min_se) : cfg->min_se;
        cp_st_uas_answer_t a;
        cp_st_uas_answer(cfg, m, &a);
        S_CHECK(a.status == 0 || a.status == 422);
        if (a.status == 422) {
            /* Only to a UAC that can retry, and only for a reason. */
            S_CHECK(m->supported_timer && m->has_se && m->se < floor);
            S_CHECK(a.min_se == floor && a.min_se > m->se);
            S_CHECK(a.se == 0 && a.role == CP_ST_ROLE_NONE);
        } else {
            S_CHECK(a.se >= floor);
            S_CHECK(a.se <= s_max(cfg->session_expires, floor));
            S_CHECK(!m->has_se || m->se >= floor || a.se == floor);
            S_CHECK(a.refresher == CP_ST_REFRESHER_UAC ||
                    a.refresher == CP_ST_REFRESHER_UAS);
            S_CHECK(a.require_timer == (a.refresher == CP_ST_REFRESHER_UAC));
            S_CHECK(!a.require_timer || m->supported_timer);
            S_CHECK(a.role == (a.refresher == CP_ST_REFRESHER_UAC
                                   ? CP_ST_ROLE_PEER_REFRESHES
                                   : CP_ST_ROLE_WE_REFRESH));
            S_CHECK(m->refresher == CP_ST_REFRESHER_ABSENT ||
                    !m->supported_timer || a.refresher == m->refresher);
            S_CHECK(*cp_st_refresher_name(a.refresher) != '\0');
            s_check_deadlines(a.se);
        }
        (void)cp_st_role_name(a.role);

        cp_st_uac_result_t r;
        cp_st_uac_result(m, &r);
        S_CHECK(r.se == (m->has_se ? m->se : 0));
        S_CHECK((r.role == CP_ST_ROLE_NONE) == (r.se == 0));

        /* The 422 answering an INVITE or refresh that asked for sent. */
        uint32_t sents[] = {0, cfg->min_se, cfg->session_expires, m->se};
        for (size_t k = 0; k < sizeof(sents) / sizeof(sents[0]); k++) {
            uint32_t retry = cp_st_uac_retry_se(cfg, sents[k], m);
            S_CHECK(retry == 0 || (retry > sents[k] && retry >= cfg->min_se));
            if (retry) {
                cp_st_msg_t o;
                cp_st_uac_offer(cfg, retry, false, &o);
                S_CHECK(o.has_se && o.se == retry && o.min_se == cfg->min_se);
            }
        }
        cp_st_msg_t o;
        cp_st_uac_offer(cfg, r.se, true, &o);
        S_CHECK(o.has_se && o.se >= o.min_se && o.supported_timer);
        S_CHECK(o.refresher == CP_ST_REFRESHER_UAC);
    }
}

static void s_check_sdp(const sip_t *sip)
{
    if (!sip->sip_payload || !sip->sip_content_type ||
        !su_casematch(sip->sip_content_type->c_type, "application/sdp"))
        return;
    const char *body = sip->sip_payload->pl_data;
    size_t len = sip->sip_payload->pl_len;
    cp_sdp_info_t info;
    char err[160], q[200];
    if (cp_sdp_inspect(body, len, &info, err, sizeof(err)) < 0) {
        (void)im_log_quote(q, sizeof(q), err);
        return;
    }
    cp_sdp_rewrite_t rw = {"msrp://192.0.2.10:40123/aB3dE5fG7hJ9kL1m;tcp",
                           su_casematch(info.setup, "passive") ? "active"
                                                               : "passive",
                           0x1122334455667788ull, 1};
    char *out = NULL;
    S_CHECK(cp_sdp_rewrite(body, len, &rw, &out, err, sizeof(err)) == 0 ||
            strcmp(err, "") != 0);
    free(out);
}

/* Copies and encodes every header of a chain, as NTA does with the
 * headers the CP gives it for a new request or leg. */
static void s_reencode(su_home_t *home, const sip_header_t *h)
{
    if (!h)
        return;
    sip_header_t *dup = sip_header_dup(home, h);
    for (const sip_header_t *x = dup; x; x = x->sh_next) {
        char *s = sip_header_as_string(home, x);
        if (s)
            su_free(home, s);
    }
}

/* The dialog the CP keeps from a request or its 2xx (cp_dialog): route
 * sets both ways, name-addrs, where a request in it would go, and a To tag
 * that parses as ours must be exactly what cp_dialog_tag makes. */
static void s_check_dialog(su_home_t *home, const sip_t *sip)
{
    char *in_order = cp_dialog_route_set(home, sip->sip_record_route, false);
    char *reversed = cp_dialog_route_set(home, sip->sip_record_route, true);
    /* Both orders hold the same entries. */
    S_CHECK(!in_order == !reversed);
    S_CHECK(!in_order || strlen(in_order) == strlen(reversed));
    (void)cp_dialog_name_addr(home, sip->sip_from);
    (void)cp_dialog_name_addr(home, sip->sip_to);
    char *target = sip->sip_contact
                       ? url_as_string(home, sip->sip_contact->m_url)
                       : NULL;
    for (int i = 0; i < 2; i++) {
        url_t const *ruri = NULL;
        sip_route_t *routes = NULL;
        if (cp_dialog_route(home, i ? reversed : in_order, target, &ruri,
                            &routes) == 0) {
            S_CHECK(ruri != NULL);
            (void)url_as_string(home, ruri);
            s_reencode(home, (const sip_header_t *)routes);
        }
    }
    uint64_t sid;
    int dir;
    uint32_t nonce;
    const char *tag = sip->sip_to ? sip->sip_to->a_tag : NULL;
    if (cp_dialog_tag_parse(tag, &sid, &dir, &nonce) == 0) {
        char again[CP_DIALOG_TAG_LEN + 1];
        cp_dialog_tag(sid, dir, nonce, again);
        S_CHECK(strcmp(again, tag) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msg_t *msg = msg_make(sip_default_mclass(), 0, data, (ssize_t)size);
    if (!msg)
        return 0;
    sip_t *sip = sip_object(msg);
    if (!sip || (!sip->sip_request && !sip->sip_status)) {
        msg_destroy(msg);
        return 0;
    }

    cp_st_msg_t m;
    memset(&m, 0x5a, sizeof(m));
    cp_st_from_sip(sip, &m);
    S_CHECK(m.has_se == (sip->sip_session_expires != NULL));
    S_CHECK(m.has_min_se == (sip->sip_min_se != NULL));
    s_check_st(&m);

    s_check_sdp(sip);

    char q[200];
    if (sip->sip_call_id)
        (void)im_log_quote(q, sizeof(q), sip->sip_call_id->i_id);
    if (sip->sip_status)
        (void)im_log_quote(q, sizeof(q), sip->sip_status->st_phrase);
    if (sip->sip_allow)
        (void)sip_is_allowed(sip->sip_allow, SIP_METHOD_UPDATE);

    su_home_t home[1] = {SU_HOME_INIT(home)};
    s_reencode(home, (const sip_header_t *)sip->sip_accept_contact);
    s_reencode(home, (const sip_header_t *)sip->sip_reject_contact);
    s_reencode(home, (const sip_header_t *)sip->sip_subject);
    s_reencode(home, (const sip_header_t *)sip->sip_priority);
    s_reencode(home, (const sip_header_t *)sip->sip_unknown);
    s_reencode(home, (const sip_header_t *)sip->sip_record_route);
    s_reencode(home, (const sip_header_t *)sip->sip_route);
    s_reencode(home, (const sip_header_t *)sip->sip_contact);
    s_reencode(home, (const sip_header_t *)sip->sip_from);
    s_reencode(home, (const sip_header_t *)sip->sip_to);
    s_reencode(home, (const sip_header_t *)sip->sip_call_id);
    s_reencode(home, (const sip_header_t *)sip->sip_reason);
    s_check_dialog(home, sip);
    su_home_deinit(home);
    msg_destroy(msg);
    return 0;
}
