#include "up_relay.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "im_msrp_uri.h"

static bool s_is(up_frame_str_t v, const char *want)
{
    size_t n = strlen(want);
    return v.ptr && v.len == n && strncasecmp(v.ptr, want, n) == 0;
}

up_fr_t up_relay_fr(up_frame_str_t value)
{
    if (s_is(value, "no"))
        return UP_FR_NO;
    if (s_is(value, "partial"))
        return UP_FR_PARTIAL;
    return UP_FR_YES;
}

bool up_relay_fr_answers(up_fr_t fr, unsigned code)
{
    if (code == 0 || fr == UP_FR_NO)
        return false;
    return code != 200 || fr == UP_FR_YES;
}

bool up_relay_exceeds(const up_frame_head_t *h, uint64_t body,
                      uint64_t max_msg)
{
    uint64_t base = h->has_range ? h->range.start - 1 : 0;
    if (h->has_range && h->range.end != UP_FRAME_RANGE_STAR &&
        h->range.end > max_msg)
        return true;
    /* Both terms are below 2^61 (Byte-Range has at most 18 digits, bodies
     * are bounded by the framer), so the sum cannot wrap. */
    return base + body > max_msg;
}

static up_verdict_t s_verdict(up_action_t action, unsigned code)
{
    up_verdict_t v = {action, code};
    return v;
}

up_verdict_t up_relay_decide(const up_frame_head_t *h, const up_relay_in_t *in)
{
    bool send = strcmp(h->method, "SEND") == 0;
    bool report = !send && strcmp(h->method, "REPORT") == 0;
    if (!send && !report)
        return s_verdict(UP_ACT_REJECT, 501);
    /* REPORTs are never answered (RFC 4975 section 7.1.2): what cannot be
     * forwarded is dropped. */
    if (report) {
        if (!in->to_us)
            return s_verdict(UP_ACT_DROP, 0);
        if (in->peer == UP_PEER_READY)
            return s_verdict(UP_ACT_FORWARD, 0);
        if (in->peer == UP_PEER_WAITING)
            return s_verdict(UP_ACT_HOLD, 0);
        return s_verdict(UP_ACT_DROP, 0);
    }
    if (!in->to_us)
        return s_verdict(UP_ACT_REJECT, 481);
    if (!h->message_id.ptr || h->message_id.len == 0)
        return s_verdict(UP_ACT_REJECT, 400);
    /* 413: the sender must stop sending this message (section 7.3.1).
     * Every later chunk of a refused message is refused too. */
    if (in->refused || up_relay_exceeds(h, 0, in->max_msg) ||
        (h->has_range && h->range.total != UP_FRAME_RANGE_STAR &&
         h->range.total > in->max_msg))
        return s_verdict(UP_ACT_REJECT, 413);
    /* An empty SEND (the one that binds a connection, or a keep-alive)
     * carries nothing to deliver. One that ends a chunked message (start
     * beyond 1) or aborts one ('#') is forwarded. */
    if (!h->has_body && h->flag == '$' &&
        (!h->has_range || h->range.start == 1))
        return s_verdict(UP_ACT_ACCEPT, 200);
    switch (in->peer) {
    case UP_PEER_READY:
        return s_verdict(UP_ACT_FORWARD, 200);
    case UP_PEER_WAITING:
        return s_verdict(UP_ACT_HOLD, 0);
    default:
        /* The session no longer exists in that direction. */
        return s_verdict(UP_ACT_REJECT, 481);
    }
}

const char *up_relay_reason(unsigned code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 408:
        return "Request Timeout";
    case 413:
        return "Request Entity Too Large";
    case 415:
        return "Unsupported Media Type";
    case 481:
        return "Session Does Not Exist";
    case 501:
        return "Not Implemented";
    case 506:
        return "Wrong Session";
    default:
        return "Failure";
    }
}

/* Bounded appender: `len` keeps counting past `cap` so overflow is seen
 * once at the end. */
typedef struct {
    char *out;
    size_t cap;
    size_t len;
} s_buf_t;

static void s_put(s_buf_t *b, const char *p, size_t n)
{
    if (b->len < b->cap && n <= b->cap - b->len)
        memcpy(b->out + b->len, p, n);
    b->len += n;
}

static void s_puts(s_buf_t *b, const char *s)
{
    s_put(b, s, strlen(s));
}

static void s_putstr(s_buf_t *b, up_frame_str_t s)
{
    if (s.ptr)
        s_put(b, s.ptr, s.len);
}

