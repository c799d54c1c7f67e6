/* imsplit-msrp-peer: a small MSRP (RFC 4975) endpoint for tests and
 * benchmarks. One TCP connection, one thread, poll().
 *
 *   --listen HOST:PORT         accept one connection (passive end)
 *   --connect msrp://H:P/S;tcp connect and send an empty SEND at once to bind
 *                              the connection (active end)
 *   --local-path URI           our From-Path (default: made up from the
 *                              listen address or the local socket)
 *   --remote-path PATH         To-Path of what we send. Connect mode: the
 *                              connect URI by default. Listen mode: learnt
 *                              from the From-Path of the first request.
 *   --send N --size B [--chunk C] [--abort-after K] [--interval-us U]
 *          [--rate BYTES_PER_S]
 *                              one group of N messages of B bytes in chunks of
 *                              C bytes (default min(B, 1 MiB)); message K (1-based,
 *                              in this group) is aborted: its first chunk is
 *                              sent, then part of the next one ends with '#'
 *                              (a one-chunk message: half of it, with '#').
 *                              --interval-us: message i of the group starts no
 *                              earlier than i * U after its first one (pacing,
 *                              for latency runs); --rate: the group's chunks
 *                              start no faster than that many body bytes a
 *                              second. Repeat --send to queue further groups.
 *   --expect N --expect-size B expect N complete messages of B bytes; repeat
 *                              for groups mirroring the sender's --send ones.
 *   --expect-aborted K         also expect K aborted messages
 *   --window W                 SENDs awaiting their 200 at most (default 32)
 *   --send-after-recv          send nothing before a message chunk from the
 *                              far side arrived (so a relay has both legs)
 *   --stamps FILE              "S m ns" when message m starts to leave, "R m ns"
 *                              when it has arrived whole (CLOCK_MONOTONIC,
 *                              which Linux shares between processes)
 *   --no-path-check            accept To-Path/From-Path as they come (a plain
 *                              TCP relay in between does not rewrite them)
 *   --wait-close               once the work is done, keep the connection and
 *                              wait for the far side to close it
 *   --timeout-ms T             bound on the whole run (default 30000)
 *   --tag T                    Message-ID prefix (default from pid + random)
 *   --verbose                  one stderr line per frame
 *
 * Body pattern, checked end to end: byte i (0-based) of message m (the number
 * after the last '-' of its Message-ID) is (m * 31 + i) & 0xff.
 *
 * The end of a frame is found by scanning for its end-line; Byte-Range only
 * places a chunk inside its message and is cross-checked. Memory is bounded:
 * a fixed receive buffer, a fixed queue for responses (reading pauses when it
 * is full), one outgoing frame at a time (written from the pattern table
 * with sendmsg, no copy), at most PEER_OPEN_MAX messages being reassembled.
 *
 * Output, one line on stdout at the end:
 *   sent= received= aborted= aborted_sent= bad= empty_in= bytes_in= bytes_out=
 *   payload_in= payload_out= resp_ok= resp_err= path_err= proto_err=
 *   closed_by_peer=0|1 close_ms= done_ms= close_real_ms= done_real_ms=
 *   elapsed_ms= mbps= data_start_ns= data_end_ns= timed_out=0|1
 * bytes_* count every byte on the socket, payload_* message bodies only.
 * elapsed_ms runs from the connection to the end of the work (or of the run
 * when the work never ended); mbps = (payload_in + payload_out) * 8 / 10^6 per
 * second of it. close_ms and done_ms are ms since the connection (-1: never);
 * close_real_ms and done_real_ms the same instants as Unix time in ms (0:
 * never), to compare with other processes' logs. data_start_ns is when the
 * first data SEND started to leave, data_end_ns when the last expected
 * message arrived (or, sending only, the last 200 came), CLOCK_MONOTONIC.
 *
 * Exit: 0 the work is done with no error (and, with --wait-close, the far
 * side closed); 1 otherwise; 64 usage. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "im_msrp_uri.h"

#define PEER_EXIT_OK 0
#define PEER_EXIT_FAIL 1
#define PEER_EXIT_USAGE 64

#define PEER_RBUF (256 * 1024)
#define PEER_RESP_MAX (256 * 1024)
#define PEER_PATH_MAX 1024
/* One response: start line, two paths, end-line. */
#define PEER_RESP_SLOT (2 * PEER_PATH_MAX + 160)
#define PEER_LINE_MAX (PEER_PATH_MAX + 64)
#define PEER_HDR_MAX (16 * 1024)
#define PEER_CHUNK_MAX (4 * 1024 * 1024)
#define PEER_CHUNK_DEFAULT (1024 * 1024)
#define PEER_SIZE_MAX (1ull << 40)
#define PEER_GROUPS_MAX 16
#define PEER_WINDOW_MAX 1024
#define PEER_OPEN_MAX 64
#define PEER_SEEN_BITS (1u << 20)
#define PEER_TID_MAX 32
#define PEER_MSGID_MAX 128
#define PEER_TAG_MAX 48
#define PEER_ERRORS_SHOWN 10

typedef struct {
    uint64_t count;
    uint64_t size;
    uint64_t chunk;
    uint64_t abort_after; /* 1-based; 0: none */
    uint64_t interval_us;
    uint64_t rate; /* body bytes per second; 0: unpaced */
} peer_group_t;

typedef struct {
    const char *listen;
    const char *connect;
    const char *local_path;
    const char *remote_path;
    peer_group_t send[PEER_GROUPS_MAX];
    size_t nsend;
    peer_group_t expect[PEER_GROUPS_MAX];
    size_t nexpect;
    long long expect_aborted; /* -1: not checked */
    unsigned window;
    bool send_after_recv;
    const char *stamps;
    bool no_path_check;
    bool wait_close;
    uint64_t timeout_ms;
    const char *tag;
    bool verbose;
} peer_opts_t;

/* ---- parser ------------------------------------------------------------ */

typedef enum { P_START = 0, P_HEADERS, P_BODY } peer_pstate_t;

typedef struct {
    peer_pstate_t state;
    size_t hdr_bytes;
    char tid[PEER_TID_MAX + 1];
    size_t tid_len;
    bool request;
    char method[16];
    unsigned status;
    char to_path[PEER_PATH_MAX + 1];
    char from_path[PEER_PATH_MAX + 1];
    char msgid[PEER_MSGID_MAX + 1];
    char byte_range[64];
    char failure_report[16];
    char content_type[64];
    bool has_body;
    /* Body state: bytes at the buffer's start that are not data (the CRLF
     * of the blank line, kept so an end-line right after it is seen). */
    size_t skip;
    uint64_t body_len;
    char term[2 + 7 + PEER_TID_MAX + 1]; /* "\r\n-------" tid */
    size_t term_len;
} peer_parser_t;

/* ---- state ------------------------------------------------------------- */

typedef struct {
    bool used;
    char tid[PEER_TID_MAX + 1];
} peer_txn_t;

typedef struct {
    bool used;
    char id[PEER_MSGID_MAX + 1];
    uint64_t m;
    uint64_t got;
    uint64_t total; /* UINT64_MAX: unknown ('*') */
    bool bad;
} peer_rmsg_t;

