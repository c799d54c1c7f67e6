#include "cp_st.h"

#include <string.h>
#include <strings.h>

#include <sofia-sip/msg_types.h>

static uint32_t s_clamp(unsigned long v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static uint32_t s_max(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}

static uint32_t s_min(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

static bool s_has_timer(const msg_list_t *l)
{
    for (; l; l = l->k_next) {
        if (!l->k_items)
            continue;
        for (size_t i = 0; l->k_items[i]; i++)
            if (strcasecmp(l->k_items[i], "timer") == 0)
                return true;
    }
    return false;
}

void cp_st_from_sip(const sip_t *sip, cp_st_msg_t *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!sip)
        return;
    out->require_timer = s_has_timer(sip->sip_require);
    out->supported_timer =
        out->require_timer || s_has_timer(sip->sip_supported);
    /* sofia leaves a header that failed to parse out of these fields (it
     * goes to sip_error), which is what makes malformed read as absent. */
    const sip_session_expires_t *x = sip->sip_session_expires;
    if (x) {
        out->has_se = true;
        out->se = s_clamp(x->x_delta);
        /* Any other refresher value is not RFC 4028 syntax; ignoring it
         * lets the answer pick a refresher instead of failing the call. */
        if (x->x_refresher && strcasecmp(x->x_refresher, "uac") == 0)
            out->refresher = CP_ST_REFRESHER_UAC;
        else if (x->x_refresher && strcasecmp(x->x_refresher, "uas") == 0)
            out->refresher = CP_ST_REFRESHER_UAS;
    }
    if (sip->sip_min_se) {
        out->has_min_se = true;
        out->min_se = s_clamp(sip->sip_min_se->min_delta);
    }
}

void cp_st_uas_answer(const cp_st_config_t *cfg, const cp_st_msg_t *req,
                      cp_st_uas_answer_t *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!cfg || !req)
        return;
    uint32_t floor = req->has_min_se ? s_max(cfg->min_se, req->min_se)
                                     : cfg->min_se;
    uint32_t se;
    if (!req->has_se) {
        se = s_max(cfg->session_expires, floor);
    } else if (req->se < floor) {
        if (req->supported_timer) {
            out->status = 422;
            out->min_se = floor;
            return;
        }
        /* A UAC without timer support cannot retry after 422; RFC 4028
         * section 9 lets the UAS raise the interval instead. */
        se = floor;
    } else {
        se = s_max(s_min(req->se, cfg->session_expires), floor);
    }
    if (se == 0)
        return; /* only with a zero configuration: no timer */

    cp_st_refresher_t r = req->refresher;
    /* RFC 4028 table 2: a UAC that does not support timer never refreshes,
     * and Require: timer may not be sent to it (RFC 3261 section 8.2.2.3),
     * whatever a proxy put in the request. */
    if (!req->supported_timer)
        r = CP_ST_REFRESHER_UAS;
    else if (r == CP_ST_REFRESHER_ABSENT)
        r = CP_ST_REFRESHER_UAC;

    out->se = se;
    out->refresher = r;
    out->require_timer = r == CP_ST_REFRESHER_UAC;
    out->role = r == CP_ST_REFRESHER_UAC ? CP_ST_ROLE_PEER_REFRESHES
                                         : CP_ST_ROLE_WE_REFRESH;
}

void cp_st_uac_offer(const cp_st_config_t *cfg, uint32_t se, bool refreshing,
                     cp_st_msg_t *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!cfg)
        return;
    if (se == 0)
        se = cfg->session_expires;
    /* RFC 4028 section 7.1: Session-Expires is never below the request's
     * own Min-SE. */
    se = s_max(se, cfg->min_se);
    out->supported_timer = true;
    out->has_se = se > 0;
    out->se = se;
    out->refresher = refreshing ? CP_ST_REFRESHER_UAC : CP_ST_REFRESHER_ABSENT;
    out->has_min_se = true;
    out->min_se = cfg->min_se;
}

void cp_st_uac_result(const cp_st_msg_t *resp, cp_st_uac_result_t *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!resp || !resp->has_se || resp->se == 0)
        return;
    out->se = resp->se;
    out->role = resp->refresher == CP_ST_REFRESHER_UAS
                    ? CP_ST_ROLE_PEER_REFRESHES
                    : CP_ST_ROLE_WE_REFRESH;
}

uint32_t cp_st_uac_retry_se(const cp_st_config_t *cfg, uint32_t sent_se,
                            const cp_st_msg_t *resp_422)
{
    if (!cfg || !resp_422 || !resp_422->has_min_se ||
        resp_422->min_se <= sent_se)
        return 0;
    return s_max(resp_422->min_se, cfg->min_se);
}

uint64_t cp_st_refresh_after_ms(uint32_t se)
{
    return (uint64_t)se * 1000u / 2u;
}

uint64_t cp_st_expire_after_ms(uint32_t se)
{
    uint64_t ms = (uint64_t)se * 1000u;
    uint64_t guard = ms / 3u;
    if (guard > 32000u)
        guard = 32000u;
    return ms - guard;
}

const char *cp_st_refresher_name(cp_st_refresher_t r)
{
    switch (r) {
    case CP_ST_REFRESHER_UAC:
        return "uac";
    case CP_ST_REFRESHER_UAS:
        return "uas";
    case CP_ST_REFRESHER_ABSENT:
    default:
        return "";
    }
}

const char *cp_st_role_name(cp_st_role_t r)
{
    switch (r) {
    case CP_ST_ROLE_WE_REFRESH:
        return "cp";
    case CP_ST_ROLE_PEER_REFRESHES:
        return "peer";
    case CP_ST_ROLE_NONE:
    default:
        return "none";
    }
}
