/* fuzz_msrp: the worker's MSRP framing (up_frame) fed the way a socket
 * feeds it, in pieces whose sizes the input chooses, and the relay's rules
 * (up_relay) applied to every header block the framer reports.
 *
 * Input: byte 0 holds the number of piece-size bytes that follow (low
 * nibble; none: the stream goes in byte by byte), the framer limits (bits
 * 4-5) and the state of the leg a request would go to (bits 6-7); the size
 * bytes are used in turn, each one piece length (0: the rest of the
 * stream); everything after them is the stream. A request is for this leg
 * when its To-Path ends in session S_SESSION, as the seeds' do.
 *
 * Besides what the sanitizers catch, the target aborts when
 * - MORE consumes bytes, or another event consumes none or too many;
 * - the bytes the caller must keep between reads exceed head_max (in a
 *   header block) or one end-line (in a body);
 * - the split changes the outcome: the heads, body bytes and end flags of
 *   every frame, the error reason and the bytes left over are compared
 *   with the same stream parsed in one piece;
 * - what up_relay writes for a request (forwarded header block and
 *   end-line, per-hop response, REPORT) is not a frame the framer reads
 *   back with the values written. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "im_msrp_uri.h"
#include "up_frame.h"
#include "up_msrp.h"
#include "up_relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_TID "Zq3kW9xP0aLm7Ty2"
#define S_OWN "msrp://192.0.2.1:2855/w0rkerleg1;tcp"
#define S_PEER "msrp://198.51.100.7:7394/peer9;tcp"
#define S_SESSION "s3ss10nid"

#define S_CHECK(cond)                                                          \
    do {                                                                       \
        if (!(cond))                                                           \
            s_fail(__LINE__, #cond);                                           \
    } while (0)

static void s_fail(int line, const char *what)
{
    fprintf(stderr, "fuzz_msrp.c:%d: check failed: %s\n", line, what);
    abort();
}

typedef struct {
    size_t head_max;
    uint64_t body_max;
    uint64_t max_msg; /* the relay's --max-msg */
} s_limits_t;

static const s_limits_t s_presets[4] = {
    {UP_FRAME_HEAD_MAX, UP_FRAME_BODY_MAX, 64u << 20}, /* a bound leg */
    {UP_MSRP_UNBOUND_MAX, UP_FRAME_BODY_MAX, 1024},    /* not yet bound */
    {UP_FRAME_HEAD_MAX, 64, 64},                       /* tiny messages */
    {512, 1u << 20, 4096},
};

/* Growing byte log of what a run saw, compared between runs. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} s_log_t;

static void s_put(s_log_t *l, const void *p, size_t n)
{
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap : 1024;
        while (cap < l->len + n)
            cap *= 2;
        uint8_t *q = realloc(l->p, cap);
        S_CHECK(q);
        l->p = q;
        l->cap = cap;
    }
    if (n)
        memcpy(l->p + l->len, p, n);
    l->len += n;
}

static void s_put_u64(s_log_t *l, uint64_t v)
{
    s_put(l, &v, sizeof(v));
}

static void s_put_str(s_log_t *l, up_frame_str_t s)
{
    s_put_u64(l, s.ptr ? s.len : UINT64_MAX);
    if (s.ptr)
        s_put(l, s.ptr, s.len);
}

static bool s_eq(up_frame_str_t a, const char *p, size_t n)
{
    return a.ptr && a.len == n && (n == 0 || memcmp(a.ptr, p, n) == 0);
}

/* Equal values; an absent header equals an empty one. */
static bool s_same(up_frame_str_t a, up_frame_str_t b)
{
    size_t al = a.ptr ? a.len : 0, bl = b.ptr ? b.len : 0;
    return al == bl && (al == 0 || memcmp(a.ptr, b.ptr, al) == 0);
}

