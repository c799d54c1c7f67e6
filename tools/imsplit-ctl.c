/* imsplit-ctl: the operator's and the tests' tool for the CP-UP protocol.
 *
 *   workers, sessions   ask a running imsplit-cp (a Query on its ROUTER) and
 *                       print the answer as a table or as JSON
 *   drain ID            tell the CP to drain worker ID (Drain/DrainResult)
 *   keygen PREFIX       write a CURVE keypair (im_curve_keygen_files)
 *   worker, cp          play a fake worker or CP from a script (ctl_peer)
 *
 * Exit codes: 0 done, 1 a script failed (worker, cp), 2 no answer in time,
 * a refusal or an error from the CP or the local setup (reason on stderr),
 * 64 usage error. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "im_clock.h"
#include "im_config.h"
#include "im_curve.h"
#include "im_log.h"
#include "im_proto.h"
#include "im_zmq.h"

#include "ctl_peer.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 2
#define CTL_EXIT_USAGE 64

/* The only request this process sends (workers, sessions, drain); the
 * answer must name it. */
#define CTL_QUERY_SEQ 1u

#define CTL_TIMEOUT_MAX_MS 600000u

typedef struct {
    const char *ctl;
    bool json;
    uint32_t timeout_ms;
    bool help;
    const char *id;     /* worker, cp: own id */
    const char *script; /* worker, cp */
    const char *epoch;  /* worker, cp: decimal or 0x hex, non-zero */
    uint32_t heartbeat_ms;
    const char *bind; /* cp */
    const char *curve_server_key; /* CURVE: the CP's public key (arg) */
    const char *curve_secret;     /* CURVE: our secret key (arg) */
} ctl_opts_t;

/* The CURVE client settings when asked for: 1 on, 0 off, <0 error
 * (printed). */
static int ctl_curve(const ctl_opts_t *o, im_zmq_curve_t *curve)
{
    char err[256];
    if (!o->curve_server_key && !o->curve_secret)
        return 0;
    if (!o->curve_server_key || !o->curve_secret) {
        fprintf(stderr, "imsplit-ctl: --curve-server-key and --curve-secret "
                        "go together\n");
        return -EINVAL;
    }
    int rc = im_zmq_curve_client_load(curve, o->curve_server_key,
                                      o->curve_secret, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "imsplit-ctl: %s\n", err);
        return rc;
    }
    return 1;
}

/* ---- table printing ---------------------------------------------------- */

/* Rows are formatted first and printed once every column width is known, so
 * long worker ids or Call-IDs do not break the alignment. */
#define CTL_COLS_MAX 10

typedef struct {
    size_t ncols;
    size_t nrows; /* including the header row */
    size_t cap;
    char **cells; /* nrows * ncols owned strings */
    size_t width[CTL_COLS_MAX];
} ctl_table_t;

static void ctl_table_free(ctl_table_t *t)
{
    if (!t->cells)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
}

static int ctl_table_row(ctl_table_t *t, const char *const *vals)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **cells = realloc(t->cells, cap * t->ncols * sizeof(*cells));
        if (!cells)
            return -ENOMEM;
        t->cells = cells;
        t->cap = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t c = 0; c < t->ncols; c++) {
        const char *v = vals[c] ? vals[c] : "";
        row[c] = strdup(v[0] ? v : "-");
        if (!row[c]) {
            for (size_t k = 0; k < c; k++)
                free(row[k]);
            return -ENOMEM;
        }
        size_t len = strlen(row[c]);
        if (len > t->width[c])
            t->width[c] = len;
    }
    t->nrows++;
    return 0;
}

static void ctl_table_print(const ctl_table_t *t, FILE *out)
{
    for (size_t r = 0; r < t->nrows; r++) {
        char **row = t->cells + r * t->ncols;
        for (size_t c = 0; c < t->ncols; c++) {
            if (c + 1 == t->ncols)
                fprintf(out, "%s\n", row[c]);
            else
                fprintf(out, "%-*s  ", (int)t->width[c], row[c]);
        }
    }
}

static const char *ctl_worker_state(int state)
{
    switch (state) {
    case IMSPLIT__V1__WORKER_STATE__WORKER_LIVE: return "live";
    case IMSPLIT__V1__WORKER_STATE__WORKER_DRAINING: return "draining";
    case IMSPLIT__V1__WORKER_STATE__WORKER_DEAD: return "dead";
    default: return "unknown";
    }
}

