#include "ctl_peer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <zmq.h>

#include "ctl_script.h"
#include "im_clock.h"
#include "im_proto.h"
#include "im_zmq.h"

#define S_BACKLOG_MAX 10000u
#define S_PEERS_MAX 256u
#define S_PEER_ID_MAX 255u
/* A routing id as the script names it: as it is, or 0x + hex. */
#define S_PEER_NAME_MAX (2 * S_PEER_ID_MAX + 2)
#define S_HEARTBEAT_DEFAULT_MS 1000u
/* How long a send may wait for room in the socket's queue. */
#define S_SEND_WAIT_MS 1000u
/* How long queued messages may take to leave after the script ended. */
#define S_LINGER_MS 500

typedef struct {
    im_env_t *env;
    char *peer;
    uint64_t t_ms;
} s_rx_t;

typedef struct {
    const ctl_peer_opts_t *o;
    bool cp;
    void *zctx;
    void *sock;
    uint64_t t0;
    uint64_t seq; /* the last seq the tool gave out */
    uint64_t epoch;
    const char *id;
    ctl_script_t *script;
    ctl_vars_t *vars;
    s_rx_t *backlog;
    size_t nbacklog;
    size_t capbacklog;
    bool hb_on;
    uint32_t hb_ms;      /* explicit interval, 0: none */
    uint32_t hb_learned; /* from a register_ack, 0: none */
    uint64_t hb_next;    /* clock ms */
    bool registered;     /* worker: a register_ack arrived */
    char *peers[S_PEERS_MAX];
    size_t npeers;
    char last_peer[S_PEER_NAME_MAX + 1];
    const ctl_cmd_t *cmd; /* the line running, for messages */
} s_peer_t;

static uint64_t s_t(const s_peer_t *p)
{
    return im_clock_ms() - p->t0;
}

