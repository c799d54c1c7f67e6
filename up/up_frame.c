#include "up_frame.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

enum { S_HEAD = 0, S_BODY = 1 };

#define UP_FRAME_DASHES "-------"
#define UP_FRAME_DASHES_LEN 7
/* What every end-line after a body starts with. */
static const char s_pat[] = "\r\n" UP_FRAME_DASHES;
#define UP_FRAME_PAT_LEN 9

void up_frame_init(up_frame_t *f)
{
    memset(f, 0, sizeof(*f));
    f->state = S_HEAD;
    f->head_max = UP_FRAME_HEAD_MAX;
    f->body_max = UP_FRAME_BODY_MAX;
}

void up_frame_limits(up_frame_t *f, size_t head_max, uint64_t body_max)
{
    if (head_max)
        f->head_max = head_max;
    if (body_max)
        f->body_max = body_max;
}

bool up_frame_in_body(const up_frame_t *f)
{
    return f->state == S_BODY;
}

static bool s_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' ||
           c == '%' || c == '=';
}

static bool s_is_flag(char c)
{
    return c == '$' || c == '+' || c == '#';
}

static const char *s_find_crlf(const char *p, size_t len)
{
    const char *end = p + len;
    while (p < end) {
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        if (!cr || cr + 1 >= end)
            return NULL;
        if (cr[1] == '\n')
            return cr;
        p = cr + 1;
    }
    return NULL;
}

static up_frame_event_t s_error(up_frame_t *f, const char *why)
{
    f->why = why;
    return UP_FRAME_ERROR;
}

static up_frame_span_t s_span(const char *base, const char *p, size_t len)
{
    up_frame_span_t s = {(size_t)(p - base), len, true};
    return s;
}

/* "MSRP SP transact-id SP (method | status-code [SP comment])". */
static up_frame_event_t s_start_line(up_frame_t *f, const char *p, size_t len)
{
    if (len < 5 || memcmp(p, "MSRP ", 5) != 0)
        return s_error(f, "bad_start_line");
    size_t i = 5, t0 = i;
    while (i < len && s_ident_char(p[i]))
        i++;
    size_t tid_len = i - t0;
    if (tid_len < UP_FRAME_TID_MIN || tid_len > UP_FRAME_TID_MAX ||
        i >= len || p[i] != ' ')
        return s_error(f, "bad_transaction_id");
    memcpy(f->tid, p + t0, tid_len);
    f->tid[tid_len] = '\0';
    f->tid_len = tid_len;
    i++;
    const char *rest = p + i;
    size_t rlen = len - i;
    memset(&f->comment, 0, sizeof(f->comment));
    if (rlen >= 3 && rest[0] >= '1' && rest[0] <= '9' && rest[1] >= '0' &&
        rest[1] <= '9' && rest[2] >= '0' && rest[2] <= '9' &&
        (rlen == 3 || rest[3] == ' ')) {
        f->request = false;
        f->method[0] = '\0';
        f->status = (unsigned)((rest[0] - '0') * 100 + (rest[1] - '0') * 10 +
                               (rest[2] - '0'));
        if (rlen > 4)
            f->comment = s_span(p, rest + 4, rlen - 4);
        return UP_FRAME_MORE;
    }
    if (rlen == 0 || rlen > UP_FRAME_METHOD_MAX)
        return s_error(f, "bad_method");
    for (size_t k = 0; k < rlen; k++) {
        if (rest[k] < 'A' || rest[k] > 'Z')
            return s_error(f, "bad_method");
    }
    f->request = true;
    f->status = 0;
    memcpy(f->method, rest, rlen);
    f->method[rlen] = '\0';
    return UP_FRAME_MORE;
}

static void s_trim(const char **p, size_t *len)
{
    while (*len && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*len)--;
    }
    while (*len && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t'))
        (*len)--;
}

static bool s_name_is(const char *name, size_t len, const char *want,
                      size_t want_len)
{
    return want_len == len && strncasecmp(name, want, len) == 0;
}

/* Sets a header the worker reads; a second copy is an error, since the
 * next hop could read the other one. */
static up_frame_event_t s_set(up_frame_t *f, up_frame_span_t *dst,
                              up_frame_span_t v)
{
    if (dst->set)
        return s_error(f, "duplicate_header");
    *dst = v;
    return UP_FRAME_MORE;
}

#define S_IS(name, lit) s_name_is(name, nlen, lit, sizeof(lit) - 1)