static int ctl_print_workers(const Imsplit__V1__QueryResult *res, FILE *out)
{
    static const char *const hdr[] = {
        "ID",      "STATE",  "EPOCH",    "MSRP",     "LEGS",
        "SOCKETS", "BUFFER", "SESSIONS", "CAPACITY", "LAST_SEEN_MS"};
    ctl_table_t t = {.ncols = 10};
    int rc = ctl_table_row(&t, hdr);
    for (size_t i = 0; rc == 0 && i < res->n_workers; i++) {
        const Imsplit__V1__WorkerInfo *w = res->workers[i];
        if (!w)
            continue;
        char epoch[24], legs[16], socks[16], buf[24], sess[16], cap[16],
            seen[16];
        snprintf(epoch, sizeof(epoch), "%" PRIu64, w->epoch);
        snprintf(legs, sizeof(legs), "%" PRIu32, w->legs_active);
        snprintf(socks, sizeof(socks), "%" PRIu32, w->sockets_open);
        snprintf(buf, sizeof(buf), "%" PRIu64, w->buffer_bytes);
        snprintf(sess, sizeof(sess), "%" PRIu32, w->sessions);
        snprintf(cap, sizeof(cap), "%" PRIu32, w->capacity);
        snprintf(seen, sizeof(seen), "%" PRIu32, w->last_seen_ms);
        const char *row[] = {w->node_id, ctl_worker_state(w->state),
                             epoch,      w->msrp_address,
                             legs,       socks,
                             buf,        sess,
                             cap,        seen};
        rc = ctl_table_row(&t, row);
    }
    if (rc == 0)
        ctl_table_print(&t, out);
    ctl_table_free(&t);
    return rc;
}

static int ctl_print_sessions(const Imsplit__V1__QueryResult *res, FILE *out)
{
    static const char *const hdr[] = {
        "SID",        "CALL-ID",         "STATE",     "WORKER",
        "CLIENT-LEG", "CONTROLLING-LEG", "CLIENT-SE", "CONTROLLING-SE"};
    ctl_table_t t = {.ncols = 8};
    int rc = ctl_table_row(&t, hdr);
    for (size_t i = 0; rc == 0 && i < res->n_sessions; i++) {
        const Imsplit__V1__SessionInfo *s = res->sessions[i];
        if (!s)
            continue;
        /* Same rendering as the daemons' sid=... log field, so a row can be
         * grepped for in the logs. */
        char sid[24], cse[16], kse[16];
        snprintf(sid, sizeof(sid), "%016" PRIx64, s->session_id);
        snprintf(cse, sizeof(cse), "%" PRIu32, s->client_se);
        snprintf(kse, sizeof(kse), "%" PRIu32, s->controlling_se);
        const char *row[] = {
            sid,           s->call_id,         s->state, s->worker_id,
            s->client_leg, s->controlling_leg, cse,      kse};
        rc = ctl_table_row(&t, row);
    }
    if (rc == 0)
        ctl_table_print(&t, out);
    ctl_table_free(&t);
    return rc;
}

/* ---- protocol ---------------------------------------------------------- */

static void ctl_make_id(char *buf, size_t size)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (uint32_t)(im_clock_us() ^ ((uint64_t)getpid() << 16));
    snprintf(buf, size, "ctl-%ld-%08" PRIx32, (long)getpid(), r);
}

/* Waits for the answer (body answer_case, or an ErrorReply) to
 * CTL_QUERY_SEQ and returns it in *out; anything else that arrives (a late
 * answer to another ctl with the same id, a malformed frame) is skipped.
 * Returns 0, -ETIMEDOUT or -errno. */