static void s_line_fail(const s_peer_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "imsplit-ctl: FILE:LINE: CMD: reason" on stderr. */
static void s_line_fail(const s_peer_t *p, const char *fmt, ...)
{
    va_list ap;

    if (p->cmd)
        fprintf(stderr, "imsplit-ctl: %s:%u: %s: ", p->script->name,
                p->cmd->line, ctl_cmd_name(p->cmd->kind));
    else
        fprintf(stderr, "imsplit-ctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- output ----------------------------------------------------------- */

static void s_json_str(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

enum {
    S_F_RESEND = 1,
    S_F_AUTO = 2,
    S_F_DROPPED = 4,
};

static void s_print(const s_peer_t *p, const char *dir, uint64_t t_ms,
                    const char *peer, const im_env_t *env, unsigned flags)
{
    char *json = im_proto_to_json(env);

    printf("{\"dir\":\"%s\",\"t_ms\":%" PRIu64, dir, t_ms);
    if (p->cp && peer) {
        printf(",\"peer\":");
        s_json_str(stdout, peer, strlen(peer));
    }
    if (flags & S_F_RESEND)
        printf(",\"resend\":true");
    if (flags & S_F_AUTO)
        printf(",\"auto\":true");
    if (flags & S_F_DROPPED)
        printf(",\"dropped\":true");
    printf(",\"env\":%s}\n", json ? json : "null");
    fflush(stdout);
    free(json);
}

static void s_print_bad(const s_peer_t *p, const char *peer, const char *kind,
                        const char *why, size_t len)
{
    printf("{\"dir\":\"in\",\"t_ms\":%" PRIu64, s_t(p));
    if (p->cp && peer) {
        printf(",\"peer\":");
        s_json_str(stdout, peer, strlen(peer));
    }
    printf(",\"error\":");
    s_json_str(stdout, kind, strlen(kind));
    printf(",\"why\":");
    s_json_str(stdout, why, strlen(why));
    printf(",\"len\":%zu}\n", len);
    fflush(stdout);
}

/* ---- sending ------------------------------------------------------------ */

/* Waits (bounded) for room when the queue is full; ROUTER_MANDATORY makes
 * a send to a peer that is not connected fail with EHOSTUNREACH. */
static int s_send_part(void *sock, const void *data, size_t len, int flags)
{
    uint64_t deadline = im_clock_ms() + S_SEND_WAIT_MS;

    for (;;) {
        if (zmq_send(sock, data, len, flags | ZMQ_DONTWAIT) >= 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        uint64_t now = im_clock_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLOUT};
        if (zmq_poll(&item, 1, (long)(deadline - now)) < 0 && errno != EINTR)
            return -errno;
    }
}

static int s_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Routing ids of printable ASCII are named as they are; any other (such as
 * the ids ZeroMQ makes up, which start with a NUL) as 0x + hex. */
static void s_peer_name(const uint8_t *id, size_t n, char *out)
{
    bool plain = n > 0;

    for (size_t i = 0; i < n; i++)
        if (id[i] < 0x21 || id[i] > 0x7e)
            plain = false;
    if (plain) {
        memcpy(out, id, n);
        out[n] = '\0';
        return;
    }
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 + 2 * i, 3, "%02x", id[i]);
    out[2 + 2 * n] = '\0';
}

/* The routing id a peer name stands for (see s_peer_name). */
static size_t s_peer_id(const char *name, uint8_t *id)
{
    size_t n = strlen(name);

    if (n > 2 && n % 2 == 0 && name[0] == '0' && name[1] == 'x' &&
        (n - 2) / 2 <= S_PEER_ID_MAX) {
        size_t k;
        for (k = 0; k < (n - 2) / 2; k++) {
            int hi = s_hex(name[2 + 2 * k]), lo = s_hex(name[3 + 2 * k]);
            if (hi < 0 || lo < 0)
                break;
            id[k] = (uint8_t)(hi << 4 | lo);
        }
        if (k == (n - 2) / 2)
            return k;
    }
    if (n > S_PEER_ID_MAX)
        n = S_PEER_ID_MAX;
    memcpy(id, name, n);
    return n;
}

static int s_send_frame(s_peer_t *p, const char *peer, const uint8_t *bytes,
                        size_t len)
{
    int rc;

    if (p->cp) {
        uint8_t id[S_PEER_ID_MAX];
        size_t n = s_peer_id(peer, id);
        rc = s_send_part(p->sock, id, n, ZMQ_SNDMORE);
        if (rc < 0)
            return rc;
    }
    return s_send_part(p->sock, bytes, len, 0);
}

static const char *s_send_error(int rc)
{
    if (rc == -EHOSTUNREACH)
        return "peer not connected";
    if (rc == -ETIMEDOUT)
        return "send queue full";
    return zmq_strerror(-rc);
}

/* Packs, sends and prints env. On success *bytes_out (if given) takes the
 * frame. */
static int s_send_env(s_peer_t *p, const im_env_t *env, const char *peer,
                      unsigned flags, uint8_t **bytes_out, size_t *len_out)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = im_proto_pack(env, &bytes, &len);

    if (rc < 0)
        return rc;
    rc = s_send_frame(p, peer, bytes, len);
    if (rc == 0)
        s_print(p, "out", s_t(p), peer, env, flags);
    if (rc == 0 && bytes_out) {
        *bytes_out = bytes;
        *len_out = len;
    } else {
        free(bytes);
    }
    return rc;
}

/* ---- heartbeats ------------------------------------------------------------
 */

static uint32_t s_hb_interval(const s_peer_t *p)
{
    if (p->hb_ms)
        return p->hb_ms;
    if (p->hb_learned)
        return p->hb_learned;
    return S_HEARTBEAT_DEFAULT_MS;
}

static bool s_hb_active(const s_peer_t *p)
{
    return p->hb_on && (p->cp ? p->npeers > 0 : p->registered);
}

static void s_hb_send(s_peer_t *p, const char *peer)
{
    im_env_t *env = im_env_new();
    int rc = -ENOMEM;

    if (env &&
        im_proto_set_field(&env->base, "sender_id", p->id, NULL, 0) == 0 &&
        im_proto_set_field(&env->base, "heartbeat", "{}", NULL, 0) == 0) {
        env->sender_epoch = p->epoch;
        env->seq = ++p->seq;
        rc = s_send_env(p, env, peer, S_F_AUTO, NULL, NULL);
    }
    if (rc < 0)
        fprintf(stderr, "imsplit-ctl: heartbeat to %s not sent: %s\n",
                peer ? peer : "the CP", s_send_error(rc));
    im_proto_free(env);
}

static void s_hb_tick(s_peer_t *p)
{
    uint64_t now = im_clock_ms();

    if (!s_hb_active(p) || now < p->hb_next)
        return;
    if (p->cp) {
        for (size_t i = 0; i < p->npeers; i++)
            s_hb_send(p, p->peers[i]);
    } else {
        s_hb_send(p, NULL);
    }
    p->hb_next = now + s_hb_interval(p);
}

/* ---- receiving -------------------------------------------------------------
 */

static void s_rx_free(s_rx_t *rx)
{
    im_proto_free(rx->env);
    free(rx->peer);
    rx->env = NULL;
    rx->peer = NULL;
}

static void s_add_peer(s_peer_t *p, const char *peer)
{
    for (size_t i = 0; i < p->npeers; i++)
        if (strcmp(p->peers[i], peer) == 0)
            return;
    if (p->npeers == S_PEERS_MAX)
        return;
    char *copy = strdup(peer);
    if (copy)
        p->peers[p->npeers++] = copy;
}

/* Reads one message if one is waiting. 1 with *rx filled, 0 when nothing
 * (usable) was waiting, <0 on a socket error. Frames that do not decode
 * are printed and skipped (0). */
static int s_recv(s_peer_t *p, s_rx_t *rx)
{
    char peer[S_PEER_NAME_MAX + 1] = "";
    zmq_msg_t msg;
    bool more;
    int parts = 0;

    if (p->cp) {
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, p->sock, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&msg);
            return e == EAGAIN || e == EINTR ? 0 : -e;
        }
        size_t n = zmq_msg_size(&msg);
        if (n > S_PEER_ID_MAX)
            n = S_PEER_ID_MAX;
        s_peer_name(zmq_msg_data(&msg), n, peer);
        more = zmq_msg_more(&msg);
        zmq_msg_close(&msg);
        if (!more) {
            s_print_bad(p, peer, "no_body_frame", "routing id only", 0);
            return 0;
        }
    }
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, p->sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(&msg);
        return e == EAGAIN || e == EINTR ? 0 : -e;
    }
    more = zmq_msg_more(&msg);
    /* One frame per message is the protocol: the rest is drained. */
    while (more && parts < 64) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        if (zmq_msg_recv(&extra, p->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&extra);
            break;
        }
        more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        parts++;
    }
    if (parts > 0) {
        s_print_bad(p, peer, "extra_frames", "more than one frame",
                    zmq_msg_size(&msg));
        zmq_msg_close(&msg);
        return 0;
    }
    char why[256] = "";
    im_env_t *env = NULL;
    im_proto_err_t perr = im_proto_unpack(
        zmq_msg_data(&msg), zmq_msg_size(&msg), &env, why, sizeof(why));
    size_t len = zmq_msg_size(&msg);
    zmq_msg_close(&msg);
    if (perr != IM_PROTO_OK) {
        s_print_bad(p, peer, im_proto_err_name(perr), why, len);
        im_proto_free(env);
        return 0;
    }
    rx->env = env;
    rx->peer = strdup(peer);
    rx->t_ms = s_t(p);
    if (!rx->peer) {
        s_rx_free(rx);
        return -ENOMEM;
    }
    s_print(p, "in", rx->t_ms, peer, env, 0);

    /* What the peer modes learn from any message, expected or not. */
    if (p->cp) {
        snprintf(p->last_peer, sizeof(p->last_peer), "%s", peer);
        (void)ctl_vars_set(p->vars, "PEER", peer);
        if (env->body_case == IMSPLIT__V1__ENVELOPE__BODY_REGISTER)
            s_add_peer(p, peer);
    } else if (env->body_case == IMSPLIT__V1__ENVELOPE__BODY_REGISTER_ACK) {
        if (!p->registered)
            p->hb_next = im_clock_ms();
        p->registered = true;
        if (env->register_ack->heartbeat_ms)
            p->hb_learned = env->register_ack->heartbeat_ms;
    }
    return 1;
}