typedef struct {
    up_frame_t f;
    const s_limits_t *lim;
    bool relay;           /* run the relay checks on every HEAD */
    up_peer_state_t peer; /* the other leg, for up_relay_decide */
    uint8_t *buf;         /* bytes kept between reads, then the new read */
    size_t len;
    bool failed;
    uint64_t body_len, body_hash; /* body of the current frame */
    s_log_t log;
} s_run_t;

static void s_log_head(s_run_t *r, const up_frame_head_t *h)
{
    s_log_t *l = &r->log;
    s_put(l, "H", 1);
    s_put(l, &h->request, 1);
    s_put(l, h->method, sizeof(h->method));
    s_put_u64(l, h->status);
    s_put_str(l, h->comment);
    s_put_str(l, h->tid);
    s_put_str(l, h->to_path);
    s_put_str(l, h->from_path);
    s_put_str(l, h->message_id);
    s_put_str(l, h->byte_range);
    s_put_str(l, h->success_report);
    s_put_str(l, h->failure_report);
    s_put_str(l, h->status_header);
    s_put_str(l, h->content_type);
    s_put_str(l, h->headers);
    s_put(l, &h->has_range, 1);
    if (h->has_range) {
        s_put_u64(l, h->range.start);
        s_put_u64(l, h->range.end);
        s_put_u64(l, h->range.total);
    }
    s_put(l, &h->has_body, 1);
    s_put(l, &h->flag, 1);
    r->body_len = 0;
    r->body_hash = 0xcbf29ce484222325ull;
}

/* Parses a frame the relay wrote: exactly one HEAD and one END, nothing
 * left over. *head gets the HEAD (pointing into buf). */
static void s_reparse(const char *buf, size_t len, up_frame_head_t *head,
                      char *flag)
{
    up_frame_t f;
    up_frame_init(&f);
    up_frame_limits(&f, UP_FRAME_HEAD_MAX + 1024, 0);
    size_t off = 0, used = 0;
    int heads = 0, ends = 0;
    while (off < len) {
        up_frame_head_t h;
        up_frame_event_t ev = up_frame_parse(&f, (const uint8_t *)buf + off,
                                             len - off, &used, &h);
        if (ev == UP_FRAME_ERROR)
            fprintf(stderr, "relay output rejected (%s): %.*s\n", f.why,
                    (int)len, buf);
        S_CHECK(ev != UP_FRAME_ERROR && ev != UP_FRAME_MORE);
        if (ev == UP_FRAME_HEAD) {
            S_CHECK(heads++ == 0);
            *head = h;
        } else if (ev == UP_FRAME_END) {
            S_CHECK(heads == 1 && ends++ == 0);
            *flag = f.flag;
        } else {
            S_CHECK(ev == UP_FRAME_BODY);
            S_CHECK(!"the relay's frames carry no body bytes");
        }
        off += used;
    }
    S_CHECK(heads == 1 && ends == 1);
}

