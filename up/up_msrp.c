#include "up_msrp.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "im_clock.h"
#include "im_config.h"
#include "im_log.h"
#include "im_msrp_uri.h"
#include "im_proto.h"
#include "up_frame.h"
#include "up_legevent.h"
#include "up_metrics.h"
#include "up_relay.h"
#include "up_timer.h"

/* Connections accepted per wake-up of the listener: a storm of new
 * connections still leaves loop turns to the legs. */
#define UP_MSRP_ACCEPT_BATCH 64
#define UP_MSRP_BACKLOG 511
/* Descriptors kept free of connections that have not sent their first
 * SEND, for what the worker needs besides its legs' sockets (metrics
 * requests, the control channel reconnecting): a storm of silent
 * connections cannot take the last of RLIMIT_NOFILE. */
#define UP_MSRP_FD_RESERVE 64
/* accept() failed with nothing to give back (no unbound connection to
 * close for a descriptor, no memory, an unknown error): the listener rests
 * this long, doubling while it keeps failing, instead of being woken again
 * at once by the same waiting connection. */
#define UP_MSRP_ACCEPT_PAUSE_MIN_MS 100
#define UP_MSRP_ACCEPT_PAUSE_MAX_MS 1600
/* Lines a connection storm can cause: at most one a second per kind, each
 * telling how many were not written. */
#define UP_MSRP_FLOOD_LOG_MS 1000
/* How long a 481 may take to leave before the connection is cut. */
#define UP_MSRP_REJECT_MS 2000
/* Largest read, and the smallest one offered when the queue towards a
 * peer is near its limit. */
#define UP_MSRP_READ_MAX (64 * 1024)
#define UP_MSRP_READ_MIN 4096
/* Rewritten header blocks and answers built during one pass over a
 * connection's input; referenced by the gathered writes until they are
 * flushed. */
#define UP_MSRP_SCRATCH (64 * 1024)
#define UP_MSRP_IOV_MAX 64
/* One pass writes to its own leg and to the other one. */
#define UP_MSRP_GATHERS 2
/* Forwarded SENDs tracked per leg; beyond, they go untracked (no REPORT
 * for them) rather than growing without bound. */
#define UP_MSRP_TXN_MAX 4096
/* Message-IDs refused with 413 remembered per connection. */
#define UP_MSRP_REFUSED 4
/* Smallest allocation for bytes kept between reads. */
#define UP_MSRP_CARRY_MIN 64
/* Body bytes a chunk may run past --max-msg (while its sender has not
 * seen the 413 yet) before the connection is closed. */
#define UP_MSRP_BODY_SLACK (1u << 20)
#define UP_MSRP_RANDOM 512
/* Legs whose answers wait for the end of the loop turn; beyond, a leg's
 * answers go at the end of each pass as they would without batching. */
#define UP_MSRP_DEFER_MAX 64
/* Deferred answers for one leg beyond which they are written at the end
 * of the pass rather than of the turn. */
#define UP_MSRP_DEFER_BYTES 16384

typedef enum {
    C_UNBOUND = 0, /* accepted, waiting for the first SEND */
    C_CONNECTING,  /* outgoing, owned by its leg */
    C_BOUND,       /* owned by its leg */
    C_REJECTING,   /* answered 481, flushing before the close */
    C_CLOSING,     /* uv_close called; only callbacks with ECANCELED left */
} s_conn_state_t;

typedef enum {
    RX_SKIP = 0, /* the body of the current frame goes nowhere */
    RX_FORWARD,  /* ... goes to the other leg */
} s_rx_mode_t;

struct up_conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_shutdown_t shutdown;
    up_msrp_t *m;
    /* The owning leg. Kept through C_CLOSING when the leg was released,
     * so the close callback can tell the table the leg may go; NULL when
     * unbound or when the leg let the connection go (detach). */
    up_leg_t *leg;
    s_conn_state_t state;
    up_frame_t frame;
    /* Input the framer could not finish with, kept between reads. */
    uint8_t *carry;
    size_t carry_len;
    size_t carry_cap;
    size_t queued; /* bytes in write requests libuv has not completed */
    size_t acct;   /* carry_cap + queued, counted for the leg */
    uint64_t pre_bytes; /* read before the connection had a leg */
    im_timer_t timer;   /* bind, connect or reject deadline; idle if bound */
    im_timer_t kick;    /* deferred: a failed write, a held request */
    uint64_t last_io;   /* ms of the last byte read or written */
    uint64_t hold_since; /* ms the current request started waiting */
    const char *broken;  /* a write failed: closes on the next turn */
    bool reading;
    bool held; /* a request waits for the other leg; input not read */
    bool idle_reported;
    /* The frame being received. */
    s_rx_mode_t rx_mode;
    bool rx_send;
    bool rx_body;
    up_fr_t rx_fr;
    unsigned rx_code; /* per-hop answer at its end-line; 0 none */
    bool rx_has_range;
    up_frame_range_t rx_range;
    uint64_t rx_bytes; /* body bytes so far */
    uint64_t rx_hash;  /* of its Message-ID */
    char rx_tid[UP_RELAY_TID_LEN + 1]; /* on the next hop */
    char *rx_to; /* the answer's To-Path: first URI of its From-Path */
    size_t rx_to_len;
    size_t rx_to_cap;
    uint64_t refused[UP_MSRP_REFUSED]; /* ring of Message-ID hashes */
    unsigned refused_n;
    unsigned refused_next;
    struct up_conn *prev_loose; /* newer */
    struct up_conn *next_loose; /* older */
    bool loose;
    uint64_t accepted_ms;
    uint64_t id;
    char peer[64];
};

struct up_txn {
    im_timer_t timer;
    up_txn_t *prev; /* circular, per leg, oldest first */
    up_txn_t *next;
    up_leg_t *leg; /* the leg it went out on */
    up_msrp_t *m;
    uint64_t session_id;
    up_dir_t from_dir; /* where its REPORT goes */
    bool report;       /* a failure goes back as a REPORT */
    bool expect;       /* no answer in time is a failure (408) */
    char tid[UP_RELAY_TID_LEN + 1];
    size_t from_len; /* data: From-Path, Message-ID, Byte-Range */
    size_t mid_len;
    size_t range_len;
    char data[];
};

typedef struct {
    up_leg_t *leg;
    unsigned n;
    size_t bytes;
    uv_buf_t iov[UP_MSRP_IOV_MAX];
} s_gather_t;

/* A leg named across the rest of a loop turn, in which it may be
 * released. */
typedef struct {
    uint64_t session_id;
    up_dir_t dir;
} s_leg_ref_t;

struct up_msrp {
    up_context_t *ctx;
    /* The listening socket is the worker's own (not a libuv stream), so
     * that a failing accept() is seen: libuv would quietly accept and
     * close on EMFILE. */
    int lfd;
    uv_poll_t listener;
    bool listener_open;
    bool closed;
    bool free_on_close;
    im_timer_t accept_timer; /* ends a pause of the listener */
    uint64_t accept_pause_ms; /* last pause; 0 after an accept succeeds */
    uint64_t fd_limit;        /* RLIMIT_NOFILE, read at each wake-up */
    /* Descriptors the process held before any connection (ZeroMQ, the
     * metrics server, the loop), counted at the listener's first wake-up;
     * with the legs' sockets and the reserve, what unbound connections
     * may not take. */
    uint64_t fd_baseline;
    bool fd_baseline_known;
    im_log_limit_t drop_log[UP_DROP_COUNT];
    im_log_limit_t pause_log;
    up_conn_t *loose;      /* newest first */
    up_conn_t *loose_tail; /* oldest */
    size_t nloose;
    uint64_t next_id;
    /* Input of the connection being processed: its carry, then one read. */
    uint8_t *rbuf;
    size_t rbuf_cap;
    /* One pass over a connection's input gathers its writes here and
     * flushes them once, at its end. */
    bool in_pass;
    s_gather_t g[UP_MSRP_GATHERS];
    char *scratch;
    size_t scratch_used;
    uint64_t relayed; /* bytes forwarded during the pass */
    /* Legs with answers deferred to the end of the loop turn (their
     * buffers hold them), and the check handle that writes them then. */
    s_leg_ref_t defer[UP_MSRP_DEFER_MAX];
    size_t ndefer;
    uv_check_t turn_end;
    bool turn_end_open;
    uint8_t rnd[UP_MSRP_RANDOM];
    size_t rnd_off;
};

typedef struct {
    uv_write_t req;
    size_t len;
    char data[];
} s_blk_t;

static void s_process(up_conn_t *c, uint8_t *data, size_t len, bool more);
static void s_flow(up_conn_t *c);
static void s_flow_both(up_conn_t *c);

static up_context_t *s_ctx(const up_conn_t *c)
{
    return c->m->ctx;
}

static void s_sync(up_msrp_t *m)
{
    up_metrics_sync(m->ctx->metrics, m->ctx->legs);
}

static void s_dropped(up_msrp_t *m, size_t n)
{
    if (n)
        im_metric_add(m->ctx->metrics->frames_dropped_total, (int64_t)n);
}

static up_leg_t *s_other(const up_msrp_t *m, const up_leg_t *leg)
{
    return up_legs_find(m->ctx->legs, leg->session_id,
                        leg->dir == UP_DIR_CLIENT ? UP_DIR_CONTROLLING
                                                  : UP_DIR_CLIENT);
}

static bool s_writable(const up_leg_t *leg)
{
    const up_conn_t *c = leg ? leg->conn : NULL;
    return c && c->state == C_BOUND && !c->broken;
}

/* Frames can be forwarded to the leg: it is connected and its peer's path
 * (the To-Path of the next hop) is known. */