static int s_backlog_push(s_peer_t *p, s_rx_t *rx)
{
    if (p->nbacklog == S_BACKLOG_MAX) {
        fprintf(stderr,
                "imsplit-ctl: backlog full (%u messages): "
                "forgetting the oldest\n",
                S_BACKLOG_MAX);
        s_rx_free(&p->backlog[0]);
        memmove(p->backlog, p->backlog + 1,
                (p->nbacklog - 1) * sizeof(*p->backlog));
        p->nbacklog--;
    }
    if (p->nbacklog == p->capbacklog) {
        size_t cap = p->capbacklog ? p->capbacklog * 2 : 64;
        s_rx_t *nb = realloc(p->backlog, cap * sizeof(*nb));
        if (!nb) {
            s_rx_free(rx);
            return -ENOMEM;
        }
        p->backlog = nb;
        p->capbacklog = cap;
    }
    p->backlog[p->nbacklog++] = *rx;
    rx->env = NULL;
    rx->peer = NULL;
    return 0;
}

static void s_backlog_take(s_peer_t *p, size_t i, s_rx_t *out)
{
    *out = p->backlog[i];
    memmove(p->backlog + i, p->backlog + i + 1,
            (p->nbacklog - i - 1) * sizeof(*p->backlog));
    p->nbacklog--;
}

