#include "im_zmq.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "im_log.h"
#include "im_proto.h"

/* libzmq 4.3 implements this option in every build, but zmq.h only defines
 * it under ZMQ_BUILD_DRAFT_API. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

static int s_set_int(void *sock, int opt, int value, const char *name,
                     const char *endpoint)
{
    if (zmq_setsockopt(sock, opt, &value, sizeof(value)) == 0)
        return 0;
    int err = errno;
    IM_LOG_ERROR("event=zmq_setsockopt_failed option=%s endpoint=%s err=\"%s\"",
                 name, endpoint, zmq_strerror(err));
    errno = err;
    return -1;
}

static int s_common_opts(void *sock, const char *endpoint, int sndhwm)
{
    int64_t maxmsg = IM_PROTO_MAX_FRAME;

    if (s_set_int(sock, ZMQ_LINGER, 0, "linger", endpoint) < 0 ||
        s_set_int(sock, ZMQ_HANDSHAKE_IVL, 5000, "handshake_ivl", endpoint) < 0 ||
        s_set_int(sock, ZMQ_SNDHWM, sndhwm, "sndhwm", endpoint) < 0 ||
        s_set_int(sock, ZMQ_RCVHWM, IM_ZMQ_HWM, "rcvhwm", endpoint) < 0)
        return -1;
    if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0) {
        int err = errno;
        IM_LOG_ERROR("event=zmq_setsockopt_failed option=maxmsgsize "
                     "endpoint=%s err=\"%s\"", endpoint, zmq_strerror(err));
        errno = err;
        return -1;
    }
    return 0;
}

static int s_set_bytes(void *sock, int opt, const void *value, size_t len,
                       const char *name, const char *endpoint)
{
    if (zmq_setsockopt(sock, opt, value, len) == 0)
        return 0;
    int err = errno;
    IM_LOG_ERROR("event=zmq_setsockopt_failed option=%s endpoint=%s err=\"%s\"",
                 name, endpoint, zmq_strerror(err));
    errno = err;
    return -1;
}

static int s_curve_supported(const char *endpoint)
{
    if (zmq_has("curve"))
        return 0;
    IM_LOG_ERROR("event=zmq_curve_failed endpoint=%s "
                 "err=\"libzmq was built without CURVE\"", endpoint);
    errno = ENOTSUP;
    return -1;
}

static int s_curve_server_opts(void *sock, const char *endpoint,
                               const im_zmq_curve_t *curve)
{
    if (s_curve_supported(endpoint) < 0)
        return -1;
    if (!curve->zap_domain || !curve->zap_domain[0]) {
        IM_LOG_ERROR("event=zmq_curve_failed endpoint=%s "
                     "err=\"no ZAP domain\"", endpoint);
        errno = EINVAL;
        return -1;
    }
    if (s_set_int(sock, ZMQ_CURVE_SERVER, 1, "curve_server", endpoint) < 0 ||
        s_set_bytes(sock, ZMQ_CURVE_SECRETKEY, curve->secret_key.b,
                    sizeof(curve->secret_key.b), "curve_secretkey",
                    endpoint) < 0 ||
        s_set_bytes(sock, ZMQ_ZAP_DOMAIN, curve->zap_domain,
                    strlen(curve->zap_domain), "zap_domain", endpoint) < 0 ||
        s_set_int(sock, ZMQ_ZAP_ENFORCE_DOMAIN, 1, "zap_enforce_domain",
                  endpoint) < 0)
        return -1;
    return 0;
}

static int s_curve_client_opts(void *sock, const char *endpoint,
                               const im_zmq_curve_t *curve)
{
    if (s_curve_supported(endpoint) < 0)
        return -1;
    if (s_set_bytes(sock, ZMQ_CURVE_SERVERKEY, curve->server_key.b,
                    sizeof(curve->server_key.b), "curve_serverkey",
                    endpoint) < 0 ||
        s_set_bytes(sock, ZMQ_CURVE_PUBLICKEY, curve->public_key.b,
                    sizeof(curve->public_key.b), "curve_publickey",
                    endpoint) < 0 ||
        s_set_bytes(sock, ZMQ_CURVE_SECRETKEY, curve->secret_key.b,
                    sizeof(curve->secret_key.b), "curve_secretkey",
                    endpoint) < 0)
        return -1;
    return 0;
}

static void s_close_keep_errno(void *sock)
{
    int err = errno;
    zmq_close(sock);
    errno = err;
}

void *im_zmq_router_bind(void *ctx, const char *endpoint)
{
    return im_zmq_router_bind_opts(ctx, endpoint, NULL);
}

void *im_zmq_router_bind_opts(void *ctx, const char *endpoint,
                              const im_zmq_curve_t *curve)
{
    return im_zmq_router_bind_hwm(ctx, endpoint, curve, IM_ZMQ_HWM);
}

void *im_zmq_router_bind_hwm(void *ctx, const char *endpoint,
                             const im_zmq_curve_t *curve, int sndhwm)
{
    void *sock;

    if (!ctx || !endpoint) {
        errno = EINVAL;
        return NULL;
    }
    sock = zmq_socket(ctx, ZMQ_ROUTER);
    if (!sock) {
        IM_LOG_ERROR("event=zmq_socket_failed type=router endpoint=%s err=\"%s\"",
                     endpoint, zmq_strerror(errno));
        return NULL;
    }
    if (s_common_opts(sock, endpoint, sndhwm) < 0 ||
        s_set_int(sock, ZMQ_ROUTER_MANDATORY, 1, "router_mandatory",
                  endpoint) < 0 ||
        s_set_int(sock, ZMQ_ROUTER_HANDOVER, 1, "router_handover",
                  endpoint) < 0)
        goto fail;
    if (curve && s_curve_server_opts(sock, endpoint, curve) < 0)
        goto fail;
    if (zmq_bind(sock, endpoint) != 0) {
        IM_LOG_ERROR("event=zmq_bind_failed endpoint=%s err=\"%s\"", endpoint,
                     zmq_strerror(errno));
        goto fail;
    }
    return sock;
fail:
    s_close_keep_errno(sock);
    return NULL;
}

void *im_zmq_dealer_connect(void *ctx, const char *endpoint,
                            const char *routing_id)
{
    return im_zmq_dealer_connect_opts(ctx, endpoint, routing_id, NULL);
}

void *im_zmq_dealer_connect_opts(void *ctx, const char *endpoint,
                                 const char *routing_id,
                                 const im_zmq_curve_t *curve)
{
    void *sock;

    if (!ctx || !endpoint) {
        errno = EINVAL;
        return NULL;
    }
    sock = zmq_socket(ctx, ZMQ_DEALER);
    if (!sock) {
        IM_LOG_ERROR("event=zmq_socket_failed type=dealer endpoint=%s err=\"%s\"",
                     endpoint, zmq_strerror(errno));
        return NULL;
    }
    if (s_common_opts(sock, endpoint, IM_ZMQ_HWM) < 0 ||
        s_set_int(sock, ZMQ_RECONNECT_IVL, 100, "reconnect_ivl", endpoint) < 0 ||
        s_set_int(sock, ZMQ_RECONNECT_IVL_MAX, 2000, "reconnect_ivl_max",
                  endpoint) < 0 ||
        /* Queue to a CP that is not up yet instead of failing the send; the
         * protocol's resend covers what is lost. */
        s_set_int(sock, ZMQ_IMMEDIATE, 0, "immediate", endpoint) < 0)
        goto fail;
    if (routing_id && routing_id[0]) {
        size_t n = strlen(routing_id);
        /* ZeroMQ limits routing ids to 255 bytes. */
        if (n > 255 ||
            zmq_setsockopt(sock, ZMQ_ROUTING_ID, routing_id, n) != 0) {
            if (n > 255)
                errno = EINVAL;
            IM_LOG_ERROR("event=zmq_setsockopt_failed option=routing_id "
                         "endpoint=%s err=\"%s\"", endpoint, zmq_strerror(errno));
            goto fail;
        }
    }
    if (curve && s_curve_client_opts(sock, endpoint, curve) < 0)
        goto fail;
    if (zmq_connect(sock, endpoint) != 0) {
        IM_LOG_ERROR("event=zmq_connect_failed endpoint=%s err=\"%s\"",
                     endpoint, zmq_strerror(errno));
        goto fail;
    }
    return sock;