static int s_done(const s_buf_t *b)
{
    if (b->len > b->cap || b->len > INT32_MAX)
        return -ENOSPC;
    return (int)b->len;
}

static bool s_name_is(const char *line, size_t nlen, const char *want)
{
    return strlen(want) == nlen && strncasecmp(line, want, nlen) == 0;
}

int up_relay_rewrite(char *out, size_t cap, const up_frame_head_t *h,
                     const char *tid, const char *to_path,
                     const char *from_path)
{
    s_buf_t b = {out, cap, 0};
    s_puts(&b, "MSRP ");
    s_puts(&b, tid);
    s_puts(&b, " ");
    s_puts(&b, h->method);
    s_puts(&b, "\r\nTo-Path: ");
    s_puts(&b, to_path);
    s_puts(&b, "\r\nFrom-Path: ");
    s_puts(&b, from_path);
    s_puts(&b, "\r\n");
    /* The framer has checked every line of the block: each ends in CRLF
     * and has a colon. */
    const char *p = h->headers.ptr, *end = p ? p + h->headers.len : NULL;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *next = nl ? nl + 1 : end;
        const char *colon = memchr(p, ':', (size_t)(next - p));
        size_t nlen = colon ? (size_t)(colon - p) : 0;
        if (!s_name_is(p, nlen, "To-Path") && !s_name_is(p, nlen, "From-Path"))
            s_put(&b, p, (size_t)(next - p));
        p = next;
    }
    if (h->has_body)
        s_puts(&b, "\r\n");
    return s_done(&b);
}

int up_relay_end_line(char *out, size_t cap, bool after_body,
                      const char *tid, char flag)
{
    s_buf_t b = {out, cap, 0};
    if (after_body)
        s_puts(&b, "\r\n");
    s_puts(&b, "-------");
    s_puts(&b, tid);
    s_put(&b, &flag, 1);
    s_puts(&b, "\r\n");
    return s_done(&b);
}

static void s_code(s_buf_t *b, unsigned code)
{
    code %= 1000;
    char num[4] = {(char)('0' + code / 100), (char)('0' + code / 10 % 10),
                   (char)('0' + code % 10), ' '};
    s_put(b, num, sizeof(num));
    s_puts(b, up_relay_reason(code));
}

int up_relay_response(char *out, size_t cap, up_frame_str_t tid,
                      unsigned code, up_frame_str_t to, const char *from)
{
    s_buf_t b = {out, cap, 0};
    s_puts(&b, "MSRP ");
    s_putstr(&b, tid);
    s_puts(&b, " ");
    s_code(&b, code);
    s_puts(&b, "\r\nTo-Path: ");
    s_putstr(&b, to);
    s_puts(&b, "\r\nFrom-Path: ");
    s_puts(&b, from);
    s_puts(&b, "\r\n-------");
    s_putstr(&b, tid);
    s_puts(&b, "$\r\n");
    return s_done(&b);
}

int up_relay_report(char *out, size_t cap, const char *tid,
                    up_frame_str_t to_path, const char *from_path,
                    up_frame_str_t message_id, up_frame_str_t byte_range,
                    unsigned code)
{
    s_buf_t b = {out, cap, 0};
    s_puts(&b, "MSRP ");
    s_puts(&b, tid);
    s_puts(&b, " REPORT\r\nTo-Path: ");
    s_putstr(&b, to_path);
    s_puts(&b, "\r\nFrom-Path: ");
    s_puts(&b, from_path);
    s_puts(&b, "\r\nMessage-ID: ");
    s_putstr(&b, message_id);
    if (byte_range.ptr && byte_range.len) {
        s_puts(&b, "\r\nByte-Range: ");
        s_putstr(&b, byte_range);
    }
    s_puts(&b, "\r\nStatus: 000 ");
    s_code(&b, code);
    s_puts(&b, "\r\n-------");
    s_puts(&b, tid);
    s_puts(&b, "$\r\n");
    return s_done(&b);
}

bool up_relay_names(up_frame_str_t to_path, const char *id, size_t id_len)
{
    up_frame_str_t last;
    im_msrp_uri_t uri;
    if (!up_frame_path_last(to_path, &last) ||
        im_msrp_uri_parse(last.ptr, last.len, &uri) < 0)
        return false;
    return strlen(uri.session) == id_len && memcmp(uri.session, id, id_len) == 0;
}

uint64_t up_relay_msg_hash(up_frame_str_t message_id)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; message_id.ptr && i < message_id.len; i++) {
        h ^= (unsigned char)message_id.ptr[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