/* One header line at p[off, off + len). */
static up_frame_event_t s_header(up_frame_t *f, const char *p, size_t off,
                                 size_t len)
{
    const char *line = p + off;
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return s_error(f, "bad_header");
    /* A bare CR or LF would split the line differently at the next hop. */
    if (memchr(line, '\n', len) || memchr(line, '\r', len))
        return s_error(f, "bad_header");
    size_t nlen = (size_t)(colon - line);
    for (size_t i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c <= ' ' || c >= 127)
            return s_error(f, "bad_header");
    }
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    s_trim(&v, &vlen);
    up_frame_span_t span = s_span(p, v, vlen);
    switch (line[0] | 0x20) {
    case 't':
        if (S_IS(line, "To-Path"))
            return s_set(f, &f->to_path, span);
        break;
    case 'f':
        if (S_IS(line, "From-Path"))
            return s_set(f, &f->from_path, span);
        if (S_IS(line, "Failure-Report"))
            return s_set(f, &f->failure_report, span);
        break;
    case 'm':
        if (S_IS(line, "Message-ID"))
            return s_set(f, &f->message_id, span);
        break;
    case 'b':
        if (S_IS(line, "Byte-Range"))
            return s_set(f, &f->byte_range, span);
        break;
    case 's':
        if (S_IS(line, "Success-Report"))
            return s_set(f, &f->success_report, span);
        if (S_IS(line, "Status"))
            return s_set(f, &f->status_header, span);
        break;
    case 'c':
        if (S_IS(line, "Content-Type"))
            return s_set(f, &f->content_type, span);
        break;
    default:
        break;
    }
    return UP_FRAME_MORE;
}

/* A header-block line that starts with seven dashes: this frame's
 * end-line, or an error naming what is wrong with it. */
static const char *s_end_line_error(const up_frame_t *f, const char *p,
                                    size_t len)
{
    size_t tl = f->tid_len;
    if (len < UP_FRAME_DASHES_LEN + tl ||
        memcmp(p + UP_FRAME_DASHES_LEN, f->tid, tl) != 0 ||
        (len > UP_FRAME_DASHES_LEN + tl &&
         s_ident_char(p[UP_FRAME_DASHES_LEN + tl])))
        return "end_line_tid_mismatch";
    if (len != UP_FRAME_DASHES_LEN + tl + 1 || !s_is_flag(p[len - 1]))
        return "bad_end_line_flag";
    return NULL;
}

static up_frame_str_t s_str(const char *p, up_frame_span_t span)
{
    up_frame_str_t s = {NULL, 0};
    if (span.set) {
        s.ptr = p + span.off;
        s.len = span.len;
    }
    return s;
}

static void s_reset_spans(up_frame_t *f)
{
    up_frame_span_t none = {0, 0, false};
    f->to_path = f->from_path = f->message_id = f->byte_range = none;
    f->success_report = f->failure_report = f->status_header = none;
    f->content_type = none;
}

static up_frame_event_t s_head_done(up_frame_t *f, const char *p, size_t pos,
                                    size_t llen, bool blank,
                                    up_frame_head_t *head)
{
    if (!f->to_path.set || !f->from_path.set || !f->to_path.len ||
        !f->from_path.len)
        return s_error(f, "missing_path");
    memset(head, 0, sizeof(*head));
    if (f->byte_range.set) {
        if (up_frame_range_parse(s_str(p, f->byte_range), &head->range) < 0)
            return s_error(f, "bad_byte_range");
        head->has_range = true;
    }
    head->request = f->request;
    memcpy(head->method, f->method, sizeof(head->method));
    head->status = f->status;
    head->comment = s_str(p, f->comment);
    head->tid.ptr = p + 5;
    head->tid.len = f->tid_len;
    head->to_path = s_str(p, f->to_path);
    head->from_path = s_str(p, f->from_path);
    head->message_id = s_str(p, f->message_id);
    head->byte_range = s_str(p, f->byte_range);
    head->success_report = s_str(p, f->success_report);
    head->failure_report = s_str(p, f->failure_report);
    head->status_header = s_str(p, f->status_header);
    head->content_type = s_str(p, f->content_type);
    head->headers.ptr = p + f->start_len;
    head->headers.len = pos - f->start_len;
    head->has_body = blank;
    head->flag = blank ? 0 : p[pos + llen - 1];
    f->scan = 0;
    f->seek = 0;
    f->state = S_BODY;
    f->at_line_start = true;
    f->flag = 0;
    f->body = 0;
    return UP_FRAME_HEAD;
}