static bool s_ready(const up_leg_t *leg)
{
    return s_writable(leg) && leg->peer_path;
}

/* Bytes waiting for the leg's peer: in its buffer and in its socket's
 * write queue. */
static size_t s_queue(const up_leg_t *leg)
{
    return leg->buf_len + (leg->conn ? leg->conn->queued : 0);
}

static size_t s_socket_queue(const up_leg_t *leg)
{
    return leg && leg->conn ? leg->conn->queued : 0;
}

/* ---- random ids ------------------------------------------------------- */

static const char s_alnum[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* Transaction ids must be unguessable: a peer that could predict the one
 * used on the next hop could end a forwarded frame early from inside its
 * own body. getrandom() is called once per pool, not per id. */
static int s_random_id(up_msrp_t *m, char *out, size_t n)
{
    size_t filled = 0;
    while (filled < n) {
        if (m->rnd_off >= sizeof(m->rnd)) {
            ssize_t got = getrandom(m->rnd, sizeof(m->rnd), 0);
            if (got < (ssize_t)sizeof(m->rnd)) {
                if (got < 0 && errno == EINTR)
                    continue;
                return got < 0 ? -errno : -EIO;
            }
            m->rnd_off = 0;
        }
        uint8_t b = m->rnd[m->rnd_off++];
        /* 248 = 4 * 62: rejecting the rest keeps the draw unbiased. */
        if (b < 248)
            out[filled++] = s_alnum[b % 62];
    }
    out[n] = '\0';
    return 0;
}

/* ---- accounting ------------------------------------------------------- */

static void s_acct(up_conn_t *c, int64_t delta)
{
    c->acct = (size_t)((int64_t)c->acct + delta);
    if (c->leg && c->leg->conn == c)
        up_legs_account(s_ctx(c)->legs, c->leg, delta);
}

/* Keeps p[0, n) (inside m->rbuf) for the next pass. */
static int s_keep(up_conn_t *c, const uint8_t *p, size_t n)
{
    if (n == 0) {
        if (c->carry) {
            s_acct(c, -(int64_t)c->carry_cap);
            free(c->carry);
            c->carry = NULL;
            c->carry_cap = 0;
        }
        c->carry_len = 0;
        return 0;
    }
    size_t cap = n < UP_MSRP_CARRY_MIN ? UP_MSRP_CARRY_MIN : n;
    if (cap != c->carry_cap) {
        uint8_t *q = realloc(c->carry, cap);
        if (!q)
            return -ENOMEM;
        s_acct(c, (int64_t)cap - (int64_t)c->carry_cap);
        c->carry = q;
        c->carry_cap = cap;
    }
    memcpy(c->carry, p, n);
    c->carry_len = n;
    return 0;
}

/* ---- connection lifetime ---------------------------------------------- */

static void s_loose_add(up_msrp_t *m, up_conn_t *c)
{
    c->loose = true;
    c->prev_loose = NULL;
    c->next_loose = m->loose;
    if (m->loose)
        m->loose->prev_loose = c;
    else
        m->loose_tail = c;
    m->loose = c;
    m->nloose++;
    im_metric_set(m->ctx->metrics->msrp_conns_unbound, (int64_t)m->nloose);
}

static void s_loose_del(up_msrp_t *m, up_conn_t *c)
{
    if (!c->loose)
        return;
    if (c->prev_loose)
        c->prev_loose->next_loose = c->next_loose;
    else
        m->loose = c->next_loose;
    if (c->next_loose)
        c->next_loose->prev_loose = c->prev_loose;
    else
        m->loose_tail = c->prev_loose;
    c->prev_loose = c->next_loose = NULL;
    c->loose = false;
    m->nloose--;
    im_metric_set(m->ctx->metrics->msrp_conns_unbound, (int64_t)m->nloose);
}

static void s_on_closed(uv_handle_t *h)
{
    up_conn_t *c = h->data;
    up_msrp_t *m = c->m;
    up_leg_t *leg = c->leg;
    free(c->carry);
    free(c->rx_to);
    free(c);
    if (leg)
        up_legs_conn_closed(m->ctx->legs, leg);
}

/* Every path out of a connection ends here. Pending writes are cancelled
 * by libuv (their callbacks run before the close callback). */
static void s_close(up_conn_t *c)
{
    if (c->state == C_CLOSING)
        return;
    c->state = C_CLOSING;
    c->reading = false;
    up_timer_cancel(s_ctx(c)->timers, &c->timer);
    up_timer_cancel(s_ctx(c)->timers, &c->kick);
    s_loose_del(c->m, c);
    uv_close((uv_handle_t *)&c->tcp, s_on_closed);
}

void up_msrp_conn_close(up_conn_t *conn, void *arg)
{
    (void)arg;
    if (conn)
        s_close(conn);
}

/* A connection no leg owns is turned away without an answer. */
static void s_drop(up_conn_t *c, const char *why)
{
    im_metric_inc(s_ctx(c)->metrics->msrp_rejected_total);
    IM_LOG_INFO("event=msrp_conn_closed conn=%" PRIu64 " peer=%s why=%s "
                "bytes=%" PRIu64 " node=%s",
                c->id, c->peer, why, c->pre_bytes, s_ctx(c)->cfg.id);
    s_close(c);
}

/* ---- writing ---------------------------------------------------------- */

static void s_break(up_conn_t *c, const char *why);

static void s_touch(up_conn_t *c)
{
    up_context_t *ctx = s_ctx(c);
    c->last_io = im_clock_ms();
    if (c->idle_reported && ctx->cfg.leg_idle_ms) {
        c->idle_reported = false;
        up_timer_arm_in(ctx->timers, &c->timer, ctx->cfg.leg_idle_ms);
    }
}

static void s_on_written(uv_write_t *req, int status)
{
    s_blk_t *b = (s_blk_t *)req;
    up_conn_t *c = req->data;
    size_t len = b->len;
    free(b);
    c->queued -= len;
    s_acct(c, -(int64_t)len);
    if (c->state != C_BOUND || c->m->in_pass)
        return;
    if (status < 0) {
        if (status != UV_ECANCELED)
            s_break(c, uv_strerror(status));
        return;
    }
    if (!c->leg)
        return;
    /* Room again: this connection, and the one that feeds it, may read. */
    s_flow(c);
    up_leg_t *o = s_other(c->m, c->leg);
    if (o && o->conn)
        s_flow(o->conn);
}

/* Writes iov in order: straight from the caller's memory as far as the
 * socket takes it now, the rest copied into one write request. */
static void s_conn_write(up_conn_t *c, const uv_buf_t *iov, unsigned n,
                         size_t bytes)
{
    if (bytes == 0 || c->state == C_CLOSING || c->broken)
        return;
    size_t done = 0;
    if (c->queued == 0) {
        int r = uv_try_write((uv_stream_t *)&c->tcp, iov, n);
        if (r > 0)
            done = (size_t)r;
        else if (r < 0 && r != UV_EAGAIN && r != UV_ENOSYS) {
            s_break(c, uv_strerror(r));
            return;
        }
    }
    if (c->leg)
        c->leg->counters.bytes_out += bytes;
    s_touch(c);
    if (done == bytes)
        return;
    size_t rest = bytes - done;
    s_blk_t *b = malloc(sizeof(*b) + rest);
    if (!b) {
        s_break(c, "out_of_memory");
        return;
    }
    size_t skip = done, off = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t len = iov[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(b->data + off, iov[i].base + skip, len - skip);
        off += len - skip;
        skip = 0;
    }
    b->len = rest;
    b->req.data = c;
    uv_buf_t one = uv_buf_init(b->data, (unsigned)rest);
    int rc = uv_write(&b->req, (uv_stream_t *)&c->tcp, &one, 1, s_on_written);
    if (rc < 0) {
        free(b);
        s_break(c, uv_strerror(rc));
        return;
    }
    c->queued += rest;
    s_acct(c, (int64_t)rest);
}

static void s_out_stream(up_leg_t *leg, const uv_buf_t *iov, unsigned n,
                         size_t bytes)
{
    if (s_writable(leg))
        s_conn_write(leg->conn, iov, n, bytes);
}

static void s_flush(up_msrp_t *m)
{
    for (size_t i = 0; i < UP_MSRP_GATHERS; i++) {
        s_gather_t *g = &m->g[i];
        if (g->n)
            s_out_stream(g->leg, g->iov, g->n, g->bytes);
        g->leg = NULL;
        g->n = 0;
        g->bytes = 0;
    }
}

/* Room for `need` bytes in the scratch area. Outside a pass nothing refers
 * to it; inside, what was gathered is flushed first if it is full. */
static char *s_scratch(up_msrp_t *m, size_t need)
{
    if (need > UP_MSRP_SCRATCH)
        return NULL;
    if (!m->in_pass) {
        m->scratch_used = 0;
    } else if (UP_MSRP_SCRATCH - m->scratch_used < need) {
        s_flush(m);
        m->scratch_used = 0;
    }
    return m->scratch + m->scratch_used;
}

/* Sends p[0, n) to the leg's peer after everything emitted before. In a
 * pass, p must stay valid until the pass ends (it is in m->rbuf or the
 * scratch area). */
static void s_emit(up_msrp_t *m, up_leg_t *leg, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (p >= m->scratch && p < m->scratch + UP_MSRP_SCRATCH &&
        p + n > m->scratch + m->scratch_used)
        m->scratch_used = (size_t)(p + n - m->scratch);
    if (!m->in_pass) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        s_out_stream(leg, &b, 1, n);
        return;
    }
    s_gather_t *g = NULL;
    for (size_t i = 0; i < UP_MSRP_GATHERS && !g; i++) {
        if (m->g[i].leg == leg)
            g = &m->g[i];
    }
    for (size_t i = 0; i < UP_MSRP_GATHERS && !g; i++) {
        if (!m->g[i].leg)
            g = &m->g[i];
    }
    if (!g || g->n == UP_MSRP_IOV_MAX) {
        s_flush(m);
        g = &m->g[0];
    }
    g->leg = leg;
    uv_buf_t *last = g->n ? &g->iov[g->n - 1] : NULL;
    if (last && last->base + last->len == p) {
        last->len += n;
    } else {
        g->iov[g->n++] = uv_buf_init((char *)p, (unsigned)n);
    }
    g->bytes += n;
}