fail:
    s_close_keep_errno(sock);
    return NULL;
}

void im_zmq_close(void **sock_p)
{
    if (!sock_p || !*sock_p)
        return;
    zmq_close(*sock_p);
    *sock_p = NULL;
}

int im_zmq_readable(void *sock)
{
    int events = 0;
    size_t size = sizeof(events);

    if (!sock || zmq_getsockopt(sock, ZMQ_EVENTS, &events, &size) != 0)
        return 0;
    return (events & ZMQ_POLLIN) != 0;
}

int im_zmq_curve_client_load(im_zmq_curve_t *out, const char *server_key_arg,
                             const char *secret_arg, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int rc = im_curve_key_load(server_key_arg, IM_CURVE_PUBLIC,
                               &out->server_key, err, errlen);
    if (rc == 0)
        rc = im_curve_key_load(secret_arg, IM_CURVE_SECRET, &out->secret_key,
                               err, errlen);
    if (rc == 0) {
        rc = im_curve_public_from_secret(&out->secret_key, &out->public_key);
        if (rc < 0)
            snprintf(err, errlen, "cannot derive the public key: %s",
                     strerror(-rc));
    }
    if (rc < 0)
        im_zmq_curve_clear(out);
    return rc;
}

void im_zmq_curve_clear(im_zmq_curve_t *curve)
{
    im_curve_key_clear(&curve->secret_key);
    memset(curve, 0, sizeof(*curve));
}
