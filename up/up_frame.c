#include "up_frame.h"

#include <string.h>
#include <strings.h>

enum { S_HEAD = 0, S_BODY = 1 };

#define UP_FRAME_DASHES "-------"
#define UP_FRAME_DASHES_LEN 7

void up_frame_init(up_frame_t *f)
{
    memset(f, 0, sizeof(*f));
    f->state = S_HEAD;
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
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] == '\r' && p[i + 1] == '\n')
            return p + i;
    }
    return NULL;
}

static up_frame_event_t s_error(up_frame_t *f, const char *why)
{
    f->why = why;
    return UP_FRAME_ERROR;
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
    if (tid_len < 4 || tid_len > UP_FRAME_TID_MAX || i >= len || p[i] != ' ')
        return s_error(f, "bad_transaction_id");
    memcpy(f->tid, p + t0, tid_len);
    f->tid[tid_len] = '\0';
    f->tid_len = tid_len;
    i++;
    const char *rest = p + i;
    size_t rlen = len - i;
    if (rlen >= 3 && rest[0] >= '0' && rest[0] <= '9' && rest[1] >= '0' &&
        rest[1] <= '9' && rest[2] >= '0' && rest[2] <= '9' &&
        (rlen == 3 || rest[3] == ' ')) {
        f->request = false;
        f->method[0] = '\0';
        f->status = (unsigned)((rest[0] - '0') * 100 + (rest[1] - '0') * 10 +
                               (rest[2] - '0'));
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

static bool s_name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* One header line at p[off, off + len). */
static up_frame_event_t s_header(up_frame_t *f, const char *p, size_t off,
                                 size_t len)
{
    const char *line = p + off;
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
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
    up_frame_span_t span = {(size_t)(v - p), vlen, true};
    if (s_name_is(line, nlen, "To-Path"))
        f->to_path = span;
    else if (s_name_is(line, nlen, "From-Path"))
        f->from_path = span;
    else if (s_name_is(line, nlen, "Message-ID"))
        f->message_id = span;
    else if (s_name_is(line, nlen, "Byte-Range"))
        f->byte_range = span;
    else if (s_name_is(line, nlen, "Failure-Report"))
        f->failure_report = span;
    return UP_FRAME_MORE;
}

static bool s_is_end_line(const up_frame_t *f, const char *p, size_t len)
{
    return len == UP_FRAME_DASHES_LEN + f->tid_len + 1 &&
           memcmp(p, UP_FRAME_DASHES, UP_FRAME_DASHES_LEN) == 0 &&
           memcmp(p + UP_FRAME_DASHES_LEN, f->tid, f->tid_len) == 0 &&
           s_is_flag(p[len - 1]);
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

static up_frame_event_t s_parse_head(up_frame_t *f, const char *p, size_t len,
                                     size_t *used, up_frame_head_t *head)
{
    if (f->scan == 0) {
        size_t lim = len < UP_FRAME_START_MAX + 2 ? len : UP_FRAME_START_MAX + 2;
        const char *eol = s_find_crlf(p, lim);
        if (!eol) {
            if (len >= UP_FRAME_START_MAX + 2)
                return s_error(f, "start_line_too_long");
            /* Reject garbage as soon as it shows, not when the buffer
             * fills. */
            size_t n = len < 5 ? len : 5;
            if (memcmp(p, "MSRP ", n) != 0)
                return s_error(f, "bad_start_line");
            return UP_FRAME_MORE;
        }
        up_frame_event_t ev = s_start_line(f, p, (size_t)(eol - p));
        if (ev != UP_FRAME_MORE)
            return ev;
        memset(&f->to_path, 0, sizeof(f->to_path));
        f->from_path = f->message_id = f->byte_range = f->failure_report =
            f->to_path;
        f->scan = (size_t)(eol - p) + 2;
    }
    for (;;) {
        size_t pos = f->scan;
        const char *line = p + pos;
        /* A long line arriving in pieces is searched once, not per piece;
         * one byte is kept for a CR whose LF has not come yet. */
        size_t from = f->seek > pos ? f->seek : pos;
        const char *end = s_find_crlf(p + from, len - from);
        if (!end) {
            f->seek = len - 1;
            return UP_FRAME_MORE;
        }
        size_t llen = (size_t)(end - line);
        bool blank = llen == 0;
        if (blank || s_is_end_line(f, line, llen)) {
            if (!f->to_path.set || !f->from_path.set || !f->to_path.len ||
                !f->from_path.len)
                return s_error(f, "missing_path");
            memset(head, 0, sizeof(*head));
            head->request = f->request;
            memcpy(head->method, f->method, sizeof(head->method));
            head->status = f->status;
            head->to_path = s_str(p, f->to_path);
            head->from_path = s_str(p, f->from_path);
            head->message_id = s_str(p, f->message_id);
            head->byte_range = s_str(p, f->byte_range);
            head->failure_report = s_str(p, f->failure_report);
            head->has_body = blank;
            /* The blank line stays: the end-line is then always found
             * after a CRLF, with or without a body. */
            *used = pos;
            f->scan = 0;
            f->seek = 0;
            f->state = S_BODY;
            f->at_line_start = true;
            f->flag = 0;
            return UP_FRAME_HEAD;
        }
        if (llen >= UP_FRAME_DASHES_LEN &&
            memcmp(line, UP_FRAME_DASHES, UP_FRAME_DASHES_LEN) == 0)
            return s_error(f, "bad_end_line");
        up_frame_event_t ev = s_header(f, p, pos, llen);
        if (ev != UP_FRAME_MORE)
            return ev;
        f->scan = pos + llen + 2;
    }
}

/* Checks a candidate end-line at p[i]: 1 complete, 0 not one, -1 needs
 * more bytes. */
static int s_end_at(const up_frame_t *f, const char *p, size_t len, size_t i)
{
    size_t need = UP_FRAME_DASHES_LEN + f->tid_len + 3;
    size_t have = len - i;
    size_t cmp = have < need ? have : need;
    for (size_t k = 0; k < cmp; k++) {
        char c = p[i + k];
        bool ok;
        if (k < UP_FRAME_DASHES_LEN)
            ok = c == '-';
        else if (k < UP_FRAME_DASHES_LEN + f->tid_len)
            ok = c == f->tid[k - UP_FRAME_DASHES_LEN];
        else if (k == UP_FRAME_DASHES_LEN + f->tid_len)
            ok = s_is_flag(c);
        else if (k == need - 2)
            ok = c == '\r';
        else
            ok = c == '\n';
        if (!ok)
            return 0;
    }
    return have < need ? -1 : 1;
}

static up_frame_event_t s_scan_end(up_frame_t *f, const char *p, size_t len,
                                   size_t *used)
{
    size_t line_len = UP_FRAME_DASHES_LEN + f->tid_len + 3;
    size_t partial = len; /* first candidate still waiting for bytes */
    size_t i = 0;
    if (f->at_line_start) {
        int r = s_end_at(f, p, len, 0);
        if (r == 1)
            goto found;
        if (r < 0)
            partial = 0;
    }
    for (i = 2; i < len && partial == len; i++) {
        if (p[i - 2] != '\r' || p[i - 1] != '\n')
            continue;
        int r = s_end_at(f, p, len, i);
        if (r == 1)
            goto found;
        if (r < 0)
            partial = i;
    }
    /* Keep the tail that may still hold an end-line and the CRLF before
     * it; everything before is body and can go. */
    size_t keep = line_len + 2;
    size_t drop = len > keep ? len - keep : 0;
    if (partial != len && drop > (partial >= 2 ? partial - 2 : 0))
        drop = partial >= 2 ? partial - 2 : 0;
    if (drop > 0)
        f->at_line_start = false;
    *used = drop;
    return UP_FRAME_MORE;
found:
    f->flag = p[i + UP_FRAME_DASHES_LEN + f->tid_len];
    *used = i + line_len;
    f->state = S_HEAD;
    f->at_line_start = false;
    return UP_FRAME_END;
}

up_frame_event_t up_frame_parse(up_frame_t *f, const uint8_t *buf, size_t len,
                                size_t *used, up_frame_head_t *head)
{
    *used = 0;
    if (len == 0)
        return UP_FRAME_MORE;
    const char *p = (const char *)buf;
    if (f->state == S_BODY)
        return s_scan_end(f, p, len, used);
    up_frame_head_t scratch;
    return s_parse_head(f, p, len, used, head ? head : &scratch);
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
