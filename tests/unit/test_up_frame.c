/* up_frame: MSRP framing over a bounded buffer, fed as a socket would feed
 * it (whole, byte by byte, in odd chunks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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
        }
        if (ev == UP_FRAME_END) {
            if (fd->ends < 8)
                fd->flags[fd->ends] = fd->f.flag;
            fd->ends++;
        }
        assert_true(used <= fd->len);
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

/* Mutated copies of valid frames, in random chunks: any outcome but a
 * crash or an out-of-bounds access (run under ASan) is fine, and a frame
 * never ends before it began. */
static void test_mutations(void **state)
{
    (void)state;
    srand(4975);
    char msg[1024];
    for (int iter = 0; iter < 20000; iter++) {
        int n = snprintf(msg, sizeof(msg), "%s%s", s_text_send, s_bind_send);
        int flips = rand() % 4;
        for (int k = 0; k < flips; k++)
            msg[rand() % n] = (char)(rand() % 256);
        if (rand() % 8 == 0)
            n = rand() % n + 1;
        feeder_t fd;
        s_init(&fd, 64 + (size_t)(rand() % 512));
        (void)s_feed(&fd, msg, (size_t)n, 1 + (size_t)(rand() % 64));
        assert_true(fd.ends <= fd.heads);
        assert_true(fd.len <= fd.cap);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