/* Writes the frames that waited in the leg's buffer (for a forwarded frame
 * to end, or for the end of the turn), and frees the buffer. In a pass
 * they join its gathered writes when the scratch area can hold them. */
static void s_side_flush(up_msrp_t *m, up_leg_t *leg)
{
    if (leg->buf_len == 0) {
        up_legs_buf_free(m->ctx->legs, leg);
        return;
    }
    char *p = m->in_pass ? s_scratch(m, leg->buf_len) : NULL;
    if (p) {
        memcpy(p, leg->buf, leg->buf_len);
        s_emit(m, leg, p, leg->buf_len);
    } else {
        if (m->in_pass)
            s_flush(m);
        uv_buf_t b = uv_buf_init((char *)leg->buf, (unsigned)leg->buf_len);
        s_out_stream(leg, &b, 1, leg->buf_len);
    }
    up_legs_buf_free(m->ctx->legs, leg);
}

static void s_on_turn_end(uv_check_t *h);

/* Puts the leg on the list of those whose answers wait for the end of the
 * turn. false when the list is full: the answer goes with the pass. */
static bool s_defer(up_msrp_t *m, up_leg_t *leg)
{
    if (leg->deferred)
        return true;
    if (m->closed || !m->turn_end_open || m->ndefer == UP_MSRP_DEFER_MAX)
        return false;
    if (m->ndefer == 0 && uv_check_start(&m->turn_end, s_on_turn_end) < 0)
        return false;
    m->defer[m->ndefer].session_id = leg->session_id;
    m->defer[m->ndefer].dir = leg->dir;
    m->ndefer++;
    leg->deferred = true;
    return true;
}

/* Writes every deferred answer (those of a leg receiving a forwarded frame
 * wait for its end-line as before) and lets reading follow the queues. */
static void s_defer_flush(up_msrp_t *m)
{
    size_t n = m->ndefer;
    m->ndefer = 0;
    if (m->turn_end_open)
        (void)uv_check_stop(&m->turn_end);
    for (size_t i = 0; i < n; i++) {
        up_leg_t *leg = up_legs_find(m->ctx->legs, m->defer[i].session_id,
                                     m->defer[i].dir);
        if (!leg || !leg->deferred)
            continue;
        leg->deferred = false;
        if (!leg->out_open)
            s_side_flush(m, leg);
        if (leg->conn)
            s_flow_both(leg->conn);
    }
}

/* Runs after the loop turn's I/O callbacks. */
static void s_on_turn_end(uv_check_t *h)
{
    s_defer_flush(h->data);
}

/* A complete frame of the worker's own (answer, REPORT, empty SEND) for the
 * leg's peer: now, after the frame being forwarded to it ends, or, when it
 * comes from reading (a pass), at the end of the loop turn: libuv reads a
 * busy connection many times per turn, and one write then carries the
 * answers to all of those reads' chunks. */
static void s_out_frame(up_msrp_t *m, up_leg_t *leg, const char *p, size_t n)
{
    if (!s_writable(leg)) {
        s_dropped(m, 1);
        return;
    }
    if (!leg->out_open && !leg->deferred && !(m->in_pass && s_defer(m, leg))) {
        s_emit(m, leg, p, n);
        return;
    }
    if (up_legs_buf_reserve(m->ctx->legs, leg, leg->buf_len + n) < 0) {
        s_dropped(m, 1);
        IM_LOG_WARN("event=msrp_frame_dropped sid=%016" PRIx64 " dir=%s "
                    "why=leg_buffer_full",
                    leg->session_id, up_dir_name(leg->dir));
        return;
    }
    memcpy(leg->buf + leg->buf_len, p, n);
    leg->buf_len += n;
    leg->buf_frames++;
}

/* ---- flow control ----------------------------------------------------- */