/* The relay's decisions and the frames it writes for request h. */
static void s_relay(const up_frame_head_t *h, const s_limits_t *lim,
                    up_peer_state_t peer)
{
    up_frame_str_t first, last;
    im_msrp_uri_t uri;
    if (up_frame_path_last(h->to_path, &last))
        (void)im_msrp_uri_parse(last.ptr, last.len, &uri);
    S_CHECK(up_frame_path_first(h->from_path, &first) && first.len > 0);
    (void)im_msrp_uri_parse(first.ptr, first.len, &uri);
    (void)up_relay_msg_hash(h->message_id);
    if (!h->request)
        return;

    up_relay_in_t in = {
        .to_us = up_relay_names(h->to_path, S_SESSION, strlen(S_SESSION)),
        .peer = peer,
        .max_msg = lim->max_msg,
        .refused = false,
    };
    up_verdict_t v = up_relay_decide(h, &in);
    S_CHECK(v.action <= UP_ACT_HOLD);
    S_CHECK(v.code == 0 || v.code == 200 || v.code == 400 || v.code == 413 ||
            v.code == 481 || v.code == 501);
    (void)up_relay_fr_answers(up_relay_fr(h->failure_report), v.code);
    (void)up_relay_fr_answers(up_relay_fr(h->success_report), v.code);
    (void)up_relay_exceeds(h, h->has_range ? h->range.start : 0, lim->max_msg);

    size_t cap = h->headers.len + h->tid.len + h->from_path.len +
                 h->message_id.len + h->byte_range.len + 512;
    char *out = malloc(cap);
    S_CHECK(out);
    up_frame_head_t back;
    char flag = 0;

    /* Forwarded: new tid and paths, every other header kept. */
    int n = up_relay_rewrite(out, cap, h, S_TID, S_PEER, S_OWN);
    S_CHECK(n > 0 && (size_t)n < cap);
    char want_flag = h->has_body ? '$' : h->flag;
    int e = up_relay_end_line(out + n, cap - (size_t)n, h->has_body, S_TID,
                              want_flag);
    S_CHECK(e > 0);
    s_reparse(out, (size_t)n + (size_t)e, &back, &flag);
    S_CHECK(back.request && strcmp(back.method, h->method) == 0);
    S_CHECK(s_eq(back.tid, S_TID, strlen(S_TID)));
    S_CHECK(s_eq(back.to_path, S_PEER, strlen(S_PEER)));
    S_CHECK(s_eq(back.from_path, S_OWN, strlen(S_OWN)));
    S_CHECK(s_same(back.message_id, h->message_id));
    S_CHECK(s_same(back.byte_range, h->byte_range));
    S_CHECK(s_same(back.success_report, h->success_report));
    S_CHECK(s_same(back.failure_report, h->failure_report));
    S_CHECK(s_same(back.status_header, h->status_header));
    S_CHECK(s_same(back.content_type, h->content_type));
    S_CHECK(back.has_body == h->has_body && flag == want_flag);

    /* The per-hop answer to it. */
    unsigned code = v.code ? v.code : 200;
    n = up_relay_response(out, cap, h->tid, code, first, S_OWN);
    S_CHECK(n > 0);
    s_reparse(out, (size_t)n, &back, &flag);
    S_CHECK(!back.request && back.status == code && flag == '$');
    S_CHECK(s_eq(back.tid, h->tid.ptr, h->tid.len));
    S_CHECK(s_eq(back.to_path, first.ptr, first.len));
    S_CHECK(s_eq(back.from_path, S_OWN, strlen(S_OWN)));

    /* A failure REPORT back to its sender. */
    n = up_relay_report(out, cap, S_TID, h->from_path, S_OWN, h->message_id,
                        h->byte_range, 408);
    S_CHECK(n > 0);
    s_reparse(out, (size_t)n, &back, &flag);
    S_CHECK(back.request && strcmp(back.method, "REPORT") == 0);
    S_CHECK(s_same(back.to_path, h->from_path));
    S_CHECK(s_same(back.message_id, h->message_id));
    S_CHECK(s_same(back.byte_range, h->byte_range));
    static const char status[] = "000 408 Request Timeout";
    S_CHECK(s_eq(back.status_header, status, sizeof(status) - 1));
    free(out);
}