static int ctl_await(void *sock, uint32_t timeout_ms, int answer_case,
                     im_env_t **out)
{
    uint64_t deadline = im_clock_ms() + timeout_ms;
    *out = NULL;
    /* Bounded by the deadline: each pass either waits or consumes a frame. */
    for (;;) {
        uint64_t now = im_clock_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
        int n = zmq_poll(&item, 1, (long)(deadline - now));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0 || !(item.revents & ZMQ_POLLIN))
            continue;
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&msg);
            if (e == EAGAIN || e == EINTR)
                continue;
            return -e;
        }
        bool more = zmq_msg_more(&msg);
        im_env_t *env = NULL;
        char why[128] = "";
        im_proto_err_t perr = im_proto_unpack(
            zmq_msg_data(&msg), zmq_msg_size(&msg), &env, why, sizeof(why));
        zmq_msg_close(&msg);
        /* One frame per message is the protocol; drain any extra parts so
         * the next receive starts on a message boundary. */
        for (int i = 0; more && i < 64; i++) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&part);
                break;
            }
            more = zmq_msg_more(&part);
            zmq_msg_close(&part);
        }
        if (perr != IM_PROTO_OK) {
            fprintf(stderr, "imsplit-ctl: ignoring frame from CP: %s (%s)\n",
                    im_proto_err_name(perr), why);
            im_proto_free(env);
            continue;
        }
        bool ours = env->reply_to == CTL_QUERY_SEQ && im_env_body(env) &&
                    ((int)env->body_case == answer_case ||
                     env->body_case == IMSPLIT__V1__ENVELOPE__BODY_ERROR);
        if (!ours) {
            im_proto_free(env);
            continue;
        }
        *out = env;
        return 0;
    }
}

/* Sends one frame, waiting up to timeout_ms for the socket to take it. A
 * DEALER normally queues at once (the pipe exists from zmq_connect on), but
 * with no pipe yet or a full queue a plain send would block without bound.
 * Returns 0, -ETIMEDOUT or -errno. */