/* The oldest backlog message m matches, taken out into *out. */
static bool s_backlog_find(s_peer_t *p, const ctl_matcher_t *m, s_rx_t *out)
{
    for (size_t i = 0; i < p->nbacklog; i++) {
        if (ctl_matcher_test(m, p->backlog[i].env, p->backlog[i].peer, NULL,
                             0) == 1) {
            s_backlog_take(p, i, out);
            return true;
        }
    }
    return false;
}

/* Receives until the deadline (clock ms), keeping heartbeats going. A
 * message m (may be NULL) matches is handed to the caller in *out (1);
 * others go to the backlog, heartbeats excepted. 0 at the deadline, <0 on
 * a socket error. */
static int s_pump(s_peer_t *p, uint64_t deadline, const ctl_matcher_t *m,
                  s_rx_t *out)
{
    for (;;) {
        s_hb_tick(p);
        uint64_t now = im_clock_ms();
        if (now >= deadline)
            return 0;
        uint64_t until = deadline;
        if (s_hb_active(p) && p->hb_next < until)
            until = p->hb_next > now ? p->hb_next : now;
        zmq_pollitem_t item = {.socket = p->sock, .events = ZMQ_POLLIN};
        int n = zmq_poll(&item, 1, (long)(until - now));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0 || !(item.revents & ZMQ_POLLIN))
            continue;
        /* Everything waiting now, then the heartbeat clock again. */
        for (int k = 0; k < 1000; k++) {
            s_rx_t rx = {0};
            int rc = s_recv(p, &rx);
            if (rc < 0)
                return rc;
            if (rc == 0) {
                if (!im_zmq_readable(p->sock))
                    break;
                continue;
            }
            if (m && ctl_matcher_test(m, rx.env, rx.peer, NULL, 0) == 1) {
                *out = rx;
                return 1;
            }
            if (rx.env->body_case == IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT) {
                s_rx_free(&rx);
                continue;
            }
            if ((rc = s_backlog_push(p, &rx)) < 0)
                return rc;
        }
    }
}

