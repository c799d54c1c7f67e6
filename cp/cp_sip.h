/* cp_sip: the B2BUA's SIP side on sofia-sip NTA.
 *
 * Owns the NTA agent, the default leg that receives new INVITEs, the
 * per-session dialog legs and transactions, RFC 4028 timers per leg, and
 * implements the session machine's actions (cp_session_ops_t).
 *
 * NTA runs with NTATAG_UA(1): the stack retransmits our 2xx to INVITE,
 * absorbs their ACKs into the server transaction (reported through the
 * transaction's callback, or a NULL message when no ACK came), and answers
 * 487 after a CANCEL. */
#ifndef CP_SIP_H
#define CP_SIP_H

#include "cp_context.h"
#include "cp_session.h"

int cp_sip_start(cp_context_t *ctx);
/* Ends every session (BYE where a dialog is up) for a graceful stop. */
void cp_sip_shutdown_sessions(cp_context_t *ctx);
/* Frees every remaining session and the agent. */
void cp_sip_stop(cp_context_t *ctx);

/* Feeds an event to a session's machine with the SIP layer's actions. */
void cp_sip_dispatch(cp_context_t *ctx, cp_session_t *s, cp_sess_event_t ev,
                     cp_dir_t dir, int status);

extern const cp_session_ops_t cp_sip_ops;

#endif