static up_frame_event_t s_parse_head(up_frame_t *f, const char *p, size_t len,
                                     size_t *used, up_frame_head_t *head)
{
    if (f->scan == 0) {
        size_t lim = len < UP_FRAME_START_MAX + 2 ? len : UP_FRAME_START_MAX + 2;
        const char *eol = s_find_crlf(p, lim);
        if (!eol) {
            /* Reject garbage as soon as it shows, not when the buffer
             * fills, and with the same reason however it was split. */
            size_t n = len < 5 ? len : 5;
            if (memcmp(p, "MSRP ", n) != 0)
                return s_error(f, "bad_start_line");
            if (len >= UP_FRAME_START_MAX + 2)
                return s_error(f, "start_line_too_long");
            return UP_FRAME_MORE;
        }
        up_frame_event_t ev = s_start_line(f, p, (size_t)(eol - p));
        if (ev != UP_FRAME_MORE)
            return ev;
        s_reset_spans(f);
        f->start_len = (size_t)(eol - p) + 2;
        f->scan = f->start_len;
        f->seek = f->scan;
    }
    for (;;) {
        size_t pos = f->scan;
        const char *line = p + pos;
        /* A long line arriving in pieces is searched once, not per piece;
         * one byte is kept for a CR whose LF has not come yet. */
        size_t from = f->seek > pos ? f->seek : pos;
        const char *end = from < len ? s_find_crlf(p + from, len - from)
                                     : NULL;
        if (!end) {
            if (len >= f->head_max)
                return s_error(f, "header_too_large");
            f->seek = len > pos ? len - 1 : pos;
            return UP_FRAME_MORE;
        }
        size_t llen = (size_t)(end - line);
        if (pos + llen + 2 > f->head_max)
            return s_error(f, "header_too_large");
        if (llen == 0) {
            *used = pos + 2;
            return s_head_done(f, p, pos, llen, true, head);
        }
        if (llen >= UP_FRAME_DASHES_LEN &&
            memcmp(line, UP_FRAME_DASHES, UP_FRAME_DASHES_LEN) == 0) {
            const char *why = s_end_line_error(f, line, llen);
            if (why)
                return s_error(f, why);
            /* No body: the end-line is reported as the frame's END, so
             * HEAD leaves it in place. */
            *used = pos;
            return s_head_done(f, p, pos, llen, false, head);
        }
        up_frame_event_t ev = s_header(f, p, pos, llen);
        if (ev != UP_FRAME_MORE)
            return ev;
        f->scan = pos + llen + 2;
    }
}

/* Checks for an end-line of this frame at p[i], after a CRLF when `crlf`:
 * 1 complete, 0 not one, -1 could still become one with more bytes. */
static int s_end_at(const up_frame_t *f, const char *p, size_t len, size_t i,
                    bool crlf)
{
    size_t pre = crlf ? 2 : 0;
    size_t tid_end = pre + UP_FRAME_DASHES_LEN + f->tid_len;
    size_t need = tid_end + 3;
    size_t have = len - i;
    size_t cmp = have < need ? have : need;
    const char *q = p + i;
    for (size_t k = 0; k < cmp; k++) {
        char c = q[k];
        bool ok;
        if (k < pre)
            ok = c == s_pat[k];
        else if (k < pre + UP_FRAME_DASHES_LEN)
            ok = c == '-';
        else if (k < tid_end)
            ok = c == f->tid[k - pre - UP_FRAME_DASHES_LEN];
        else if (k == tid_end)
            ok = s_is_flag(c);
        else if (k == tid_end + 1)
            ok = c == '\r';
        else
            ok = c == '\n';
        if (!ok)
            return 0;
    }
    return have < need ? -1 : 1;
}

/* The first "\r\n-------" in p[from, len), or NULL. Scanning bodies is
 * most of the relay's own work, so it runs on memchr (vectorised in libc)
 * for dashes, and each dash found rules out as much as it can: if the
 * sixth byte after it is not a dash, no run of seven starts within those
 * seven bytes; if it is the start of a run that does not follow a CRLF, no
 * end-line starts before the run ends. */
static const char *s_find_pat(const char *p, size_t from, size_t len)
{
    if (len < from + UP_FRAME_PAT_LEN)
        return NULL;
    /* Where the dashes of the last possible match start. */
    size_t last = len - UP_FRAME_DASHES_LEN;
    size_t k = from + 2;
    while (k <= last) {
        const char *d = memchr(p + k, '-', len - k);
        if (!d)
            return NULL;
        size_t x = (size_t)(d - p);
        if (x > last)
            return NULL;
        if (p[x + UP_FRAME_DASHES_LEN - 1] != '-') {
            k = x + UP_FRAME_DASHES_LEN;
            continue;
        }
        if (p[x - 2] == '\r' && p[x - 1] == '\n' &&
            memcmp(p + x, UP_FRAME_DASHES, UP_FRAME_DASHES_LEN) == 0)
            return p + x - 2;
        for (k = x + 1; k < len && p[k] == '-'; k++)
            ;
    }
    return NULL;
}

static up_frame_event_t s_body(up_frame_t *f, size_t n, size_t *used)
{
    f->body += n;
    if (f->body > f->body_max)
        return s_error(f, "end_line_missing");
    f->at_line_start = false;
    *used = n;
    return UP_FRAME_BODY;
}