/* ---- commands
 * ---------------------------------------------------------------- */

/* Destination routing id of a send (cp mode): to=, else the peer of the
 * message replied to, else the peer of the last message received. */
static int s_dest(s_peer_t *p, const ctl_cmd_t *c, const char *ref_peer,
                  char **out)
{
    char err[256];

    *out = NULL;
    if (c->to && !p->cp) {
        s_line_fail(p, "to= is for cp mode only");
        return -EINVAL;
    }
    if (!p->cp)
        return 0;
    if (c->to) {
        if (ctl_expand(p->vars, c->to, out, err, sizeof(err)) < 0) {
            s_line_fail(p, "%s", err);
            return -EINVAL;
        }
    } else if (ref_peer && ref_peer[0]) {
        *out = strdup(ref_peer);
    } else if (p->last_peer[0]) {
        *out = strdup(p->last_peer);
    } else {
        s_line_fail(p, "no peer to send to: nothing received yet (give to=ID)");
        return -EINVAL;
    }
    if (!*out) {
        s_line_fail(p, "out of memory");
        return -ENOMEM;
    }
    if (!(*out)[0] || strlen(*out) > S_PEER_NAME_MAX) {
        s_line_fail(p, "bad peer id \"%s\"", *out);
        free(*out);
        *out = NULL;
        return -EINVAL;
    }
    return 0;
}

static int s_do_send(s_peer_t *p, const ctl_cmd_t *c)
{
    ctl_header_t hdr = {p->id, p->epoch, p->seq + 1};
    im_env_t *env = NULL;
    bool seq_used = false;
    char err[512];
    char *peer = NULL;
    uint8_t *bytes = NULL;
    size_t len = 0;
    const char *ref_peer = NULL;
    int rc;

    if (c->kind == CTL_CMD_REPLY) {
        const ctl_msg_t *ref = ctl_vars_msg(p->vars, c->ref);
        if (!ref) {
            s_line_fail(p, "no message saved as %s", c->ref);
            return -EINVAL;
        }
        ref_peer = ref->peer;
    }
    rc = ctl_script_build(c, p->vars, &hdr, &env, &seq_used, err, sizeof(err));
    if (rc < 0) {
        s_line_fail(p, "%s", err);
        return rc;
    }
    if (seq_used)
        p->seq++;
    if ((rc = s_dest(p, c, ref_peer, &peer)) < 0)
        goto out;
    rc = s_send_env(p, env, peer, 0, &bytes, &len);
    if (rc < 0) {
        s_line_fail(p, "send %s to %s: %s",
                    im_proto_body_name((int)env->body_case),
                    peer ? peer : "the CP", s_send_error(rc));
        goto out;
    }
    if (env->body_case == IMSPLIT__V1__ENVELOPE__BODY_REGISTER_ACK &&
        env->register_ack->heartbeat_ms)
        p->hb_learned = env->register_ack->heartbeat_ms;
    if (c->as) {
        rc = ctl_vars_save(p->vars, c->as, env, peer, bytes, len);
        env = NULL;
        bytes = NULL;
        if (rc < 0)
            s_line_fail(p, "out of memory");
    }
out:
    im_proto_free(env);
    free(bytes);
    free(peer);
    return rc;
}

