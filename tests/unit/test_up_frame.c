/* up_frame: MSRP framing over a bounded buffer, fed as a socket would feed
 * it (whole, byte by byte, at every split point, in odd chunks), every
 * frame shape, and the malformed inputs that must close a connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "up_frame.h"

typedef struct {
    up_frame_t f;
    uint8_t buf[8192];
    size_t len;
    size_t cap;
    int heads;
    int ends;
    int errors;
    int sends;
    unsigned statuses[8];
    int nstatus;
    char to_path[256];
    char from_path[256];
    char tids[8][UP_FRAME_TID_MAX + 1];
    bool has_body[8];
    char flags[8];
    size_t max_len; /* high-water mark of the buffer */
    char body[4096]; /* BODY bytes of every frame, concatenated */
    size_t body_len;
    size_t body_total;
    up_frame_head_t last; /* the last HEAD, strings copied below */
    char method[16];
    char message_id[128];
    char byte_range[128];
    char success[32];
    char failure[32];
    char status_hdr[64];
    char content_type[64];
    char comment[64];
    char headers[1024];
} feeder_t;

static void s_init(feeder_t *fd, size_t cap)
{
    memset(fd, 0, sizeof(*fd));
    up_frame_init(&fd->f);
    fd->cap = cap;
}

static void s_copy(char *dst, size_t size, up_frame_str_t s)
{
    size_t n = s.len < size - 1 ? s.len : size - 1;
    memcpy(dst, s.ptr ? s.ptr : "", n);
    dst[n] = '\0';
}

static void s_run(feeder_t *fd)
{
    for (;;) {
        size_t used = 0;
        up_frame_head_t h;
        up_frame_event_t ev = up_frame_parse(&fd->f, fd->buf, fd->len, &used,
                                             &h);
        if (ev == UP_FRAME_ERROR) {
            fd->errors++;
            return;
        }
        if (ev == UP_FRAME_HEAD) {
            if (fd->heads < 8) {
                snprintf(fd->tids[fd->heads], sizeof(fd->tids[0]), "%s",
                         fd->f.tid);
                fd->has_body[fd->heads] = h.has_body;
            }
            fd->heads++;
            if (h.request && strcmp(h.method, "SEND") == 0)
                fd->sends++;
            if (!h.request && fd->nstatus < 8)
                fd->statuses[fd->nstatus++] = h.status;
            s_copy(fd->to_path, sizeof(fd->to_path), h.to_path);
            s_copy(fd->from_path, sizeof(fd->from_path), h.from_path);
            fd->last = h;
            snprintf(fd->method, sizeof(fd->method), "%s", h.method);
            s_copy(fd->message_id, sizeof(fd->message_id), h.message_id);
            s_copy(fd->byte_range, sizeof(fd->byte_range), h.byte_range);
            s_copy(fd->success, sizeof(fd->success), h.success_report);
            s_copy(fd->failure, sizeof(fd->failure), h.failure_report);
            s_copy(fd->status_hdr, sizeof(fd->status_hdr), h.status_header);
            s_copy(fd->content_type, sizeof(fd->content_type),
                   h.content_type);
            s_copy(fd->comment, sizeof(fd->comment), h.comment);
            s_copy(fd->headers, sizeof(fd->headers), h.headers);
        }
        if (ev == UP_FRAME_BODY) {
            assert_true(used > 0);
            size_t room = sizeof(fd->body) - fd->body_len;
            size_t k = used < room ? used : room;
            memcpy(fd->body + fd->body_len, fd->buf, k);
            fd->body_len += k;
            fd->body_total += used;
        }
        if (ev == UP_FRAME_END) {
            if (fd->ends < 8)
                fd->flags[fd->ends] = fd->f.flag;
            fd->ends++;
        }
        assert_true(used <= fd->len);
        if (ev == UP_FRAME_MORE)
            assert_int_equal(used, 0);
        memmove(fd->buf, fd->buf + used, fd->len - used);
        fd->len -= used;
        if (ev == UP_FRAME_MORE)
            return;
    }
}

/* Feeds in chunks of `chunk` bytes; returns false if the buffer filled
 * without the framer freeing room (a header block too large). */
static bool s_feed(feeder_t *fd, const char *data, size_t n, size_t chunk)
{
    size_t off = 0;
    while (off < n && fd->errors == 0) {
        size_t room = fd->cap - fd->len;
        if (room == 0)
            return false;
        size_t k = n - off < chunk ? n - off : chunk;
        if (k > room)
            k = room;
        memcpy(fd->buf + fd->len, data + off, k);
        fd->len += k;
        off += k;
        if (fd->len > fd->max_len)
            fd->max_len = fd->len;
        s_run(fd);
    }
    return true;
}