static up_frame_event_t s_end(up_frame_t *f, const char *p, size_t n,
                              size_t *used)
{
    f->flag = p[n - 3];
    *used = n;
    f->state = S_HEAD;
    f->at_line_start = false;
    f->body = 0;
    return UP_FRAME_END;
}

static up_frame_event_t s_scan_body(up_frame_t *f, const char *p, size_t len,
                                    size_t *used)
{
    size_t line_len = UP_FRAME_DASHES_LEN + f->tid_len + 3;
    if (f->at_line_start) {
        int r = s_end_at(f, p, len, 0, false);
        if (r > 0)
            return s_end(f, p, line_len, used);
        if (r < 0)
            return UP_FRAME_MORE;
    }
    size_t from = 0;
    while (from < len) {
        const char *q = s_find_pat(p, from, len);
        if (!q)
            break;
        size_t off = (size_t)(q - p);
        int r = s_end_at(f, p, len, off, true);
        if (r == 0) {
            from = off + 1;
            continue;
        }
        if (off > 0)
            return s_body(f, off, used);
        if (r < 0)
            return UP_FRAME_MORE;
        return s_end(f, p, line_len + 2, used);
    }
    /* No end-line: everything is body except a tail that may be the
     * start of "\r\n-------". */
    size_t hold = 0;
    size_t k = len > UP_FRAME_PAT_LEN - 1 ? len - (UP_FRAME_PAT_LEN - 1) : 0;
    for (; k < len; k++) {
        if (p[k] == '\r' && memcmp(p + k, s_pat, len - k) == 0) {
            hold = len - k;
            break;
        }
    }
    if (hold == len)
        return UP_FRAME_MORE;
    return s_body(f, len - hold, used);
}

up_frame_event_t up_frame_parse(up_frame_t *f, const uint8_t *buf, size_t len,
                                size_t *used, up_frame_head_t *head)
{
    *used = 0;
    if (len == 0)
        return UP_FRAME_MORE;
    const char *p = (const char *)buf;
    if (f->state == S_BODY)
        return s_scan_body(f, p, len, used);
    up_frame_head_t scratch;
    return s_parse_head(f, p, len, used, head ? head : &scratch);
}

/* 1*DIGIT, at most UP_FRAME_RANGE_DIGITS of them, or "*" when star_ok. */
static int s_range_num(const char **p, const char *end, bool star_ok,
                       uint64_t *out)
{
    const char *s = *p;
    if (star_ok && s < end && *s == '*') {
        *out = UP_FRAME_RANGE_STAR;
        *p = s + 1;
        return 0;
    }
    uint64_t v = 0;
    size_t n = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (++n > UP_FRAME_RANGE_DIGITS)
            return -EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    if (n == 0)
        return -EINVAL;
    *out = v;
    *p = s;
    return 0;
}

int up_frame_range_parse(up_frame_str_t v, up_frame_range_t *out)
{
    if (!v.ptr)
        return -EINVAL;
    s_trim(&v.ptr, &v.len);
    const char *s = v.ptr, *end = v.ptr + v.len;
    up_frame_range_t r;
    if (s_range_num(&s, end, false, &r.start) < 0 || s >= end || *s != '-')
        return -EINVAL;
    s++;
    if (s_range_num(&s, end, true, &r.end) < 0 || s >= end || *s != '/')
        return -EINVAL;
    s++;
    if (s_range_num(&s, end, true, &r.total) < 0 || s != end)
        return -EINVAL;
    if (r.start == 0)
        return -EINVAL;
    if (r.end != UP_FRAME_RANGE_STAR && r.end < r.start - 1)
        return -EINVAL;
    if (r.total != UP_FRAME_RANGE_STAR) {
        if (r.end != UP_FRAME_RANGE_STAR && r.end > r.total)
            return -EINVAL;
        if (r.start > r.total + 1)
            return -EINVAL;
    }
    *out = r;
    return 0;
}

static void s_str_trim(up_frame_str_t *s)
{
    s_trim(&s->ptr, &s->len);
}

bool up_frame_path_last(up_frame_str_t path, up_frame_str_t *last)
{
    if (!path.ptr)
        return false;
    s_str_trim(&path);
    if (path.len == 0)
        return false;
    size_t start = path.len;
    while (start > 0 && path.ptr[start - 1] != ' ' &&
           path.ptr[start - 1] != '\t')
        start--;
    last->ptr = path.ptr + start;
    last->len = path.len - start;
    return true;
}

bool up_frame_path_first(up_frame_str_t path, up_frame_str_t *first)
{
    if (!path.ptr)
        return false;
    s_str_trim(&path);
    if (path.len == 0)
        return false;
    size_t n = 0;
    while (n < path.len && path.ptr[n] != ' ' && path.ptr[n] != '\t')
        n++;
    first->ptr = path.ptr;
    first->len = n;
    return true;
}