static void s_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out);
static void s_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* How full the queues this connection's input feeds are. Forwarded bytes
 * go to the other leg's socket. Answers to this connection's own peer go
 * to its socket, or wait in its buffer behind a frame the other leg is
 * forwarding to it; that frame may need this connection's current frame to
 * end first (each waits for the other's answers otherwise), so while a
 * frame is being forwarded from here only the other leg's socket counts.
 * Answers come at a frame's end-line, so nothing grows meanwhile. */
static size_t s_pressure(const up_conn_t *c)
{
    size_t q = s_socket_queue(s_other(c->m, c->leg));
    if (c->rx_mode != RX_FORWARD && s_queue(c->leg) > q)
        q = s_queue(c->leg);
    return q;
}

/* Starts or stops reading the connection: it is read while nothing is held
 * and s_pressure() is within --leg-buffer (it resumes below half of it, so
 * a draining queue does not flip it on every write). */
static void s_flow(up_conn_t *c)
{
    if (c->state != C_BOUND || c->broken || !c->leg || c->m->closed)
        return;
    bool want = !c->held;
    if (want) {
        size_t limit = s_ctx(c)->cfg.leg_buffer;
        size_t q = s_pressure(c);
        want = c->reading ? q <= limit : q <= limit / 2;
    }
    if (want && !c->reading) {
        int rc = uv_read_start((uv_stream_t *)&c->tcp, s_on_alloc, s_on_read);
        if (rc < 0) {
            s_break(c, uv_strerror(rc));
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* After a pass: this connection, and the other leg's, whose queue may have
 * shrunk without a write callback to come (answers that waited behind a
 * frame that just ended, written at once). */
static void s_flow_both(up_conn_t *c)
{
    s_flow(c);
    up_leg_t *o = c->leg && c->state == C_BOUND ? s_other(c->m, c->leg)
                                                : NULL;
    if (o && o->conn)
        s_flow(o->conn);
}

/* How much one read may bring: what keeps s_pressure() near --leg-buffer,
 * within [UP_MSRP_READ_MIN, UP_MSRP_READ_MAX]. */
static size_t s_read_room(const up_conn_t *c)
{
    size_t limit = s_ctx(c)->cfg.leg_buffer;
    size_t q = s_pressure(c);
    size_t room = q < limit ? limit - q : 0;
    if (room < UP_MSRP_READ_MIN)
        room = UP_MSRP_READ_MIN;
    return room > UP_MSRP_READ_MAX ? UP_MSRP_READ_MAX : room;
}

/* ---- hop transactions ------------------------------------------------- */

static void s_txn_unlink(up_txn_t *t)
{
    up_leg_t *leg = t->leg;
    if (t->next == t) {
        leg->txns = NULL;
    } else {
        t->prev->next = t->next;
        t->next->prev = t->prev;
        if (leg->txns == t)
            leg->txns = t->next;
    }
    t->prev = t->next = NULL;
    leg->ntxns--;
}

static void s_txn_free(up_txn_t *t)
{
    up_timer_cancel(t->m->ctx->timers, &t->timer);
    free(t);
}

static void s_txns_free(up_leg_t *leg)
{
    while (leg->txns) {
        up_txn_t *t = leg->txns;
        s_txn_unlink(t);
        s_txn_free(t);
    }
}

static up_txn_t *s_txn_find(const up_leg_t *leg, up_frame_str_t tid)
{
    up_txn_t *t = leg->txns;
    if (!t || tid.len != UP_RELAY_TID_LEN)
        return NULL;
    /* Answers mostly come in order: the oldest is the usual match. */
    do {
        if (memcmp(t->tid, tid.ptr, UP_RELAY_TID_LEN) == 0)
            return t;
        t = t->next;
    } while (t != leg->txns);
    return NULL;
}

static up_frame_str_t s_txn_str(const up_txn_t *t, int which)
{
    up_frame_str_t s = {t->data, t->from_len};
    if (which >= 1) {
        s.ptr += t->from_len;
        s.len = t->mid_len;
    }
    if (which >= 2) {
        s.ptr += t->mid_len;
        s.len = t->range_len;
    }
    return s;
}

/* Tells the sender of a forwarded SEND that it failed beyond this hop
 * (RFC 4975 section 7.1.2), on the leg it came from. */
static void s_report(up_msrp_t *m, const up_txn_t *t, unsigned code)
{
    up_leg_t *src = up_legs_find(m->ctx->legs, t->session_id, t->from_dir);
    if (!s_writable(src)) {
        s_dropped(m, 1);
        return;
    }
    char tid[UP_RELAY_TID_LEN + 1];
    if (s_random_id(m, tid, UP_RELAY_TID_LEN) < 0)
        return;
    size_t need = t->from_len + t->mid_len + t->range_len +
                  strlen(src->path) + 2 * UP_RELAY_TID_LEN + 160;
    char *p = s_scratch(m, need);
    int n = p ? up_relay_report(p, need, tid, s_txn_str(t, 0), src->path,
                                s_txn_str(t, 1), s_txn_str(t, 2), code)
              : -ENOSPC;
    if (n < 0)
        return;
    im_metric_inc(m->ctx->metrics->msrp_reports_sent_total);
    IM_LOG_INFO("event=msrp_report_sent sid=%016" PRIx64 " dir=%s code=%u "
                "hop_tid=%s",
                src->session_id, up_dir_name(src->dir), code, t->tid);
    s_out_frame(m, src, p, (size_t)n);
}

static void s_on_txn_timer(im_timer_t *timer, void *arg)
{
    (void)timer;
    up_txn_t *t = arg;
    up_msrp_t *m = t->m;
    s_txn_unlink(t);
    if (t->expect) {
        im_metric_inc(m->ctx->metrics->msrp_txn_timeouts_total);
        IM_LOG_INFO("event=msrp_txn_timeout sid=%016" PRIx64 " dir=%s "
                    "hop_tid=%s",
                    t->leg->session_id, up_dir_name(t->leg->dir), t->tid);
        if (t->report)
            s_report(m, t, 408);
    }
    free(t);
}

/* Remembers a SEND just sent on `leg` under `tid` until its answer. */
static void s_txn_add(up_msrp_t *m, up_leg_t *leg, const char *tid,
                      up_fr_t fr, const up_leg_t *src,
                      const up_frame_head_t *h)
{
    if (fr == UP_FR_NO)
        return; /* no answer will come */
    if (leg->ntxns >= UP_MSRP_TXN_MAX) {
        IM_LOG_DEBUG("event=msrp_txn_untracked sid=%016" PRIx64 " dir=%s",
                     leg->session_id, up_dir_name(leg->dir));
        return;
    }
    size_t fl = h ? h->from_path.len : 0, ml = h ? h->message_id.len : 0;
    size_t rl = h ? h->byte_range.len : 0;
    up_txn_t *t = malloc(sizeof(*t) + fl + ml + rl);
    if (!t)
        return;
    memset(t, 0, sizeof(*t));
    im_timer_init(&t->timer, s_on_txn_timer, t);
    t->leg = leg;
    t->m = m;
    t->session_id = leg->session_id;
    t->from_dir = src ? src->dir : leg->dir;
    t->report = src != NULL;
    /* "partial": no 200 will come, only errors; the timer just ends the
     * wait for one. */
    t->expect = fr == UP_FR_YES;
    memcpy(t->tid, tid, UP_RELAY_TID_LEN + 1);
    if (fl)
        memcpy(t->data, h->from_path.ptr, fl);
    if (ml)
        memcpy(t->data + fl, h->message_id.ptr, ml);
    if (rl)
        memcpy(t->data + fl + ml, h->byte_range.ptr, rl);
    t->from_len = fl;
    t->mid_len = ml;
    t->range_len = rl;
    if (!leg->txns) {
        t->prev = t->next = t;
        leg->txns = t;
    } else {
        t->next = leg->txns;
        t->prev = leg->txns->prev;
        t->prev->next = t;
        leg->txns->prev = t;
    }
    leg->ntxns++;
    up_timer_arm_in(m->ctx->timers, &t->timer, m->ctx->cfg.txn_timeout_ms);
}

/* ---- losing a connection or a leg ---------------------------------------- */

/* Ends a frame forwarded to `leg` that will get no more bytes: the '#'
 * flag tells its receiver the message is aborted (RFC 4975 section 5.1). */
static void s_cut(up_msrp_t *m, up_leg_t *leg, const char *tid, bool body)
{
    char *p = s_scratch(m, UP_RELAY_TID_LEN + 16);
    int n = p ? up_relay_end_line(p, UP_RELAY_TID_LEN + 16, body, tid, '#')
              : -ENOSPC;
    if (n > 0)
        s_emit(m, leg, p, (size_t)n);
    leg->out_open = false;
    s_side_flush(m, leg);
}

/* What the loss of `leg`'s connection `c` (or of the leg itself, when
 * released) means for the relay in both directions. */
static void s_gone(up_msrp_t *m, up_leg_t *leg, up_conn_t *c, bool released)
{
    up_leg_t *o = s_other(m, leg);
    size_t dropped = 0;
    if (c && c->rx_mode == RX_FORWARD) {
        /* A frame from this leg's peer was half forwarded. */
        if (o && o->out_open)
            s_cut(m, o, c->rx_tid, c->rx_body);
        c->rx_mode = RX_SKIP;
        dropped++;
    }
    if (leg->out_open) {
        /* A frame from the other leg was half forwarded here: the rest of
         * it goes nowhere, and its sender hears the session is gone. */
        leg->out_open = false;
        up_conn_t *oc = o ? o->conn : NULL;
        if (oc && oc->rx_mode == RX_FORWARD) {
            oc->rx_mode = RX_SKIP;
            if (oc->rx_code == 200)
                oc->rx_code = 481;
        }
        dropped++;
    }
    dropped += leg->buf_frames;
    if (released) {
        /* The table frees the buffer; its pending SENDs will never be
         * answered now. */
        dropped += leg->ntxns;
        s_txns_free(leg);
    } else {
        up_legs_buf_free(m->ctx->legs, leg);
    }
    s_dropped(m, dropped);
    if (o && o->conn && o->conn->state == C_BOUND) {
        /* A request held for this leg can now be answered; the other leg's
         * queue no longer limits reading. */
        if (o->conn->held)
            up_timer_arm_in(m->ctx->timers, &o->conn->kick, 0);
        if (!m->in_pass)
            s_flow(o->conn);
    }
}

void up_msrp_leg_released(up_leg_t *leg, void *arg)
{
    up_msrp_t *m = arg;
    if (!m || !leg)
        return;
    s_gone(m, leg, leg->conn, true);
}

/* The leg's connection is gone (peer closed, error, bad framing): the leg
 * stays for the CP to release, and the CP hears why. */
static void s_lost(up_conn_t *c, int kind, const char *why)
{
    up_msrp_t *m = c->m;
    up_context_t *ctx = m->ctx;
    up_leg_t *leg = c->leg;
    if (!leg) {
        s_close(c);
        return;
    }
    s_gone(m, leg, c, false);
    up_legs_account(ctx->legs, leg, -(int64_t)c->acct);
    up_legs_detach_conn(ctx->legs, leg);
    c->leg = NULL;
    s_close(c);
    if (kind == IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED) {
        im_metric_inc(ctx->metrics->leg_connect_failed_total);
        IM_LOG_WARN("event=leg_connect_failed sid=%016" PRIx64 " dir=%s "
                    "node=%s peer=%s why=\"%s\"",
                    leg->session_id, up_dir_name(leg->dir), ctx->cfg.id,
                    c->peer, why);
    } else {
        IM_LOG_INFO("event=leg_peer_closed sid=%016" PRIx64 " dir=%s "
                    "node=%s peer=%s why=\"%s\" bytes_in=%" PRIu64
                    " bytes_out=%" PRIu64,
                    leg->session_id, up_dir_name(leg->dir), ctx->cfg.id,
                    c->peer, why, leg->counters.bytes_in,
                    leg->counters.bytes_out);
    }
    s_sync(m);
    (void)up_legevent_send(ctx, leg, kind);
}

static void s_fail(up_conn_t *c, const char *why)
{
    if (c->leg)
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_PEER_CLOSED, why);
    else
        s_drop(c, why);
}

/* A write failed, possibly in the middle of another connection's pass:
 * nothing more goes to it, and it is closed on the next turn, outside
 * whatever is running now. */
static void s_break(up_conn_t *c, const char *why)
{
    if (c->broken || c->state == C_CLOSING)
        return;
    c->broken = why;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    up_timer_arm_in(s_ctx(c)->timers, &c->kick, 0);
}

/* Framing the worker cannot follow: the connection is closed. */
static void s_framing_error(up_conn_t *c, const char *why)
{
    up_context_t *ctx = s_ctx(c);
    im_metric_inc(ctx->metrics->msrp_framing_errors_total);
    IM_LOG_WARN("event=msrp_framing_error conn=%" PRIu64 " peer=%s sid=%016"
                PRIx64 " dir=%s why=%s node=%s",
                c->id, c->peer, c->leg ? c->leg->session_id : 0,
                c->leg ? up_dir_name(c->leg->dir) : "none", why, ctx->cfg.id);
    s_fail(c, why);
}

/* ---- timers ----------------------------------------------------------- */

static void s_resume(up_conn_t *c);

static void s_idle_check(up_conn_t *c)
{
    up_context_t *ctx = s_ctx(c);
    uint32_t idle = ctx->cfg.leg_idle_ms;
    if (!idle || !c->leg || c->idle_reported)
        return;
    uint64_t now = im_clock_ms();
    uint64_t quiet = now > c->last_io ? now - c->last_io : 0;
    if (quiet < idle) {
        up_timer_arm_in(ctx->timers, &c->timer, idle - quiet);
        return;
    }
    c->idle_reported = true;
    up_leg_t *leg = c->leg;
    im_metric_inc(ctx->metrics->leg_idle_total);
    IM_LOG_INFO("event=leg_idle sid=%016" PRIx64 " dir=%s node=%s "
                "idle_ms=%" PRIu64,
                leg->session_id, up_dir_name(leg->dir), ctx->cfg.id, quiet);
    (void)up_legevent_send(ctx, leg,
                            IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_IDLE);
}

static void s_idle_start(up_conn_t *c)
{
    up_context_t *ctx = s_ctx(c);
    c->last_io = im_clock_ms();
    c->idle_reported = false;
    if (ctx->cfg.leg_idle_ms)
        up_timer_arm_in(ctx->timers, &c->timer, ctx->cfg.leg_idle_ms);
}

static void s_on_timer(im_timer_t *t, void *arg)
{
    (void)t;
    up_conn_t *c = arg;
    switch (c->state) {
    case C_UNBOUND:
        s_drop(c, "bind_timeout");
        break;
    case C_CONNECTING:
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED,
               "timeout");
        break;
    case C_REJECTING:
        s_close(c);
        break;
    case C_BOUND:
        s_idle_check(c);
        break;
    default:
        break;
    }
}

/* A held request waits for the other leg to become ready, to go, or for
 * the wait limit. */
static void s_hold_retry(up_conn_t *c)
{
    up_msrp_t *m = c->m;
    up_context_t *ctx = m->ctx;
    up_leg_t *o = s_other(m, c->leg);
    if (o && !s_ready(o) && !o->unreachable) {
        uint64_t now = im_clock_ms();
        uint64_t until = c->hold_since + ctx->cfg.txn_timeout_ms;
        if (now < until) {
            up_timer_arm_in(ctx->timers, &c->kick, until - now);
            return;
        }
        /* Per hop from now on: SENDs for it get 481, REPORTs are dropped,
         * until it connects. */
        o->unreachable = true;
        IM_LOG_WARN("event=leg_unreachable sid=%016" PRIx64 " dir=%s "
                    "node=%s waited_ms=%" PRIu64 " connected=%s",
                    o->session_id, up_dir_name(o->dir), ctx->cfg.id,
                    now - c->hold_since, s_writable(o) ? "yes" : "no");
    }
    c->held = false;
    s_resume(c);
}

static void s_on_kick(im_timer_t *t, void *arg)
{
    (void)t;
    up_conn_t *c = arg;
    if (c->state != C_BOUND)
        return;
    if (c->broken) {
        s_fail(c, c->broken);
        return;
    }
    if (c->held)
        s_hold_retry(c);
}

static up_conn_t *s_conn_new(up_msrp_t *m)
{
    up_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (uv_tcp_init(m->ctx->loop, &c->tcp) < 0) {
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    c->connect.data = c;
    c->shutdown.data = c;
    c->m = m;
    c->id = ++m->next_id;
    up_frame_init(&c->frame);
    im_timer_init(&c->timer, s_on_timer, c);
    im_timer_init(&c->kick, s_on_kick, c);
    snprintf(c->peer, sizeof(c->peer), "-");
    return c;
}

/* Framer limits of a connection that belongs to a leg. */
static void s_frame_bound(up_conn_t *c)
{
    uint64_t max = s_ctx(c)->cfg.max_msg;
    up_frame_limits(&c->frame, UP_FRAME_HEAD_MAX, max + UP_MSRP_BODY_SLACK);
}

/* ---- relay ------------------------------------------------------------ */

static bool s_refused(const up_conn_t *c, uint64_t hash)
{
    for (size_t i = 0; i < c->refused_n; i++) {
        if (c->refused[i] == hash)
            return true;
    }
    return false;
}

static void s_refuse(up_conn_t *c, uint64_t hash)
{
    if (s_refused(c, hash))
        return;
    c->refused[c->refused_next] = hash;
    c->refused_next = (c->refused_next + 1) % UP_MSRP_REFUSED;
    if (c->refused_n < UP_MSRP_REFUSED)
        c->refused_n++;
}

/* Keeps the first URI of a request's From-Path: the To-Path of the answer
 * sent at its end-line. */
static int s_keep_to(up_conn_t *c, up_frame_str_t from)
{
    up_frame_str_t first = {"", 0};
    (void)up_frame_path_first(from, &first);
    if (first.len > c->rx_to_cap) {
        char *p = realloc(c->rx_to, first.len);
        if (!p)
            return -ENOMEM;
        c->rx_to = p;
        c->rx_to_cap = first.len;
    }
    if (first.len)
        memcpy(c->rx_to, first.ptr, first.len);
    c->rx_to_len = first.len;
    return 0;
}

static up_peer_state_t s_peer_state(const up_leg_t *o)
{
    if (!o)
        return UP_PEER_GONE;
    if (s_ready(o))
        return UP_PEER_READY;
    return o->unreachable ? UP_PEER_UNREACHABLE : UP_PEER_WAITING;
}

static void s_forward_head(up_conn_t *c, const up_frame_head_t *h,
                           up_leg_t *o)
{
    up_msrp_t *m = c->m;
    /* Answers deferred for that leg go before the frame, not behind it. */
    if (o->buf_len && !o->out_open)
        s_side_flush(m, o);
    if (s_random_id(m, c->rx_tid, UP_RELAY_TID_LEN) < 0) {
        s_dropped(m, 1);
        c->rx_code = c->rx_code ? 481 : 0;
        return;
    }
    size_t need = h->headers.len + strlen(o->peer_path) + strlen(o->path) +
                  UP_FRAME_METHOD_MAX + UP_RELAY_TID_LEN + 64;
    char *p = s_scratch(m, need);
    int n = p ? up_relay_rewrite(p, need, h, c->rx_tid, o->peer_path, o->path)
              : -ENOSPC;
    if (n < 0) {
        IM_LOG_WARN("event=msrp_frame_dropped sid=%016" PRIx64 " dir=%s "
                    "why=rewrite_too_large",
                    c->leg->session_id, up_dir_name(c->leg->dir));
        s_dropped(m, 1);
        c->rx_code = c->rx_code ? 481 : 0;
        return;
    }
    s_emit(m, o, p, (size_t)n);
    m->relayed += (uint64_t)n;
    o->out_open = true;
    c->rx_mode = RX_FORWARD;
    im_metric_inc(m->ctx->metrics->msrp_frames_relayed_total);
    if (c->rx_send) {
        o->counters.msgs_out++;
        s_txn_add(m, o, c->rx_tid, c->rx_fr, c->leg, h);
    }
}

/* A response arriving on a leg answers a SEND the worker sent there. */
static void s_on_response(up_conn_t *c, const up_frame_head_t *h)
{
    up_msrp_t *m = c->m;
    up_leg_t *leg = c->leg;
    up_txn_t *t = s_txn_find(leg, h->tid);
    if (!t) {
        IM_LOG_DEBUG("event=msrp_response_unmatched sid=%016" PRIx64
                     " dir=%s code=%u",
                     leg->session_id, up_dir_name(leg->dir), h->status);
        return;
    }
    s_txn_unlink(t);
    up_timer_cancel(m->ctx->timers, &t->timer);
    if (h->status != 200) {
        IM_LOG_INFO("event=msrp_hop_failed sid=%016" PRIx64 " dir=%s "
                    "code=%u hop_tid=%s",
                    leg->session_id, up_dir_name(leg->dir), h->status,
                    t->tid);
        if (t->report)
            s_report(m, t, h->status);
    }
    free(t);
}

/* A complete header block on a bound connection. Returns 1 when the
 * request must wait for the other leg (nothing was done with it). */
static int s_on_head(up_conn_t *c, const up_frame_head_t *h)
{
    up_msrp_t *m = c->m;
    up_leg_t *leg = c->leg;
    c->rx_mode = RX_SKIP;
    c->rx_code = 0;
    c->rx_body = h->has_body;
    c->rx_bytes = 0;
    if (!h->request) {
        s_on_response(c, h);
        return 0;
    }
    up_leg_t *o = s_other(m, leg);
    uint64_t hash = up_relay_msg_hash(h->message_id);
    up_relay_in_t in = {
        .to_us = up_relay_names(h->to_path, leg->msrp_id,
                                UP_LEG_MSRP_ID_LEN),
        .peer = s_peer_state(o),
        .max_msg = m->ctx->cfg.max_msg,
        .refused = s_refused(c, hash),
    };
    up_verdict_t v = up_relay_decide(h, &in);
    if (v.action == UP_ACT_HOLD)
        return 1;
    c->rx_send = strcmp(h->method, "SEND") == 0;
    c->rx_fr = up_relay_fr(h->failure_report);
    c->rx_code = v.code;
    c->rx_has_range = h->has_range;
    c->rx_range = h->range;
    c->rx_hash = hash;
    if (c->rx_send)
        leg->counters.msgs_in++;
    if (c->rx_fr != UP_FR_NO && strcmp(h->method, "REPORT") != 0 &&
        s_keep_to(c, h->from_path) < 0)
        c->rx_code = 0; /* out of memory: no answer rather than a bad one */
    switch (v.action) {
    case UP_ACT_FORWARD:
        s_forward_head(c, h, o);
        break;
    case UP_ACT_REJECT:
    case UP_ACT_DROP:
        s_dropped(m, 1);
        IM_LOG_DEBUG("event=msrp_request_refused sid=%016" PRIx64 " dir=%s "
                     "method=%s code=%u peer=%d",
                     leg->session_id, up_dir_name(leg->dir), h->method,
                     v.code, (int)in.peer);
        break;
    default:
        break;
    }
    return 0;
}

static void s_on_body(up_conn_t *c, const uint8_t *p, size_t n)
{
    if (c->rx_mode != RX_FORWARD)
        return;
    up_msrp_t *m = c->m;
    up_leg_t *o = s_other(m, c->leg);
    if (!o || !o->out_open) {
        c->rx_mode = RX_SKIP;
        return;
    }
    c->rx_bytes += n;
    if (c->rx_send) {
        up_frame_head_t h = {.has_range = c->rx_has_range,
                             .range = c->rx_range};
        if (up_relay_exceeds(&h, c->rx_bytes, m->ctx->cfg.max_msg)) {
            /* Past --max-msg: the chunk ends here for the next hop ('#'
             * aborts the message there) and its sender gets 413. */
            IM_LOG_INFO("event=msrp_message_too_large sid=%016" PRIx64
                        " dir=%s max=%u",
                        c->leg->session_id, up_dir_name(c->leg->dir),
                        m->ctx->cfg.max_msg);
            s_cut(m, o, c->rx_tid, true);
            /* The sender hears 413 from this hop; whatever the next hop
             * makes of the aborted chunk is no news to it. */
            up_frame_str_t tid = {c->rx_tid, UP_RELAY_TID_LEN};
            up_txn_t *t = s_txn_find(o, tid);
            if (t) {
                s_txn_unlink(t);
                s_txn_free(t);
            }
            c->rx_mode = RX_SKIP;
            c->rx_code = 413;
            s_dropped(m, 1);
            return;
        }
    }
    s_emit(m, o, (const char *)p, n);
    m->relayed += n;
}

/* Answers the request that just ended on this hop. */
static void s_answer(up_conn_t *c, unsigned code)
{
    up_msrp_t *m = c->m;
    up_leg_t *leg = c->leg;
    up_frame_str_t tid = {c->frame.tid, c->frame.tid_len};
    up_frame_str_t to = {c->rx_to ? c->rx_to : "", c->rx_to_len};
    size_t need = tid.len * 2 + to.len + strlen(leg->path) + 128;
    char *p = s_scratch(m, need);
    int n = p ? up_relay_response(p, need, tid, code, to, leg->path)
              : -ENOSPC;
    if (n > 0)
        s_out_frame(m, leg, p, (size_t)n);
}

static void s_on_end(up_conn_t *c)
{
    up_msrp_t *m = c->m;
    if (c->rx_mode == RX_FORWARD) {
        up_leg_t *o = s_other(m, c->leg);
        if (o && o->out_open) {
            char *p = s_scratch(m, UP_RELAY_TID_LEN + 16);
            int n = p ? up_relay_end_line(p, UP_RELAY_TID_LEN + 16,
                                          c->rx_body, c->rx_tid,
                                          c->frame.flag)
                      : -ENOSPC;
            if (n > 0) {
                s_emit(m, o, p, (size_t)n);
                m->relayed += (uint64_t)n;
            }
            o->out_open = false;
            s_side_flush(m, o);
        }
    }
    if (c->rx_code == 413)
        s_refuse(c, c->rx_hash);
    if (c->rx_send && up_relay_fr_answers(c->rx_fr, c->rx_code))
        s_answer(c, c->rx_code);
    else if (!c->rx_send && c->rx_code == 501 && c->rx_fr != UP_FR_NO)
        s_answer(c, 501);
    c->rx_mode = RX_SKIP;
    c->rx_code = 0;
}

/* ---- binding ---------------------------------------------------------- */

static void s_on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    s_close(req->data);
}

/* Answers the first SEND with an error and closes once it has left (or
 * after UP_MSRP_REJECT_MS if the peer does not take it). */
static void s_reject(up_conn_t *c, const up_frame_head_t *h, unsigned code,
                     const char *why)
{
    up_msrp_t *m = c->m;
    up_frame_str_t self = {"", 0}, prev = {"", 0};
    (void)up_frame_path_last(h->to_path, &self);
    (void)up_frame_path_first(h->from_path, &prev);
    im_metric_inc(m->ctx->metrics->msrp_rejected_total);
    IM_LOG_INFO("event=msrp_conn_rejected conn=%" PRIu64 " peer=%s code=%u "
                "why=%s node=%s",
                c->id, c->peer, code, why, m->ctx->cfg.id);
    /* The answer's From-Path is the URI the peer asked for. */
    char from[UP_MSRP_UNBOUND_MAX];
    size_t fl = self.len < sizeof(from) - 1 ? self.len : sizeof(from) - 1;
    memcpy(from, self.ptr, fl);
    from[fl] = '\0';
    size_t need = 2 * h->tid.len + prev.len + fl + 128;
    char *p = s_scratch(m, need);
    int n = p ? up_relay_response(p, need, h->tid, code, prev, from)
              : -ENOSPC;
    if (n > 0) {
        uv_buf_t b = uv_buf_init(p, (unsigned)n);
        s_conn_write(c, &b, 1, (size_t)n);
    }
    if (n <= 0 || c->broken) {
        s_close(c);
        return;
    }
    c->state = C_REJECTING;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, s_on_shutdown) <
        0) {
        s_close(c);
        return;
    }
    up_timer_arm_in(m->ctx->timers, &c->timer, UP_MSRP_REJECT_MS);
}

