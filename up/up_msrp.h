/* up_msrp: the worker's MSRP side: one listening socket, incoming
 * connections until they name a leg, outgoing connections to a leg's peer,
 * and the relay between the two legs of a session.
 *
 * Binding. A connection is owned by at most one leg. An accepted one is
 * "unbound" until its first SEND: the last URI of that SEND's To-Path names
 * the leg (by MSRP session id) and the leg takes the connection; an unknown
 * or already connected leg gets a 481 and the connection is closed.
 * Unbound connections that stay silent for UP_MSRP_BIND_MS, send a header
 * block over UP_MSRP_UNBOUND_MAX bytes, or send anything that is not MSRP
 * are closed. ConnectLeg with a passive peer connects out instead and sends
 * an empty SEND at once (RFC 4975 section 5.4, RFC 6135).
 *
 * Accepting. At most --max-unbound connections wait for their first SEND,
 * and they never take the last descriptors under RLIMIT_NOFILE (a reserve
 * beyond the legs' sockets): past either bound each new connection closes
 * the oldest waiting one, so that under a storm of silent connections a
 * client that speaks at once still gets in. When accept() fails with
 * nothing to give back (EMFILE with no waiting connection, no memory) the
 * listener is not watched for a back-off that doubles while it keeps
 * failing. Both are counted and logged at most once a second.
 *
 * Relay (rules in up_relay.h). Input is read into one worker-wide buffer
 * and parsed in place; body bytes are written to the other leg straight
 * from it (uv_try_write of iovecs), and only what the socket does not take
 * at once is copied into a write request. Between reads a connection keeps
 * only the bytes the framer could not finish with (a partial header block
 * or a possible end-line start), so an idle leg holds no buffer.
 *
 * Back-pressure: a connection is read only while the bytes queued towards
 * its own peer and towards the other leg's peer are within --leg-buffer
 * (reads are sized to the room left); it resumes below half of that, from
 * the write callbacks. A request for a leg that cannot be written to yet
 * (no connection, or no peer path before ConnectLeg) is held, unparsed, and
 * its connection is not read: at most one read's worth of bytes waits. If
 * the leg is not ready within --txn-timeout-ms it becomes unreachable:
 * SENDs for it get a per-hop 481 and REPORTs are dropped, until it
 * connects.
 *
 * Answers are per hop and sent when a request's end-line has arrived (so a
 * message that grows past --max-msg mid-chunk can still get its 413). A
 * forwarded SEND that asked for failure reports waits for the next hop's
 * answer; an error answer, or none within --txn-timeout-ms (408), goes back
 * to the sender as a REPORT. Frames never interleave on a connection: an
 * answer for a peer that is receiving a forwarded frame waits for its
 * end-line in the leg's buffer. Answers produced by reading wait there too
 * until the connection has no more to read in this loop turn (a uv_check
 * handle writes what is left at the turn's end), so a sender streaming
 * chunks gets one write of many 200s instead of one per read; a frame
 * forwarded to that leg takes them along first.
 *
 * Teardown: legs close their connections through up_msrp_conn_close()
 * (the leg table's ops) and drop their relay state through
 * up_msrp_leg_released(); up_msrp_close() closes the listener and every
 * connection no leg owns; up_msrp_destroy() frees once the loop has run
 * the closes. */
#ifndef UP_MSRP_H
#define UP_MSRP_H

#include <stddef.h>

#include "up_context.h"
#include "up_leg.h"

#define UP_MSRP_UNBOUND_MAX 4096
#define UP_MSRP_BIND_MS 10000
#define UP_MSRP_CONNECT_MS 10000
/* How far a leg's buffer may grow past --leg-buffer (the leg table's hard
 * limit is the sum): reading stops at --leg-buffer, but the answers to one
 * read's requests may land beyond it. */
#define UP_MSRP_BUFFER_SLACK (128 * 1024)

typedef struct up_msrp up_msrp_t;

/* Binds and listens on cfg.msrp; sets ctx->advertise, ctx->msrp_port and
 * ctx->msrp_address. NULL on error (logged). */
up_msrp_t *up_msrp_new(up_context_t *ctx);
/* Phase one: closes the listener and every connection no leg owns.
 * Idempotent, NULL-safe. */
void up_msrp_close(up_msrp_t *m);
/* Phase two, after a loop run completed the closes. NULL-safe; sets *m_p
 * to NULL. */
void up_msrp_destroy(up_msrp_t **m_p);

/* up_leg_ops_t.conn_close: starts closing a released leg's connection; the
 * leg hears up_legs_conn_closed() from the close callback. */
void up_msrp_conn_close(up_conn_t *conn, void *arg);
/* up_leg_ops_t.released (arg: the up_msrp_t): frees the leg's pending
 * transactions, drops and counts frames in flight towards it, and lets the
 * other direction go on (its requests for this leg now get 481). */
void up_msrp_leg_released(up_leg_t *leg, void *arg);

/* Connects the leg out to the last URI of its peer path and, once
 * connected, sends the SEND that binds the connection at the far end.
 * No-op if the leg has a connection already. Returns 0 when the attempt
 * is under way or has already been reported as failed (LegEvent
 * CONNECT_FAILED), -EINVAL for a peer path that cannot be connected to
 * (none, unparsable, msrps, or a host that is not a numeric address). */
int up_msrp_connect(up_msrp_t *m, up_leg_t *leg);

/* The leg may have become ready to receive (its peer path was set): lets
 * requests held for it go. NULL-safe. */
void up_msrp_leg_ready(up_msrp_t *m, up_leg_t *leg);

/* Connections no leg owns (unbound, or being turned away). */
size_t up_msrp_loose(const up_msrp_t *m);

#endif