static const char s_bind_send[] =
    "MSRP a786hjs2 SEND\r\n"
    "To-Path: msrp://10.0.0.1:2855/relay;tcp msrp://127.0.0.1:7777/"
    "abcDEF0123456789wxyz;tcp\r\n"
    "From-Path: msrp://10.9.9.9:5000/peer1;tcp\r\n"
    "Message-ID: 12339sdqwer\r\n"
    "Byte-Range: 1-0/0\r\n"
    "-------a786hjs2$\r\n";

static const char s_text_send[] =
    "MSRP d93kswow SEND\r\n"
    "To-Path: msrp://127.0.0.1:7777/abc;tcp\r\n"
    "From-Path: msrp://10.9.9.9:5000/peer1;tcp\r\n"
    "Message-ID: 12339sdqwer\r\n"
    "Byte-Range: 1-16/16\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "Hi, I'm Alice!\r\n"
    "\r\n"
    "-------d93kswow$\r\n";

static void test_bodyless_send(void **state)
{
    (void)state;
    size_t chunks[] = {sizeof(s_bind_send), 1, 3, 7};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        feeder_t fd;
        s_init(&fd, 4096);
        assert_true(s_feed(&fd, s_bind_send, strlen(s_bind_send), chunks[i]));
        assert_int_equal(fd.errors, 0);
        assert_int_equal(fd.heads, 1);
        assert_int_equal(fd.sends, 1);
        assert_int_equal(fd.ends, 1);
        assert_false(fd.has_body[0]);
        assert_int_equal(fd.flags[0], '$');
        assert_string_equal(fd.tids[0], "a786hjs2");
        assert_string_equal(fd.from_path, "msrp://10.9.9.9:5000/peer1;tcp");
        assert_int_equal(fd.len, 0);
    }
}

static void test_send_with_body(void **state)
{
    (void)state;
    for (size_t chunk = 1; chunk < 40; chunk++) {
        feeder_t fd;
        s_init(&fd, 4096);
        assert_true(s_feed(&fd, s_text_send, strlen(s_text_send), chunk));
        assert_int_equal(fd.errors, 0);
        assert_int_equal(fd.heads, 1);
        assert_true(fd.has_body[0]);
        assert_int_equal(fd.ends, 1);
        assert_int_equal(fd.len, 0);
    }
}

static void test_paths(void **state)
{
    (void)state;
    feeder_t fd;
    s_init(&fd, 4096);
    assert_true(s_feed(&fd, s_bind_send, strlen(s_bind_send), 4096));
    assert_int_equal(fd.heads, 1);
    up_frame_str_t to = {fd.to_path, strlen(fd.to_path)}, last, first;
    assert_true(up_frame_path_last(to, &last));
    assert_int_equal(last.len, strlen("msrp://127.0.0.1:7777/"
                                      "abcDEF0123456789wxyz;tcp"));
    assert_memory_equal(last.ptr, "msrp://127.0.0.1:7777/abcDEF0123456789wxyz;tcp",
                        last.len);
    assert_true(up_frame_path_first(to, &first));
    assert_memory_equal(first.ptr, "msrp://10.0.0.1:2855/relay;tcp",
                        first.len);
    up_frame_str_t one = {" msrp://a:1/x;tcp  ", 19};
    assert_true(up_frame_path_last(one, &last));
    assert_int_equal(last.len, strlen("msrp://a:1/x;tcp"));
    up_frame_str_t blank = {"   ", 3}, none = {NULL, 0};
    assert_false(up_frame_path_last(blank, &last));
    assert_false(up_frame_path_first(none, &first));
}

static void test_large_body_streams(void **state)
{
    (void)state;
    /* 1 MiB of body through a 256-byte buffer, with decoy end-lines. */
    const size_t body_len = 1u << 20;
    char *msg = malloc(body_len + 512);
    assert_non_null(msg);
    int n = snprintf(msg, 512,
                     "MSRP big12345 SEND\r\nTo-Path: msrp://h:1/s;tcp\r\n"
                     "From-Path: msrp://h:2/p;tcp\r\nMessage-ID: m\r\n"
                     "Byte-Range: 1-*/*\r\nContent-Type: text/plain\r\n\r\n");
    size_t off = (size_t)n;
    for (size_t i = 0; i < body_len; i++)
        msg[off++] = (char)('a' + i % 26);
    /* Not end-lines: another tid, a missing flag, no CRLF before. */
    const char *decoys[] = {"\r\n-------big12346$\r\n", "\r\n-------big12345\r\n",
                            "x-------big12345$\r\n"};
    for (size_t i = 0; i < 3; i++) {
        memcpy(msg + off, decoys[i], strlen(decoys[i]));
        off += strlen(decoys[i]);
    }
    const char *end = "\r\n-------big12345+\r\n";
    memcpy(msg + off, end, strlen(end));
    off += strlen(end);

    size_t chunks[] = {1, 13, 64, 256};
    for (size_t i = 0; i < 4; i++) {
        feeder_t fd;
        s_init(&fd, 256);
        assert_true(s_feed(&fd, msg, off, chunks[i]));
        assert_int_equal(fd.errors, 0);
        assert_int_equal(fd.heads, 1);
        assert_int_equal(fd.ends, 1);
        assert_int_equal(fd.flags[0], '+');
        assert_int_equal(fd.len, 0);
        assert_true(fd.max_len <= 256);
    }
    free(msg);
}