/* The first header block of an accepted connection names its leg; the
 * frame itself is then handled like any other. Returns 0 when the
 * connection is now bound. */
static int s_bind(up_conn_t *c, const up_frame_head_t *h)
{
    up_msrp_t *m = c->m;
    up_context_t *ctx = m->ctx;
    if (!h->request || strcmp(h->method, "SEND") != 0) {
        s_drop(c, "first_frame_not_send");
        return -EPROTO;
    }
    up_frame_str_t last;
    im_msrp_uri_t uri;
    if (!up_frame_path_last(h->to_path, &last) ||
        im_msrp_uri_parse(last.ptr, last.len, &uri) < 0) {
        s_reject(c, h, 400, "bad_to_path");
        return -EPROTO;
    }
    up_leg_t *leg = up_legs_find_msrp(ctx->legs, uri.session,
                                      strlen(uri.session));
    if (!leg) {
        s_reject(c, h, 481, "unknown_session");
        return -ENOENT;
    }
    if (leg->conn) {
        s_reject(c, h, 481, "leg_connected");
        return -EBUSY;
    }
    if (up_legs_attach_conn(ctx->legs, leg, c) < 0) {
        s_drop(c, "attach_failed");
        return -EBUSY;
    }
    up_timer_cancel(ctx->timers, &c->timer);
    s_loose_del(m, c);
    c->leg = leg;
    c->state = C_BOUND;
    up_legs_account(ctx->legs, leg, (int64_t)c->acct);
    leg->counters.bytes_in += c->pre_bytes;
    leg->unreachable = false;
    s_frame_bound(c);
    s_idle_start(c);
    IM_LOG_INFO("event=leg_bound sid=%016" PRIx64 " dir=%s node=%s conn=%"
                PRIu64 " peer=%s",
                leg->session_id, up_dir_name(leg->dir), ctx->cfg.id, c->id,
                c->peer);
    up_msrp_leg_ready(m, leg);
    s_sync(m);
    return 0;
}