static int ctl_send(void *sock, const uint8_t *frame, size_t len,
                    uint32_t timeout_ms)
{
    uint64_t deadline = im_clock_ms() + timeout_ms;
    for (;;) {
        if (zmq_send(sock, frame, len, ZMQ_DONTWAIT) >= 0)
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

/* Sends the request env (header filled here) to the CP and waits for the
 * answer of body answer_case or an ErrorReply, returned in *reply. Returns
 * 0 or CTL_EXIT_FAIL (reason printed). */
static int ctl_request(const ctl_opts_t *o, im_env_t *env, int answer_case,
                       im_env_t **reply)
{
    int rc = CTL_EXIT_FAIL;
    void *ctx = zmq_ctx_new();
    void *sock = NULL;
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    char id[64];

    *reply = NULL;
    if (!ctx) {
        fprintf(stderr, "imsplit-ctl: zmq_ctx_new: %s\n", zmq_strerror(errno));
        return CTL_EXIT_FAIL;
    }
    ctl_make_id(id, sizeof(id));
    im_zmq_curve_t curve;
    int on = ctl_curve(o, &curve);
    if (on < 0)
        goto out;
    sock = im_zmq_dealer_connect_opts(ctx, o->ctl, id, on ? &curve : NULL);
    if (on)
        im_zmq_curve_clear(&curve);
    if (!sock) {
        fprintf(stderr, "imsplit-ctl: cannot connect to %s: %s\n", o->ctl,
                zmq_strerror(errno));
        goto out;
    }
    /* Not im_env_init: that would clear the body the caller set. */
    env->major = IM_PROTO_MAJOR;
    env->minor = IM_PROTO_MINOR;
    env->sender_id = id;
    env->sender_epoch = im_clock_epoch();
    env->seq = CTL_QUERY_SEQ;
    if (im_proto_pack(env, &frame, &frame_len) < 0) {
        fprintf(stderr, "imsplit-ctl: cannot encode the request\n");
        goto out;
    }
    uint64_t start = im_clock_ms();
    int src = ctl_send(sock, frame, frame_len, o->timeout_ms);
    if (src == -ETIMEDOUT) {
        fprintf(stderr,
                "imsplit-ctl: could not send to %s within %" PRIu32 " ms\n",
                o->ctl, o->timeout_ms);
        goto out;
    }
    if (src < 0) {
        fprintf(stderr, "imsplit-ctl: send to %s: %s\n", o->ctl,
                zmq_strerror(-src));
        goto out;
    }
    uint64_t spent = im_clock_ms() - start;
    uint32_t left =
        spent >= o->timeout_ms ? 1 : o->timeout_ms - (uint32_t)spent;

    int arc = ctl_await(sock, left, answer_case, reply);
    if (arc == -ETIMEDOUT) {
        fprintf(stderr,
                "imsplit-ctl: no answer from %s within %" PRIu32 " ms\n",
                o->ctl, o->timeout_ms);
        goto out;
    }
    if (arc < 0) {
        fprintf(stderr, "imsplit-ctl: receive from %s: %s\n", o->ctl,
                zmq_strerror(-arc));
        goto out;
    }
    rc = CTL_EXIT_OK;
out:
    free(frame);
    im_zmq_close(&sock);
    zmq_ctx_term(ctx);
    return rc;
}

/* Prints the answer as one JSON line. 0 or CTL_EXIT_FAIL. */
static int ctl_print_json(const im_env_t *reply)
{
    char *json = im_proto_to_json(reply);
    if (!json) {
        fprintf(stderr, "imsplit-ctl: cannot render JSON\n");
        return CTL_EXIT_FAIL;
    }
    printf("%s\n", json);
    free(json);
    return CTL_EXIT_OK;
}

static void ctl_print_error(const im_env_t *reply)
{
    fprintf(stderr, "imsplit-ctl: CP answered with an error (code %d): %s\n",
            (int)reply->error->code,
            reply->error->message ? reply->error->message : "");
}

static int ctl_flush_stdout(int rc)
{
    if (fflush(stdout) != 0 && rc == CTL_EXIT_OK) {
        fprintf(stderr, "imsplit-ctl: write to stdout: %s\n", strerror(errno));
        return CTL_EXIT_FAIL;
    }
    return rc;
}

static int ctl_query(const ctl_opts_t *o, int kind)
{
    im_env_t *reply = NULL;
    Imsplit__V1__Query q = IMSPLIT__V1__QUERY__INIT;
    im_env_t env = IMSPLIT__V1__ENVELOPE__INIT;
    int rc;

    q.kind = (Imsplit__V1__QueryKind)kind;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_QUERY;
    env.query = &q;
    rc = ctl_request(o, &env, IMSPLIT__V1__ENVELOPE__BODY_QUERY_RESULT, &reply);
    if (rc != CTL_EXIT_OK)
        return ctl_flush_stdout(rc);
    bool error = reply->body_case == IMSPLIT__V1__ENVELOPE__BODY_ERROR;
    if (o->json) {
        rc = ctl_print_json(reply);
        if (rc == CTL_EXIT_OK && error) {
            ctl_print_error(reply);
            rc = CTL_EXIT_FAIL;
        }
    } else if (error) {
        ctl_print_error(reply);
        rc = CTL_EXIT_FAIL;
    } else {
        int prc = kind == IMSPLIT__V1__QUERY_KIND__QUERY_WORKERS
                      ? ctl_print_workers(reply->query_result, stdout)
                      : ctl_print_sessions(reply->query_result, stdout);
        if (prc < 0) {
            fprintf(stderr, "imsplit-ctl: out of memory\n");
            rc = CTL_EXIT_FAIL;
        }
    }
    im_proto_free(reply);
    return ctl_flush_stdout(rc);
}

/* Drain{node_id}: 0 when the CP answers STATUS_OK, 2 otherwise (unknown
 * worker, error, no answer). */
static int ctl_drain(const ctl_opts_t *o, const char *node_id)
{
    im_env_t *reply = NULL;
    Imsplit__V1__Drain d = IMSPLIT__V1__DRAIN__INIT;
    im_env_t env = IMSPLIT__V1__ENVELOPE__INIT;
    int rc;

    d.node_id = (char *)node_id;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_DRAIN;
    env.drain = &d;
    rc = ctl_request(o, &env, IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT, &reply);
    if (rc != CTL_EXIT_OK)
        return ctl_flush_stdout(rc);
    if (o->json)
        rc = ctl_print_json(reply);
    if (reply->body_case == IMSPLIT__V1__ENVELOPE__BODY_ERROR) {
        ctl_print_error(reply);
        rc = CTL_EXIT_FAIL;
    } else if (reply->drain_result->status == IMSPLIT__V1__STATUS__STATUS_OK) {
        if (!o->json)
            printf("worker %s is draining\n", node_id);
    } else {
        int st = reply->drain_result->status;
        fprintf(stderr, "imsplit-ctl: drain %s refused: %s\n", node_id,
                st == IMSPLIT__V1__STATUS__STATUS_NOT_FOUND
                    ? "no such worker"
                    : im_proto_status_name(st));
        rc = CTL_EXIT_FAIL;
    }
    im_proto_free(reply);
    return ctl_flush_stdout(rc);
}

static int ctl_keygen_cmd(const char *prefix)
{
    char err[512];
    char path[4096];
    im_curve_key_t pub;
    char z85[IM_CURVE_Z85_LEN + 1];

    if (im_curve_keygen_files(prefix, err, sizeof(err)) < 0) {
        fprintf(stderr, "imsplit-ctl: keygen: %s\n", err);
        return CTL_EXIT_FAIL;
    }
    snprintf(path, sizeof(path), "%s.pub", prefix);
    if (im_curve_key_load(path, IM_CURVE_PUBLIC, &pub, err, sizeof(err)) < 0) {
        fprintf(stderr, "imsplit-ctl: keygen: %s\n", err);
        return CTL_EXIT_FAIL;
    }
    im_curve_key_z85(&pub, z85);
    printf("%s\n", z85);
    return ctl_flush_stdout(CTL_EXIT_OK);
}

/* ---- main -------------------------------------------------------------- */

static void ctl_usage(FILE *f, const char *prog, const im_opt_t *opts,
                      size_t nopts)
{
    im_config_usage(f, prog, opts, nopts);
    fprintf(f,
            "\ncommands:\n"
            "  workers         the CP's workers: state, epoch, MSRP address, "
            "load\n"
            "  sessions        the CP's sessions (at most the first 1000)\n"
            "  drain ID        stop placing sessions on worker ID and let it "
            "drain\n"
            "  keygen PREFIX   write a CURVE keypair to PREFIX.pub and "
            "PREFIX.key\n"
            "  worker          play a worker: --ctl EP --id ID --script FILE\n"
            "                  [--epoch N] [--heartbeat-ms MS]\n"
            "  cp              play a CP: --bind EP --script FILE [--epoch N]\n"
            "                  [--heartbeat-ms MS] [--id ID]\n"
            "\nexit: 0 done, 1 script failed, 2 no answer in time, refused "
            "or an error, 64 usage\n");
}

static int ctl_parse_epoch(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!s || !(s[0] >= '0' && s[0] <= '9'))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end,
                 (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10);
    if (*end || errno == ERANGE || v == 0)
        return -EINVAL;
    *out = (uint64_t)v;
    return 0;
}

static int ctl_peer_cmd(const ctl_opts_t *o, bool cp)
{
    ctl_peer_opts_t po = {
        .mode = cp ? CTL_PEER_CP : CTL_PEER_WORKER,
        .endpoint = cp ? o->bind : o->ctl,
        .id = o->id,
        .heartbeat_ms = o->heartbeat_ms,
        .script = o->script,
    };
    im_zmq_curve_t curve;

    if (!o->script || !o->script[0]) {
        fprintf(stderr, "imsplit-ctl: %s needs --script FILE\n",
                cp ? "cp" : "worker");
        return CTL_EXIT_USAGE;
    }
    if (cp && (!o->bind || !o->bind[0])) {
        fprintf(stderr, "imsplit-ctl: cp needs --bind ENDPOINT\n");
        return CTL_EXIT_USAGE;
    }
    if (!cp && (!o->id || !o->id[0])) {
        fprintf(stderr, "imsplit-ctl: worker needs --id ID\n");
        return CTL_EXIT_USAGE;
    }
    if (o->epoch && ctl_parse_epoch(o->epoch, &po.epoch) < 0) {
        fprintf(stderr,
                "imsplit-ctl: --epoch: \"%s\" is not a non-zero "
                "number\n",
                o->epoch);
        return CTL_EXIT_USAGE;
    }
    int on = ctl_curve(o, &curve);
    if (on < 0)
        return CTL_EXIT_USAGE;
    if (on && cp) {
        im_zmq_curve_clear(&curve);
        fprintf(stderr, "imsplit-ctl: cp mode does not speak CURVE\n");
        return CTL_EXIT_USAGE;
    }
    po.curve = on ? &curve : NULL;
    int rc = ctl_peer_run(&po);
    if (on)
        im_zmq_curve_clear(&curve);
    return rc;
}

int main(int argc, char **argv)
{
    ctl_opts_t o = {.ctl = "tcp://127.0.0.1:5600", .timeout_ms = 2000};
    const im_opt_t opts[] = {
        {"ctl", IM_OPT_STRING, &o.ctl, 0, 0,
         "CP control endpoint (ZeroMQ ROUTER)"},
        {"json", IM_OPT_BOOL, &o.json, 0, 0,
         "print the CP's answer as one JSON line"},
        {"timeout", IM_OPT_UINT, &o.timeout_ms, 1, CTL_TIMEOUT_MAX_MS,
         "milliseconds to wait for the answer"},
        {"id", IM_OPT_STRING, &o.id, 0, 0,
         "worker, cp: own routing id / sender id"},
        {"script", IM_OPT_STRING, &o.script, 0, 0, "worker, cp: script file"},
        {"epoch", IM_OPT_STRING, &o.epoch, 0, 0,
         "worker, cp: own epoch (default: random)"},
        {"heartbeat-ms", IM_OPT_UINT, &o.heartbeat_ms, 1, CTL_TIMEOUT_MAX_MS,
         "worker, cp: send heartbeats every MS from the start"},
        {"bind", IM_OPT_STRING, &o.bind, 0, 0,
         "cp: ROUTER endpoint to bind for workers"},
        {"curve-server-key", IM_OPT_STRING, &o.curve_server_key, 0, 0,
         "CURVE: the CP's public key (key file or Z85 text)"},
        {"curve-secret", IM_OPT_STRING, &o.curve_secret, 0, 0,
         "CURVE: our secret key (its public key on the CP's --curve-allow)"},
        {"help", IM_OPT_BOOL, &o.help, 0, 0, "print this help"},
    };
    const size_t nopts = sizeof(opts) / sizeof(opts[0]);
    const char *pos[4] = {0};
    size_t npos = sizeof(pos) / sizeof(pos[0]);
    char err[256] = "";
    const char *prog = argc > 0 && argv[0] ? argv[0] : "imsplit-ctl";

    im_log_init("ctl", IM_LOG_LEVEL_WARN);
    if (im_config_parse(opts, nopts, argc, argv, pos, &npos, err, sizeof(err)) <
        0) {
        fprintf(stderr, "imsplit-ctl: %s\n", err);
        ctl_usage(stderr, prog, opts, nopts);
        return CTL_EXIT_USAGE;
    }
    if (o.help) {
        ctl_usage(stdout, prog, opts, nopts);
        return CTL_EXIT_OK;
    }
    if (npos < 1 || !pos[0]) {
        fprintf(stderr, "imsplit-ctl: expected a command\n");
        ctl_usage(stderr, prog, opts, nopts);
        return CTL_EXIT_USAGE;
    }
    const char *cmd = pos[0];
    size_t want = !strcmp(cmd, "drain") || !strcmp(cmd, "keygen") ? 2 : 1;
    bool known = !strcmp(cmd, "workers") || !strcmp(cmd, "sessions") ||
                 !strcmp(cmd, "drain") || !strcmp(cmd, "keygen") ||
                 !strcmp(cmd, "worker") || !strcmp(cmd, "cp");
    if (!known) {
        fprintf(stderr, "imsplit-ctl: unknown command \"%s\"\n", cmd);
        ctl_usage(stderr, prog, opts, nopts);
        return CTL_EXIT_USAGE;
    }
    if (npos != want || (want == 2 && (!pos[1] || !pos[1][0]))) {
        fprintf(stderr, "imsplit-ctl: %s takes %s\n", cmd,
                want == 2 ? (strcmp(cmd, "drain") ? "a PREFIX" : "a worker ID")
                          : "no arguments");
        ctl_usage(stderr, prog, opts, nopts);
        return CTL_EXIT_USAGE;
    }
    if (!strcmp(cmd, "keygen"))
        return ctl_keygen_cmd(pos[1]);
    if (!strcmp(cmd, "cp"))
        return ctl_peer_cmd(&o, true);
    if (!o.ctl || !o.ctl[0]) {
        fprintf(stderr, "imsplit-ctl: --ctl must not be empty\n");
        return CTL_EXIT_USAGE;
    }
    if (!strcmp(cmd, "worker"))
        return ctl_peer_cmd(&o, false);
    if (!strcmp(cmd, "drain"))
        return ctl_drain(&o, pos[1]);
    return ctl_query(&o, !strcmp(cmd, "workers")
                             ? IMSPLIT__V1__QUERY_KIND__QUERY_WORKERS
                             : IMSPLIT__V1__QUERY_KIND__QUERY_SESSIONS);
}