static void test_back_to_back(void **state)
{
    (void)state;
    char two[2048];
    snprintf(two, sizeof(two), "%s%s%s", s_text_send, s_bind_send,
             "MSRP a786hjs2 200 OK\r\nTo-Path: msrp://x:1/a;tcp\r\n"
             "From-Path: msrp://y:2/b;tcp\r\n-------a786hjs2$\r\n");
    feeder_t fd;
    s_init(&fd, 4096);
    assert_true(s_feed(&fd, two, strlen(two), sizeof(two)));
    assert_int_equal(fd.errors, 0);
    assert_int_equal(fd.heads, 3);
    assert_int_equal(fd.ends, 3);
    assert_int_equal(fd.sends, 2);
    assert_int_equal(fd.nstatus, 1);
    assert_int_equal(fd.statuses[0], 200);
    assert_string_equal(fd.tids[0], "d93kswow");
    assert_string_equal(fd.tids[1], "a786hjs2");
    assert_int_equal(fd.len, 0);
}

static void s_expect_error(const char *data, size_t chunk)
{
    feeder_t fd;
    s_init(&fd, 4096);
    (void)s_feed(&fd, data, strlen(data), chunk);
    assert_int_equal(fd.errors, 1);
    assert_int_equal(fd.heads, 0);
    assert_non_null(fd.f.why);
}

static void test_garbage(void **state)
{
    (void)state;
    s_expect_error("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    s_expect_error("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 4096);
    s_expect_error("\x16\x03\x01\x02\x00", 4096); /* a TLS hello */
    s_expect_error("MSRP abc SEND\r\n", 4096);    /* tid too short */
    s_expect_error("MSRP abcd send\r\n", 4096);   /* method case */
    s_expect_error("MSRP abcd SEND\r\nTo-Path msrp://x:1/a;tcp\r\n", 4096);
    /* A request without From-Path. */
    s_expect_error("MSRP abcd SEND\r\nTo-Path: msrp://x:1/a;tcp\r\n"
                   "-------abcd$\r\n",
                   4096);
    /* An end-line of another transaction inside the headers. */
    s_expect_error("MSRP abcd SEND\r\nTo-Path: msrp://x:1/a;tcp\r\n"
                   "From-Path: msrp://x:1/b;tcp\r\n-------zzzz$\r\n",
                   4096);
    /* A start line that never ends. */
    char longline[600];
    memset(longline, 'A', sizeof(longline) - 1);
    memcpy(longline, "MSRP ", 5);
    longline[sizeof(longline) - 1] = '\0';
    s_expect_error(longline, 4096);
}

static void test_header_block_too_large(void **state)
{
    (void)state;
    /* Valid so far but never complete: the caller's buffer fills. */
    feeder_t fd;
    s_init(&fd, 512);
    char msg[2048];
    int n = snprintf(msg, sizeof(msg),
                     "MSRP abcd SEND\r\nTo-Path: msrp://x:1/a;tcp\r\n");
    while ((size_t)n < sizeof(msg) - 40)
        n += snprintf(msg + n, sizeof(msg) - (size_t)n, "X-Pad: 0123456789\r\n");
    assert_false(s_feed(&fd, msg, (size_t)n, 64));
    assert_int_equal(fd.errors, 0);
    assert_int_equal(fd.heads, 0);
    assert_int_equal(fd.len, 512);
}

/* ---- every shape, every split ------------------------------------------ */

static const char s_full_send[] =
    "MSRP ab12cd34 SEND\r\n"
    "To-Path: msrp://127.0.0.1:7777/abc;tcp\r\n"
    "From-Path: msrp://10.9.9.9:5000/peer1;tcp\r\n"
    "Message-ID: 87652491\r\n"
    "Byte-Range: 1-25/25\r\n"
    "Success-Report: yes\r\n"
    "Failure-Report: partial\r\n"
    "X-Other: kept as is\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "Hello, end-lines inside?\n"
    "\r\n"
    "-------ab12cd34$\r\n";

