/* imsplit-ctl: asks a running imsplit-cp about its workers or sessions over
 * the CP-UP protocol (a Query envelope on the CP's ROUTER) and prints the
 * answer as a table or as JSON.
 *
 * Exit codes: 0 answer printed, 2 no answer in time or an error from the CP
 * or the local setup (reason on stderr), 64 usage error. */
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
#include "im_log.h"
#include "im_proto.h"
#include "im_zmq.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 2
#define CTL_EXIT_USAGE 64

/* The only command this process sends; the answer must name it. */
#define CTL_QUERY_SEQ 1u

#define CTL_TIMEOUT_MAX_MS 600000u

typedef struct {
    const char *ctl;
    bool json;
    uint32_t timeout_ms;
    bool help;
} ctl_opts_t;

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

/* Waits for the QueryResult (or ErrorReply) that answers CTL_QUERY_SEQ and
 * returns it in *out; anything else that arrives (a late answer to another
 * ctl with the same id, a malformed frame) is skipped. Returns 0, -ETIMEDOUT
 * or -errno. */
static int ctl_await(void *sock, uint32_t timeout_ms, im_env_t **out)
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
        bool ours =
            env->reply_to == CTL_QUERY_SEQ &&
            ((env->body_case == IMSPLIT__V1__ENVELOPE__BODY_QUERY_RESULT &&
              env->query_result) ||
             (env->body_case == IMSPLIT__V1__ENVELOPE__BODY_ERROR &&
              env->error));
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

static int ctl_query(const ctl_opts_t *o, int kind)
{
    int rc = CTL_EXIT_FAIL;
    void *ctx = zmq_ctx_new();
    void *sock = NULL;
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    im_env_t *reply = NULL;
    char id[64];

    if (!ctx) {
        fprintf(stderr, "imsplit-ctl: zmq_ctx_new: %s\n", zmq_strerror(errno));
        return CTL_EXIT_FAIL;
    }
    ctl_make_id(id, sizeof(id));
    sock = im_zmq_dealer_connect(ctx, o->ctl, id);
    if (!sock) {
        fprintf(stderr, "imsplit-ctl: cannot connect to %s: %s\n", o->ctl,
                zmq_strerror(errno));
        goto out;
    }

    Imsplit__V1__Query q = IMSPLIT__V1__QUERY__INIT;
    q.kind = (Imsplit__V1__QueryKind)kind;
    im_env_t env = IMSPLIT__V1__ENVELOPE__INIT;
    im_env_init(&env, id, im_clock_epoch(), CTL_QUERY_SEQ);
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_QUERY;
    env.query = &q;
    if (im_proto_pack(&env, &frame, &frame_len) < 0) {
        fprintf(stderr, "imsplit-ctl: cannot encode the query\n");
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

    int arc = ctl_await(sock, left, &reply);
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

    if (o->json) {
        char *json = im_proto_to_json(reply);
        if (!json) {
            fprintf(stderr, "imsplit-ctl: cannot render JSON\n");
            goto out;
        }
        printf("%s\n", json);
        free(json);
        rc = reply->body_case == IMSPLIT__V1__ENVELOPE__BODY_ERROR
                 ? CTL_EXIT_FAIL
                 : CTL_EXIT_OK;
        if (rc != CTL_EXIT_OK)
            fprintf(stderr, "imsplit-ctl: CP answered with an error: %s\n",
                    reply->error->message ? reply->error->message : "");
        goto out;
    }
    if (reply->body_case == IMSPLIT__V1__ENVELOPE__BODY_ERROR) {
        fprintf(stderr,
                "imsplit-ctl: CP answered with an error (code %d): %s\n",
                (int)reply->error->code,
                reply->error->message ? reply->error->message : "");
        goto out;
    }
    int prc = kind == IMSPLIT__V1__QUERY_KIND__QUERY_WORKERS
                  ? ctl_print_workers(reply->query_result, stdout)
                  : ctl_print_sessions(reply->query_result, stdout);
    if (prc < 0) {
        fprintf(stderr, "imsplit-ctl: out of memory\n");
        goto out;
    }
    rc = CTL_EXIT_OK;
out:
    if (fflush(stdout) != 0 && rc == CTL_EXIT_OK) {
        fprintf(stderr, "imsplit-ctl: write to stdout: %s\n", strerror(errno));
        rc = CTL_EXIT_FAIL;
    }
    im_proto_free(reply);
    free(frame);
    im_zmq_close(&sock);
    zmq_ctx_term(ctx);
    return rc;
}

/* ---- main -------------------------------------------------------------- */

static void ctl_usage(FILE *f, const char *prog, const im_opt_t *opts,
                      size_t nopts)
{
    im_config_usage(f, prog, opts, nopts);
    fprintf(f,
            "\ncommands:\n"
            "  workers    the CP's workers: state, epoch, MSRP address, load\n"
            "  sessions   the CP's sessions (at most the first 1000)\n"
            "\nexit: 0 answered, 2 no answer in time or an error, 64 usage\n");
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
    if (npos != 1 || !pos[0]) {
        fprintf(stderr, "imsplit-ctl: expected exactly one command\n");
        ctl_usage(stderr, prog, opts, nopts);
        return CTL_EXIT_USAGE;
    }
    int kind;
    if (strcmp(pos[0], "workers") == 0) {
        kind = IMSPLIT__V1__QUERY_KIND__QUERY_WORKERS;
    } else if (strcmp(pos[0], "sessions") == 0) {
        kind = IMSPLIT__V1__QUERY_KIND__QUERY_SESSIONS;
    } else {
        fprintf(stderr, "imsplit-ctl: unknown command \"%s\"\n", pos[0]);
        ctl_usage(stderr, prog, opts, nopts);
        return CTL_EXIT_USAGE;
    }
    if (!o.ctl || !o.ctl[0]) {
        fprintf(stderr, "imsplit-ctl: --ctl must not be empty\n");
        return CTL_EXIT_USAGE;
    }
    return ctl_query(&o, kind);
}