static int s_do_resend(s_peer_t *p, const ctl_cmd_t *c)
{
    const ctl_msg_t *m = ctl_vars_msg(p->vars, c->ref);
    char *peer = NULL;
    int rc;

    if (!m) {
        s_line_fail(p, "no message saved as %s", c->ref);
        return -EINVAL;
    }
    if (!m->bytes) {
        s_line_fail(p, "%s was received, not sent: nothing to resend", c->ref);
        return -EINVAL;
    }
    if ((rc = s_dest(p, c, m->peer, &peer)) < 0)
        return rc;
    rc = s_send_frame(p, peer, m->bytes, m->len);
    if (rc < 0)
        s_line_fail(p, "resend %s to %s: %s", c->ref, peer ? peer : "the CP",
                    s_send_error(rc));
    else
        s_print(p, "out", s_t(p), peer, m->env, S_F_RESEND);
    free(peer);
    return rc;
}

/* Keeps a received message under `as` (or frees it). */
static int s_keep(s_peer_t *p, const ctl_cmd_t *c, s_rx_t *rx)
{
    int rc = 0;

    if (c->as) {
        rc = ctl_vars_save(p->vars, c->as, rx->env, rx->peer, NULL, 0);
        rx->env = NULL;
        if (rc < 0)
            s_line_fail(p, "out of memory");
    }
    s_rx_free(rx);
    return rc;
}

/* Explains a failed expect: what of that body did arrive. */
static void s_explain(s_peer_t *p, const ctl_matcher_t *m)
{
    unsigned shown = 0;
    char why[512];

    for (size_t i = 0; i < p->nbacklog && shown < 3; i++) {
        if ((int)p->backlog[i].env->body_case != ctl_matcher_body(m))
            continue;
        if (ctl_matcher_test(m, p->backlog[i].env, p->backlog[i].peer, why,
                             sizeof(why)) == 1)
            continue;
        fprintf(stderr,
                "imsplit-ctl:   received at t_ms=%" PRIu64 " seq=%" PRIu64
                " but %s\n",
                p->backlog[i].t_ms, p->backlog[i].env->seq, why);
        shown++;
    }
}

static int s_socket_fail(s_peer_t *p, int rc)
{
    s_line_fail(p, "receive: %s", zmq_strerror(-rc));
    return rc;
}

/* The next message matching m: from the backlog, or received before the
 * deadline. 1 found (in *rx), 0 not in time, <0 socket error (reported). */
static int s_next_match(s_peer_t *p, ctl_matcher_t *m, uint64_t deadline,
                        s_rx_t *rx)
{
    if (s_backlog_find(p, m, rx))
        return 1;
    int rc = s_pump(p, deadline, m, rx);
    if (rc < 0)
        s_socket_fail(p, rc);
    return rc;
}

/* The matcher for a line, or <0 with the line failed. */
static int s_matcher(s_peer_t *p, const ctl_cmd_t *c, ctl_matcher_t **m)
{
    char err[512];
    int rc = ctl_matcher_new(c, p->vars, m, err, sizeof(err));
    if (rc < 0)
        s_line_fail(p, "%s", err);
    return rc;
}

static int s_do_expect(s_peer_t *p, const ctl_cmd_t *c)
{
    ctl_matcher_t *m = NULL;
    s_rx_t rx = {0};
    int rc;

    if ((rc = s_matcher(p, c, &m)) < 0)
        return rc;
    rc = s_next_match(p, m, im_clock_ms() + c->within_ms, &rx);
    if (rc == 1) {
        rc = s_keep(p, c, &rx);
    } else if (rc == 0) {
        s_line_fail(p, "no %s matching line %u within %" PRIu32 " ms",
                    im_proto_body_name(c->body_case), c->line, c->within_ms);
        s_explain(p, m);
        rc = -ETIMEDOUT;
    }
    ctl_matcher_destroy(&m);
    return rc;
}

static int s_do_expect_none(s_peer_t *p, const ctl_cmd_t *c)
{
    ctl_matcher_t *m = NULL;
    s_rx_t rx = {0};
    int rc;

    if ((rc = s_matcher(p, c, &m)) < 0)
        return rc;
    rc = s_next_match(p, m, im_clock_ms() + c->within_ms, &rx);
    if (rc == 1) {
        s_line_fail(
            p, "got %s seq=%" PRIu64 " at t_ms=%" PRIu64 " (none expected)",
            im_proto_body_name(c->body_case), rx.env->seq, rx.t_ms);
        s_rx_free(&rx);
        rc = -EEXIST;
    }
    ctl_matcher_destroy(&m);
    return rc;
}