static const char s_report[] =
    "MSRP rep4975x REPORT\r\n"
    "To-Path: msrp://10.9.9.9:5000/peer1;tcp\r\n"
    "From-Path: msrp://127.0.0.1:7777/abc;tcp\r\n"
    "Message-ID: 87652491\r\n"
    "Byte-Range: 1-25/25\r\n"
    "Status: 000 200 OK\r\n"
    "-------rep4975x$\r\n";

static const char s_response[] =
    "MSRP ab12cd34 200 OK\r\n"
    "To-Path: msrp://10.9.9.9:5000/peer1;tcp\r\n"
    "From-Path: msrp://127.0.0.1:7777/abc;tcp\r\n"
    "-------ab12cd34$\r\n";

static const char s_bare_response[] =
    "MSRP ab12cd34 481\r\n"
    "To-Path: msrp://10.9.9.9:5000/peer1;tcp\r\n"
    "From-Path: msrp://127.0.0.1:7777/abc;tcp\r\n"
    "-------ab12cd34$\r\n";

static const char s_chunk_plus[] =
    "MSRP chunk001 SEND\r\n"
    "To-Path: msrp://h:1/s;tcp\r\nFrom-Path: msrp://h:2/p;tcp\r\n"
    "Message-ID: big\r\nByte-Range: 1-10/20\r\n"
    "Content-Type: text/plain\r\n\r\n0123456789\r\n-------chunk001+\r\n";

static const char s_chunk_abort[] =
    "MSRP chunk002 SEND\r\n"
    "To-Path: msrp://h:1/s;tcp\r\nFrom-Path: msrp://h:2/p;tcp\r\n"
    "Message-ID: big\r\nByte-Range: 11-*/20\r\n"
    "Content-Type: text/plain\r\n\r\nabc\r\n-------chunk002#\r\n";

/* Empty data after a Content-Type: the blank line's CRLF doubles as the
 * one before the end-line, as some senders write it. */
static const char s_empty_body[] =
    "MSRP empt0001 SEND\r\n"
    "To-Path: msrp://h:1/s;tcp\r\nFrom-Path: msrp://h:2/p;tcp\r\n"
    "Message-ID: e\r\nContent-Type: text/plain\r\n\r\n"
    "-------empt0001$\r\n";

/* A body holding text that looks like an end-line but is not one. */
static const char s_lookalike[] =
    "MSRP look1234 SEND\r\n"
    "To-Path: msrp://h:1/s;tcp\r\nFrom-Path: msrp://h:2/p;tcp\r\n"
    "Message-ID: l\r\nByte-Range: 1-*/*\r\nContent-Type: text/plain\r\n\r\n"
    "x-------look1234$\r\n"      /* not after a CRLF */
    "x\r\n-------look1234\r\n"   /* no flag */
    "\r\n-------look1235$\r\n"   /* another tid */
    "\r\n-------look12345$\r\n"  /* a longer tid */
    "\r\n-------look1234$x\r\n"  /* no CRLF after the flag */
    "\r\n-------look1234!\r\n"   /* not a flag */
    "\r\n------look1234$\r\n"    /* six dashes */
    "\r\n-------\r\n-------look1234+\r\n";

static const char s_lookalike_body[] =
    "x-------look1234$\r\n"
    "x\r\n-------look1234\r\n"
    "\r\n-------look1235$\r\n"
    "\r\n-------look12345$\r\n"
    "\r\n-------look1234$x\r\n"
    "\r\n-------look1234!\r\n"
    "\r\n------look1234$\r\n"
    "\r\n-------";

typedef struct {
    const char *frame;
    const char *body; /* expected data, NULL = bodyless */
    char flag;
    bool request;
    unsigned status;
} shape_t;

static const shape_t s_shapes[] = {
    {s_bind_send, NULL, '$', true, 0},
    {s_text_send, "Hi, I'm Alice!\r\n", '$', true, 0},
    {s_full_send, "Hello, end-lines inside?\n", '$', true, 0},
    {s_report, NULL, '$', true, 0},
    {s_response, NULL, '$', false, 200},
    {s_bare_response, NULL, '$', false, 481},
    {s_chunk_plus, "0123456789", '+', true, 0},
    {s_chunk_abort, "abc", '#', true, 0},
    {s_empty_body, "", '$', true, 0},
    {s_lookalike, s_lookalike_body, '+', true, 0},
};