/* Appends one read and parses all it can, as up_msrp does. */
static void s_feed(s_run_t *r, const uint8_t *p, size_t n)
{
    if (r->failed)
        return;
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    size_t off = 0;
    for (;;) {
        size_t used = 7;
        up_frame_head_t h;
        size_t avail = r->len - off;
        up_frame_event_t ev =
            up_frame_parse(&r->f, r->buf + off, avail, &used, &h);
        if (ev == UP_FRAME_MORE) {
            S_CHECK(used == 0);
            break;
        }
        if (ev == UP_FRAME_ERROR) {
            S_CHECK(r->f.why);
            s_put(&r->log, "X", 1);
            s_put(&r->log, r->f.why, strlen(r->f.why));
            r->failed = true;
            return;
        }
        S_CHECK(used > 0 && used <= avail);
        const uint8_t *q = r->buf + off;
        if (ev == UP_FRAME_HEAD) {
            S_CHECK(up_frame_in_body(&r->f));
            S_CHECK(h.tid.ptr == (const char *)q + 5);
            S_CHECK(h.to_path.len > 0 && h.from_path.len > 0);
            S_CHECK(h.has_body || h.flag == '$' || h.flag == '+' ||
                    h.flag == '#');
            s_log_head(r, &h);
            if (r->relay)
                s_relay(&h, r->lim, r->peer);
        } else if (ev == UP_FRAME_BODY) {
            S_CHECK(up_frame_in_body(&r->f));
            r->body_len += used;
            for (size_t i = 0; i < used; i++) {
                r->body_hash ^= q[i];
                r->body_hash *= 0x100000001b3ull;
            }
        } else {
            S_CHECK(ev == UP_FRAME_END && !up_frame_in_body(&r->f));
            char fl = r->f.flag;
            S_CHECK(fl == '$' || fl == '+' || fl == '#');
            s_put(&r->log, "E", 1);
            s_put(&r->log, &fl, 1);
            s_put_u64(&r->log, r->body_len);
            s_put_u64(&r->log, r->body_hash);
        }
        off += used;
    }
    memmove(r->buf, r->buf + off, r->len - off);
    r->len -= off;
    /* What up_msrp keeps for the next read. */
    if (up_frame_in_body(&r->f))
        S_CHECK(r->len <= 2 + 7 + r->f.tid_len + 2);
    else
        S_CHECK(r->len < r->f.head_max);
}

static void s_run_init(s_run_t *r, const s_limits_t *lim, bool relay,
                       up_peer_state_t peer, size_t cap)
{
    memset(r, 0, sizeof(*r));
    up_frame_init(&r->f);
    up_frame_limits(&r->f, lim->head_max, lim->body_max);
    r->lim = lim;
    r->relay = relay;
    r->peer = peer;
    r->buf = malloc(cap ? cap : 1);
    S_CHECK(r->buf);
}

/* The end of the stream: what is left over and the unfinished body. */
static void s_run_end(s_run_t *r)
{
    if (r->failed)
        return;
    s_put(&r->log, "M", 1);
    bool in_body = up_frame_in_body(&r->f);
    s_put(&r->log, &in_body, 1);
    s_put_u64(&r->log, r->len);
    if (in_body) {
        s_put_u64(&r->log, r->body_len);
        s_put_u64(&r->log, r->body_hash);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t nsizes = data[0] & 0x0f;
    const s_limits_t *lim = &s_presets[(data[0] >> 4) & 3];
    up_peer_state_t peer = (up_peer_state_t)(data[0] >> 6);
    if (size < 1 + nsizes)
        return 0;
    const uint8_t *sizes = data + 1;
    const uint8_t *s = data + 1 + nsizes;
    size_t n = size - 1 - nsizes;

    s_run_t whole, split;
    s_run_init(&whole, lim, false, peer, n);
    s_feed(&whole, s, n);
    s_run_end(&whole);

    s_run_init(&split, lim, true, peer, n);
    size_t off = 0;
    for (size_t k = 0; off < n; k++) {
        size_t piece = nsizes ? sizes[k % nsizes] : 1;
        if (piece == 0 || piece > n - off)
            piece = n - off;
        s_feed(&split, s + off, piece);
        off += piece;
    }
    s_run_end(&split);

    size_t same = 0;
    while (same < whole.log.len && same < split.log.len &&
           whole.log.p[same] == split.log.p[same])
        same++;
    if (same != whole.log.len || same != split.log.len) {
        fprintf(stderr,
                "logs differ at byte %zu (whole %zu, split %zu): "
                "whole failed=%d why=%s, split failed=%d why=%s\n",
                same, whole.log.len, split.log.len, whole.failed,
                whole.failed ? whole.f.why : "-", split.failed,
                split.failed ? split.f.why : "-");
        S_CHECK(!"same events whatever the split");
    }
    free(whole.buf);
    free(split.buf);
    free(whole.log.p);
    free(split.log.p);
    return 0;
}