static int s_do_drop(s_peer_t *p, const ctl_cmd_t *c)
{
    ctl_matcher_t *m = NULL;
    uint64_t deadline = im_clock_ms() + c->within_ms;
    int rc;

    if ((rc = s_matcher(p, c, &m)) < 0)
        return rc;
    for (uint32_t i = 0; rc >= 0 && i < c->count; i++) {
        s_rx_t rx = {0};
        rc = s_next_match(p, m, deadline, &rx);
        if (rc == 0) {
            s_line_fail(
                p,
                "dropped %" PRIu32 " of %" PRIu32 " %s within %" PRIu32 " ms",
                i, c->count, im_proto_body_name(c->body_case), c->within_ms);
            rc = -ETIMEDOUT;
        } else if (rc == 1) {
            s_print(p, "drop", s_t(p), rx.peer, rx.env, S_F_DROPPED);
            rc = s_keep(p, c, &rx);
        }
    }
    ctl_matcher_destroy(&m);
    return rc;
}

static void s_do_flush(s_peer_t *p, const ctl_cmd_t *c)
{
    size_t o = 0;

    for (size_t i = 0; i < p->nbacklog; i++) {
        if (!c->body_case || (int)p->backlog[i].env->body_case == c->body_case)
            s_rx_free(&p->backlog[i]);
        else
            p->backlog[o++] = p->backlog[i];
    }
    p->nbacklog = o;
}

static int s_run_cmd(s_peer_t *p, const ctl_cmd_t *c)
{
    char err[512];
    char *text = NULL;
    int rc = 0;

    p->cmd = c;
    switch (c->kind) {
    case CTL_CMD_SEND:
    case CTL_CMD_REPLY: return s_do_send(p, c);
    case CTL_CMD_RESEND: return s_do_resend(p, c);
    case CTL_CMD_EXPECT: return s_do_expect(p, c);
    case CTL_CMD_EXPECT_NONE: return s_do_expect_none(p, c);
    case CTL_CMD_DROP: return s_do_drop(p, c);
    case CTL_CMD_FLUSH: s_do_flush(p, c); return 0;
    case CTL_CMD_SLEEP:
        rc = s_pump(p, im_clock_ms() + c->ms, NULL, NULL);
        return rc < 0 ? s_socket_fail(p, rc) : 0;
    case CTL_CMD_LOG:
    case CTL_CMD_SET:
        rc = ctl_expand(p->vars, c->text, &text, err, sizeof(err));
        if (rc < 0) {
            s_line_fail(p, "%s", err);
            return rc;
        }
        if (c->kind == CTL_CMD_LOG) {
            fprintf(stderr, "# t_ms=%" PRIu64 " %s\n", s_t(p), text);
        } else if (ctl_vars_set(p->vars, c->name, text) < 0) {
            s_line_fail(p, "out of memory");
            rc = -ENOMEM;
        }
        free(text);
        return rc;
    case CTL_CMD_AUTO_HEARTBEAT:
        if (c->on && !p->hb_on)
            p->hb_next = im_clock_ms();
        p->hb_on = c->on;
        if (c->ms)
            p->hb_ms = c->ms;
        return 0;
    }
    return -EINVAL;
}

/* ---- set-up
 * ------------------------------------------------------------------- */

static uint64_t s_random_epoch(void)
{
    uint64_t e = 0;

    if (getrandom(&e, sizeof(e), GRND_NONBLOCK) != (ssize_t)sizeof(e))
        e = im_clock_us() ^ ((uint64_t)getpid() << 32);
    /* Below 2^53 so that any JSON reader keeps it exact. */
    e &= (UINT64_C(1) << 53) - 1;
    return e ? e : 1;
}