static void s_check_shape(const feeder_t *fd, const shape_t *sh)
{
    if (fd->errors)
        fail_msg("frame [%.30s...]: %s", sh->frame, fd->f.why);
    assert_int_equal(fd->heads, 1);
    assert_int_equal(fd->ends, 1);
    assert_int_equal(fd->flags[0], sh->flag);
    assert_int_equal(fd->last.request, sh->request);
    assert_int_equal(fd->last.status, sh->status);
    assert_int_equal(fd->has_body[0], sh->body != NULL);
    if (!sh->body)
        assert_int_equal(fd->last.flag, sh->flag);
    size_t want = sh->body ? strlen(sh->body) : 0;
    assert_int_equal(fd->body_total, want);
    if (want)
        assert_memory_equal(fd->body, sh->body, want);
    assert_int_equal(fd->len, 0);
}

static void test_shapes_every_split(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(s_shapes) / sizeof(s_shapes[0]); k++) {
        const shape_t *sh = &s_shapes[k];
        size_t n = strlen(sh->frame);
        /* Two pieces, split at every point. */
        for (size_t cut = 0; cut <= n; cut++) {
            feeder_t fd;
            s_init(&fd, 4096);
            assert_true(s_feed(&fd, sh->frame, cut, 4096));
            assert_true(s_feed(&fd, sh->frame + cut, n - cut, 4096));
            s_check_shape(&fd, sh);
        }
        /* Every piece size from one byte to the whole frame. */
        for (size_t chunk = 1; chunk <= n; chunk++) {
            feeder_t fd;
            s_init(&fd, 4096);
            assert_true(s_feed(&fd, sh->frame, n, chunk));
            s_check_shape(&fd, sh);
        }
    }
}

static void test_header_fields(void **state)
{
    (void)state;
    feeder_t fd;
    s_init(&fd, 4096);
    assert_true(s_feed(&fd, s_full_send, strlen(s_full_send), 4096));
    assert_string_equal(fd.method, "SEND");
    assert_string_equal(fd.tids[0], "ab12cd34");
    assert_string_equal(fd.message_id, "87652491");
    assert_string_equal(fd.byte_range, "1-25/25");
    assert_true(fd.last.has_range);
    assert_int_equal(fd.last.range.start, 1);
    assert_int_equal(fd.last.range.end, 25);
    assert_int_equal(fd.last.range.total, 25);
    assert_string_equal(fd.success, "yes");
    assert_string_equal(fd.failure, "partial");
    assert_string_equal(fd.content_type, "text/plain");
    /* The raw block a relay copies: every line after the start line. */
    assert_true(strncmp(fd.headers, "To-Path: ", 9) == 0);
    assert_non_null(strstr(fd.headers, "X-Other: kept as is\r\n"));
    assert_true(strlen(fd.headers) > 26);
    assert_string_equal(fd.headers + strlen(fd.headers) - 26,
                        "Content-Type: text/plain\r\n");

    s_init(&fd, 4096);
    assert_true(s_feed(&fd, s_report, strlen(s_report), 4096));
    assert_string_equal(fd.method, "REPORT");
    assert_string_equal(fd.status_hdr, "000 200 OK");

    s_init(&fd, 4096);
    assert_true(s_feed(&fd, s_response, strlen(s_response), 7));
    assert_string_equal(fd.comment, "OK");
    s_init(&fd, 4096);
    assert_true(s_feed(&fd, s_bare_response, strlen(s_bare_response), 7));
    assert_string_equal(fd.comment, "");
    assert_int_equal(fd.statuses[0], 481);

    s_init(&fd, 4096);
    assert_true(s_feed(&fd, s_chunk_abort, strlen(s_chunk_abort), 3));
    assert_int_equal(fd.last.range.start, 11);
    assert_int_equal(fd.last.range.end, UP_FRAME_RANGE_STAR);
    assert_int_equal(fd.last.range.total, 20);
}

static void test_all_shapes_back_to_back(void **state)
{
    (void)state;
    char all[8192] = "";
    size_t nshapes = sizeof(s_shapes) / sizeof(s_shapes[0]);
    for (size_t k = 0; k < nshapes; k++)
        strcat(all, s_shapes[k].frame);
    size_t n = strlen(all);
    size_t chunks[] = {1, 2, 5, 17, 64, 1000, n};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        feeder_t fd;
        s_init(&fd, 4096);
        assert_true(s_feed(&fd, all, n, chunks[i]));
        assert_int_equal(fd.errors, 0);
        assert_int_equal(fd.heads, (int)nshapes);
        assert_int_equal(fd.ends, (int)nshapes);
        assert_int_equal(fd.len, 0);
    }
}