/* ---- reading ---------------------------------------------------------- */

/* Runs the framer over data[0, len) (the connection's carry and what was
 * just read, in m->rbuf), writes what it produces, and keeps what it could
 * not finish with. `more`: libuv reads the connection again at once (the
 * read filled its buffer), so deferred answers may wait for the end of the
 * turn. */
static void s_process(up_conn_t *c, uint8_t *data, size_t len, bool more)
{
    up_msrp_t *m = c->m;
    const char *err = NULL;
    size_t off = 0;
    m->in_pass = true;
    m->scratch_used = 0;
    m->relayed = 0;
    while (off < len) {
        if ((c->state != C_UNBOUND && c->state != C_BOUND) || c->broken)
            break;
        size_t used = 0;
        up_frame_head_t h;
        up_frame_event_t ev = up_frame_parse(&c->frame, data + off,
                                             len - off, &used, &h);
        if (ev == UP_FRAME_MORE)
            break;
        if (ev == UP_FRAME_ERROR) {
            err = c->frame.why ? c->frame.why : "bad_framing";
            break;
        }
        if (ev == UP_FRAME_HEAD) {
            if (c->state == C_UNBOUND && s_bind(c, &h) < 0)
                break;
            if (s_on_head(c, &h) > 0) {
                /* The request waits, unparsed, for the other leg. */
                up_frame_init(&c->frame);
                s_frame_bound(c);
                uint64_t now = im_clock_ms();
                if (!c->hold_since)
                    c->hold_since = now;
                uint64_t until = c->hold_since + m->ctx->cfg.txn_timeout_ms;
                up_timer_arm_in(m->ctx->timers, &c->kick,
                                until > now ? until - now : 0);
                c->held = true;
                break;
            }
        } else if (ev == UP_FRAME_BODY) {
            s_on_body(c, data + off, used);
        } else {
            s_on_end(c);
        }
        off += used;
    }
    s_flush(m);
    m->in_pass = false;
    m->scratch_used = 0;
    if (m->ndefer &&
        (!more || (c->leg && c->leg->buf_len >= UP_MSRP_DEFER_BYTES)))
        s_defer_flush(m);
    if (m->relayed)
        im_metric_add(m->ctx->metrics->msrp_bytes_relayed_total,
                      (int64_t)m->relayed);
    if (err) {
        s_framing_error(c, err);
        return;
    }
    if (c->state != C_UNBOUND && c->state != C_BOUND) {
        (void)s_keep(c, NULL, 0);
        return;
    }
    if (s_keep(c, data + off, len - off) < 0)
        s_fail(c, "out_of_memory");
}

static void s_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)suggested;
    up_conn_t *c = h->data;
    up_msrp_t *m = c->m;
    *out = uv_buf_init(NULL, 0);
    size_t room;
    if (c->state == C_UNBOUND)
        room = UP_MSRP_UNBOUND_MAX > c->carry_len
                   ? UP_MSRP_UNBOUND_MAX - c->carry_len
                   : 0;
    else if (c->state == C_BOUND && c->leg)
        room = s_read_room(c);
    else
        return;
    if (c->carry_len + room > m->rbuf_cap)
        room = m->rbuf_cap > c->carry_len ? m->rbuf_cap - c->carry_len : 0;
    if (room == 0)
        return;
    /* libuv reads right after this call and calls s_on_read before any
     * other connection is served, so the shared buffer is this one's. */
    if (c->carry_len)
        memcpy(m->rbuf, c->carry, c->carry_len);
    *out = uv_buf_init((char *)m->rbuf + c->carry_len, (unsigned)room);
}