static void s_cleanup(s_peer_t *p)
{
    if (p->sock) {
        int linger = S_LINGER_MS;
        zmq_setsockopt(p->sock, ZMQ_LINGER, &linger, sizeof(linger));
    }
    im_zmq_close(&p->sock);
    if (p->zctx)
        zmq_ctx_term(p->zctx);
    for (size_t i = 0; i < p->nbacklog; i++)
        s_rx_free(&p->backlog[i]);
    free(p->backlog);
    for (size_t i = 0; i < p->npeers; i++)
        free(p->peers[i]);
    ctl_vars_destroy(&p->vars);
    ctl_script_destroy(&p->script);
}

int ctl_peer_run(const ctl_peer_opts_t *o)
{
    s_peer_t p = {0};
    char err[1024];
    char num[32];
    int rc = CTL_PEER_EXIT_SETUP;

    p.o = o;
    p.cp = o->mode == CTL_PEER_CP;
    p.id = o->id && o->id[0] ? o->id : (p.cp ? "cp" : "");
    p.epoch = o->epoch ? o->epoch : s_random_epoch();
    p.t0 = im_clock_ms();
    p.hb_ms = o->heartbeat_ms;
    p.hb_on = o->heartbeat_ms > 0;
    p.hb_next = p.t0;

    if (!p.id[0] || strlen(p.id) > S_PEER_ID_MAX) {
        fprintf(stderr, "imsplit-ctl: --id must have 1 to %u bytes\n",
                S_PEER_ID_MAX);
        return CTL_PEER_EXIT_SETUP;
    }
    if (ctl_script_load(o->script, &p.script, err, sizeof(err)) < 0) {
        fprintf(stderr, "imsplit-ctl: %s\n", err);
        /* A script that does not parse is a bad script, not bad setup. */
        return access(o->script, R_OK) == 0 ? CTL_PEER_EXIT_SCRIPT
                                            : CTL_PEER_EXIT_SETUP;
    }
    p.vars = ctl_vars_new();
    snprintf(num, sizeof(num), "%" PRIu64, p.epoch);
    if (!p.vars || ctl_vars_set(p.vars, "ID", p.id) < 0 ||
        ctl_vars_set(p.vars, "EPOCH", num) < 0) {
        fprintf(stderr, "imsplit-ctl: out of memory\n");
        goto out;
    }
    p.zctx = zmq_ctx_new();
    if (!p.zctx) {
        fprintf(stderr, "imsplit-ctl: zmq_ctx_new: %s\n", zmq_strerror(errno));
        goto out;
    }
    p.sock = p.cp ? im_zmq_router_bind(p.zctx, o->endpoint)
                  : im_zmq_dealer_connect_opts(p.zctx, o->endpoint, p.id,
                                               o->curve);
    if (!p.sock) {
        fprintf(stderr, "imsplit-ctl: cannot %s %s: %s\n",
                p.cp ? "bind" : "connect to", o->endpoint, zmq_strerror(errno));
        goto out;
    }
    fprintf(stderr, "# imsplit-ctl %s id=%s epoch=%" PRIu64 " %s %s\n",
            p.cp ? "cp" : "worker", p.id, p.epoch,
            p.cp ? "bound to" : "connected to", o->endpoint);

    rc = CTL_PEER_EXIT_OK;
    for (size_t i = 0; i < p.script->ncmds; i++) {
        if (s_run_cmd(&p, &p.script->cmds[i]) < 0) {
            rc = CTL_PEER_EXIT_SCRIPT;
            break;
        }
    }
    if (rc == CTL_PEER_EXIT_OK)
        fprintf(stderr, "# t_ms=%" PRIu64 " script done\n", s_t(&p));
out:
    s_cleanup(&p);
    return rc;
}