/* ---- malformed input ---------------------------------------------------- */

static void s_expect_why(const char *data, size_t head_max, uint64_t body_max,
                         const char *why)
{
    size_t n = strlen(data);
    size_t chunks[] = {1, 7, n ? n : 1};
    for (size_t i = 0; i < 3; i++) {
        feeder_t fd;
        s_init(&fd, 4096);
        up_frame_limits(&fd.f, head_max, body_max);
        (void)s_feed(&fd, data, n, chunks[i]);
        assert_int_equal(fd.errors, 1);
        assert_non_null(fd.f.why);
        if (strcmp(fd.f.why, why) != 0)
            fail_msg("input [%s] chunk %zu: why=%s, expected %s", data,
                     chunks[i], fd.f.why, why);
    }
}

#define S_HDRS "To-Path: msrp://x:1/a;tcp\r\nFrom-Path: msrp://x:1/b;tcp\r\n"

static void test_malformed(void **state)
{
    (void)state;
    s_expect_why("GET / HTTP/1.1\r\n\r\n", 0, 0, "bad_start_line");
    s_expect_why("\x16\x03\x01\x02\x00", 0, 0, "bad_start_line");
    s_expect_why("MSRP\r\n", 0, 0, "bad_start_line");
    s_expect_why("MSRP abc SEND\r\n", 0, 0, "bad_transaction_id");
    s_expect_why("MSRP abcd\r\n", 0, 0, "bad_transaction_id");
    s_expect_why("MSRP abcd send\r\n", 0, 0, "bad_method");
    s_expect_why("MSRP abcd 20\r\n", 0, 0, "bad_method");
    /* Header without a colon, or with an empty name. */
    s_expect_why("MSRP abcd SEND\r\nTo-Path msrp://x:1/a;tcp\r\n", 0, 0,
                 "bad_header");
    s_expect_why("MSRP abcd SEND\r\n: x\r\n", 0, 0, "bad_header");
    s_expect_why("MSRP abcd SEND\r\nX: a\nTo-Path: msrp://x:1/a;tcp\r\n", 0,
                 0, "bad_header");
    s_expect_why("MSRP abcd SEND\r\nX: a\rb\r\n", 0, 0, "bad_header");
    /* End-line of another transaction, or with a bad flag, after the
     * headers. */
    s_expect_why("MSRP abcd SEND\r\n" S_HDRS "-------zzzz$\r\n", 0, 0,
                 "end_line_tid_mismatch");
    s_expect_why("MSRP abcd SEND\r\n" S_HDRS "-------abcde$\r\n", 0, 0,
                 "end_line_tid_mismatch");
    s_expect_why("MSRP abcd SEND\r\n" S_HDRS "-------abcd!\r\n", 0, 0,
                 "bad_end_line_flag");
    s_expect_why("MSRP abcd SEND\r\n" S_HDRS "-------abcd\r\n", 0, 0,
                 "bad_end_line_flag");
    s_expect_why("MSRP abcd SEND\r\n" S_HDRS "-------abcd$$\r\n", 0, 0,
                 "bad_end_line_flag");
    /* Paths are required, once. */
    s_expect_why("MSRP abcd SEND\r\nTo-Path: msrp://x:1/a;tcp\r\n"
                 "-------abcd$\r\n",
                 0, 0, "missing_path");
    s_expect_why("MSRP abcd SEND\r\nTo-Path: msrp://x:1/a;tcp\r\n"
                 "From-Path: \r\n-------abcd$\r\n",
                 0, 0, "missing_path");
    s_expect_why("MSRP abcd SEND\r\n" S_HDRS "To-Path: msrp://y:1/a;tcp\r\n",
                 0, 0, "duplicate_header");
    s_expect_why("MSRP abcd SEND\r\n" S_HDRS
                 "Byte-Range: 1-2/2\r\nbyte-range: 1-2/2\r\n",
                 0, 0, "duplicate_header");
    /* Byte-Range: negative, huge, zero, inverted, beyond total. */
    const char *ranges[] = {"-1-5/5", "1--5/5", "1-5/-5",
                            "1-5/99999999999999999999",
                            "1234567890123456789-1234567890123456790/*",
                            "0-1/1", "5-2/10", "1-6/5", "7-*/5", "1-5",
                            "1-5/5x", "a-b/c", "", "1 - 5/5"};
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "MSRP abcd SEND\r\n" S_HDRS "Byte-Range: %s\r\n"
                 "-------abcd$\r\n",
                 ranges[i]);
        s_expect_why(msg, 0, 0, "bad_byte_range");
    }
    /* Oversize header block, start line that never ends. */
    char big[2048];
    int n = snprintf(big, sizeof(big), "MSRP abcd SEND\r\n" S_HDRS);
    while ((size_t)n < sizeof(big) - 40)
        n += snprintf(big + n, sizeof(big) - (size_t)n, "X-Pad: 0123456789\r\n");
    s_expect_why(big, 512, 0, "header_too_large");
    char longline[600];
    memset(longline, 'A', sizeof(longline) - 1);
    memcpy(longline, "MSRP ", 5);
    longline[sizeof(longline) - 1] = '\0';
    s_expect_why(longline, 0, 0, "start_line_too_long");
    /* Garbage longer than a start line reads as garbage, in one piece as
     * in many. */
    char junk[400];
    memset(junk, 0xff, sizeof(junk) - 1);
    junk[sizeof(junk) - 1] = '\0';
    s_expect_why(junk, 0, 0, "bad_start_line");
    /* A body whose end-line never comes within the limit. */
    char endless[1024];
    n = snprintf(endless, sizeof(endless),
                 "MSRP abcd SEND\r\n" S_HDRS "Content-Type: a/b\r\n\r\n");
    while ((size_t)n < sizeof(endless) - 1)
        endless[n++] = 'z';
    endless[n] = '\0';
    s_expect_why(endless, 0, 300, "end_line_missing");
}

