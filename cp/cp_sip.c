/* The magic pointers NTA hands back: the agent and the default leg carry the
 * context, every other leg and transaction carries its session. */
#define NTA_AGENT_MAGIC_T void
#define NTA_LEG_MAGIC_T void
#define NTA_OUTGOING_MAGIC_T void
#define NTA_INCOMING_MAGIC_T void

#include "cp_sip.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su_string.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/su_uniqueid.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#include "cp_build.h"
#include "cp_dialog.h"
#include "cp_handler.h"
#include "cp_metrics.h"
#include "cp_pool.h"
#include "cp_sdp.h"
#include "cp_st.h"
#include "cp_timer.h"
#include "cp_workers.h"
#include "im_clock.h"
#include "im_log.h"

#define CP_ALLOW "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"
#define CP_REASON_TIMER "SIP;cause=408;text=\"Session timer expired\""
#define CP_MAX_422_RETRIES 2
/* A stream connection that leaves a message incomplete this long is closed
 * (sofia's default is to wait for ever). */
#define CP_SIP_INCOMPLETE_MS 10000
/* UDP receive buffer: a burst of answers (an expiry storm's BYE 200s) is
 * queued by the kernel rather than dropped and retransmitted. */
#define CP_SIP_UDP_RMEM (8 * 1024 * 1024)
/* UDP send buffer: on loopback a datagram stays charged to the sender until
 * the peer reads it, so a slow peer fills the default 208 KiB and sendto()
 * fails with EAGAIN; NTA then gives up the final response of an INVITE
 * (it answers 500 instead). */
#define CP_SIP_UDP_WMEM (8 * 1024 * 1024)

/* Module state: one agent per process. */
static struct {
    cp_context_t *ctx;
    su_home_t home[1];
    url_t *next_hop;
    char contact_udp[160];
    char contact_tcp[160];
    nta_leg_t *default_leg;
    cp_session_t *graveyard; /* closed sessions waiting to be freed */
    im_timer_t reap;
    /* BYE pacing: at most cfg.bye_window BYE transactions in flight.
     * When thousands of sessions end at once (an expiry storm, a lost
     * worker), sending every BYE before reading any answer leaves the
     * answers queued past T1: every BYE is retransmitted, doubling the
     * work, and NTA's retransmission lists (sorted by linear insertion)
     * turn quadratic. The legs past the window wait here in FIFO order and
     * go out as answers come in. */
    cp_leg_t *bye_qhead;
    cp_leg_t **bye_qtail;
    size_t byes_queued;
    size_t byes_in_flight;
} s_sip;

static int s_orq_cb(void *magic, nta_outgoing_t *orq, sip_t const *sip);
static int s_client_irq_cb(void *magic, nta_incoming_t *irq,
                           sip_t const *sip);
static void s_bye_finished(cp_leg_t *leg);
static void s_bye_pump(cp_context_t *ctx);

/* The session table's counts as gauges: after a session enters or leaves
 * it, and after each event (a set-up that completes stops being pending). */
static void s_session_gauges(cp_context_t *ctx)
{
    im_metric_set(ctx->metrics->sessions_active,
                  (int64_t)cp_sessions_count(ctx->sessions));
    im_metric_set(ctx->metrics->sessions_pending,
                  (int64_t)cp_sessions_pending(ctx->sessions));
}

void cp_sip_dispatch(cp_context_t *ctx, cp_session_t *s, cp_sess_event_t ev,
                     cp_dir_t dir, int status)
{
    cp_session_dispatch(s, ev, dir, status, &cp_sip_ops, ctx);
    s_session_gauges(ctx);
}

/* ---- helpers -------------------------------------------------------- */

static void s_count(cp_sip_way_t way, int status)
{
    if (s_sip.ctx && s_sip.ctx->metrics)
        cp_metrics_sip_response(s_sip.ctx->metrics, way, status);
}

/* Every response the CP sends goes through s_treply or s_reply_final (never
 * a status returned from an NTA callback), so that each is counted in
 * imsplit_cp_sip_responses_total. */
static int s_treply(nta_incoming_t *irq, int status, char const *phrase,
                    tag_type_t tag, tag_value_t value, ...)
{
    ta_list ta;
    ta_start(ta, tag, value);
    int rc = nta_incoming_treply(irq, status, phrase, ta_tags(ta));
    (void)ta_end(ta);
    if (rc == 0)
        s_count(CP_SIP_SENT, status);
    return rc;
}

/* Sends a final response and lets NTA finish the transaction. */
static int s_reply_final(nta_incoming_t *irq, int status, char const *phrase,
                         tag_type_t tag, tag_value_t value, ...)
{
    ta_list ta;
    ta_start(ta, tag, value);
    if (nta_incoming_treply(irq, status, phrase, ta_tags(ta)) == 0)
        s_count(CP_SIP_SENT, status);
    (void)ta_end(ta);
    nta_incoming_destroy(irq);
    return 0;
}

/* RFC 4028 422 with the Min-SE the request must at least ask for. */
static int s_reply_422(nta_incoming_t *irq, uint32_t min_se)
{
    char v[24];
    snprintf(v, sizeof(v), "%u", min_se);
    return s_reply_final(irq, 422, "Session Interval Too Small",
                         SIPTAG_MIN_SE_STR(v), TAG_END());
}

static bool s_via_is_tcp(sip_t const *sip)
{
    return sip->sip_via && sip->sip_via->v_protocol &&
           su_casematch(sip->sip_via->v_protocol, sip_transport_tcp);
}

static const char *s_contact(bool tcp)
{
    if (tcp && s_sip.contact_tcp[0])
        return s_sip.contact_tcp;
    return s_sip.contact_udp[0] ? s_sip.contact_udp : s_sip.contact_tcp;
}

