/* up_msrp: the worker's MSRP side: one listening socket, incoming
 * connections until they name a leg, outgoing connections to a leg's peer,
 * and per-hop answers on bound connections.
 *
 * A connection is owned by at most one leg. An accepted one is "unbound"
 * until its first SEND: the last URI of that SEND's To-Path names the leg
 * (by MSRP session id), the leg takes the connection and the SEND gets a
 * 200; an unknown or already connected leg gets a 481 and the connection
 * is closed. Unbound connections that stay silent for UP_MSRP_BIND_MS,
 * send a header block over UP_MSRP_UNBOUND_MAX bytes, or send anything
 * that is not MSRP are closed.
 *
 * Teardown: legs close their connections through up_msrp_conn_close()
 * (the leg table's ops); up_msrp_close() closes the listener and every
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

/* Connects the leg out to the last URI of its peer path and, once
 * connected, sends the SEND that binds the connection at the far end.
 * No-op if the leg has a connection already. Returns 0 when the attempt
 * is under way or has already been reported as failed (LegEvent
 * CONNECT_FAILED), -EINVAL for a peer path that cannot be connected to
 * (none, unparsable, msrps, or a host that is not a numeric address). */
int up_msrp_connect(up_msrp_t *m, up_leg_t *leg);

/* Connections no leg owns (unbound, or being turned away). */
size_t up_msrp_loose(const up_msrp_t *m);

#endif