static void test_range_parse(void **state)
{
    (void)state;
    up_frame_range_t r;
    up_frame_str_t v = {"1-*/*", 5};
    assert_int_equal(up_frame_range_parse(v, &r), 0);
    assert_int_equal(r.start, 1);
    assert_int_equal(r.end, UP_FRAME_RANGE_STAR);
    assert_int_equal(r.total, UP_FRAME_RANGE_STAR);
    v = (up_frame_str_t){" 1-0/0 ", 7}; /* an empty message */
    assert_int_equal(up_frame_range_parse(v, &r), 0);
    assert_int_equal(r.end, 0);
    v = (up_frame_str_t){"101-200/*", 9};
    assert_int_equal(up_frame_range_parse(v, &r), 0);
    assert_int_equal(r.start, 101);
    assert_int_equal(r.total, UP_FRAME_RANGE_STAR);
    v = (up_frame_str_t){"999999999999999999-999999999999999999/*", 39};
    assert_int_equal(up_frame_range_parse(v, &r), 0);
    v = (up_frame_str_t){"1000000000000000000-1/*", 23};
    assert_int_equal(up_frame_range_parse(v, &r), -EINVAL);
    v = (up_frame_str_t){NULL, 0};
    assert_int_equal(up_frame_range_parse(v, &r), -EINVAL);
}

/* Bodies of every size stream through a buffer that holds only a bit
 * more than a header block: nothing waits for the whole frame. */
static void test_stream_bounded(void **state)
{
    (void)state;
    srand(1234);
    for (int iter = 0; iter < 2000; iter++) {
        size_t body = (size_t)(rand() % 5000);
        char *msg = malloc(body + 512);
        assert_non_null(msg);
        int n = snprintf(msg, 512,
                         "MSRP strm%04d SEND\r\n" S_HDRS
                         "Content-Type: a/b\r\n\r\n",
                         iter);
        size_t off = (size_t)n;
        for (size_t i = 0; i < body; i++) {
            int r = rand() % 16;
            if (r == 15 && i + 24 < body) {
                /* An end-line of another transaction. */
                int k = snprintf(msg + off, 32, "\r\n-------strm%04d$\r\n",
                                 iter + 1 + rand() % 50);
                off += (size_t)k;
                i += (size_t)k - 1;
                continue;
            }
            /* Plenty of CRs, LFs and dashes to tempt the scanner. */
            msg[off++] = r < 3 ? '\r' : r < 6 ? '\n' : r < 11 ? '-' : 's';
        }
        off += (size_t)snprintf(msg + off, 64, "\r\n-------strm%04d$\r\n",
                                iter);
        feeder_t fd;
        s_init(&fd, 256);
        assert_true(s_feed(&fd, msg, off, 1 + (size_t)(rand() % 100)));
        assert_int_equal(fd.errors, 0);
        assert_int_equal(fd.ends, 1);
        assert_int_equal(fd.body_total, body);
        size_t cmp = body < sizeof(fd.body) ? body : sizeof(fd.body);
        assert_memory_equal(fd.body, msg + n, cmp);
        assert_true(fd.max_len <= 256);
        free(msg);
    }
}

/* End-lines and look-alikes at every alignment, in bodies full of dashes,
 * CRs and LFs: the scan that skips bytes must find exactly the first real
 * end-line. */