typedef struct {
    const peer_opts_t *o;
    int lfd;
    int fd;
    bool connecting;
    bool connected;
    bool closed;
    bool fatal;
    bool timed_out;
    uint64_t t0_ns;      /* connection established */
    uint64_t t_start_ns; /* process start, for the timeout */
    uint64_t done_ns;
    uint64_t close_ns;
    uint64_t done_real_ms;
    uint64_t close_real_ms;
    char local_path[PEER_PATH_MAX + 1];
    char remote_path[PEER_PATH_MAX + 1];
    im_msrp_uri_t local_uri;
    char tag[PEER_TAG_MAX + 1];
    char tid_base[8];
    uint64_t tid_next;

    /* input */
    uint8_t *rbuf;
    size_t rlen;
    peer_parser_t p;
    /* current incoming SEND */
    bool in_send;
    bool in_empty;
    bool in_bad;
    peer_rmsg_t *in_msg;
    uint64_t in_start; /* 0-based offset of the chunk in its message */
    uint64_t in_end;   /* declared 1-based end; UINT64_MAX for '*' */
    uint64_t in_total;
    bool in_want_200;
    peer_rmsg_t open[PEER_OPEN_MAX];
    uint8_t *seen; /* completed message numbers */

    /* output: responses, written between frames */
    char *resp;
    size_t resp_len;
    size_t resp_off;
    /* output: the frame being written */
    bool frame_active;
    char fhdr[2 * PEER_PATH_MAX + 512];
    size_t fhdr_len;
    const uint8_t *fbody;
    size_t fbody_len;
    char ftrl[16 + PEER_TID_MAX];
    size_t ftrl_len;
    size_t foff;
    bool frame_final; /* the frame ends a message with '$' */
    bool frame_abort; /* ... or with '#' */
    /* send progress */
    bool bind_needed; /* connect mode: our empty SEND is not answered yet */
    bool bind_tid_set;
    char bind_tid[PEER_TID_MAX + 1];
    bool bound; /* data may flow */
    size_t sg;  /* current group */
    uint64_t gi;
    uint64_t m;
    uint64_t msg_off;
    peer_txn_t *txns;
    unsigned ntxn;
    unsigned txn_cap;
    uint64_t group_start_ns; /* first chunk of the current group */
    uint64_t group_payload;  /* body bytes of the group started so far */

    /* expectations */
    uint64_t expect_total;

    /* counters */
    uint64_t sent, received, aborted, aborted_sent, bad, empty_in;
    uint64_t bytes_in, bytes_out, payload_in, payload_out;
    uint64_t resp_ok, resp_err, path_err, proto_err, reports_in;
    uint64_t data_start_ns, data_end_ns;
    unsigned errors_shown;
    bool close_reset;

    uint8_t *pat;
    size_t pat_len;
    FILE *stamps;
} peer_t;

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static uint64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t s_real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void s_err(peer_t *pe, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Problems are counted by the caller; the first few are shown. */
static void s_err(peer_t *pe, const char *fmt, ...)
{
    if (pe->errors_shown++ >= PEER_ERRORS_SHOWN)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("imsplit-msrp-peer: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void s_dbg(const peer_t *pe, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_dbg(const peer_t *pe, const char *fmt, ...)
{
    if (!pe->o->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "imsplit-msrp-peer: +%.3f ",
            (double)(s_now_ns() - pe->t_start_ns) / 1e6);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- small helpers ------------------------------------------------------ */

static int s_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s)
        return -EINVAL;
    uint64_t v = 0;
    for (const char *q = s; *q; q++) {
        if (*q < '0' || *q > '9')
            return -EINVAL;
        unsigned d = (unsigned)(*q - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

static bool s_is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' ||
           c == '%' || c == '=';
}

/* First or last space-separated URI of a path value, as [*s, *s + *n). */
static bool s_path_first(const char *path, const char **s, size_t *n)
{
    while (*path == ' ' || *path == '\t')
        path++;
    size_t len = strcspn(path, " \t");
    if (len == 0)
        return false;
    *s = path;
    *n = len;
    return true;
}

static bool s_path_last(const char *path, const char **s, size_t *n)
{
    const char *start;
    size_t len;
    return im_msrp_path_last(path, &start, &len) == 0 && len > 0 &&
           (*s = start, *n = len, true);
}

static size_t s_path_count(const char *path)
{
    size_t n = 0;
    const char *q = path;
    while (*q) {
        while (*q == ' ' || *q == '\t')
            q++;
        if (!*q)
            break;
        n++;
        q += strcspn(q, " \t");
    }
    return n;
}

/* RFC 4975 section 6.1: scheme, host (case-insensitive), port and session
 * id (case-sensitive) name an endpoint. */
static bool s_uri_same(const char *a, size_t alen, const im_msrp_uri_t *b)
{
    im_msrp_uri_t u;
    if (im_msrp_uri_parse(a, alen, &u) < 0)
        return false;
    return u.secure == b->secure && u.port == b->port &&
           strcasecmp(u.host, b->host) == 0 &&
           strcmp(u.session, b->session) == 0;
}

static int s_random_alnum(char *buf, size_t n)
{
    static const char set[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    uint8_t raw[64];
    if (n > sizeof(raw))
        return -EINVAL;
    if (getrandom(raw, n, 0) != (ssize_t)n)
        return -EIO;
    for (size_t i = 0; i < n; i++)
        buf[i] = set[raw[i] % (sizeof(set) - 1)];
    buf[n] = '\0';
    return 0;
}

static void s_new_tid(peer_t *pe, char *tid)
{
    snprintf(tid, PEER_TID_MAX + 1, "t%s%010" PRIx64, pe->tid_base,
             ++pe->tid_next);
}

static void s_seen_set(peer_t *pe, uint64_t m)
{
    if (m < PEER_SEEN_BITS)
        pe->seen[m / 8] |= (uint8_t)(1u << (m % 8));
}

static bool s_seen(const peer_t *pe, uint64_t m)
{
    return m < PEER_SEEN_BITS && (pe->seen[m / 8] & (1u << (m % 8)));
}

static const uint8_t *s_pattern(const peer_t *pe, uint64_t m, uint64_t off)
{
    return pe->pat + ((m * 31u + off) & 0xffu);
}

/* Expected size of message m (0-based over the --expect groups); false for
 * a message beyond them. */
static bool s_expected_size(const peer_t *pe, uint64_t m, uint64_t *size)
{
    for (size_t i = 0; i < pe->o->nexpect; i++) {
        if (m < pe->o->expect[i].count) {
            *size = pe->o->expect[i].size;
            return true;
        }
        m -= pe->o->expect[i].count;
    }
    return false;
}

/* ---- output ------------------------------------------------------------- */

static bool s_resp_room(const peer_t *pe)
{
    return PEER_RESP_MAX - (pe->resp_len - pe->resp_off) >= PEER_RESP_SLOT;
}

static void s_resp_compact(peer_t *pe)
{
    if (pe->resp_off == pe->resp_len) {
        pe->resp_off = pe->resp_len = 0;
    } else if (pe->resp_off > 0 && pe->resp_len + PEER_RESP_SLOT > PEER_RESP_MAX) {
        memmove(pe->resp, pe->resp + pe->resp_off, pe->resp_len - pe->resp_off);
        pe->resp_len -= pe->resp_off;
        pe->resp_off = 0;
    }
}

/* A per-hop response to the request just parsed: To-Path is the first URI
 * of its From-Path (the previous hop), From-Path is us. The parser does not
 * start a frame unless a slot is free. */
static void s_respond(peer_t *pe, unsigned code, const char *text)
{
    s_resp_compact(pe);
    const char *prev = "";
    size_t prev_len = 0;
    (void)s_path_first(pe->p.from_path, &prev, &prev_len);
    int n = snprintf(pe->resp + pe->resp_len, PEER_RESP_MAX - pe->resp_len,
                     "MSRP %s %03u %s\r\nTo-Path: %.*s\r\nFrom-Path: %s\r\n"
                     "-------%s$\r\n",
                     pe->p.tid, code, text, (int)prev_len, prev,
                     pe->local_path, pe->p.tid);
    if (n < 0 || (size_t)n >= PEER_RESP_MAX - pe->resp_len) {
        pe->proto_err++;
        s_err(pe, "response queue overflow");
        pe->fatal = true;
        return;
    }
    pe->resp_len += (size_t)n;
}

static peer_txn_t *s_txn_add(peer_t *pe, const char *tid)
{
    for (unsigned i = 0; i < pe->txn_cap; i++) {
        if (!pe->txns[i].used) {
            pe->txns[i].used = true;
            snprintf(pe->txns[i].tid, sizeof(pe->txns[i].tid), "%s", tid);
            pe->ntxn++;
            return &pe->txns[i];
        }
    }
    return NULL;
}

static bool s_txn_take(peer_t *pe, const char *tid)
{
    for (unsigned i = 0; i < pe->txn_cap; i++) {
        if (pe->txns[i].used && strcmp(pe->txns[i].tid, tid) == 0) {
            pe->txns[i].used = false;
            pe->ntxn--;
            return true;
        }
    }
    return false;
}

static void s_start_bind(peer_t *pe)
{
    char tid[PEER_TID_MAX + 1];
    s_new_tid(pe, tid);
    snprintf(pe->bind_tid, sizeof(pe->bind_tid), "%s", tid);
    pe->bind_tid_set = true;
    int n = snprintf(pe->fhdr, sizeof(pe->fhdr),
                     "MSRP %s SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
                     "Message-ID: %s-bind\r\nByte-Range: 1-0/0\r\n",
                     tid, pe->remote_path, pe->local_path, pe->tag);
    pe->fhdr_len = (size_t)n;
    pe->fbody = NULL;
    pe->fbody_len = 0;
    pe->ftrl_len = (size_t)snprintf(pe->ftrl, sizeof(pe->ftrl),
                                    "-------%s$\r\n", tid);
    pe->foff = 0;
    pe->frame_final = pe->frame_abort = false;
    pe->frame_active = true;
    s_dbg(pe, "send bind tid=%s", tid);
}

static bool s_sending_done(const peer_t *pe)
{
    return pe->sg >= pe->o->nsend;
}

static bool s_may_send(const peer_t *pe)
{
    return pe->bound && !s_sending_done(pe) &&
           (!pe->o->send_after_recv || pe->payload_in > 0);
}

/* When pacing lets the next chunk start (0: now). */
static uint64_t s_paced_at(const peer_t *pe)
{
    const peer_group_t *g = &pe->o->send[pe->sg];
    if (!pe->group_start_ns)
        return 0;
    uint64_t at = 0;
    if (g->interval_us && pe->msg_off == 0)
        at = pe->group_start_ns + pe->gi * g->interval_us * 1000u;
    if (g->rate) {
        uint64_t r = pe->group_start_ns +
                     (uint64_t)((double)pe->group_payload * 1e9 / (double)g->rate);
        at = r > at ? r : at;
    }
    return at;
}

static bool s_can_start_frame(const peer_t *pe)
{
    if (pe->frame_active || pe->ntxn >= pe->o->window || !s_may_send(pe))
        return false;
    uint64_t at = s_paced_at(pe);
    return at == 0 || s_now_ns() >= at;
}

/* Next chunk of the current message into the frame slot. */
static void s_start_frame(peer_t *pe)
{
    const peer_group_t *g = &pe->o->send[pe->sg];
    bool abort_msg = g->abort_after && pe->gi + 1 == g->abort_after;
    uint64_t left = g->size - pe->msg_off;
    uint64_t len = left < g->chunk ? left : g->chunk;
    char flag;
    char range[96];
    if (abort_msg && (pe->msg_off > 0 || g->size <= g->chunk)) {
        len = len / 2 ? len / 2 : 1;
        flag = '#';
        snprintf(range, sizeof(range), "%" PRIu64 "-*/%" PRIu64,
                 pe->msg_off + 1, g->size);
    } else {
        flag = pe->msg_off + len == g->size ? '$' : '+';
        snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64 "/%" PRIu64,
                 pe->msg_off + 1, pe->msg_off + len, g->size);
    }
    char tid[PEER_TID_MAX + 1];
    s_new_tid(pe, tid);
    uint64_t now = s_now_ns();
    if (pe->gi == 0 && pe->msg_off == 0) {
        pe->group_start_ns = now;
        pe->group_payload = 0;
    }
    pe->group_payload += len;
    if (pe->msg_off == 0) {
        if (pe->stamps)
            fprintf(pe->stamps, "S %" PRIu64 " %" PRIu64 "\n", pe->m, now);
    }
    if (!pe->data_start_ns)
        pe->data_start_ns = now;
    pe->fhdr_len = (size_t)snprintf(
        pe->fhdr, sizeof(pe->fhdr),
        "MSRP %s SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\n"
        "Message-ID: %s-%" PRIu64 "\r\nSuccess-Report: no\r\n"
        "Failure-Report: yes\r\nByte-Range: %s\r\n"
        "Content-Type: text/plain\r\n\r\n",
        tid, pe->remote_path, pe->local_path, pe->tag, pe->m, range);
    pe->fbody = s_pattern(pe, pe->m, pe->msg_off);
    pe->fbody_len = (size_t)len;
    pe->ftrl_len = (size_t)snprintf(pe->ftrl, sizeof(pe->ftrl),
                                    "\r\n-------%s%c\r\n", tid, flag);
    pe->foff = 0;
    pe->frame_final = flag == '$';
    pe->frame_abort = flag == '#';
    pe->frame_active = true;
    (void)s_txn_add(pe, tid); /* a slot is free: ntxn < window */
    pe->payload_out += len;
    s_dbg(pe, "send m=%" PRIu64 " tid=%s range=%s flag=%c", pe->m, tid, range,
          flag);
    if (flag == '+') {
        pe->msg_off += len;
        return;
    }
    pe->msg_off = 0;
    pe->m++;
    if (++pe->gi == g->count) {
        pe->gi = 0;
        pe->sg++;
        pe->group_start_ns = 0;
    }
}

static void s_closed(peer_t *pe, bool reset)
{
    if (pe->closed)
        return;
    pe->closed = true;
    pe->close_ns = s_now_ns();
    pe->close_real_ms = s_real_ms();
    pe->close_reset = reset;
    s_dbg(pe, "peer closed the connection (%s)", reset ? "reset" : "eof");
}

/* Writes until the socket would block or nothing is left. -1: the
 * connection is gone. */
static int s_flush(peer_t *pe)
{
    for (;;) {
        if (pe->closed || pe->fatal)
            return -1;
        if (pe->frame_active) {
            struct iovec iov[3];
            int niov = 0;
            size_t off = pe->foff;
            const uint8_t *parts[3] = {(const uint8_t *)pe->fhdr, pe->fbody,
                                       (const uint8_t *)pe->ftrl};
            size_t lens[3] = {pe->fhdr_len, pe->fbody_len, pe->ftrl_len};
            size_t total = 0;
            for (int i = 0; i < 3; i++) {
                total += lens[i];
                if (off >= lens[i]) {
                    off -= lens[i];
                    continue;
                }
                iov[niov].iov_base = (void *)(parts[i] + off);
                iov[niov].iov_len = lens[i] - off;
                niov++;
                off = 0;
            }
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
            ssize_t n = sendmsg(pe->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return 0;
                if (errno == EINTR)
                    continue;
                s_closed(pe, true);
                return -1;
            }
            pe->bytes_out += (uint64_t)n;
            pe->foff += (size_t)n;
            if (pe->foff == total) {
                pe->frame_active = false;
                if (pe->frame_final)
                    pe->sent++;
                if (pe->frame_abort)
                    pe->aborted_sent++;
            }
            continue;
        }
        if (pe->resp_off < pe->resp_len) {
            ssize_t n = send(pe->fd, pe->resp + pe->resp_off,
                             pe->resp_len - pe->resp_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return 0;
                if (errno == EINTR)
                    continue;
                s_closed(pe, true);
                return -1;
            }
            pe->bytes_out += (uint64_t)n;
            pe->resp_off += (size_t)n;
            if (pe->resp_off == pe->resp_len)
                pe->resp_off = pe->resp_len = 0;
            continue;
        }
        if (s_can_start_frame(pe)) {
            s_start_frame(pe);
            continue;
        }
        return 0;
    }
}

/* ---- frame handling ----------------------------------------------------- */

static int s_parse_range(const char *s, uint64_t *start, uint64_t *end,
                         uint64_t *total)
{
    char a[24], b[24], c[24];
    const char *dash = strchr(s, '-');
    const char *slash = dash ? strchr(dash, '/') : NULL;
    if (!dash || !slash || (size_t)(dash - s) >= sizeof(a) ||
        (size_t)(slash - dash - 1) >= sizeof(b) || strlen(slash + 1) >= sizeof(c))
        return -EINVAL;
    memcpy(a, s, (size_t)(dash - s));
    a[dash - s] = '\0';
    memcpy(b, dash + 1, (size_t)(slash - dash - 1));
    b[slash - dash - 1] = '\0';
    snprintf(c, sizeof(c), "%s", slash + 1);
    if (s_parse_u64(a, PEER_SIZE_MAX, start) < 0)
        return -EINVAL;
    if (strcmp(b, "*") == 0)
        *end = UINT64_MAX;
    else if (s_parse_u64(b, PEER_SIZE_MAX, end) < 0)
        return -EINVAL;
    if (strcmp(c, "*") == 0)
        *total = UINT64_MAX;
    else if (s_parse_u64(c, PEER_SIZE_MAX, total) < 0)
        return -EINVAL;
    return 0;
}

static peer_rmsg_t *s_rmsg_find(peer_t *pe, const char *id)
{
    for (size_t i = 0; i < PEER_OPEN_MAX; i++)
        if (pe->open[i].used && strcmp(pe->open[i].id, id) == 0)
            return &pe->open[i];
    return NULL;
}

static peer_rmsg_t *s_rmsg_new(peer_t *pe, const char *id, uint64_t m)
{
    for (size_t i = 0; i < PEER_OPEN_MAX; i++) {
        peer_rmsg_t *r = &pe->open[i];
        if (!r->used) {
            memset(r, 0, sizeof(*r));
            r->used = true;
            snprintf(r->id, sizeof(r->id), "%s", id);
            r->m = m;
            r->total = UINT64_MAX;
            return r;
        }
    }
    return NULL;
}

static void s_check_paths_request(peer_t *pe)
{
    if (pe->o->no_path_check)
        return;
    const char *s;
    size_t n;
    if (!s_path_last(pe->p.to_path, &s, &n) ||
        !s_uri_same(s, n, &pe->local_uri)) {
        pe->path_err++;
        s_err(pe, "request tid=%s: To-Path '%s' does not end in our path '%s'",
              pe->p.tid, pe->p.to_path, pe->local_path);
    }
    if (s_path_count(pe->p.to_path) != 1 || s_path_count(pe->p.from_path) != 1) {
        pe->path_err++;
        s_err(pe, "request tid=%s: a relay that rewrites paths leaves one URI "
                  "each: To-Path '%s' From-Path '%s'",
              pe->p.tid, pe->p.to_path, pe->p.from_path);
    }
    if (pe->remote_path[0]) {
        const char *r;
        size_t rn;
        im_msrp_uri_t ru;
        if (!s_path_last(pe->remote_path, &r, &rn) ||
            im_msrp_uri_parse(r, rn, &ru) < 0 ||
            !s_path_first(pe->p.from_path, &s, &n) || !s_uri_same(s, n, &ru)) {
            pe->path_err++;
            s_err(pe, "request tid=%s: From-Path '%s' is not our peer '%s'",
                  pe->p.tid, pe->p.from_path, pe->remote_path);
        }
    }
}

/* A complete start line and header block. */
static int s_on_head(peer_t *pe)
{
    peer_parser_t *p = &pe->p;
    pe->in_send = false;
    if (!p->request)
        return 0;
    if (strcmp(p->method, "SEND") != 0) {
        if (strcmp(p->method, "REPORT") == 0)
            pe->reports_in++;
        return 0;
    }
    pe->in_send = true;
    pe->in_empty = false;
    pe->in_bad = false;
    pe->in_msg = NULL;
    pe->in_want_200 = strcasecmp(p->failure_report, "no") != 0 &&
                      strcasecmp(p->failure_report, "partial") != 0;
    if (!pe->remote_path[0] && pe->o->listen) {
        /* Listen mode: the connector named itself in its first SEND. */
        snprintf(pe->remote_path, sizeof(pe->remote_path), "%s", p->from_path);
        s_dbg(pe, "remote path learnt: %s", pe->remote_path);
    }
    s_check_paths_request(pe);
    if (pe->o->listen && !pe->bound) {
        pe->bound = true;
        s_dbg(pe, "bound by the first request");
    }

    uint64_t start = 1, end = UINT64_MAX, total = UINT64_MAX;
    if (p->byte_range[0] && s_parse_range(p->byte_range, &start, &end, &total) < 0) {
        pe->proto_err++;
        s_err(pe, "tid=%s: bad Byte-Range '%s'", p->tid, p->byte_range);
        return -1;
    }
    if (!p->has_body || total == 0) {
        pe->in_empty = true;
        return 0;
    }
    if (start == 0) {
        pe->proto_err++;
        s_err(pe, "tid=%s: Byte-Range starts at 0", p->tid);
        return -1;
    }
    pe->in_start = start - 1;
    pe->in_end = end;
    pe->in_total = total;

    peer_rmsg_t *r = s_rmsg_find(pe, p->msgid);
    if (!r) {
        const char *dash = strrchr(p->msgid, '-');
        uint64_t m;
        if (!dash || s_parse_u64(dash + 1, UINT64_MAX / 64, &m) < 0) {
            pe->bad++;
            pe->in_bad = true;
            s_err(pe, "tid=%s: Message-ID '%s' has no message number", p->tid,
                  p->msgid);
            return 0;
        }
        r = s_rmsg_new(pe, p->msgid, m);
        if (!r) {
            pe->proto_err++;
            s_err(pe, "more than %d messages open at once", PEER_OPEN_MAX);
            return -1;
        }
    }
    pe->in_msg = r;
    if (pe->in_start != r->got) {
        r->bad = true;
        s_err(pe, "message %s: chunk at %" PRIu64 " after %" PRIu64 " bytes",
              r->id, pe->in_start, r->got);
    }
    if (r->total == UINT64_MAX)
        r->total = total;
    else if (total != UINT64_MAX && total != r->total) {
        r->bad = true;
        s_err(pe, "message %s: total changed from %" PRIu64 " to %" PRIu64,
              r->id, r->total, total);
    }
    return 0;
}

static void s_on_body(peer_t *pe, const uint8_t *data, size_t n)
{
    if (n == 0)
        return;
    pe->p.body_len += n;
    if (!pe->in_send || pe->in_empty)
        return;
    pe->payload_in += n;
    peer_rmsg_t *r = pe->in_msg;
    if (!r)
        return;
    uint64_t at = pe->in_start + (pe->p.body_len - n);
    if (!r->bad) {
        /* The pattern table holds 256 + PEER_RBUF bytes; pieces come from
         * the receive buffer, so they fit. */
        if (n > pe->pat_len - 256 || memcmp(data, s_pattern(pe, r->m, at), n) != 0) {
            size_t i = 0;
            const uint8_t *want = s_pattern(pe, r->m, at);
            while (i < n && i < pe->pat_len - 256 && data[i] == want[i])
                i++;
            r->bad = true;
            s_err(pe, "message %s: byte %" PRIu64 " is 0x%02x, expected 0x%02x",
                  r->id, at + i, i < n ? data[i] : 0, want[i < n ? i : 0]);
        }
    }
    r->got = at + n > r->got ? at + n : r->got;
}

static void s_finish_msg(peer_t *pe, peer_rmsg_t *r, bool aborted)
{
    uint64_t now = s_now_ns();
    if (aborted) {
        pe->aborted++;
        if (r->bad)
            pe->bad++;
        s_dbg(pe, "message %s aborted after %" PRIu64 " bytes%s", r->id,
              r->got, r->bad ? " (bad)" : "");
        r->used = false;
        return;
    }
    uint64_t want = 0;
    bool known = s_expected_size(pe, r->m, &want);
    if (!r->bad && r->total != UINT64_MAX && r->got != r->total) {
        r->bad = true;
        s_err(pe, "message %s: ended at %" PRIu64 " of %" PRIu64 " bytes", r->id,
              r->got, r->total);
    }
    if (!r->bad && pe->o->nexpect && !known) {
        r->bad = true;
        s_err(pe, "message %s: number %" PRIu64 " beyond the %" PRIu64
                  " expected", r->id, r->m, pe->expect_total);
    }
    if (!r->bad && known && r->got != want) {
        r->bad = true;
        s_err(pe, "message %s: %" PRIu64 " bytes, expected %" PRIu64, r->id,
              r->got, want);
    }
    if (!r->bad && s_seen(pe, r->m)) {
        r->bad = true;
        s_err(pe, "message %s: number %" PRIu64 " received twice", r->id, r->m);
    }
    if (r->bad) {
        pe->bad++;
    } else {
        pe->received++;
        s_seen_set(pe, r->m);
        pe->data_end_ns = now;
        if (pe->stamps)
            fprintf(pe->stamps, "R %" PRIu64 " %" PRIu64 "\n", r->m, now);
    }
    s_dbg(pe, "message %s complete, %" PRIu64 " bytes%s", r->id, r->got,
          r->bad ? " (bad)" : "");
    r->used = false;
}

static int s_on_end(peer_t *pe, char flag)
{
    peer_parser_t *p = &pe->p;
    if (!p->request) {
        if (!pe->o->no_path_check) {
            const char *s;
            size_t n;
            if (!s_path_first(p->to_path, &s, &n) ||
                !s_uri_same(s, n, &pe->local_uri)) {
                pe->path_err++;
                s_err(pe, "response tid=%s: To-Path '%s' is not our path",
                      p->tid, p->to_path);
            }
        }
        bool is_bind = pe->bind_tid_set && strcmp(p->tid, pe->bind_tid) == 0;
        bool known = is_bind || s_txn_take(pe, p->tid);
        if (is_bind)
            pe->bind_tid_set = false;
        if (!known) {
            pe->proto_err++;
            s_err(pe, "response to unknown transaction %s", p->tid);
            return 0;
        }
        if (p->status == 200) {
            pe->resp_ok++;
        } else {
            pe->resp_err++;
            s_err(pe, "transaction %s answered %u", p->tid, p->status);
        }
        if (is_bind) {
            pe->bind_needed = false;
            if (p->status != 200) {
                pe->fatal = true;
                return -1;
            }
            pe->bound = true;
            s_dbg(pe, "bound: the empty SEND got its 200");
        }
        if (s_sending_done(pe) && pe->ntxn == 0 && !pe->frame_active &&
            pe->o->nsend && !pe->o->nexpect)
            pe->data_end_ns = s_now_ns();
        return 0;
    }
    if (strcmp(p->method, "SEND") == 0) {
        if (pe->in_empty) {
            pe->empty_in++;
        } else if (pe->in_msg) {
            peer_rmsg_t *r = pe->in_msg;
            uint64_t got = p->body_len;
            if (pe->in_end != UINT64_MAX && flag != '#' &&
                pe->in_end - pe->in_start != got && !r->bad) {
                r->bad = true;
                s_err(pe, "message %s: chunk declared %" PRIu64 " bytes, "
                          "carried %" PRIu64,
                      r->id, pe->in_end - pe->in_start, got);
            }
            if (flag == '$')
                s_finish_msg(pe, r, false);
            else if (flag == '#')
                s_finish_msg(pe, r, true);
        }
        if (pe->in_want_200)
            s_respond(pe, 200, "OK");
        return pe->fatal ? -1 : 0;
    }
    if (strcmp(p->method, "REPORT") != 0)
        s_respond(pe, 501, "Not Implemented");
    return pe->fatal ? -1 : 0;
}

/* ---- parser ------------------------------------------------------------- */

static void s_parser_reset(peer_parser_t *p)
{
    p->state = P_START;
    p->hdr_bytes = 0;
    p->to_path[0] = p->from_path[0] = p->msgid[0] = '\0';
    p->byte_range[0] = p->failure_report[0] = p->content_type[0] = '\0';
    p->has_body = false;
    p->skip = 0;
    p->body_len = 0;
}

static int s_bad_frame(peer_t *pe, const char *why)
{
    pe->proto_err++;
    s_err(pe, "framing error: %s", why);
    return -1;
}

static int s_start_line(peer_t *pe, const char *line, size_t len)
{
    peer_parser_t *p = &pe->p;
    if (len < 5 || memcmp(line, "MSRP ", 5) != 0)
        return s_bad_frame(pe, "start line does not begin with 'MSRP '");
    const char *q = line + 5, *end = line + len;
    const char *t = q;
    while (q < end && s_is_ident(*q))
        q++;
    size_t tl = (size_t)(q - t);
    if (tl < 4 || tl > PEER_TID_MAX || q >= end || *q != ' ')
        return s_bad_frame(pe, "bad transaction id");
    memcpy(p->tid, t, tl);
    p->tid[tl] = '\0';
    p->tid_len = tl;
    q++;
    const char *w = q;
    while (q < end && *q != ' ')
        q++;
    size_t wl = (size_t)(q - w);
    if (wl == 3 && w[0] >= '0' && w[0] <= '9' && w[1] >= '0' && w[1] <= '9' &&
        w[2] >= '0' && w[2] <= '9') {
        p->request = false;
        p->status = (unsigned)((w[0] - '0') * 100 + (w[1] - '0') * 10 +
                               (w[2] - '0'));
        p->method[0] = '\0';
    } else {
        if (wl == 0 || wl >= sizeof(p->method))
            return s_bad_frame(pe, "bad method");
        for (size_t i = 0; i < wl; i++)
            if (w[i] < 'A' || w[i] > 'Z')
                return s_bad_frame(pe, "bad method");
        if (q != end)
            return s_bad_frame(pe, "text after the method");
        p->request = true;
        memcpy(p->method, w, wl);
        p->method[wl] = '\0';
        p->status = 0;
    }
    int n = snprintf(p->term, sizeof(p->term), "\r\n-------%s", p->tid);
    p->term_len = (size_t)n;
    return 0;
}

static void s_copy_value(char *dst, size_t size, const char *v, size_t n,
                         bool *too_long)
{
    if (n >= size) {
        *too_long = true;
        n = size - 1;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int s_header_line(peer_t *pe, const char *line, size_t len)
{
    peer_parser_t *p = &pe->p;
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return s_bad_frame(pe, "header line without a name");
    size_t nl = (size_t)(colon - line);
    const char *v = colon + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vl = (size_t)(end - v);
    bool too_long = false;
#define S_IS(name) (nl == sizeof(name) - 1 && strncasecmp(line, name, nl) == 0)
    if (S_IS("To-Path"))
        s_copy_value(p->to_path, sizeof(p->to_path), v, vl, &too_long);
    else if (S_IS("From-Path"))
        s_copy_value(p->from_path, sizeof(p->from_path), v, vl, &too_long);
    else if (S_IS("Message-ID"))
        s_copy_value(p->msgid, sizeof(p->msgid), v, vl, &too_long);
    else if (S_IS("Byte-Range"))
        s_copy_value(p->byte_range, sizeof(p->byte_range), v, vl, &too_long);
    else if (S_IS("Failure-Report"))
        s_copy_value(p->failure_report, sizeof(p->failure_report), v, vl,
                     &too_long);
    else if (S_IS("Content-Type"))
        s_copy_value(p->content_type, sizeof(p->content_type), v, vl,
                     &too_long);
#undef S_IS
    if (too_long)
        return s_bad_frame(pe, "header value too long");
    return 0;
}

static bool s_is_end_line(const peer_parser_t *p, const char *line, size_t len,
                          char *flag)
{
    if (len != 7 + p->tid_len + 1 || memcmp(line, "-------", 7) != 0 ||
        memcmp(line + 7, p->tid, p->tid_len) != 0)
        return false;
    char f = line[len - 1];
    if (f != '$' && f != '+' && f != '#')
        return false;
    *flag = f;
    return true;
}

/* Consumes `n` bytes of body state input: the first p->skip of them are
 * not data. */
static void s_body_take(peer_t *pe, const uint8_t *buf, size_t n)
{
    size_t sk = pe->p.skip < n ? pe->p.skip : n;
    pe->p.skip -= sk;
    s_on_body(pe, buf + sk, n - sk);
}

/* Runs over buf[0, len); returns how many bytes were consumed, or -1 on a
 * fatal error. Stops before a new frame when the response queue could not
 * take its answer. */
static long s_parse(peer_t *pe, const uint8_t *buf, size_t len)
{
    peer_parser_t *p = &pe->p;
    size_t off = 0;
    while (off < len && !pe->fatal) {
        if (p->state == P_BODY) {
            const uint8_t *at = buf + off;
            size_t avail = len - off;
            const uint8_t *hit = memmem(at, avail, p->term, p->term_len);
            if (!hit) {
                size_t keep = p->term_len - 1;
                if (avail > keep) {
                    s_body_take(pe, at, avail - keep);
                    off += avail - keep;
                }
                return (long)off;
            }
            size_t pos = (size_t)(hit - at);
            if (avail < pos + p->term_len + 3) {
                s_body_take(pe, at, pos);
                off += pos;
                return (long)off;
            }
            char f = (char)hit[p->term_len];
            if ((f == '$' || f == '+' || f == '#') &&
                hit[p->term_len + 1] == '\r' && hit[p->term_len + 2] == '\n') {
                s_body_take(pe, at, pos);
                off += pos + p->term_len + 3;
                if (s_on_end(pe, f) < 0)
                    return -1;
                s_parser_reset(p);
                continue;
            }
            /* The tid inside the body, not an end-line: data. */
            s_body_take(pe, at, pos + 1);
            off += pos + 1;
            continue;
        }
        if (p->state == P_START && !s_resp_room(pe))
            return (long)off;
        const uint8_t *eol = memmem(buf + off, len - off, "\r\n", 2);
        if (!eol) {
            if (len - off > PEER_LINE_MAX)
                return s_bad_frame(pe, "line too long");
            return (long)off;
        }
        const char *line = (const char *)buf + off;
        size_t ll = (size_t)((const char *)eol - line);
        if (ll > PEER_LINE_MAX)
            return s_bad_frame(pe, "line too long");
        p->hdr_bytes += ll + 2;
        if (p->hdr_bytes > PEER_HDR_MAX)
            return s_bad_frame(pe, "header block too long");
        if (p->state == P_START) {
            if (s_start_line(pe, line, ll) < 0)
                return -1;
            p->state = P_HEADERS;
            off += ll + 2;
            continue;
        }
        char flag;
        if (ll == 0) {
            /* The blank line stays as skip bytes so that an end-line right
             * after it (an empty body written without its CRLF) is seen. */
            p->has_body = true;
            p->state = P_BODY;
            p->skip = 2;
            if (s_on_head(pe) < 0)
                return -1;
            continue;
        }
        if (s_is_end_line(p, line, ll, &flag)) {
            off += ll + 2;
            if (s_on_head(pe) < 0 || s_on_end(pe, flag) < 0)
                return -1;
            s_parser_reset(p);
            continue;
        }
        if (s_header_line(pe, line, ll) < 0)
            return -1;
        off += ll + 2;
    }
    return pe->fatal ? -1 : (long)off;
}

static int s_parse_buffer(peer_t *pe)
{
    if (pe->rlen == 0)
        return 0;
    long used = s_parse(pe, pe->rbuf, pe->rlen);
    if (used < 0) {
        pe->fatal = true;
        return -1;
    }
    if (used > 0) {
        memmove(pe->rbuf, pe->rbuf + used, pe->rlen - (size_t)used);
        pe->rlen -= (size_t)used;
    }
    return 0;
}

/* Reads what the socket has (bounded by the buffer) and parses it. */
static int s_read(peer_t *pe)
{
    for (int rounds = 0; rounds < 64; rounds++) {
        if (pe->rlen == PEER_RBUF) {
            if (s_parse_buffer(pe) < 0)
                return -1;
            if (pe->rlen == PEER_RBUF)
                return 0; /* paused: the responses must drain first */
        }
        ssize_t n = recv(pe->fd, pe->rbuf + pe->rlen, PEER_RBUF - pe->rlen,
                         MSG_DONTWAIT);
        if (n == 0) {
            (void)s_parse_buffer(pe);
            s_closed(pe, false);
            return -1;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            (void)s_parse_buffer(pe);
            s_closed(pe, true);
            return -1;
        }
        pe->bytes_in += (uint64_t)n;
        pe->rlen += (size_t)n;
        if (s_parse_buffer(pe) < 0)
            return -1;
    }
    return 0;
}

/* ---- sockets ------------------------------------------------------------ */

static int s_sockaddr(const char *host, unsigned port,
                      struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof(*s4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return 0;
    }
    return -EINVAL;
}

/* HOST:PORT or [V6]:PORT */
static int s_split_hostport(const char *s, char *host, size_t size,
                            unsigned *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -EINVAL;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= size)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    uint64_t p;
    if (s_parse_u64(colon + 1, 65535, &p) < 0)
        return -EINVAL;
    *port = (unsigned)p;
    return 0;
}

static int s_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -errno : (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0);
}

static void s_on_connected(peer_t *pe)
{
    int one = 1;
    (void)setsockopt(pe->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pe->connected = true;
    pe->connecting = false;
    pe->t0_ns = s_now_ns();
}

static int s_open_listen(peer_t *pe, char *host, size_t hsize, unsigned *port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (s_split_hostport(pe->o->listen, host, hsize, port) < 0 ||
        s_sockaddr(host, *port, &ss, &sl) < 0) {
        fprintf(stderr, "imsplit-msrp-peer: --listen wants a numeric "
                        "HOST:PORT, not '%s'\n", pe->o->listen);
        return -EINVAL;
    }
    pe->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (pe->lfd < 0)
        return -errno;
    int one = 1;
    (void)setsockopt(pe->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(pe->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(pe->lfd, 4) < 0 ||
        s_set_nonblock(pe->lfd) < 0) {
        int e = errno;
        fprintf(stderr, "imsplit-msrp-peer: listen on %s: %s\n", pe->o->listen,
                strerror(e));
        return -e;
    }
    struct sockaddr_storage b;
    socklen_t bl = sizeof(b);
    if (getsockname(pe->lfd, (struct sockaddr *)&b, &bl) == 0)
        *port = ntohs(b.ss_family == AF_INET6
                          ? ((struct sockaddr_in6 *)&b)->sin6_port
                          : ((struct sockaddr_in *)&b)->sin_port);
    fprintf(stderr, "imsplit-msrp-peer: listening on %s port %u\n", host,
            *port);
    return 0;
}

static int s_open_connect(peer_t *pe)
{
    im_msrp_uri_t u;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (im_msrp_uri_parse(pe->o->connect, strlen(pe->o->connect), &u) < 0 ||
        u.secure || s_sockaddr(u.host, u.port, &ss, &sl) < 0) {
        fprintf(stderr, "imsplit-msrp-peer: --connect wants "
                        "msrp://NUMERIC-HOST:PORT/SESSION;tcp, not '%s'\n",
                pe->o->connect);
        return -EINVAL;
    }
    pe->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (pe->fd < 0 || s_set_nonblock(pe->fd) < 0)
        return -errno;
    if (connect(pe->fd, (struct sockaddr *)&ss, sl) == 0) {
        s_on_connected(pe);
        return 0;
    }
    if (errno != EINPROGRESS) {
        int e = errno;
        fprintf(stderr, "imsplit-msrp-peer: connect %s: %s\n", pe->o->connect,
                strerror(e));
        return -e;
    }
    pe->connecting = true;
    return 0;
}

/* ---- options ------------------------------------------------------------ */

static void s_usage(FILE *f)
{
    fputs("usage: imsplit-msrp-peer (--listen HOST:PORT | --connect MSRP-URI)\n"
          "         [--local-path URI] [--remote-path PATH]\n"
          "         [--send N --size BYTES [--chunk BYTES] [--abort-after K]\n"
          "                [--interval-us U] [--rate BYTES_PER_S]]...\n"
          "         [--expect N --expect-size BYTES]... [--expect-aborted K]\n"
          "         [--window W] [--send-after-recv] [--stamps FILE]\n"
          "         [--no-path-check] [--wait-close] [--timeout-ms T]\n"
          "         [--tag T] [--verbose]\n"
          "See the comment at the top of tools/imsplit-msrp-peer.c.\n",
          f);
}

static int s_opt_u64(const char *name, const char *v, uint64_t max,
                     uint64_t *out)
{
    if (!v || s_parse_u64(v, max, out) < 0) {
        fprintf(stderr, "imsplit-msrp-peer: %s wants a number up to %" PRIu64
                        ", not '%s'\n",
                name, max, v ? v : "");
        return -EINVAL;
    }
    return 0;
}

static int s_parse_opts(int argc, char **argv, peer_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->expect_aborted = -1;
    o->window = 32;
    o->timeout_ms = 30000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
#define S_NEEDV()                                                              \
    do {                                                                       \
        if (!v) {                                                              \
            fprintf(stderr, "imsplit-msrp-peer: %s needs a value\n", a);       \
            return -EINVAL;                                                    \
        }                                                                      \
        i++;                                                                   \
    } while (0)
        if (strcmp(a, "--listen") == 0) {
            S_NEEDV();
            o->listen = v;
        } else if (strcmp(a, "--connect") == 0) {
            S_NEEDV();
            o->connect = v;
        } else if (strcmp(a, "--local-path") == 0) {
            S_NEEDV();
            o->local_path = v;
        } else if (strcmp(a, "--remote-path") == 0) {
            S_NEEDV();
            o->remote_path = v;
        } else if (strcmp(a, "--send") == 0) {
            S_NEEDV();
            if (o->nsend == PEER_GROUPS_MAX) {
                fprintf(stderr, "imsplit-msrp-peer: at most %d --send\n",
                        PEER_GROUPS_MAX);
                return -EINVAL;
            }
            if (s_opt_u64(a, v, 100000000, &n) < 0)
                return -EINVAL;
            o->send[o->nsend++] = (peer_group_t){.count = n};
        } else if (strcmp(a, "--size") == 0 || strcmp(a, "--chunk") == 0 ||
                   strcmp(a, "--abort-after") == 0 ||
                   strcmp(a, "--interval-us") == 0 || strcmp(a, "--rate") == 0) {
            S_NEEDV();
            if (o->nsend == 0) {
                fprintf(stderr, "imsplit-msrp-peer: %s after --send\n", a);
                return -EINVAL;
            }
            peer_group_t *g = &o->send[o->nsend - 1];
            if (strcmp(a, "--size") == 0) {
                if (s_opt_u64(a, v, PEER_SIZE_MAX, &g->size) < 0)
                    return -EINVAL;
            } else if (strcmp(a, "--chunk") == 0) {
                if (s_opt_u64(a, v, PEER_CHUNK_MAX, &g->chunk) < 0)
                    return -EINVAL;
            } else if (strcmp(a, "--interval-us") == 0) {
                if (s_opt_u64(a, v, 60000000, &g->interval_us) < 0)
                    return -EINVAL;
            } else if (strcmp(a, "--rate") == 0) {
                if (s_opt_u64(a, v, 100000000000ull, &g->rate) < 0)
                    return -EINVAL;
            } else if (s_opt_u64(a, v, 100000000, &g->abort_after) < 0) {
                return -EINVAL;
            }
        } else if (strcmp(a, "--expect") == 0) {
            S_NEEDV();
            if (o->nexpect == PEER_GROUPS_MAX) {
                fprintf(stderr, "imsplit-msrp-peer: at most %d --expect\n",
                        PEER_GROUPS_MAX);
                return -EINVAL;
            }
            if (s_opt_u64(a, v, PEER_SEEN_BITS, &n) < 0)
                return -EINVAL;
            o->expect[o->nexpect++] = (peer_group_t){.count = n};
        } else if (strcmp(a, "--expect-size") == 0) {
            S_NEEDV();
            if (o->nexpect == 0) {
                fprintf(stderr, "imsplit-msrp-peer: %s after --expect\n", a);
                return -EINVAL;
            }
            if (s_opt_u64(a, v, PEER_SIZE_MAX, &o->expect[o->nexpect - 1].size) < 0)
                return -EINVAL;
        } else if (strcmp(a, "--expect-aborted") == 0) {
            S_NEEDV();
            if (s_opt_u64(a, v, 100000000, &n) < 0)
                return -EINVAL;
            o->expect_aborted = (long long)n;
        } else if (strcmp(a, "--window") == 0) {
            S_NEEDV();
            if (s_opt_u64(a, v, PEER_WINDOW_MAX, &n) < 0 || n == 0)
                return -EINVAL;
            o->window = (unsigned)n;
        } else if (strcmp(a, "--send-after-recv") == 0) {
            o->send_after_recv = true;
        } else if (strcmp(a, "--stamps") == 0) {
            S_NEEDV();
            o->stamps = v;
        } else if (strcmp(a, "--timeout-ms") == 0) {
            S_NEEDV();
            if (s_opt_u64(a, v, 86400000, &o->timeout_ms) < 0 || o->timeout_ms == 0)
                return -EINVAL;
        } else if (strcmp(a, "--tag") == 0) {
            S_NEEDV();
            o->tag = v;
        } else if (strcmp(a, "--no-path-check") == 0) {
            o->no_path_check = true;
        } else if (strcmp(a, "--wait-close") == 0) {
            o->wait_close = true;
        } else if (strcmp(a, "--verbose") == 0) {
            o->verbose = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            exit(PEER_EXIT_OK);
        } else {
            fprintf(stderr, "imsplit-msrp-peer: unknown option '%s'\n", a);
            return -EINVAL;
        }
#undef S_NEEDV
    }
    if (!o->listen == !o->connect) {
        fprintf(stderr, "imsplit-msrp-peer: give one of --listen, --connect\n");
        return -EINVAL;
    }
    for (size_t i = 0; i < o->nsend; i++) {
        peer_group_t *g = &o->send[i];
        if (g->size == 0) {
            fprintf(stderr, "imsplit-msrp-peer: --send %" PRIu64
                            " needs --size of 1 byte or more\n", g->count);
            return -EINVAL;
        }
        if (g->chunk == 0)
            g->chunk = g->size < PEER_CHUNK_DEFAULT ? g->size : PEER_CHUNK_DEFAULT;
        if (g->abort_after > g->count) {
            fprintf(stderr, "imsplit-msrp-peer: --abort-after %" PRIu64
                            " beyond --send %" PRIu64 "\n",
                    g->abort_after, g->count);
            return -EINVAL;
        }
    }
    if (o->tag) {
        size_t tl = strlen(o->tag);
        bool ok = tl > 0 && tl <= PEER_TAG_MAX;
        for (size_t i = 0; ok && i < tl; i++)
            ok = s_is_ident(o->tag[i]);
        if (!ok) {
            fprintf(stderr, "imsplit-msrp-peer: --tag wants 1-%d ident "
                            "characters\n", PEER_TAG_MAX);
            return -EINVAL;
        }
    }
    const char *paths[2] = {o->local_path, o->remote_path};
    for (int k = 0; k < 2; k++) {
        const char *s;
        size_t n;
        im_msrp_uri_t u;
        if (paths[k] && (strlen(paths[k]) > PEER_PATH_MAX ||
                         !s_path_last(paths[k], &s, &n) ||
                         im_msrp_uri_parse(s, n, &u) < 0)) {
            fprintf(stderr, "imsplit-msrp-peer: bad MSRP path '%s'\n", paths[k]);
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- main --------------------------------------------------------------- */

static bool s_work_done(const peer_t *pe)
{
    if (!pe->bound || !s_sending_done(pe) || pe->frame_active || pe->ntxn > 0)
        return false;
    if (pe->received < pe->expect_total)
        return false;
    if (pe->o->expect_aborted >= 0 &&
        pe->aborted < (uint64_t)pe->o->expect_aborted)
        return false;
    return true;
}

/* Called after every read and write: the work may end in the same read as
 * the far side's close. */
static void s_check_done(peer_t *pe)
{
    if (pe->done_ns || pe->fatal || !s_work_done(pe))
        return;
    pe->done_ns = s_now_ns();
    pe->done_real_ms = s_real_ms();
    s_dbg(pe, "work done");
}

static int s_setup(peer_t *pe, const peer_opts_t *o)
{
    memset(pe, 0, sizeof(*pe));
    pe->o = o;
    pe->lfd = pe->fd = -1;
    pe->t_start_ns = s_now_ns();
    char rnd[8];
    if (s_random_alnum(rnd, 6) < 0 || s_random_alnum(pe->tid_base, 5) < 0)
        return -EIO;
    if (o->tag)
        snprintf(pe->tag, sizeof(pe->tag), "%s", o->tag);
    else
        snprintf(pe->tag, sizeof(pe->tag), "p%ld%s", (long)getpid(), rnd);
    for (size_t i = 0; i < o->nexpect; i++)
        pe->expect_total += o->expect[i].count;
    size_t maxchunk = 0;
    for (size_t i = 0; i < o->nsend; i++)
        if (o->send[i].chunk > maxchunk)
            maxchunk = (size_t)o->send[i].chunk;
    pe->pat_len = 256 + (maxchunk > PEER_RBUF ? maxchunk : PEER_RBUF);
    pe->pat = malloc(pe->pat_len);
    pe->rbuf = malloc(PEER_RBUF);
    pe->resp = malloc(PEER_RESP_MAX);
    pe->seen = calloc(PEER_SEEN_BITS / 8, 1);
    pe->txn_cap = o->window;
    pe->txns = calloc(pe->txn_cap, sizeof(*pe->txns));
    if (!pe->pat || !pe->rbuf || !pe->resp || !pe->seen || !pe->txns)
        return -ENOMEM;
    for (size_t i = 0; i < pe->pat_len; i++)
        pe->pat[i] = (uint8_t)(i & 0xff);
    if (o->stamps) {
        pe->stamps = fopen(o->stamps, "w");
        if (!pe->stamps) {
            fprintf(stderr, "imsplit-msrp-peer: %s: %s\n", o->stamps,
                    strerror(errno));
            return -errno;
        }
    }
    if (o->remote_path)
        snprintf(pe->remote_path, sizeof(pe->remote_path), "%s", o->remote_path);
    else if (o->connect)
        snprintf(pe->remote_path, sizeof(pe->remote_path), "%s", o->connect);
    return 0;
}

static int s_set_local_path(peer_t *pe, const char *host, unsigned port)
{
    if (pe->o->local_path) {
        snprintf(pe->local_path, sizeof(pe->local_path), "%s", pe->o->local_path);
    } else {
        char sid[24];
        if (s_random_alnum(sid, 16) < 0)
            return -EIO;
        im_msrp_uri_format(pe->local_path, sizeof(pe->local_path), host, port,
                           sid);
    }
    const char *s;
    size_t n;
    if (!s_path_last(pe->local_path, &s, &n) ||
        im_msrp_uri_parse(s, n, &pe->local_uri) < 0)
        return -EINVAL;
    return 0;
}

static int s_local_from_socket(peer_t *pe)
{
    struct sockaddr_storage b;
    socklen_t bl = sizeof(b);
    char host[64] = "127.0.0.1";
    unsigned port = 9;
    if (getsockname(pe->fd, (struct sockaddr *)&b, &bl) == 0) {
        if (b.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&b)->sin6_addr, host,
                      sizeof(host));
            port = ntohs(((struct sockaddr_in6 *)&b)->sin6_port);
        } else {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&b)->sin_addr, host,
                      sizeof(host));
            port = ntohs(((struct sockaddr_in *)&b)->sin_port);
        }
    }
    return s_set_local_path(pe, host, port);
}

static void s_report(const peer_t *pe, uint64_t end_ns)
{
    uint64_t base = pe->t0_ns ? pe->t0_ns : pe->t_start_ns;
    uint64_t work_end = pe->done_ns ? pe->done_ns : end_ns;
    double elapsed_ms = (double)(work_end - base) / 1e6;
    double mbps = elapsed_ms > 0
                      ? (double)(pe->payload_in + pe->payload_out) * 8.0 /
                            1e6 / (elapsed_ms / 1000.0)
                      : 0.0;
    long long close_ms = pe->closed ? (long long)((pe->close_ns - base) / 1000000u)
                                    : -1;
    long long done_ms = pe->done_ns ? (long long)((pe->done_ns - base) / 1000000u)
                                    : -1;
    printf("sent=%" PRIu64 " received=%" PRIu64 " aborted=%" PRIu64
           " aborted_sent=%" PRIu64 " bad=%" PRIu64 " empty_in=%" PRIu64
           " bytes_in=%" PRIu64 " bytes_out=%" PRIu64 " payload_in=%" PRIu64
           " payload_out=%" PRIu64 " resp_ok=%" PRIu64 " resp_err=%" PRIu64
           " path_err=%" PRIu64 " proto_err=%" PRIu64
           " closed_by_peer=%d close_ms=%lld done_ms=%lld close_real_ms=%" PRIu64
           " done_real_ms=%" PRIu64 " elapsed_ms=%.1f"
           " mbps=%.1f data_start_ns=%" PRIu64 " data_end_ns=%" PRIu64
           " timed_out=%d\n",
           pe->sent, pe->received, pe->aborted, pe->aborted_sent, pe->bad,
           pe->empty_in, pe->bytes_in, pe->bytes_out, pe->payload_in,
           pe->payload_out, pe->resp_ok, pe->resp_err, pe->path_err,
           pe->proto_err, pe->closed ? 1 : 0, close_ms, done_ms,
           pe->close_real_ms, pe->done_real_ms, elapsed_ms,
           mbps, pe->data_start_ns, pe->data_end_ns, pe->timed_out ? 1 : 0);
    fflush(stdout);
}

static void s_cleanup(peer_t *pe)
{
    if (pe->fd >= 0)
        close(pe->fd);
    if (pe->lfd >= 0)
        close(pe->lfd);
    if (pe->stamps)
        fclose(pe->stamps);
    free(pe->pat);
    free(pe->rbuf);
    free(pe->resp);
    free(pe->seen);
    free(pe->txns);
}

static void s_run(peer_t *pe)
{
    const peer_opts_t *o = pe->o;
    uint64_t deadline = pe->t_start_ns + o->timeout_ms * 1000000u;
    while (!s_stop && !pe->fatal) {
        uint64_t now = s_now_ns();
        if (now >= deadline) {
            pe->timed_out = true;
            s_err(pe, "timeout after %" PRIu64 " ms", o->timeout_ms);
            break;
        }
        if (pe->connected && !pe->closed) {
            if (s_flush(pe) == 0 && pe->rlen > 0) {
                /* Responses drained: parse what waited for room. */
                (void)s_parse_buffer(pe);
                (void)s_flush(pe);
            }
            s_check_done(pe);
        }
        if (pe->closed || pe->fatal)
            break;
        if (pe->done_ns && !o->wait_close && pe->resp_off == pe->resp_len)
            break;

        struct pollfd pfd = {.fd = -1};
        if (pe->connecting) {
            pfd = (struct pollfd){.fd = pe->fd, .events = POLLOUT};
        } else if (pe->connected) {
            pfd.fd = pe->fd;
            if (pe->rlen < PEER_RBUF)
                pfd.events |= POLLIN;
            if (pe->frame_active || pe->resp_off < pe->resp_len)
                pfd.events |= POLLOUT;
        } else {
            pfd = (struct pollfd){.fd = pe->lfd, .events = POLLIN};
        }
        uint64_t wait_ns = deadline - now;
        if (pe->connected && !pe->frame_active && pe->ntxn < o->window &&
            s_may_send(pe)) {
            uint64_t at = s_paced_at(pe);
            uint64_t in = at > now ? at - now : 0;
            wait_ns = in < wait_ns ? in : wait_ns;
        }
        int tmo = (int)((wait_ns + 999999u) / 1000000u);
        int rc = poll(&pfd, 1, tmo);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            s_err(pe, "poll: %s", strerror(errno));
            pe->fatal = true;
            break;
        }
        if (rc == 0)
            continue;
        if (pe->connecting) {
            int err = 0;
            socklen_t el = sizeof(err);
            if (getsockopt(pe->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                err = errno;
            if (err) {
                s_err(pe, "connect %s: %s", o->connect, strerror(err));
                pe->fatal = true;
                break;
            }
            s_on_connected(pe);
            if (s_local_from_socket(pe) < 0) {
                pe->fatal = true;
                break;
            }
            pe->bind_needed = true;
            s_start_bind(pe);
            continue;
        }
        if (!pe->connected) {
            int fd = accept4(pe->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
                continue;
            pe->fd = fd;
            close(pe->lfd); /* one connection only */
            pe->lfd = -1;
            s_on_connected(pe);
            s_dbg(pe, "accepted a connection");
            continue;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            int r = s_read(pe);
            s_check_done(pe);
            if (r < 0)
                break;
        }
    }
}

int main(int argc, char **argv)
{
    peer_opts_t o;
    if (s_parse_opts(argc, argv, &o) < 0) {
        s_usage(stderr);
        return PEER_EXIT_USAGE;
    }
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    peer_t *pe = malloc(sizeof(*pe));
    if (!pe || s_setup(pe, &o) < 0) {
        fprintf(stderr, "imsplit-msrp-peer: setup failed\n");
        if (pe)
            s_cleanup(pe);
        free(pe);
        return PEER_EXIT_FAIL;
    }
    int rc = 0;
    if (o.listen) {
        char host[64];
        unsigned port = 0;
        rc = s_open_listen(pe, host, sizeof(host), &port);
        if (rc == 0 && s_set_local_path(pe, host, port) < 0)
            rc = -EINVAL;
    } else {
        rc = s_open_connect(pe);
        if (rc == 0 && pe->connected) {
            if (s_local_from_socket(pe) < 0) {
                rc = -EINVAL;
            } else {
                pe->bind_needed = true;
                s_start_bind(pe);
            }
        }
    }
    if (rc == 0)
        s_run(pe);
    else
        pe->fatal = true;
    uint64_t end = s_now_ns();
    s_report(pe, end);
    bool ok = !pe->fatal && !pe->timed_out && !s_stop && pe->done_ns &&
              pe->bad == 0 && pe->resp_err == 0 && pe->path_err == 0 &&
              pe->proto_err == 0 && (!o.wait_close || pe->closed);
    if (o.expect_aborted >= 0 && pe->aborted != (uint64_t)o.expect_aborted)
        ok = false;
    s_cleanup(pe);
    free(pe);
    return ok ? PEER_EXIT_OK : PEER_EXIT_FAIL;
}
