/* im_zmq: socket setup shared by the CP, the workers and imsplit-ctl. */
#ifndef IM_ZMQ_H
#define IM_ZMQ_H

#include <stddef.h>
#include <stdint.h>

#include "im_curve.h"

/* CURVE settings for one socket; keys are binary (im_curve_key_load).
 * libzmq copies them when the socket is created, so the struct may be
 * cleared (im_curve_key_clear) as soon as the call returns. */
typedef struct {
    im_curve_key_t secret_key; /* own secret key (ROUTER and DEALER) */
    im_curve_key_t public_key; /* DEALER: own public key */
    im_curve_key_t server_key; /* DEALER: the ROUTER's public key */
    const char *zap_domain;    /* ROUTER: ZAP domain, non-empty */
} im_zmq_curve_t;

/* High-water mark (messages) of every socket, both ways, unless a caller
 * sets another: high enough that a burst (an expiry storm of 10k sessions
 * is 20k ReleaseLegs) never reaches it. At the mark a ROUTER with
 * ROUTER_MANDATORY fails sends to that peer with EAGAIN. */
#define IM_ZMQ_HWM 100000

/* A ROUTER bound to endpoint with ROUTER_MANDATORY, ROUTER_HANDOVER,
 * LINGER 0, HANDSHAKE_IVL, MAXMSGSIZE = IM_PROTO_MAX_FRAME. NULL on error
 * (errno set, reason logged). Same as im_zmq_router_bind_opts(.., NULL). */
void *im_zmq_router_bind(void *ctx, const char *endpoint);
/* As im_zmq_router_bind; with `curve` non-NULL the ROUTER is a CURVE server
 * (CURVE_SERVER, CURVE_SECRETKEY, ZAP_DOMAIN and ZAP_ENFORCE_DOMAIN, all set
 * before the bind). ZAP_ENFORCE_DOMAIN makes every handshake fail unless a
 * ZAP handler is bound in ctx, so start one first (im_zap_start): CURVE
 * alone would admit any client that knows the server's public key. */
void *im_zmq_router_bind_opts(void *ctx, const char *endpoint,
                              const im_zmq_curve_t *curve);
/* As im_zmq_router_bind_opts, with `sndhwm` messages queued per peer at
 * most (instead of IM_ZMQ_HWM): what a peer that stops reading can make
 * the ROUTER hold, on top of the kernel's socket buffers. */
void *im_zmq_router_bind_hwm(void *ctx, const char *endpoint,
                             const im_zmq_curve_t *curve, int sndhwm);
/* A DEALER with the given routing id connected to endpoint, same options.
 * Same as im_zmq_dealer_connect_opts(.., NULL). */
void *im_zmq_dealer_connect(void *ctx, const char *endpoint,
                            const char *routing_id);
/* As im_zmq_dealer_connect; with `curve` non-NULL the DEALER is a CURVE
 * client (CURVE_SERVERKEY, CURVE_PUBLICKEY, CURVE_SECRETKEY set before the
 * connect). A refused handshake is not reported: messages stay queued while
 * the socket keeps reconnecting. */
void *im_zmq_dealer_connect_opts(void *ctx, const char *endpoint,
                                 const char *routing_id,
                                 const im_zmq_curve_t *curve);
/* Fills a client's CURVE settings from key arguments (key file or Z85
 * text, see im_curve_key_load): the CP's public key and the client's own
 * secret key, from which its public key is derived. 0, or -errno with the
 * reason in err. Clear the struct (im_zmq_curve_clear) when done. */
int im_zmq_curve_client_load(im_zmq_curve_t *out, const char *server_key_arg,
                             const char *secret_arg, char *err,
                             size_t errlen);
void im_zmq_curve_clear(im_zmq_curve_t *curve);

/* Closes the socket and NULLs the pointer. NULL-safe. */
void im_zmq_close(void **sock_p);
/* True if the socket has a message waiting (ZMQ_EVENTS & ZMQ_POLLIN). */
int im_zmq_readable(void *sock);

#endif