static void s_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    up_conn_t *c = s->data;
    if (nread == 0 || (c->state != C_UNBOUND && c->state != C_BOUND))
        return;
    if (nread < 0) {
        const char *why = nread == UV_EOF       ? "peer_closed"
                          : nread == UV_ENOBUFS ? "header_too_large"
                                                : uv_strerror((int)nread);
        s_fail(c, why);
        return;
    }
    size_t n = (size_t)nread;
    if (c->state == C_UNBOUND) {
        c->pre_bytes += n;
    } else if (c->leg) {
        c->leg->counters.bytes_in += n;
        s_touch(c);
    }
    s_process(c, c->m->rbuf, c->carry_len + n, n == buf->len);
    s_flow_both(c);
}

/* Goes on with a connection whose request was held: its carry is parsed
 * again from the held request's start line. */
static void s_resume(up_conn_t *c)
{
    up_msrp_t *m = c->m;
    if (c->state != C_BOUND)
        return;
    if (c->carry_len) {
        memcpy(m->rbuf, c->carry, c->carry_len);
        s_process(c, m->rbuf, c->carry_len, false);
    }
    if (c->state != C_BOUND)
        return;
    if (!c->held)
        c->hold_since = 0;
    s_flow_both(c);
}

void up_msrp_leg_ready(up_msrp_t *m, up_leg_t *leg)
{
    if (!m || !leg || !s_ready(leg))
        return;
    leg->unreachable = false;
    up_leg_t *o = s_other(m, leg);
    if (o && o->conn && o->conn->state == C_BOUND && o->conn->held)
        up_timer_arm_in(m->ctx->timers, &o->conn->kick, 0);
}

/* ---- accepting -------------------------------------------------------- */

static void s_peer_name(up_conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) < 0)
        return;
    char host[48] = "";
    unsigned port = 0;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        uv_ip4_name(sin, host, sizeof(host));
        port = ntohs(sin->sin_port);
        snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(sin6, host, sizeof(host));
        port = ntohs(sin6->sin6_port);
        snprintf(c->peer, sizeof(c->peer), "[%s]:%u", host, port);
    }
}

/* Closes the oldest connection no leg owns, to make room for a new one:
 * under a storm of connections that never speak, a client that sends its
 * SEND at once still gets in. False if there is none. */
static bool s_drop_oldest(up_msrp_t *m, up_drop_t why)
{
    up_conn_t *c = m->loose_tail;
    if (!c)
        return false;
    up_context_t *ctx = m->ctx;
    im_metric_inc(ctx->metrics->msrp_conns_dropped_total[why]);
    uint64_t now = im_clock_ms(), suppressed = 0;
    if (im_log_limit(&m->drop_log[why], now, UP_MSRP_FLOOD_LOG_MS,
                     &suppressed))
        IM_LOG_WARN("event=msrp_conn_dropped why=%s conn=%" PRIu64
                    " peer=%s age_ms=%" PRIu64 " unbound=%zu suppressed=%"
                    PRIu64 " node=%s",
                    up_drop_name(why), c->id, c->peer, now - c->accepted_ms,
                    m->nloose, suppressed, ctx->cfg.id);
    s_close(c); /* closes the descriptor now; takes it off the list */
    return true;
}

static void s_on_listen(uv_poll_t *h, int status, int events);

static void s_on_accept_timer(im_timer_t *t, void *arg)
{
    (void)t;
    up_msrp_t *m = arg;
    if (m->closed || !m->listener_open)
        return;
    int rc = uv_poll_start(&m->listener, UV_READABLE, s_on_listen);
    if (rc < 0)
        IM_LOG_ERROR("event=msrp_accept_resume_failed err=\"%s\" node=%s",
                     uv_strerror(rc), m->ctx->cfg.id);
}

/* accept() keeps failing and nothing can be given back: stop watching
 * the listener for a while. Waiting connections stay in the kernel's
 * backlog (beyond it, new ones are not answered and their senders retry). */
static void s_accept_pause(up_msrp_t *m, up_pause_t why, int err)
{
    up_context_t *ctx = m->ctx;
    m->accept_pause_ms = m->accept_pause_ms ? m->accept_pause_ms * 2
                                            : UP_MSRP_ACCEPT_PAUSE_MIN_MS;
    if (m->accept_pause_ms > UP_MSRP_ACCEPT_PAUSE_MAX_MS)
        m->accept_pause_ms = UP_MSRP_ACCEPT_PAUSE_MAX_MS;
    (void)uv_poll_stop(&m->listener);
    up_timer_arm_in(ctx->timers, &m->accept_timer, m->accept_pause_ms);
    im_metric_inc(ctx->metrics->msrp_accept_paused_total[why]);
    uint64_t suppressed = 0;
    if (im_log_limit(&m->pause_log, im_clock_ms(), UP_MSRP_FLOOD_LOG_MS,
                     &suppressed))
        IM_LOG_WARN("event=msrp_accept_paused why=%s err=\"%s\" pause_ms=%"
                    PRIu64 " unbound=%zu suppressed=%" PRIu64 " node=%s",
                    up_pause_name(why), strerror(err), m->accept_pause_ms,
                    m->nloose, suppressed, ctx->cfg.id);
}

/* Open descriptors of the process (0 if /proc cannot tell). */
static uint64_t s_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    uint64_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own */
}

/* Unbound connections the descriptor limit leaves room for. */
static uint64_t s_loose_cap(const up_msrp_t *m)
{
    uint64_t used = m->fd_baseline + UP_MSRP_FD_RESERVE +
                    up_legs_sockets(m->ctx->legs);
    return m->fd_limit > used ? m->fd_limit - used : 0;
}

/* Takes an accepted socket: an unbound connection waiting for its first
 * SEND. The oldest such one is closed first if --max-unbound are waiting
 * or if one more would cut into the descriptor reserve. */
static void s_accept_fd(up_msrp_t *m, int fd)
{
    if (m->nloose + 1 > s_loose_cap(m))
        (void)s_drop_oldest(m, UP_DROP_FD_LIMIT);
    else if (m->nloose >= m->ctx->cfg.max_unbound)
        (void)s_drop_oldest(m, UP_DROP_UNBOUND_LIMIT);
    up_conn_t *c = s_conn_new(m);
    if (!c) {
        close(fd);
        IM_LOG_ERROR("event=msrp_accept_failed err=out_of_memory");
        return;
    }
    int rc = uv_tcp_open(&c->tcp, fd);
    if (rc < 0) {
        close(fd);
        IM_LOG_WARN("event=msrp_accept_failed err=\"%s\"", uv_strerror(rc));
        s_close(c);
        return;
    }
    c->accepted_ms = im_clock_ms();
    s_peer_name(c);
    s_loose_add(m, c);
    up_frame_limits(&c->frame, UP_MSRP_UNBOUND_MAX, 0);
    (void)uv_tcp_nodelay(&c->tcp, 1);
    rc = uv_read_start((uv_stream_t *)&c->tcp, s_on_alloc, s_on_read);
    if (rc < 0) {
        s_drop(c, uv_strerror(rc));
        return;
    }
    c->reading = true;
    up_timer_arm_in(m->ctx->timers, &c->timer, UP_MSRP_BIND_MS);
    IM_LOG_DEBUG("event=msrp_conn_accepted conn=%" PRIu64 " peer=%s", c->id,
                 c->peer);
}

static void s_on_listen(uv_poll_t *h, int status, int events)
{
    (void)events;
    up_msrp_t *m = h->data;
    if (m->closed)
        return;
    if (status < 0) {
        s_accept_pause(m, UP_PAUSE_ERROR, -status);
        return;
    }
    if (!m->fd_baseline_known) {
        m->fd_baseline = s_count_fds();
        m->fd_baseline_known = true;
    }
    /* Read each time: an operator may change it on a running process. */
    struct rlimit rl;
    m->fd_limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
                          rl.rlim_cur != RLIM_INFINITY
                      ? (uint64_t)rl.rlim_cur
                      : UINT64_MAX;
    for (int i = 0; i < UP_MSRP_ACCEPT_BATCH; i++) {
        int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            m->accept_pause_ms = 0;
            s_accept_fd(m, fd);
            continue;
        }
        int err = errno;
        switch (err) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return;
        case EINTR:
        case ECONNABORTED:
        /* Linux passes on network errors of the connection being taken;
         * it is gone, the next one may be fine. */
        case EPROTO:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case ENETDOWN:
        case ENETUNREACH:
        case EPERM:
            continue;
        case EMFILE:
        case ENFILE:
            /* A descriptor held by a connection that has not said who it
             * is goes first; only bound legs left: rest. */
            if (s_drop_oldest(m, UP_DROP_FD_LIMIT))
                continue;
            s_accept_pause(m, UP_PAUSE_FD_LIMIT, err);
            return;
        case ENOBUFS:
        case ENOMEM:
            s_accept_pause(m, UP_PAUSE_NO_MEMORY, err);
            return;
        default:
            s_accept_pause(m, UP_PAUSE_ERROR, err);
            return;
        }
    }
    /* More may wait: the level-triggered poll wakes us again next turn. */
}

/* ---- connecting out --------------------------------------------------- */