static void test_end_line_alignment(void **state)
{
    (void)state;
    const char *fills[] = {"a",        "-",       "\r",       "\n",
                           "\r\n-",    "--------", "------x", "\r\n------",
                           "\n-------", "x-------"};
    for (size_t fi = 0; fi < sizeof(fills) / sizeof(fills[0]); fi++) {
        for (size_t pad = 0; pad < 40; pad++) {
            char body[512] = "";
            size_t bl = 0;
            while (bl < pad) {
                size_t fl = strlen(fills[fi]);
                size_t k = pad - bl < fl ? pad - bl : fl;
                memcpy(body + bl, fills[fi], k);
                bl += k;
            }
            /* A look-alike with a longer run of dashes, then more fill. */
            bl += (size_t)snprintf(body + bl, sizeof(body) - bl,
                                   "\r\n--------aln12345$\r\nx%sy", fills[fi]);
            /* A body must not end in "\r\n-------" plus a prefix of the
             * tid: it would be the start of the end-line. Fills do not. */
            char msg[1024];
            int n = snprintf(msg, sizeof(msg),
                             "MSRP aln12345 SEND\r\n" S_HDRS
                             "Content-Type: a/b\r\n\r\n%s\r\n-------aln12345$"
                             "\r\nMSRP aln99999 SEND\r\n" S_HDRS
                             "-------aln99999$\r\n",
                             body);
            for (size_t chunk = 1; chunk < 80; chunk += 13) {
                feeder_t fd;
                s_init(&fd, 1024);
                assert_true(s_feed(&fd, msg, (size_t)n, chunk));
                assert_int_equal(fd.errors, 0);
                assert_int_equal(fd.heads, 2);
                assert_int_equal(fd.ends, 2);
                assert_int_equal(fd.body_total, bl);
                assert_memory_equal(fd.body, body, bl);
            }
        }
    }
}

/* Mutated copies of valid frames of every shape, in random chunks, with
 * random limits: any outcome but a crash or an out-of-bounds access (run
 * under ASan) is fine, a frame never ends before it began, and no event
 * claims more bytes than it was given. */
static void test_mutations(void **state)
{
    (void)state;
    srand(4975);
    size_t nshapes = sizeof(s_shapes) / sizeof(s_shapes[0]);
    char msg[4096];
    for (int iter = 0; iter < 10000; iter++) {
        const char *a = s_shapes[rand() % nshapes].frame;
        const char *b = s_shapes[rand() % nshapes].frame;
        int n = snprintf(msg, sizeof(msg), "%s%s", a, b);
        int flips = rand() % 5;
        for (int k = 0; k < flips; k++) {
            int at = rand() % n;
            switch (rand() % 4) {
            case 0:
                msg[at] = (char)(rand() % 256);
                break;
            case 1:
                msg[at] = "\r\n-$+#: "[rand() % 8];
                break;
            case 2: /* delete a byte */
                memmove(msg + at, msg + at + 1, (size_t)(n - at));
                n--;
                break;
            default: /* duplicate a byte */
                if (n + 1 < (int)sizeof(msg)) {
                    memmove(msg + at + 1, msg + at, (size_t)(n - at + 1));
                    n++;
                }
                break;
            }
        }
        if (rand() % 8 == 0)
            n = rand() % n + 1;
        feeder_t fd;
        s_init(&fd, 64 + (size_t)(rand() % 1024));
        up_frame_limits(&fd.f, 32 + (size_t)(rand() % 2048),
                        1 + (uint64_t)(rand() % 4096));
        (void)s_feed(&fd, msg, (size_t)n, 1 + (size_t)(rand() % 64));
        assert_true(fd.ends <= fd.heads);
        assert_true(fd.heads <= fd.ends + 1);
        assert_true(fd.len <= fd.cap);
        assert_true(fd.body_total <= (size_t)n);
    }
}

static void test_empty_input(void **state)
{
    (void)state;
    up_frame_t f;
    up_frame_init(&f);
    size_t used = 99;
    up_frame_head_t h;
    assert_int_equal(up_frame_parse(&f, (const uint8_t *)"", 0, &used, &h),
                     UP_FRAME_MORE);
    assert_int_equal(used, 0);
    assert_false(up_frame_in_body(&f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bodyless_send),
        cmocka_unit_test(test_send_with_body),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_large_body_streams),
        cmocka_unit_test(test_back_to_back),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_header_block_too_large),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_shapes_every_split),
        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_all_shapes_back_to_back),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_range_parse),
        cmocka_unit_test(test_stream_bounded),
        cmocka_unit_test(test_end_line_alignment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
