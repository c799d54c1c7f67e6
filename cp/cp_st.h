/* cp_st: RFC 4028 session-timer negotiation and deadlines for one leg.
 *
 * Pure logic: no I/O, no clock. The SIP layer extracts the session-timer
 * headers of a message into cp_st_msg_t (cp_st_from_sip), asks this module
 * what to answer or how to interpret a response, and arms its timers from
 * cp_st_refresh_after_ms() / cp_st_expire_after_ms().
 *
 * `refresher=uac|uas` names a role in the transaction that carried it, never
 * a fixed party: the functions below always return the CP's role on the leg
 * (CP_ST_ROLE_WE_REFRESH / CP_ST_ROLE_PEER_REFRESHES), already mapped. */
#ifndef CP_ST_H
#define CP_ST_H

#include <stdbool.h>
#include <stdint.h>

#include <sofia-sip/sip.h>

/* RFC 4028's floor for Min-SE; smaller values are allowed for tests only. */
#define CP_ST_RFC_MIN_SE 90u

typedef enum {
    CP_ST_REFRESHER_ABSENT = 0,
    CP_ST_REFRESHER_UAC,
    CP_ST_REFRESHER_UAS,
} cp_st_refresher_t;

typedef enum {
    CP_ST_ROLE_NONE = 0,       /* no session timer on this leg */
    CP_ST_ROLE_WE_REFRESH,     /* CP refreshes at SE/2 */
    CP_ST_ROLE_PEER_REFRESHES, /* CP expires the leg at SE - min(32, SE/3) */
} cp_st_role_t;

typedef struct {
    uint32_t session_expires; /* interval the CP asks for / grants, seconds */
    uint32_t min_se;          /* smallest interval the CP accepts, seconds */
} cp_st_config_t;

/* Session-timer view of one SIP message. */
typedef struct {
    bool supported_timer; /* "timer" in Supported or Require */
    bool require_timer;   /* "timer" in Require */
    bool has_se;
    uint32_t se; /* Session-Expires delta-seconds (clamped to UINT32_MAX) */
    cp_st_refresher_t refresher;
    bool has_min_se;
    uint32_t min_se;
} cp_st_msg_t;

/* What the CP answers to a request it receives as UAS (INVITE, re-INVITE or
 * UPDATE) and what that means for the leg. */
typedef struct {
    int status;       /* 0: accept; 422: reject with Min-SE: min_se */
    uint32_t min_se;  /* for 422 */
    uint32_t se;      /* Session-Expires to put in the 2xx (0: none) */
    cp_st_refresher_t refresher; /* refresher param for the 2xx */
    bool require_timer;          /* put Require: timer in the 2xx */
    cp_st_role_t role;           /* CP's role on this leg afterwards */
} cp_st_uas_answer_t;

/* Outcome of a 2xx response to a request the CP sent as UAC. */
typedef struct {
    uint32_t se;       /* negotiated interval (0: no timer) */
    cp_st_role_t role; /* CP's role on this leg afterwards */
} cp_st_uac_result_t;

/* Extracts the session-timer headers of sip (request or response).
 * Malformed or missing headers read as absent. */
void cp_st_from_sip(const sip_t *sip, cp_st_msg_t *out);

/* UAS side. Rules:
 * - SE present and below max(cfg->min_se, request Min-SE) -> 422 with
 *   Min-SE = max(cfg->min_se, request Min-SE) when the UAC supports timer;
 *   when it does not, the interval is raised to that floor instead.
 * - SE absent -> the CP inserts cfg->session_expires (raised to the request's
 *   Min-SE if larger).
 * - SE present and acceptable -> SE = min(request SE, cfg->session_expires),
 *   never below the floor.
 * - refresher: kept from the request when present; otherwise uac if the UAC
 *   supports timer, else uas. A uac refresher requires Require: timer.
 * - role: refresher uac -> peer refreshes; uas -> CP refreshes. */
void cp_st_uas_answer(const cp_st_config_t *cfg, const cp_st_msg_t *req,
                      cp_st_uas_answer_t *out);

/* UAC side: the Session-Expires and Min-SE the CP puts in an INVITE (first or
 * retried after 422, se = the interval to ask for) or in a refresh. For a
 * refresh while the CP is refresher, refresher = uac; for an initial INVITE
 * the refresher is left for the UAS to choose (absent). */
void cp_st_uac_offer(const cp_st_config_t *cfg, uint32_t se, bool refreshing,
                     cp_st_msg_t *out);

/* UAC side: interprets a 2xx. No Session-Expires in the 2xx -> no timer.
 * refresher=uac -> CP refreshes; uas -> peer refreshes; absent (invalid per
 * RFC) -> CP refreshes. */
void cp_st_uac_result(const cp_st_msg_t *resp, cp_st_uac_result_t *out);

/* UAC side: a 422 arrived for a request that asked for sent_se. Returns the
 * interval to retry with (the response's Min-SE, never below cfg->min_se), or
 * 0 when a retry is pointless (no Min-SE, or not larger than sent_se). */
uint32_t cp_st_uac_retry_se(const cp_st_config_t *cfg, uint32_t sent_se,
                            const cp_st_msg_t *resp_422);

/* SE/2 in ms: when the refresher sends its refresh. */
uint64_t cp_st_refresh_after_ms(uint32_t se);
/* SE - min(32, SE/3) in ms: when the non-refresher ends the session. */
uint64_t cp_st_expire_after_ms(uint32_t se);

const char *cp_st_refresher_name(cp_st_refresher_t r); /* "uac","uas","" */
const char *cp_st_role_name(cp_st_role_t r); /* "none","cp","peer" */

#endif