static void s_on_connected(uv_connect_t *req, int status)
{
    up_conn_t *c = req->data;
    if (c->state != C_CONNECTING)
        return; /* closed meanwhile: ECANCELED */
    up_leg_t *leg = c->leg;
    if (status < 0 || !leg) {
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED,
               status < 0 ? uv_strerror(status) : "no_leg");
        return;
    }
    up_msrp_t *m = c->m;
    up_context_t *ctx = m->ctx;
    up_timer_cancel(ctx->timers, &c->timer);
    c->state = C_BOUND;
    s_frame_bound(c);
    (void)uv_tcp_nodelay(&c->tcp, 1);
    /* RFC 4975: the side that connects sends a SEND at once, so the other
     * side can bind the connection to its session. No body, so no blank
     * line before the end-line. Its answer is consumed like any other. */
    char tid[UP_RELAY_TID_LEN + 1], mid[UP_RELAY_TID_LEN + 1];
    if (s_random_id(m, tid, UP_RELAY_TID_LEN) < 0 ||
        s_random_id(m, mid, UP_RELAY_TID_LEN) < 0) {
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED,
               "no_random");
        return;
    }
    const char *to = leg->peer_path ? leg->peer_path : "";
    size_t need = strlen(to) + strlen(leg->path) + 4 * UP_RELAY_TID_LEN + 128;
    char *p = s_scratch(m, need);
    int n = p ? snprintf(p, need,
                         "MSRP %s SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
                         "Message-ID: %s\r\nByte-Range: 1-0/0\r\n"
                         "-------%s$\r\n",
                         tid, to, leg->path, mid, tid)
              : -1;
    if (n < 0 || (size_t)n >= need) {
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED,
               "bind_send_too_large");
        return;
    }
    s_out_frame(m, leg, p, (size_t)n);
    if (c->broken) {
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED,
               c->broken);
        return;
    }
    leg->counters.msgs_out++;
    s_txn_add(m, leg, tid, UP_FR_YES, NULL, NULL);
    leg->unreachable = false;
    s_idle_start(c);
    IM_LOG_INFO("event=leg_connected sid=%016" PRIx64 " dir=%s node=%s "
                "conn=%" PRIu64 " peer=%s",
                leg->session_id, up_dir_name(leg->dir), ctx->cfg.id, c->id,
                c->peer);
    s_flow(c);
    up_msrp_leg_ready(m, leg);
}

static int s_peer_addr(const char *host, unsigned port,
                       struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -EINVAL;
}

int up_msrp_connect(up_msrp_t *m, up_leg_t *leg)
{
    if (!m || m->closed || !leg)
        return -EINVAL;
    if (leg->conn)
        return 0;
    const char *start;
    size_t len;
    im_msrp_uri_t uri;
    struct sockaddr_storage ss;
    if (!leg->peer_path || im_msrp_path_last(leg->peer_path, &start, &len) < 0 ||
        im_msrp_uri_parse(start, len, &uri) < 0 || uri.secure ||
        s_peer_addr(uri.host, uri.port, &ss) < 0)
        return -EINVAL;
    up_conn_t *c = s_conn_new(m);
    if (!c)
        return -ENOMEM;
    if (strchr(uri.host, ':'))
        snprintf(c->peer, sizeof(c->peer), "[%.44s]:%u", uri.host, uri.port);
    else
        snprintf(c->peer, sizeof(c->peer), "%.48s:%u", uri.host, uri.port);
    up_context_t *ctx = m->ctx;
    if (up_legs_attach_conn(ctx->legs, leg, c) < 0) {
        s_close(c);
        return -EBUSY;
    }
    c->leg = leg;
    c->state = C_CONNECTING;
    up_metrics_sync(ctx->metrics, ctx->legs);
    int rc = uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&ss,
                            s_on_connected);
    if (rc < 0) {
        s_lost(c, IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_CONNECT_FAILED,
               uv_strerror(rc));
        return 0;
    }
    up_timer_arm_in(ctx->timers, &c->timer, UP_MSRP_CONNECT_MS);
    IM_LOG_DEBUG("event=leg_connecting sid=%016" PRIx64 " dir=%s peer=%s",
                 leg->session_id, up_dir_name(leg->dir), c->peer);
    return 0;
}

/* ---- listener --------------------------------------------------------- */

/* The listening descriptor's one way out: once the poll handle on it is
 * closed, or at free when the handle never opened. */
static void s_listen_fd_close(up_msrp_t *m)
{
    if (m->lfd >= 0)
        close(m->lfd);
    m->lfd = -1;
}

static void s_free(up_msrp_t *m)
{
    s_listen_fd_close(m);
    free(m->rbuf);
    free(m->scratch);
    free(m);
}

static void s_on_handle_closed(uv_handle_t *h)
{
    up_msrp_t *m = h->data;
    if (h == (uv_handle_t *)&m->listener) {
        /* The poll handle no longer watches it: the descriptor can go. */
        m->listener_open = false;
        s_listen_fd_close(m);
    } else
        m->turn_end_open = false;
    if (m->free_on_close && !m->listener_open && !m->turn_end_open)
        s_free(m);
}

static int s_listen(up_msrp_t *m)
{
    up_context_t *ctx = m->ctx;
    char host[IM_MSRP_HOST_MAX];
    unsigned port = 0;
    if (im_config_split_hostport(ctx->cfg.msrp, host, sizeof(host), &port) <
            0 ||
        port > 65535) {
        IM_LOG_ERROR("event=msrp_listen_failed addr=%s why=bad_address",
                     ctx->cfg.msrp);
        return -EINVAL;
    }
    struct sockaddr_storage ss;
    if (s_peer_addr(host, port, &ss) < 0) {
        IM_LOG_ERROR("event=msrp_listen_failed addr=%s why=not_numeric",
                     ctx->cfg.msrp);
        return -EINVAL;
    }
    socklen_t alen = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    if (fd < 0) {
        int rc = -errno;
        IM_LOG_ERROR("event=msrp_listen_failed addr=%s err=\"%s\"",
                     ctx->cfg.msrp, strerror(-rc));
        return rc;
    }
    m->lfd = fd;
    int one = 1;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    int rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, alen) < 0 ||
        listen(fd, UP_MSRP_BACKLOG) < 0 ||
        getsockname(fd, (struct sockaddr *)&bound, &blen) < 0)
        rc = -errno;
    if (rc == 0)
        rc = uv_poll_init(ctx->loop, &m->listener, fd);
    if (rc == 0) {
        m->listener.data = m;
        m->listener_open = true;
        rc = uv_poll_start(&m->listener, UV_READABLE, s_on_listen);
    }
    if (rc < 0) {
        IM_LOG_ERROR("event=msrp_listen_failed addr=%s err=\"%s\"",
                     ctx->cfg.msrp, uv_strerror(rc));
        return rc;
    }
    ctx->msrp_port = bound.ss_family == AF_INET6
                         ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                         : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    snprintf(ctx->advertise, sizeof(ctx->advertise), "%s",
             ctx->cfg.advertise ? ctx->cfg.advertise : host);
    if (strchr(ctx->advertise, ':'))
        snprintf(ctx->msrp_address, sizeof(ctx->msrp_address), "[%s]:%u",
                 ctx->advertise, ctx->msrp_port);
    else
        snprintf(ctx->msrp_address, sizeof(ctx->msrp_address), "%s:%u",
                 ctx->advertise, ctx->msrp_port);
    if (!ctx->cfg.advertise &&
        (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0))
        IM_LOG_WARN("event=config_unroutable option=advertise host=%s "
                    "why=\"wildcard listen address in leg paths\"",
                    host);
    return 0;
}

up_msrp_t *up_msrp_new(up_context_t *ctx)
{
    up_msrp_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->ctx = ctx;
    m->lfd = -1;
    im_timer_init(&m->accept_timer, s_on_accept_timer, m);
    m->rnd_off = sizeof(m->rnd);
    /* A header block may wait whole in a connection's carry while the
     * next read lands after it. */
    m->rbuf_cap = UP_FRAME_HEAD_MAX + UP_MSRP_READ_MAX;
    m->rbuf = malloc(m->rbuf_cap);
    m->scratch = malloc(UP_MSRP_SCRATCH);
    if (!m->rbuf || !m->scratch) {
        IM_LOG_ERROR("event=msrp_listen_failed why=out_of_memory");
        s_free(m);
        return NULL;
    }
    if (s_listen(m) < 0) {
        if (m->listener_open) {
            /* The handle is the loop's until its close runs. */
            m->free_on_close = true;
            m->closed = true;
            uv_close((uv_handle_t *)&m->listener, s_on_handle_closed);
        } else {
            s_free(m);
        }
        return NULL;
    }
    /* Cannot fail on Linux; without it answers are written per pass. */
    if (uv_check_init(ctx->loop, &m->turn_end) == 0) {
        m->turn_end.data = m;
        m->turn_end_open = true;
    }
    return m;
}

void up_msrp_close(up_msrp_t *m)
{
    if (!m || m->closed)
        return;
    s_defer_flush(m);
    m->closed = true;
    up_timer_cancel(m->ctx->timers, &m->accept_timer);
    while (m->loose) {
        up_conn_t *c = m->loose;
        IM_LOG_DEBUG("event=msrp_conn_closed conn=%" PRIu64 " why=shutdown",
                     c->id);
        s_close(c); /* takes it off the list */
    }
    if (m->listener_open)
        uv_close((uv_handle_t *)&m->listener, s_on_handle_closed);
    if (m->turn_end_open)
        uv_close((uv_handle_t *)&m->turn_end, s_on_handle_closed);
}

void up_msrp_destroy(up_msrp_t **m_p)
{
    if (!m_p || !*m_p)
        return;
    up_msrp_t *m = *m_p;
    *m_p = NULL;
    up_msrp_close(m);
    if (m->listener_open || m->turn_end_open) {
        /* Called before the loop ran the close: free from it. */
        m->free_on_close = true;
        return;
    }
    s_free(m);
}

size_t up_msrp_loose(const up_msrp_t *m)
{
    return m ? m->nloose : 0;
}