static char *s_strndup(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- dialogs --------------------------------------------------------- */

static cp_session_t *s_leg_session(cp_leg_t *leg)
{
    return (cp_session_t *)(void *)((char *)(leg - leg->dir) -
                                     offsetof(cp_session_t, legs));
}

static void s_local_tag(const cp_session_t *s, cp_dir_t dir,
                        char tag[CP_DIALOG_TAG_LEN + 1])
{
    cp_dialog_tag(s->id, dir, s->legs[dir].tag_nonce, tag);
}

/* The leg a To tag names, if it is one of ours and its session is live. */
static cp_leg_t *s_leg_of_tag(cp_context_t *ctx, const char *tag)
{
    uint64_t id;
    int dir;
    uint32_t nonce;
    if (cp_dialog_tag_parse(tag, &id, &dir, &nonce) < 0)
        return NULL;
    cp_session_t *s = cp_session_find(ctx->sessions, id);
    if (!s || s->state == CP_SESS_CLOSED || s->legs[dir].tag_nonce != nonce)
        return NULL;
    return &s->legs[dir];
}

/* The peer's Contact becomes the leg's remote target (a dialog's start and
 * every target refresh, RFC 3261 12.2). Without one the target stays. */
static void s_leg_target(cp_session_t *s, cp_leg_t *leg,
                         sip_contact_t const *m)
{
    if (!m || !m->m_url->url_host)
        return;
    su_home_t home[1] = {SU_HOME_INIT(home)};
    char *uri = url_as_string(home, m->m_url);
    if (uri && (!leg->target || strcmp(uri, leg->target) != 0))
        cp_session_strset(s, &leg->target, uri);
    su_home_deinit(home);
}

/* Sends a request in a leg's dialog (RFC 3261 12.2.1.1) through NTA's
 * default leg: From, To, Call-ID and CSeq from the leg, the request URI
 * the remote target (or request_uri before there is one), Route the route
 * set. A strict router (no ;lr) in front takes the request URI itself and
 * the target goes last in Route. Extra headers come as tags. */
static nta_outgoing_t *s_leg_request(cp_session_t *s, cp_dir_t dir,
                                     url_string_t const *route_url,
                                     sip_method_t method, char const *name,
                                     url_string_t const *request_uri,
                                     uint32_t cseq, tag_type_t tag,
                                     tag_value_t value, ...)
{
    cp_leg_t *leg = &s->legs[dir];
    nta_outgoing_t *orq = NULL;
    su_home_t home[1] = {SU_HOME_INIT(home)};
    char ltag[CP_DIALOG_TAG_LEN + 1];
    s_local_tag(s, dir, ltag);
    char *from = su_sprintf(home, "%s;tag=%s", leg->local_uri, ltag);
    char *to = leg->remote_tag
                   ? su_sprintf(home, "%s;tag=%s", leg->remote_uri,
                                leg->remote_tag)
                   : su_strdup(home, leg->remote_uri);
    sip_cseq_t *cs = sip_cseq_create(home, cseq, method, name);
    sip_route_t *route = NULL;
    url_t const *ruri = (url_t const *)request_uri;
    if ((leg->target || leg->route) &&
        cp_dialog_route(home, leg->route, leg->target, &ruri, &route) < 0)
        goto out;
    if (!from || !to || !cs || !ruri)
        goto out;
    ta_list ta;
    ta_start(ta, tag, value);
    orq = nta_outgoing_tcreate(
        s_sip.default_leg, method == sip_method_ack ? NULL : s_orq_cb,
        method == sip_method_ack ? NULL : s, route_url, method, name,
        (url_string_t const *)ruri, SIPTAG_FROM_STR(from), SIPTAG_TO_STR(to),
        SIPTAG_CALL_ID_STR(leg->call_id), SIPTAG_CSEQ(cs),
        TAG_IF(route, SIPTAG_ROUTE(route)), ta_tags(ta));
    ta_end(ta);
out:
    su_home_deinit(home);
    return orq;
}

/* ---- session timers ------------------------------------------------- */

static void s_send_refresh(cp_context_t *ctx, cp_session_t *s, cp_dir_t dir);

static void s_on_st_timer(im_timer_t *t, void *arg)
{
    cp_session_t *s = arg;
    cp_context_t *ctx = s->owner;
    cp_dir_t dir = t == &s->legs[CP_DIR_CONTROLLING].st_timer
                       ? CP_DIR_CONTROLLING
                       : CP_DIR_CLIENT;
    cp_leg_t *leg = &s->legs[dir];
    if (s->state != CP_SESS_ANSWERED && s->state != CP_SESS_ESTABLISHED)
        return;
    /* st_deadline is in milliseconds of the clock im_clock_us reads. */
    uint64_t now_us = im_clock_us(), due_us = leg->st_deadline * 1000;
    im_metric_observe(ctx->metrics->timer_lateness_seconds,
                      now_us > due_us ? (double)(now_us - due_us) / 1e6 : 0);
    int64_t late = (int64_t)(now_us / 1000) - (int64_t)leg->st_deadline;
    if (leg->st_role == CP_ST_ROLE_WE_REFRESH) {
        s_send_refresh(ctx, s, dir);
        return;
    }
    im_metric_inc(ctx->metrics->session_timer_expired_total);
    char q[200]; /* a Call-ID may hold spaces, '=', quotes, controls */
    IM_LOG_INFO("event=session_timer_expired sid=%016" PRIx64 " dir=%s "
                "se=%u late_ms=%" PRId64 " call_id=%s",
                s->id, cp_dir_name(dir), leg->se, late,
                im_log_quote(q, sizeof(q), s->call_id ? s->call_id : ""));
    cp_sip_dispatch(ctx, s, CP_EV_TIMER_EXPIRED, dir, 0);
}

/* (Re)starts a leg's session timer from now, per its negotiated role. */
static void s_st_arm(cp_context_t *ctx, cp_session_t *s, cp_dir_t dir)
{
    cp_leg_t *leg = &s->legs[dir];
    cp_timer_cancel(ctx->timers, &leg->st_timer);
    if (leg->st_role == CP_ST_ROLE_NONE || leg->se == 0)
        return;
    uint64_t delay = leg->st_role == CP_ST_ROLE_WE_REFRESH
                         ? cp_st_refresh_after_ms(leg->se)
                         : cp_st_expire_after_ms(leg->se);
    leg->st_deadline = im_clock_ms() + delay;
    im_timer_init(&leg->st_timer, s_on_st_timer, s);
    cp_timer_arm_in(ctx->timers, &leg->st_timer, delay);
}

static void s_send_refresh(cp_context_t *ctx, cp_session_t *s, cp_dir_t dir)
{
    cp_leg_t *leg = &s->legs[dir];
    if (leg->refreshing)
        return;
    cp_st_msg_t offer;
    cp_st_uac_offer(&ctx->st, leg->se, true, &offer);
    char se[48], min_se[24];
    snprintf(se, sizeof(se), "%u;refresher=uac", offer.se);
    snprintf(min_se, sizeof(min_se), "%u", offer.min_se);
    bool update = leg->peer_allows_update;
    /* The initial INVITE's transaction was kept only to re-ACK 2xx
     * retransmissions; a refresh replaces it. */
    nta_outgoing_destroy(leg->orq);
    leg->orq = s_leg_request(
        s, dir, NULL, update ? sip_method_update : sip_method_invite,
        update ? "UPDATE" : "INVITE", NULL, ++leg->local_cseq,
        SIPTAG_CONTACT_STR(leg->contact), SIPTAG_SUPPORTED_STR("timer"),
        SIPTAG_ALLOW_STR(CP_ALLOW), SIPTAG_SESSION_EXPIRES_STR(se),
        SIPTAG_MIN_SE_STR(min_se),
        TAG_IF(!update && leg->sdp_out,
               SIPTAG_CONTENT_TYPE_STR("application/sdp")),
        TAG_IF(!update && leg->sdp_out, SIPTAG_PAYLOAD_STR(leg->sdp_out)),
        TAG_END());
    if (!leg->orq) {
        IM_LOG_ERROR("event=refresh_send_failed sid=%016" PRIx64 " dir=%s",
                     s->id, cp_dir_name(dir));
        cp_sip_dispatch(ctx, s, CP_EV_REFRESH_FAILED, dir, 500);
        return;
    }
    leg->refreshing = true;
    leg->refresh_se = offer.se;
    im_metric_inc(ctx->metrics->refreshes_sent_total);
    IM_LOG_INFO("event=refresh_sent sid=%016" PRIx64 " dir=%s method=%s se=%u",
                s->id, cp_dir_name(dir), update ? "UPDATE" : "INVITE",
                offer.se);
}

/* ---- requests to the controlling side ------------------------------- */

static int s_send_invite(cp_context_t *ctx, cp_session_t *s, uint32_t se)
{
    cp_leg_t *cl = &s->legs[CP_DIR_CLIENT];
    cp_leg_t *ctrl = &s->legs[CP_DIR_CONTROLLING];
    if (!cl->irq)
        return -EINVAL;
    msg_t *msg = nta_incoming_getrequest(cl->irq);
    sip_t const *req = sip_object(msg);
    if (!req || !req->sip_from || !req->sip_to || !req->sip_request) {
        msg_destroy(msg);
        return -EINVAL;
    }
    int rc = -ENOMEM;
    su_home_t home[1] = {SU_HOME_INIT(home)};
    if (!ctrl->call_id) {
        /* The controlling leg's dialog: the caller and callee of the
         * client's INVITE (display name and URI only), a new Call-ID. */
        char *from = cp_dialog_name_addr(home, req->sip_from);
        char *to = cp_dialog_name_addr(home, req->sip_to);
        sip_call_id_t *cid = sip_call_id_create(home, NULL);
        if (!from || !to || !cid)
            goto out;
        ctrl->tag_nonce = su_random();
        ctrl->call_id = cp_session_strdup(s, cid->i_id);
        ctrl->local_uri = cp_session_strdup(s, from);
        ctrl->remote_uri = cp_session_strdup(s, to);
        if (!ctrl->call_id || !ctrl->local_uri || !ctrl->remote_uri)
            goto out;
        ctrl->tcp = s_sip.next_hop &&
                    url_has_param(s_sip.next_hop, "transport=tcp");
        ctrl->contact = s_contact(ctrl->tcp);
    }
    if (!ctrl->sdp_out) {
        cp_sdp_rewrite_t rw = {ctrl->path, "actpass", s->id, 1};
        char err[160], *out = NULL;
        rc = cp_sdp_rewrite(s->client_sdp, strlen(s->client_sdp), &rw, &out,
                            err, sizeof(err));
        if (rc < 0) {
            IM_LOG_WARN("event=sdp_rewrite_failed sid=%016" PRIx64
                        " dir=controlling why=\"%s\"", s->id, err);
            goto out;
        }
        ctrl->sdp_out = cp_session_strdup(s, out);
        free(out);
        rc = -ENOMEM;
        if (!ctrl->sdp_out)
            goto out;
        /* Only the rewritten offer is needed from here on (a retry after
         * 422 sends it again). */
        free(s->client_sdp);
        s->client_sdp = NULL;
    }
    cp_st_msg_t offer;
    cp_st_uac_offer(&ctx->st, se, false, &offer);
    /* RFC 4028 7.4: a request retried after 422 carries the Min-SE the
     * 422 demanded, which is the interval we now ask for. */
    if (s->ctrl_422_retries > 0 && offer.se > offer.min_se)
        offer.min_se = offer.se;
    char se_str[24], min_se[24];
    snprintf(se_str, sizeof(se_str), "%u", offer.se);
    snprintf(min_se, sizeof(min_se), "%u", offer.min_se);
    ctrl->orq = s_leg_request(
        s, CP_DIR_CONTROLLING, (url_string_t *)s_sip.next_hop,
        SIP_METHOD_INVITE, (url_string_t *)req->sip_request->rq_url,
        ++ctrl->local_cseq, SIPTAG_CONTACT_STR(ctrl->contact),
        SIPTAG_SUPPORTED_STR("timer"),
        SIPTAG_ALLOW_STR(CP_ALLOW), SIPTAG_SESSION_EXPIRES_STR(se_str),
        SIPTAG_MIN_SE_STR(min_se),
        SIPTAG_CONTENT_TYPE_STR("application/sdp"),
        SIPTAG_PAYLOAD_STR(ctrl->sdp_out),
        /* What a B2BUA passes on: caller preferences (OMA IM's feature
         * tag), subject and priority, and every header this stack does not
         * interpret (P-Asserted-Identity, P-Preferred-Identity, operator
         * headers). Each tag copies the whole chain of that header. */
        TAG_IF(req->sip_accept_contact,
               SIPTAG_HEADER((sip_header_t const *)req->sip_accept_contact)),
        TAG_IF(req->sip_reject_contact,
               SIPTAG_HEADER((sip_header_t const *)req->sip_reject_contact)),
        TAG_IF(req->sip_subject,
               SIPTAG_HEADER((sip_header_t const *)req->sip_subject)),
        TAG_IF(req->sip_priority,
               SIPTAG_HEADER((sip_header_t const *)req->sip_priority)),
        TAG_IF(req->sip_unknown,
               SIPTAG_HEADER((sip_header_t const *)req->sip_unknown)),
        TAG_END());
    if (!ctrl->orq) {
        rc = -EIO;
        goto out;
    }
    ctrl->refreshing = false;
    s->ctrl_se_sent = offer.se;
    IM_LOG_INFO("event=invite_sent sid=%016" PRIx64 " se=%u worker=%s",
                s->id, offer.se, s->worker);
    rc = 0;
out:
    su_home_deinit(home);
    msg_destroy(msg);
    return rc;
}

static void s_send_ack(cp_session_t *s, cp_dir_t dir, nta_outgoing_t *orq)
{
    nta_outgoing_t *ack = s_leg_request(
        s, dir, NULL, SIP_METHOD_ACK, NULL, nta_outgoing_cseq(orq),
        SIPTAG_CONTACT_STR(s->legs[dir].contact), TAG_END());
    /* An ACK has no response: nothing to keep. */
    nta_outgoing_destroy(ack);
}

/* ---- responses ------------------------------------------------------ */

/* The first 2xx to the controlling INVITE, already ACKed: takes the
 * answer (SDP, RFC 4028 parameters) and reports it to the machine. */
static void s_on_invite_2xx(cp_context_t *ctx, cp_session_t *s,
                            sip_t const *sip, int status)
{
    cp_leg_t *ctrl = &s->legs[CP_DIR_CONTROLLING];
    if (s->state != CP_SESS_CALLING || s->cancelled) {
        cp_sip_dispatch(ctx, s, CP_EV_ANSWERED, CP_DIR_CONTROLLING, status);
        return;
    }
    cp_sdp_info_t info;
    char err[160];
    if (!sip->sip_payload ||
        cp_sdp_inspect(sip->sip_payload->pl_data, sip->sip_payload->pl_len,
                       &info, err, sizeof(err)) < 0) {
        IM_LOG_WARN("event=bad_answer_sdp sid=%016" PRIx64 " why=\"%s\"",
                    s->id, sip->sip_payload ? err : "no SDP in 2xx");
        cp_sip_ops.reject(ctx, s, 502);
        s->cancelled = true;
        cp_sip_dispatch(ctx, s, CP_EV_ANSWERED, CP_DIR_CONTROLLING, status);
        return;
    }
    free(s->ctrl_sdp);
    s->ctrl_sdp = s_strndup(sip->sip_payload->pl_data,
                            sip->sip_payload->pl_len);
    cp_session_strset(s, &ctrl->peer_path, info.path);
    /* RFC 6135: an answer without a=setup leaves the offerer (the
     * worker) active, i.e. the peer passive. */
    cp_session_strset(s, &ctrl->peer_setup,
                      info.setup[0] ? info.setup : "passive");
    cp_st_msg_t m;
    cp_st_uac_result_t r;
    cp_st_from_sip(sip, &m);
    cp_st_uac_result(&m, &r);
    ctrl->se = r.se;
    ctrl->st_role = r.role;
    ctrl->peer_allows_update =
        sip->sip_allow && sip_is_allowed(sip->sip_allow, SIP_METHOD_UPDATE);
    cp_sip_dispatch(ctx, s, CP_EV_ANSWERED, CP_DIR_CONTROLLING, status);
}

static void s_on_invite_response(cp_context_t *ctx, cp_session_t *s,
                                 nta_outgoing_t *orq, sip_t const *sip,
                                 int status)
{
    cp_leg_t *ctrl = &s->legs[CP_DIR_CONTROLLING];
    cp_leg_t *cl = &s->legs[CP_DIR_CLIENT];
    if (status < 200) {
        if (status > 100 && s->state == CP_SESS_CALLING && !s->cancelled &&
            cl->irq && nta_incoming_status(cl->irq) < 200)
            s_treply(cl->irq, status,
                     sip && sip->sip_status ? sip->sip_status->st_phrase
                                            : NULL,
                     SIPTAG_CONTACT_STR(cl->contact), TAG_END());
        return;
    }
    if (status < 300) {
        if (ctrl->dialog != CP_DIALOG_NONE) {
            /* a retransmitted 2xx */
            s_send_ack(s, CP_DIR_CONTROLLING, orq);
            return;
        }
        if (!sip || !sip->sip_to) {
            cp_sip_dispatch(ctx, s, CP_EV_REJECTED, CP_DIR_CONTROLLING, 502);
            return;
        }
        su_home_t home[1] = {SU_HOME_INIT(home)};
        cp_session_strset(s, &ctrl->remote_tag, sip->sip_to->a_tag);
        cp_session_strset(
            s, &ctrl->route,
            cp_dialog_route_set(home, sip->sip_record_route, true));
        su_home_deinit(home);
        s_leg_target(s, ctrl, sip->sip_contact);
        s_send_ack(s, CP_DIR_CONTROLLING, orq);
        /* The INVITE transaction is done for the session once its 2xx is
         * ACKed: it is handed back to NTA, which keeps absorbing
         * retransmissions of that 2xx until Timer D and then frees it with
         * both of its messages. Keeping it for the session's life would
         * cost several KiB per session. */
        ctrl->orq = NULL;
        s_on_invite_2xx(ctx, s, sip, status);
        nta_outgoing_destroy(orq);
        return;
    }
    if (status == 422 && s->state == CP_SESS_CALLING && !s->cancelled &&
        s->ctrl_422_retries < CP_MAX_422_RETRIES && sip) {
        cp_st_msg_t m;
        cp_st_from_sip(sip, &m);
        uint32_t se = cp_st_uac_retry_se(&ctx->st, s->ctrl_se_sent, &m);
        if (se) {
            s->ctrl_422_retries++;
            IM_LOG_INFO("event=invite_422 sid=%016" PRIx64 " retry_se=%u",
                        s->id, se);
            nta_outgoing_destroy(ctrl->orq);
            ctrl->orq = NULL;
            if (s_send_invite(ctx, s, se) == 0)
                return;
            status = 500;
        }
    }
    IM_LOG_INFO("event=invite_rejected sid=%016" PRIx64 " status=%d", s->id,
                status);
    cp_sip_dispatch(ctx, s, CP_EV_REJECTED, CP_DIR_CONTROLLING, status);
}

/* A final answer to our refresh: the new interval, a retry after 422, or a
 * failed refresh. */
static void s_refresh_result(cp_context_t *ctx, cp_session_t *s, cp_dir_t dir,
                             sip_t const *sip, int status)
{
    cp_leg_t *leg = &s->legs[dir];
    if (status < 300) {
        if (!leg->refreshing)
            return; /* a retransmitted 2xx */
        leg->refreshing = false;
        s_leg_target(s, leg, sip->sip_contact);
        cp_st_msg_t m;
        cp_st_uac_result_t r;
        cp_st_from_sip(sip, &m);
        cp_st_uac_result(&m, &r);
        leg->se = r.se;
        leg->st_role = r.role;
        IM_LOG_INFO("event=refresh_done sid=%016" PRIx64 " dir=%s se=%u "
                    "role=%s", s->id, cp_dir_name(dir), r.se,
                    cp_st_role_name(r.role));
        if (s->state == CP_SESS_ANSWERED || s->state == CP_SESS_ESTABLISHED)
            s_st_arm(ctx, s, dir);
        return;
    }
    leg->refreshing = false;
    if (status == 422 && sip) {
        cp_st_msg_t m;
        cp_st_from_sip(sip, &m);
        uint32_t se = cp_st_uac_retry_se(&ctx->st, leg->refresh_se, &m);
        if (se) {
            leg->se = se;
            s_send_refresh(ctx, s, dir);
            return;
        }
    }
    IM_LOG_WARN("event=refresh_failed sid=%016" PRIx64 " dir=%s status=%d",
                s->id, cp_dir_name(dir), status);
    cp_sip_dispatch(ctx, s, CP_EV_REFRESH_FAILED, dir, status);
}

static void s_on_refresh_response(cp_context_t *ctx, cp_session_t *s,
                                  cp_dir_t dir, nta_outgoing_t *orq,
                                  sip_t const *sip, int status)
{
    cp_leg_t *leg = &s->legs[dir];
    if (status < 200)
        return;
    if (status < 300 && nta_outgoing_method(orq) == sip_method_invite)
        s_send_ack(s, dir, orq);
    /* A final answer ends the refresh for the session: the transaction,
     * with its request and answer, goes back to NTA, which absorbs
     * retransmitted answers until Timer K (D for a re-INVITE) and then
     * frees it, rather than being held until the next refresh. It goes
     * back only once the answer (which it owns) has been read: over TCP
     * NTA frees it at once. */
    bool ours = leg->orq == orq;
    if (ours)
        leg->orq = NULL;
    s_refresh_result(ctx, s, dir, sip, status);
    if (ours)
        nta_outgoing_destroy(orq);
}

static int s_orq_cb(void *magic, nta_outgoing_t *orq, sip_t const *sip)
{
    cp_session_t *s = magic;
    cp_context_t *ctx = s->owner;
    int status = sip && sip->sip_status ? sip->sip_status->st_status
                                        : nta_outgoing_status(orq);
    /* Without a message the status is NTA's own (timeout, transport). */
    if (sip && sip->sip_status)
        s_count(CP_SIP_RECEIVED, status);
    if (s->state == CP_SESS_CLOSED)
        return 0;
    for (int d = 0; d < CP_DIR_COUNT; d++) {
        cp_leg_t *leg = &s->legs[d];
        if (orq == leg->bye) {
            if (status < 200)
                return 0;
            s_bye_finished(leg);
            IM_LOG_INFO("event=bye_completed sid=%016" PRIx64 " leg=%s "
                        "status=%d", s->id, cp_dir_name((cp_dir_t)d), status);
            cp_sip_dispatch(ctx, s, CP_EV_BYE_DONE, (cp_dir_t)d, status);
            s_bye_pump(ctx);
            return 0;
        }
        if (orq == leg->orq) {
            /* The client leg only ever carries our refreshes; on the
             * controlling leg, orq is the initial INVITE until a refresh
             * replaces it. */
            if (leg->refreshing || d == CP_DIR_CLIENT)
                s_on_refresh_response(ctx, s, (cp_dir_t)d, orq, sip, status);
            else
                s_on_invite_response(ctx, s, orq, sip, status);
            return 0;
        }
    }
    return 0;
}

/* ---- requests from the peers ---------------------------------------- */

/* 488 with the reason in a Warning (cp_sdp's reasons are printable ASCII
 * without quotes or backslashes). */
static int s_reply_488(nta_incoming_t *irq, const char *why)
{
    char warn[200];
    snprintf(warn, sizeof(warn), "399 imsplit \"%.150s\"", why);
    return s_reply_final(irq, SIP_488_NOT_ACCEPTABLE, SIPTAG_WARNING_STR(warn),
                         TAG_END());
}

/* The media of an IM session cannot change once it is set up: an offer in
 * a refresh is acceptable only if it still names the peer's MSRP path.
 * Returns 0, or -1 with the reason in why. */
static int s_refresh_offer_check(const cp_leg_t *leg, sip_t const *sip,
                                 char *why, size_t size)
{
    if (!sip->sip_content_type ||
        !su_casematch(sip->sip_content_type->c_type, "application/sdp")) {
        snprintf(why, size, "offer is not application/sdp");
        return -1;
    }
    cp_sdp_info_t info;
    if (cp_sdp_inspect(sip->sip_payload->pl_data, sip->sip_payload->pl_len,
                       &info, why, size) < 0)
        return -1;
    if (!leg->peer_path || strcmp(info.path, leg->peer_path) != 0) {
        snprintf(why, size, "the MSRP path of a session cannot change");
        return -1;
    }
    return 0;
}

static int s_on_refresh_request(cp_context_t *ctx, cp_session_t *s,
                                cp_dir_t dir, nta_incoming_t *irq,
                                sip_t const *sip)
{
    cp_leg_t *leg = &s->legs[dir];
    bool invite = sip->sip_request->rq_method == sip_method_invite;
    if (s->state != CP_SESS_ANSWERED && s->state != CP_SESS_ESTABLISHED)
        return s_reply_final(irq, 481, "Session Is Ending", TAG_END());
    if (leg->refreshing)
        return s_reply_final(irq, 491, NULL, TAG_END());
    /* RFC 3261 14.2: a refused offer leaves the session as it was. */
    char why[160];
    if (sip->sip_payload && sip->sip_payload->pl_len > 0 &&
        s_refresh_offer_check(leg, sip, why, sizeof(why)) < 0) {
        char q[200];
        IM_LOG_INFO("event=refresh_rejected sid=%016" PRIx64 " dir=%s "
                    "status=488 why=%s", s->id, cp_dir_name(dir),
                    im_log_quote(q, sizeof(q), why));
        return s_reply_488(irq, why);
    }
    cp_st_msg_t m;
    cp_st_uas_answer_t a;
    cp_st_from_sip(sip, &m);
    cp_st_uas_answer(&ctx->st, &m, &a);
    if (a.status == 422) {
        IM_LOG_INFO("event=refresh_rejected sid=%016" PRIx64 " dir=%s "
                    "status=422 min_se=%u", s->id, cp_dir_name(dir), a.min_se);
        return s_reply_422(irq, a.min_se);
    }
    leg->se = a.se;
    leg->st_role = a.role;
    if (sip->sip_allow)
        leg->peer_allows_update = sip_is_allowed(sip->sip_allow,
                                                 SIP_METHOD_UPDATE);
    char se[48];
    snprintf(se, sizeof(se), "%u;refresher=%s", a.se,
             cp_st_refresher_name(a.refresher));
    bool with_sdp = (invite || sip->sip_payload) && leg->sdp_out;
    s_reply_final(
        irq, SIP_200_OK, SIPTAG_CONTACT_STR(leg->contact),
        SIPTAG_SUPPORTED_STR("timer"), SIPTAG_ALLOW_STR(CP_ALLOW),
        TAG_IF(a.se > 0, SIPTAG_SESSION_EXPIRES_STR(se)),
        TAG_IF(a.require_timer, SIPTAG_REQUIRE_STR("timer")),
        TAG_IF(with_sdp, SIPTAG_CONTENT_TYPE_STR("application/sdp")),
        TAG_IF(with_sdp, SIPTAG_PAYLOAD_STR(leg->sdp_out)), TAG_END());
    s_leg_target(s, leg, sip->sip_contact);
    im_metric_inc(ctx->metrics->refreshes_received_total);
    IM_LOG_INFO("event=refresh_received sid=%016" PRIx64 " dir=%s method=%s "
                "se=%u role=%s", s->id, cp_dir_name(dir),
                invite ? "INVITE" : "UPDATE", a.se, cp_st_role_name(a.role));
    s_st_arm(ctx, s, dir);
    return 0;
}

static int s_on_dialog_request(cp_context_t *ctx, cp_session_t *s,
                               cp_dir_t dir, nta_incoming_t *irq,
                               sip_t const *sip)
{
    switch (sip->sip_request->rq_method) {
    case sip_method_bye:
        IM_LOG_INFO("event=bye_received sid=%016" PRIx64 " leg=%s", s->id,
                    cp_dir_name(dir));
        if (s->state != CP_SESS_CLOSED)
            cp_sip_dispatch(ctx, s, CP_EV_BYE_RECEIVED, dir, 0);
        return s_reply_final(irq, SIP_200_OK, TAG_END());
    case sip_method_invite:
    case sip_method_update:
        return s_on_refresh_request(ctx, s, dir, irq, sip);
    case sip_method_ack:
        return 0;
    case sip_method_options:
        return s_reply_final(irq, SIP_200_OK, TAG_END());
    case sip_method_cancel:
        return s_reply_final(irq, SIP_481_NO_TRANSACTION, TAG_END());
    case sip_method_info:
    case sip_method_message:
    case sip_method_refer:
    case sip_method_notify:
    case sip_method_subscribe:
    case sip_method_prack:
        return s_reply_final(irq, SIP_405_METHOD_NOT_ALLOWED,
                             SIPTAG_ALLOW_STR(CP_ALLOW), TAG_END());
    default:
        return s_reply_final(irq, SIP_501_NOT_IMPLEMENTED, TAG_END());
    }
}

static int s_client_irq_cb(void *magic, nta_incoming_t *irq,
                           sip_t const *sip)
{
    cp_session_t *s = magic;
    cp_context_t *ctx = s->owner;
    cp_leg_t *cl = &s->legs[CP_DIR_CLIENT];
    if (irq != cl->irq || s->state == CP_SESS_CLOSED)
        return 0;
    if (!sip) {
        /* NTA reports two things this way: Timer H (the final response went
         * out, no ACK came) and a final response it could not send (it
         * answers 500 itself); the status tells them apart. */
        if (nta_incoming_status(irq) >= 200)
            IM_LOG_WARN("event=no_ack sid=%016" PRIx64, s->id);
        else
            IM_LOG_WARN("event=answer_send_failed sid=%016" PRIx64
                        " status=%d",
                        s->id, nta_incoming_status(irq));
        cp_sip_dispatch(ctx, s, CP_EV_CLIENT_NO_ACK, CP_DIR_CLIENT, 0);
        return 0;
    }
    switch (sip->sip_request ? sip->sip_request->rq_method
                             : sip_method_unknown) {
    case sip_method_ack:
        cp_sip_dispatch(ctx, s, CP_EV_CLIENT_ACK, CP_DIR_CLIENT, 0);
        /* The INVITE transaction (and the request it holds) is of no more
         * use; a closed session's objects are left to the reaper. */
        if (s->state != CP_SESS_CLOSED) {
            cl->irq = NULL;
            nta_incoming_destroy(irq);
        }
        break;
    case sip_method_cancel:
        IM_LOG_INFO("event=cancel_received sid=%016" PRIx64, s->id);
        /* NTA answered the CANCEL before calling here, and answers the
         * INVITE with 487 on return unless it got a final response. */
        s_count(CP_SIP_SENT, 200);
        cp_sip_dispatch(ctx, s, CP_EV_CLIENT_CANCEL, CP_DIR_CLIENT, 0);
        if (nta_incoming_status(irq) < 200)
            s_count(CP_SIP_SENT, 487);
        break;
    default:
        break;
    }
    return 0;
}

/* Retry-After of every 503 the CP sends, seconds. */
#define CP_RETRY_AFTER "5"
/* The 503s of an overload are logged at most once a second per reason:
 * in an INVITE storm a line per refused INVITE would itself be a flood.
 * Each line says how many were not logged since the previous one. */
#define CP_REJECT_LOG_MS 1000

static im_log_limit_t s_reject_log[CP_REJ_COUNT];

/* 503 with Retry-After to an INVITE the CP has no room for, before any
 * state is created for it. */
static int s_reject_503(cp_context_t *ctx, nta_incoming_t *irq,
                        cp_reject_t why)
{
    cp_metrics_invite_rejected(ctx->metrics, why);
    uint64_t suppressed = 0;
    if (im_log_limit(&s_reject_log[why], im_clock_ms(), CP_REJECT_LOG_MS,
                     &suppressed))
        IM_LOG_WARN("event=invite_rejected status=503 why=%s sessions=%zu "
                    "pending=%zu suppressed=%" PRIu64,
                    cp_reject_name(why), cp_sessions_count(ctx->sessions),
                    cp_sessions_pending(ctx->sessions), suppressed);
    return s_reply_final(irq, SIP_503_SERVICE_UNAVAILABLE,
                         SIPTAG_RETRY_AFTER_STR(CP_RETRY_AFTER), TAG_END());
}

static int s_on_invite(cp_context_t *ctx, nta_incoming_t *irq,
                       sip_t const *sip)
{
    /* Capacity first: under a storm a refusal must cost as little as
     * possible (no SDP parsing). */
    if (ctx->stopping)
        return s_reject_503(ctx, irq, CP_REJ_SHUTTING_DOWN);
    if (cp_sessions_count(ctx->sessions) >= ctx->cfg.max_sessions)
        return s_reject_503(ctx, irq, CP_REJ_MAX_SESSIONS);
    if (cp_sessions_pending(ctx->sessions) >= ctx->cfg.max_pending)
        return s_reject_503(ctx, irq, CP_REJ_MAX_PENDING);
    if (!sip->sip_payload || !sip->sip_content_type ||
        !su_casematch(sip->sip_content_type->c_type, "application/sdp")) {
        cp_metrics_invite_rejected(ctx->metrics, CP_REJ_NO_OFFER);
        IM_LOG_INFO("event=invite_rejected status=488 why=no_sdp_offer");
        return s_reply_488(irq, "INVITE has no SDP offer");
    }
    cp_sdp_info_t info;
    char err[160];
    if (cp_sdp_inspect(sip->sip_payload->pl_data, sip->sip_payload->pl_len,
                       &info, err, sizeof(err)) < 0) {
        cp_metrics_invite_rejected(ctx->metrics, CP_REJ_BAD_OFFER);
        char q[200];
        IM_LOG_INFO("event=invite_rejected status=488 why=%s",
                    im_log_quote(q, sizeof(q), err));
        return s_reply_488(irq, err);
    }
    cp_st_msg_t m;
    cp_st_uas_answer_t a;
    cp_st_from_sip(sip, &m);
    cp_st_uas_answer(&ctx->st, &m, &a);
    if (a.status == 422) {
        cp_metrics_invite_rejected(ctx->metrics, CP_REJ_INTERVAL);
        IM_LOG_INFO("event=invite_rejected status=422 min_se=%u se=%u",
                    a.min_se, m.se);
        return s_reply_422(irq, a.min_se);
    }
    cp_worker_t *w = cp_pool_pick(ctx->pool);
    if (!w)
        return s_reject_503(ctx, irq, CP_REJ_NO_LIVE_WORKER);
    cp_session_t *s = cp_session_new(ctx->sessions);
    if (!s)
        return s_reply_final(irq, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
    s->owner = ctx;
    snprintf(s->worker, sizeof(s->worker), "%s", w->id);
    w->sessions++;
    cp_metrics_worker_sync(ctx->metrics, w);
    s->call_id = cp_session_strdup(s, sip->sip_call_id->i_id);
    s->client_sdp = s_strndup(sip->sip_payload->pl_data,
                              sip->sip_payload->pl_len);
    cp_leg_t *cl = &s->legs[CP_DIR_CLIENT];
    im_timer_init(&cl->st_timer, s_on_st_timer, s);
    im_timer_init(&s->legs[CP_DIR_CONTROLLING].st_timer, s_on_st_timer, s);
    cl->tcp = s_via_is_tcp(sip);
    cl->contact = s_contact(cl->tcp);
    cl->se = a.se;
    cl->st_role = a.role;
    cl->peer_allows_update =
        sip->sip_allow && sip_is_allowed(sip->sip_allow, SIP_METHOD_UPDATE);
    cp_session_strset(s, &cl->peer_path, info.path);
    /* The worker waits for the client's connection unless the client asked
     * to be the passive end. */
    cp_session_strset(s, &cl->peer_setup,
                      su_casematch(info.setup, "passive") ? "passive"
                                                          : "active");
    /* The client leg's dialog, RFC 3261 12.1.1: our To is the INVITE's
     * To, the remote target its Contact (its From URI without one). */
    su_home_t home[1] = {SU_HOME_INIT(home)};
    cl->call_id = s->call_id;
    cl->tag_nonce = su_random();
    cl->remote_cseq = sip->sip_cseq->cs_seq;
    cl->local_uri =
        cp_session_strdup(s, cp_dialog_name_addr(home, sip->sip_to));
    cl->remote_uri =
        cp_session_strdup(s, cp_dialog_name_addr(home, sip->sip_from));
    cl->remote_tag = cp_session_strdup(s, sip->sip_from->a_tag);
    cl->route = cp_session_strdup(
        s, cp_dialog_route_set(home, sip->sip_record_route, false));
    s_leg_target(s, cl, sip->sip_contact);
    if (!cl->target)
        cl->target = cp_session_strdup(
            s, url_as_string(home, sip->sip_from->a_url));
    bool incomplete = !cl->local_uri || !cl->remote_uri || !cl->target ||
                      (sip->sip_from->a_tag && !cl->remote_tag) ||
                      (sip->sip_record_route && !cl->route);
    su_home_deinit(home);
    if (!s->call_id || !s->client_sdp || !cl->contact || !cl->peer_path ||
        !cl->peer_setup || incomplete) {
        char q[200];
        IM_LOG_ERROR("event=session_create_failed call_id=%s",
                     im_log_quote(q, sizeof(q), s->call_id ? s->call_id : ""));
        s_reply_final(irq, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
        s->state = CP_SESS_TERMINATING;
        cp_sip_ops.closed(ctx, s);
        return 0;
    }
    char ltag[CP_DIALOG_TAG_LEN + 1];
    s_local_tag(s, CP_DIR_CLIENT, ltag);
    nta_incoming_tag(irq, ltag);
    cl->irq = irq;
    nta_incoming_bind(irq, s_client_irq_cb, s);
    s_treply(irq, SIP_100_TRYING, TAG_END());
    im_metric_inc(ctx->metrics->sessions_total);
    s_session_gauges(ctx);
    char q[200];
    IM_LOG_INFO("event=session_created sid=%016" PRIx64 " call_id=%s "
                "worker=%s transport=%s client_se=%u client_role=%s",
                s->id, im_log_quote(q, sizeof(q), s->call_id), s->worker,
                cl->tcp ? "tcp" : "udp", cl->se, cp_st_role_name(cl->st_role));
    uint64_t id = s->id;
    for (int d = 0; d < CP_DIR_COUNT; d++) {
        s->legs[d].media = CP_MEDIA_ALLOCATING;
        if (cp_sip_ops.allocate(ctx, s, (cp_dir_t)d) < 0) {
            if (cp_session_dispatch(s, CP_EV_ALLOC_FAILED, (cp_dir_t)d, 0,
                                    &cp_sip_ops, ctx) == CP_SESS_CLOSED ||
                !cp_session_find(ctx->sessions, id))
                return 0;
        }
    }
    return 0;
}

/* A request with a To tag: to the dialog the tag names, if it is live and
 * the Call-ID and the peer's tag match (RFC 3261 12.2.2). */
static int s_in_dialog(cp_context_t *ctx, nta_incoming_t *irq,
                       sip_t const *sip)
{
    sip_method_t method = sip->sip_request->rq_method;
    cp_leg_t *leg = s_leg_of_tag(ctx, sip->sip_to->a_tag);
    if (leg && (strcmp(sip->sip_call_id->i_id, leg->call_id) != 0 ||
                (leg->remote_tag && (!sip->sip_from->a_tag ||
                                     strcmp(sip->sip_from->a_tag,
                                            leg->remote_tag) != 0))))
        leg = NULL;
    if (!leg) {
        if (method == sip_method_ack)
            return 0;
        return s_reply_final(irq, SIP_481_NO_TRANSACTION, TAG_END());
    }
    if (method != sip_method_ack && method != sip_method_cancel) {
        uint32_t cseq = sip->sip_cseq->cs_seq;
        if (leg->remote_cseq && cseq < leg->remote_cseq)
            return s_reply_final(irq, 500, "Request Out of Order",
                                 SIPTAG_RETRY_AFTER_STR("0"), TAG_END());
        leg->remote_cseq = cseq;
    }
    return s_on_dialog_request(ctx, s_leg_session(leg), leg->dir, irq, sip);
}

static int s_default_cb(void *magic, nta_leg_t *leg, nta_incoming_t *irq,
                        sip_t const *sip)
{
    cp_context_t *ctx = magic;
    (void)leg;
    if (sip->sip_to && sip->sip_to->a_tag)
        return s_in_dialog(ctx, irq, sip);
    switch (sip->sip_request->rq_method) {
    case sip_method_invite:
        return s_on_invite(ctx, irq, sip);
    case sip_method_options:
        return s_reply_final(irq, SIP_200_OK, SIPTAG_ALLOW_STR(CP_ALLOW),
                             SIPTAG_SUPPORTED_STR("timer"), TAG_END());
    case sip_method_ack:
        return 0;
    case sip_method_bye:
    case sip_method_update:
    case sip_method_cancel:
    case sip_method_prack:
    case sip_method_info:
        return s_reply_final(irq, SIP_481_NO_TRANSACTION, TAG_END());
    default:
        return s_reply_final(irq, SIP_501_NOT_IMPLEMENTED, TAG_END());
    }
}

/* ---- actions of the session machine --------------------------------- */

static int s_op_allocate(void *c, cp_session_t *s, cp_dir_t dir)
{
    return cp_build_allocate(c, s, dir) ? 0 : -EHOSTUNREACH;
}

static int s_op_invite(void *c, cp_session_t *s)
{
    return s_send_invite(c, s, ((cp_context_t *)c)->cfg.session_expires);
}

static int s_op_answer(void *c, cp_session_t *s)
{
    cp_context_t *ctx = c;
    cp_leg_t *cl = &s->legs[CP_DIR_CLIENT];
    if (!cl->irq || !s->ctrl_sdp)
        return -EINVAL;
    const char *setup = su_casematch(cl->peer_setup, "passive") ? "active"
                                                                : "passive";
    cp_sdp_rewrite_t rw = {cl->path, setup, s->id, 1};
    char err[160], *out = NULL;
    cp_session_strfree(s, cl->sdp_out);
    cl->sdp_out = NULL;
    if (cp_sdp_rewrite(s->ctrl_sdp, strlen(s->ctrl_sdp), &rw, &out, err,
                       sizeof(err)) < 0) {
        IM_LOG_WARN("event=sdp_rewrite_failed sid=%016" PRIx64
                    " dir=client why=\"%s\"", s->id, err);
        return -EINVAL;
    }
    cl->sdp_out = cp_session_strdup(s, out);
    free(out);
    if (!cl->sdp_out)
        return -ENOMEM;
    free(s->ctrl_sdp); /* the rewritten answer is what is kept */
    s->ctrl_sdp = NULL;
    /* The client leg's timer was negotiated when its INVITE arrived. */
    char se[48];
    bool peer_refreshes = cl->st_role == CP_ST_ROLE_PEER_REFRESHES;
    snprintf(se, sizeof(se), "%u;refresher=%s", cl->se,
             peer_refreshes ? "uac" : "uas");
    s_treply(
        cl->irq, SIP_200_OK, SIPTAG_CONTACT_STR(cl->contact),
        SIPTAG_SUPPORTED_STR("timer"), SIPTAG_ALLOW_STR(CP_ALLOW),
        TAG_IF(cl->se > 0, SIPTAG_SESSION_EXPIRES_STR(se)),
        TAG_IF(cl->se > 0 && peer_refreshes, SIPTAG_REQUIRE_STR("timer")),
        SIPTAG_CONTENT_TYPE_STR("application/sdp"),
        SIPTAG_PAYLOAD_STR(cl->sdp_out), TAG_END());
    cp_build_connect(ctx, s, CP_DIR_CLIENT);
    cp_build_connect(ctx, s, CP_DIR_CONTROLLING);
    s_st_arm(ctx, s, CP_DIR_CLIENT);
    s_st_arm(ctx, s, CP_DIR_CONTROLLING);
    cp_leg_t *ctrl = &s->legs[CP_DIR_CONTROLLING];
    IM_LOG_INFO("event=session_answered sid=%016" PRIx64 " client_se=%u "
                "client_role=%s controlling_se=%u controlling_role=%s "
                "setup_ms=%" PRIu64,
                s->id, cl->se, cp_st_role_name(cl->st_role), ctrl->se,
                cp_st_role_name(ctrl->st_role),
                im_clock_ms() - s->created_ms);
    return 0;
}

static void s_op_reject(void *c, cp_session_t *s, int status)
{
    (void)c;
    cp_leg_t *cl = &s->legs[CP_DIR_CLIENT];
    if (!cl->irq || nta_incoming_status(cl->irq) >= 200)
        return;
    if (status < 300 || status > 699)
        status = 500;
    IM_LOG_INFO("event=invite_answered_error sid=%016" PRIx64 " status=%d",
                s->id, status);
    s_treply(cl->irq, status, sip_status_phrase(status),
             TAG_IF(status == 503, SIPTAG_RETRY_AFTER_STR(CP_RETRY_AFTER)),
             TAG_END());
}

static void s_op_cancel(void *c, cp_session_t *s)
{
    (void)c;
    cp_leg_t *ctrl = &s->legs[CP_DIR_CONTROLLING];
    if (ctrl->orq && !ctrl->refreshing && nta_outgoing_status(ctrl->orq) < 200)
        nta_outgoing_cancel(ctrl->orq);
}

/* ---- BYE pacing ----------------------------------------------------- */

static void s_bye_gauges(cp_context_t *ctx)
{
    im_metric_set(ctx->metrics->byes_in_flight, (int64_t)s_sip.byes_in_flight);
    im_metric_set(ctx->metrics->byes_queued, (int64_t)s_sip.byes_queued);
}

static void s_bye_enqueue(cp_leg_t *leg, bool with_reason)
{
    if (!s_sip.bye_qtail)
        s_sip.bye_qtail = &s_sip.bye_qhead;
    leg->bye_with_reason = with_reason;
    leg->bye_qnext = NULL;
    leg->bye_qprev = s_sip.bye_qtail;
    *s_sip.bye_qtail = leg;
    s_sip.bye_qtail = &leg->bye_qnext;
    s_sip.byes_queued++;
}

static void s_bye_unqueue(cp_leg_t *leg)
{
    if (!leg->bye_qprev)
        return;
    *leg->bye_qprev = leg->bye_qnext;
    if (leg->bye_qnext)
        leg->bye_qnext->bye_qprev = leg->bye_qprev;
    else
        s_sip.bye_qtail = leg->bye_qprev;
    leg->bye_qnext = NULL;
    leg->bye_qprev = NULL;
    s_sip.byes_queued--;
}

/* The leg's BYE transaction is over (answered, timed out, or dropped with
 * its session): its place in the window is free. */
static void s_bye_finished(cp_leg_t *leg)
{
    if (!leg->bye_in_flight)
        return;
    leg->bye_in_flight = false;
    s_sip.byes_in_flight--;
}

static int s_bye_send(cp_context_t *ctx, cp_session_t *s, cp_dir_t dir,
                      bool with_reason)
{
    cp_leg_t *leg = &s->legs[dir];
    leg->bye = s_leg_request(
        s, dir, NULL, SIP_METHOD_BYE, NULL, ++leg->local_cseq,
        TAG_IF(with_reason, SIPTAG_REASON_STR(CP_REASON_TIMER)), TAG_END());
    if (!leg->bye) {
        IM_LOG_ERROR("event=bye_send_failed sid=%016" PRIx64 " leg=%s", s->id,
                     cp_dir_name(dir));
        return -EIO;
    }
    leg->bye_in_flight = true;
    s_sip.byes_in_flight++;
    im_metric_inc(ctx->metrics->bye_sent_total[dir]);
    IM_LOG_INFO("event=bye_sent sid=%016" PRIx64 " leg=%s cause=%s", s->id,
                cp_dir_name(dir), cp_cause_name(s->cause));
    return 0;
}

/* Sends queued BYEs while the window has room. A BYE that cannot be sent
 * ends like one that failed. */
static void s_bye_pump(cp_context_t *ctx)
{
    while (s_sip.bye_qhead && s_sip.byes_in_flight < ctx->cfg.bye_window) {
        cp_leg_t *leg = s_sip.bye_qhead;
        s_bye_unqueue(leg);
        cp_session_t *s = s_leg_session(leg);
        if (s->state == CP_SESS_CLOSED)
            continue;
        if (s_bye_send(ctx, s, leg->dir, leg->bye_with_reason) < 0)
            cp_sip_dispatch(ctx, s, CP_EV_BYE_DONE, leg->dir, 500);
    }
    s_bye_gauges(ctx);
}

static int s_op_bye(void *c, cp_session_t *s, cp_dir_t dir, bool with_reason)
{
    cp_context_t *ctx = c;
    cp_leg_t *leg = &s->legs[dir];
    if (!leg->call_id)
        return -EINVAL;
    if (leg->refreshing) {
        nta_outgoing_destroy(leg->orq);
        leg->orq = NULL;
        leg->refreshing = false;
    }
    if (s_sip.bye_qhead || s_sip.byes_in_flight >= ctx->cfg.bye_window) {
        s_bye_enqueue(leg, with_reason);
        s_bye_gauges(ctx);
        return 0;
    }
    int rc = s_bye_send(ctx, s, dir, with_reason);
    s_bye_gauges(ctx);
    return rc;
}

static int s_op_release(void *c, cp_session_t *s, cp_dir_t dir, int reason)
{
    cp_context_t *ctx = c;
    int rc = cp_workers_release_leg(ctx, s, dir, reason);
    if (rc < 0)
        return rc;
    im_metric_inc(ctx->metrics->releases_sent_total[dir]);
    IM_LOG_INFO("event=release_sent sid=%016" PRIx64 " direction=%s "
                "reason=%s cause=%s worker=%s",
                s->id, cp_dir_name(dir), im_proto_reason_name(reason),
                cp_cause_name(s->cause), s->worker);
    return 0;
}

static void s_op_stop_timers(void *c, cp_session_t *s)
{
    cp_context_t *ctx = c;
    for (int d = 0; d < CP_DIR_COUNT; d++)
        cp_timer_cancel(ctx->timers, &s->legs[d].st_timer);
}

static void s_reap(im_timer_t *t, void *arg)
{
    (void)t;
    cp_context_t *ctx = arg;
    while (s_sip.graveyard) {
        cp_session_t *s = s_sip.graveyard;
        s_sip.graveyard = s->hnext;
        s->hnext = NULL;
        for (int d = 0; d < CP_DIR_COUNT; d++) {
            cp_leg_t *leg = &s->legs[d];
            cp_timer_cancel(ctx->timers, &leg->st_timer);
            nta_outgoing_destroy(leg->orq);
            nta_outgoing_destroy(leg->bye);
            if (leg->irq) {
                if (nta_incoming_status(leg->irq) < 200)
                    s_treply(leg->irq, SIP_500_INTERNAL_SERVER_ERROR,
                             TAG_END());
                nta_incoming_destroy(leg->irq);
            }
            leg->orq = leg->bye = NULL;
            leg->irq = NULL;
        }
        cp_session_free(ctx->sessions, &s);
    }
    s_bye_pump(ctx);
}

/* Phase one of teardown: out of the table and the worker's count at once;
 * the SIP objects go in s_reap, outside whatever NTA callback we are in. */
static void s_op_closed(void *c, cp_session_t *s)
{
    cp_context_t *ctx = c;
    s->state = CP_SESS_CLOSED;
    s_op_stop_timers(c, s);
    /* Its BYEs leave the queue and the window (s_reap sends the next). */
    for (int d = 0; d < CP_DIR_COUNT; d++) {
        s_bye_unqueue(&s->legs[d]);
        s_bye_finished(&s->legs[d]);
    }
    cp_workers_session_closed(ctx, s);
    s_session_gauges(ctx);
    IM_LOG_INFO("event=session_closed sid=%016" PRIx64 " cause=%s "
                "client_release=%s controlling_release=%s duration_ms=%" PRIu64,
                s->id, cp_cause_name(s->cause),
                im_proto_reason_name(s->legs[CP_DIR_CLIENT].release_reason),
                im_proto_reason_name(s->legs[CP_DIR_CONTROLLING].release_reason),
                im_clock_ms() - s->created_ms);
    s->hnext = s_sip.graveyard;
    s_sip.graveyard = s;
    if (!im_timer_armed(&s_sip.reap))
        cp_timer_arm_in(ctx->timers, &s_sip.reap, 0);
}

const cp_session_ops_t cp_sip_ops = {
    .allocate = s_op_allocate,
    .invite = s_op_invite,
    .answer = s_op_answer,
    .reject = s_op_reject,
    .cancel = s_op_cancel,
    .bye = s_op_bye,
    .release = s_op_release,
    .stop_timers = s_op_stop_timers,
    .closed = s_op_closed,
};

/* ---- agent ---------------------------------------------------------- */

/* "udp:HOST:PORT" -> "sip:HOST:PORT;transport=udp" and a Contact. */
static int s_listener_url(const char *spec, char *url, size_t url_size,
                          bool *tcp)
{
    const char *colon = strchr(spec, ':');
    if (!colon)
        return -EINVAL;
    size_t tlen = (size_t)(colon - spec);
    if (tlen == 3 && su_casenmatch(spec, "udp", 3))
        *tcp = false;
    else if (tlen == 3 && su_casenmatch(spec, "tcp", 3))
        *tcp = true;
    else
        return -EINVAL;
    if (!colon[1])
        return -EINVAL;
    int n = snprintf(url, url_size, "sip:%s;transport=%s", colon + 1,
                     *tcp ? "tcp" : "udp");
    return n > 0 && (size_t)n < url_size ? 0 : -EINVAL;
}

int cp_sip_start(cp_context_t *ctx)
{
    memset(&s_sip, 0, sizeof(s_sip));
    s_sip.ctx = ctx;
    su_home_init(s_sip.home);
    im_timer_init(&s_sip.reap, s_reap, ctx);
    if (ctx->cfg.next_hop) {
        s_sip.next_hop = url_make(s_sip.home, ctx->cfg.next_hop);
        if (!s_sip.next_hop || s_sip.next_hop->url_type != url_sip) {
            IM_LOG_ERROR("event=config_error option=next-hop value=%s",
                         ctx->cfg.next_hop);
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < ctx->cfg.sip.count; i++) {
        char url[200];
        bool tcp;
        if (s_listener_url(ctx->cfg.sip.items[i], url, sizeof(url), &tcp) < 0) {
            IM_LOG_ERROR("event=config_error option=sip value=%s",
                         ctx->cfg.sip.items[i]);
            return -EINVAL;
        }
        const char *hostport = strchr(ctx->cfg.sip.items[i], ':') + 1;
        char *contact = tcp ? s_sip.contact_tcp : s_sip.contact_udp;
        if (!contact[0])
            snprintf(contact, sizeof(s_sip.contact_tcp),
                     "<sip:imsplit@%s%s>", hostport,
                     tcp ? ";transport=tcp" : "");
        if (i == 0) {
            ctx->agent = nta_agent_create(
                ctx->root, (url_string_t *)url, NULL, NULL, NTATAG_UA(1),
                NTATAG_SIP_T1(ctx->cfg.sip_t1),
                /* NTA keeps Timer F/H (64*T1) as a setting of its own. */
                NTATAG_SIP_T1X64(64 * ctx->cfg.sip_t1), NTATAG_CANCEL_487(1),
                NTATAG_SERVER_RPORT(1), NTATAG_MAX_PROCEEDING(500000),
                TPTAG_TIMEOUT(CP_SIP_INCOMPLETE_MS),
                TPTAG_UDP_RMEM(CP_SIP_UDP_RMEM),
                TPTAG_UDP_WMEM(CP_SIP_UDP_WMEM), TAG_END());
            if (!ctx->agent) {
                IM_LOG_ERROR("event=sip_listen_failed url=%s err=\"%s\"", url,
                             strerror(errno));
                return -EADDRINUSE;
            }
        } else if (nta_agent_add_tport(ctx->agent, (url_string_t *)url,
                                       TPTAG_TIMEOUT(CP_SIP_INCOMPLETE_MS),
                                       TPTAG_UDP_RMEM(CP_SIP_UDP_RMEM),
                                       TPTAG_UDP_WMEM(CP_SIP_UDP_WMEM),
                                       TAG_END()) < 0) {
            IM_LOG_ERROR("event=sip_listen_failed url=%s err=\"%s\"", url,
                         strerror(errno));
            return -EADDRINUSE;
        }
        IM_LOG_INFO("event=sip_listening url=%s", url);
    }
    s_sip.default_leg = nta_leg_tcreate(ctx->agent, s_default_cb, ctx,
                                        NTATAG_NO_DIALOG(1), TAG_END());
    return s_sip.default_leg ? 0 : -ENOMEM;
}

static void s_shutdown_one(cp_session_t *s, void *arg)
{
    cp_sip_dispatch(arg, s, CP_EV_SHUTDOWN, CP_DIR_CLIENT, 0);
}

void cp_sip_shutdown_sessions(cp_context_t *ctx)
{
    cp_sessions_foreach(ctx->sessions, s_shutdown_one, ctx);
}

/* Sessions still open when the CP gives up waiting: the legs that are
 * ready on the worker are released without waiting for the answer (the
 * control socket lingers a moment to get them out), so a worker is not
 * left holding them until it meets the next CP. */
static void s_force_close(cp_session_t *s, void *arg)
{
    cp_context_t *ctx = arg;
    IM_LOG_WARN("event=session_abandoned sid=%016" PRIx64 " state=%s", s->id,
                cp_sess_state_name(s->state));
    for (int d = 0; d < CP_DIR_COUNT; d++) {
        cp_leg_t *leg = &s->legs[d];
        if (leg->media == CP_MEDIA_READY && ctx->path) {
            leg->media = CP_MEDIA_RELEASING;
            (void)s_op_release(ctx, s, (cp_dir_t)d, CP_REL_SHUTDOWN);
        }
    }
    s_op_closed(ctx, s);
}

void cp_sip_stop(cp_context_t *ctx)
{
    if (ctx->sessions)
        cp_sessions_foreach(ctx->sessions, s_force_close, ctx);
    s_reap(NULL, ctx);
    if (ctx->timers)
        cp_timer_cancel(ctx->timers, &s_sip.reap);
    nta_leg_destroy(s_sip.default_leg);
    s_sip.default_leg = NULL;
    if (ctx->agent) {
        nta_agent_destroy(ctx->agent);
        ctx->agent = NULL;
    }
    su_home_deinit(s_sip.home);
}
