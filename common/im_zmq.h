/* im_zmq: socket setup shared by the CP, the workers and imsplit-ctl. */
#ifndef IM_ZMQ_H
#define IM_ZMQ_H

#include <stddef.h>
#include <stdint.h>

/* A ROUTER bound to endpoint with ROUTER_MANDATORY, ROUTER_HANDOVER,
 * LINGER 0, HANDSHAKE_IVL, MAXMSGSIZE = IM_PROTO_MAX_FRAME. NULL on error
 * (errno set, reason logged). */
void *im_zmq_router_bind(void *ctx, const char *endpoint);
/* A DEALER with the given routing id connected to endpoint, same options. */
void *im_zmq_dealer_connect(void *ctx, const char *endpoint,
                            const char *routing_id);
/* Closes the socket and NULLs the pointer. NULL-safe. */
void im_zmq_close(void **sock_p);
/* True if the socket has a message waiting (ZMQ_EVENTS & ZMQ_POLLIN). */
int im_zmq_readable(void *sock);

#endif
