/* up_relay: the relay's decisions and rewrites as pure functions, and the
 * framer + rewrite pipeline a worker runs per hop, without sockets. */
#include <errno.h>
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
#include "up_relay.h"

#define HOP_TO "msrp://10.2.2.2:7002/peerB;tcp"
#define HOP_FROM "msrp://127.0.0.1:2855/legBxxxxxxxxxxxxxxx;tcp"
#define NEW_TID "Nt0123456789abcd"

static up_frame_str_t s_str(const char *s)
{
    up_frame_str_t v = {s, s ? strlen(s) : 0};
    return v;
}

/* Parses one complete frame held in `text`; body bytes into body. */
typedef struct {
    up_frame_head_t h;
    char body[4096];
    size_t body_len;
    char flag;
    int heads, ends;
    const char *why;
} parsed_t;

static void s_parse(const char *text, size_t len, parsed_t *out)
{
    memset(out, 0, sizeof(*out));
    up_frame_t f;
    up_frame_init(&f);
    size_t off = 0;
    while (off < len) {
        size_t used = 0;
        up_frame_head_t h;
        up_frame_event_t ev = up_frame_parse(&f, (const uint8_t *)text + off,
                                             len - off, &used, &h);
        if (ev == UP_FRAME_ERROR) {
            out->why = f.why;
            return;
        }
        if (ev == UP_FRAME_MORE)
            return;
        if (ev == UP_FRAME_HEAD) {
            out->h = h;
            out->heads++;
        } else if (ev == UP_FRAME_BODY) {
            assert_true(out->body_len + used <= sizeof(out->body));
            memcpy(out->body + out->body_len, text + off, used);
            out->body_len += used;
        } else {
            out->flag = f.flag;
            out->ends++;
        }
        off += used;
    }
}

static bool s_eq(up_frame_str_t v, const char *want)
{
    return v.ptr && v.len == strlen(want) && memcmp(v.ptr, want, v.len) == 0;
}

/* ---- Failure-Report ---------------------------------------------------- */

static void test_failure_report(void **state)
{
    (void)state;
    assert_int_equal(up_relay_fr(s_str(NULL)), UP_FR_YES);
    assert_int_equal(up_relay_fr(s_str("yes")), UP_FR_YES);
    assert_int_equal(up_relay_fr(s_str("No")), UP_FR_NO);
    assert_int_equal(up_relay_fr(s_str("partial")), UP_FR_PARTIAL);
    assert_int_equal(up_relay_fr(s_str("maybe")), UP_FR_YES);
    /* yes: every answer; partial: errors only; no: nothing. */
    assert_true(up_relay_fr_answers(UP_FR_YES, 200));
    assert_true(up_relay_fr_answers(UP_FR_YES, 481));
    assert_false(up_relay_fr_answers(UP_FR_PARTIAL, 200));
    assert_true(up_relay_fr_answers(UP_FR_PARTIAL, 413));
    assert_false(up_relay_fr_answers(UP_FR_NO, 200));
    assert_false(up_relay_fr_answers(UP_FR_NO, 481));
    assert_false(up_relay_fr_answers(UP_FR_YES, 0));
}

/* ---- decisions ------------------------------------------------------------ */

static up_frame_head_t s_head(const char *method, const char *range,
                              bool body, char flag)
{
    up_frame_head_t h;
    memset(&h, 0, sizeof(h));
    h.request = true;
    snprintf(h.method, sizeof(h.method), "%s", method);
    h.message_id = s_str("m1");
    if (range) {
        h.byte_range = s_str(range);
        assert_int_equal(up_frame_range_parse(h.byte_range, &h.range), 0);
        h.has_range = true;
    }
    h.has_body = body;
    h.flag = body ? 0 : flag;
    return h;
}

static void s_expect(const up_frame_head_t *h, up_relay_in_t in,
                     up_action_t action, unsigned code)
{
    up_verdict_t v = up_relay_decide(h, &in);
    if (v.action != action || v.code != code)
        fail_msg("%s peer=%d to_us=%d: action %d code %u, expected %d %u",
                 h->method, (int)in.peer, (int)in.to_us, (int)v.action,
                 v.code, (int)action, code);
}

static void test_decide(void **state)
{
    (void)state;
    const uint64_t max = 1000;
    up_relay_in_t ready = {true, UP_PEER_READY, max, false};
    up_relay_in_t waiting = {true, UP_PEER_WAITING, max, false};
    up_relay_in_t unreachable = {true, UP_PEER_UNREACHABLE, max, false};
    up_relay_in_t gone = {true, UP_PEER_GONE, max, false};
    up_relay_in_t not_us = {false, UP_PEER_READY, max, false};

    up_frame_head_t send = s_head("SEND", "1-10/10", true, 0);
    s_expect(&send, ready, UP_ACT_FORWARD, 200);
    s_expect(&send, waiting, UP_ACT_HOLD, 0);
    s_expect(&send, unreachable, UP_ACT_REJECT, 481);
    s_expect(&send, gone, UP_ACT_REJECT, 481);
    s_expect(&send, not_us, UP_ACT_REJECT, 481);

    up_frame_head_t report = s_head("REPORT", "1-10/10", false, '$');
    s_expect(&report, ready, UP_ACT_FORWARD, 0);
    s_expect(&report, waiting, UP_ACT_HOLD, 0);
    s_expect(&report, unreachable, UP_ACT_DROP, 0);
    s_expect(&report, gone, UP_ACT_DROP, 0);
    s_expect(&report, not_us, UP_ACT_DROP, 0);

    up_frame_head_t other = s_head("AUTH", NULL, false, '$');
    s_expect(&other, ready, UP_ACT_REJECT, 501);

    /* An empty SEND binds or keeps alive: answered, never forwarded, not
     * even held. */
    up_frame_head_t empty = s_head("SEND", "1-0/0", false, '$');
    s_expect(&empty, ready, UP_ACT_ACCEPT, 200);
    s_expect(&empty, waiting, UP_ACT_ACCEPT, 200);
    s_expect(&empty, gone, UP_ACT_ACCEPT, 200);
    up_frame_head_t bare = s_head("SEND", NULL, false, '$');
    s_expect(&bare, ready, UP_ACT_ACCEPT, 200);
    /* ... but an empty last chunk, or an abort, is forwarded. */
    up_frame_head_t last = s_head("SEND", "11-10/10", false, '$');
    s_expect(&last, ready, UP_ACT_FORWARD, 200);
    up_frame_head_t abort_ = s_head("SEND", "1-0/*", false, '#');
    s_expect(&abort_, ready, UP_ACT_FORWARD, 200);
    up_frame_head_t cont = s_head("SEND", "1-0/*", false, '+');
    s_expect(&cont, ready, UP_ACT_FORWARD, 200);

    /* 413: announced beyond the limit, or already refused. */
    up_frame_head_t big = s_head("SEND", "1-1001/1001", true, 0);
    s_expect(&big, ready, UP_ACT_REJECT, 413);
    up_frame_head_t big_total = s_head("SEND", "1-10/5000", true, 0);
    s_expect(&big_total, ready, UP_ACT_REJECT, 413);
    up_frame_head_t late = s_head("SEND", "1002-*/*", true, 0);
    s_expect(&late, ready, UP_ACT_REJECT, 413);
    up_frame_head_t fits = s_head("SEND", "991-1000/1000", true, 0);
    s_expect(&fits, ready, UP_ACT_FORWARD, 200);
    up_relay_in_t refused = ready;
    refused.refused = true;
    s_expect(&fits, refused, UP_ACT_REJECT, 413);

    /* SEND without Message-ID. */
    up_frame_head_t noid = s_head("SEND", "1-1/1", true, 0);
    noid.message_id = s_str(NULL);
    s_expect(&noid, ready, UP_ACT_REJECT, 400);
}

static void test_exceeds(void **state)
{
    (void)state;
    up_frame_head_t h = s_head("SEND", "1-*/*", true, 0);
    assert_false(up_relay_exceeds(&h, 0, 100));
    assert_false(up_relay_exceeds(&h, 100, 100));
    assert_true(up_relay_exceeds(&h, 101, 100));
    h = s_head("SEND", "51-*/*", true, 0);
    assert_false(up_relay_exceeds(&h, 50, 100));
    assert_true(up_relay_exceeds(&h, 51, 100));
    h = s_head("SEND", "1-101/*", true, 0);
    assert_true(up_relay_exceeds(&h, 0, 100));
    up_frame_head_t none = s_head("SEND", NULL, true, 0);
    assert_true(up_relay_exceeds(&none, 101, 100));
    h = s_head("SEND", "999999999999999999-*/*", true, 0);
    assert_true(up_relay_exceeds(&h, UINT32_MAX, UINT32_MAX));
}

/* ---- rewrite -------------------------------------------------------------- */

static const char s_in[] =
    "MSRP a786hjs2 SEND\r\n"
    "To-Path: msrp://127.0.0.1:2855/legAxxxxxxxxxxxxxxx;tcp\r\n"
    "From-Path: msrp://10.1.1.1:7001/peerA;tcp\r\n"
    "Message-ID: 87652491\r\n"
    "Byte-Range: 1-11/22\r\n"
    "Success-Report: yes\r\n"
    "Failure-Report: yes\r\n"
    "X-Vendor: something; q=1\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "Hello World\r\n"
    "-------a786hjs2+\r\n";

static void test_rewrite(void **state)
{
    (void)state;
    parsed_t in;
    s_parse(s_in, strlen(s_in), &in);
    assert_null(in.why);
    assert_int_equal(in.heads, 1);
    char out[1024];
    int n = up_relay_rewrite(out, sizeof(out), &in.h, NEW_TID, HOP_TO,
                             HOP_FROM);
    assert_true(n > 0);
    out[n] = '\0';
    const char *want =
        "MSRP " NEW_TID " SEND\r\n"
        "To-Path: " HOP_TO "\r\n"
        "From-Path: " HOP_FROM "\r\n"
        "Message-ID: 87652491\r\n"
        "Byte-Range: 1-11/22\r\n"
        "Success-Report: yes\r\n"
        "Failure-Report: yes\r\n"
        "X-Vendor: something; q=1\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n";
    assert_string_equal(out, want);

    /* Exactly big enough, and one byte short. */
    assert_int_equal(up_relay_rewrite(out, (size_t)n, &in.h, NEW_TID, HOP_TO,
                                      HOP_FROM),
                     n);
    assert_int_equal(up_relay_rewrite(out, (size_t)n - 1, &in.h, NEW_TID,
                                      HOP_TO, HOP_FROM),
                     -ENOSPC);
    assert_int_equal(up_relay_rewrite(out, 0, &in.h, NEW_TID, HOP_TO,
                                      HOP_FROM),
                     -ENOSPC);
}

static void test_rewrite_odd_headers(void **state)
{
    (void)state;
    /* Paths not first, names in other cases, a REPORT without a body: the
     * paths are replaced and moved first, the rest keeps its order. */
    const char *text = "MSRP r0000001 REPORT\r\n"
                       "Message-ID: x1\r\n"
                       "from-path: msrp://10.1.1.1:7001/peerA;tcp\r\n"
                       "Byte-Range: 1-3/3\r\n"
                       "TO-PATH: msrp://h:1/relay;tcp msrp://h:2/me;tcp\r\n"
                       "Status: 000 200 OK\r\n"
                       "-------r0000001$\r\n";
    parsed_t in;
    s_parse(text, strlen(text), &in);
    assert_null(in.why);
    char out[1024];
    int n = up_relay_rewrite(out, sizeof(out), &in.h, NEW_TID, HOP_TO,
                             HOP_FROM);
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "MSRP " NEW_TID " REPORT\r\n"
                             "To-Path: " HOP_TO "\r\n"
                             "From-Path: " HOP_FROM "\r\n"
                             "Message-ID: x1\r\n"
                             "Byte-Range: 1-3/3\r\n"
                             "Status: 000 200 OK\r\n");
    /* Bodyless: the end-line follows the headers directly. */
    char end[64];
    int e = up_relay_end_line(end, sizeof(end), false, NEW_TID, in.h.flag);
    assert_true(e > 0);
    memcpy(out + n, end, (size_t)e);
    parsed_t again;
    s_parse(out, (size_t)(n + e), &again);
    assert_null(again.why);
    assert_int_equal(again.ends, 1);
    assert_true(s_eq(again.h.status_header, "000 200 OK"));
    assert_true(s_eq(again.h.to_path, HOP_TO));
}

static void test_end_lines(void **state)
{
    (void)state;
    char out[64];
    int n = up_relay_end_line(out, sizeof(out), true, NEW_TID, '+');
    assert_int_equal(n, 2 + 7 + 16 + 3);
    assert_memory_equal(out, "\r\n-------" NEW_TID "+\r\n", (size_t)n);
    n = up_relay_end_line(out, sizeof(out), false, NEW_TID, '#');
    assert_memory_equal(out, "-------" NEW_TID "#\r\n", (size_t)n);
    n = up_relay_end_line(out, sizeof(out), true, NEW_TID, '$');
    assert_memory_equal(out, "\r\n-------" NEW_TID "$\r\n", (size_t)n);
    assert_int_equal(up_relay_end_line(out, 10, true, NEW_TID, '$'),
                     -ENOSPC);
}

static void test_response_and_report(void **state)
{
    (void)state;
    char out[512];
    up_frame_str_t tid = s_str("a786hjs2");
    int n = up_relay_response(out, sizeof(out), tid, 200,
                              s_str("msrp://10.1.1.1:7001/peerA;tcp"),
                              "msrp://127.0.0.1:2855/legA;tcp");
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "MSRP a786hjs2 200 OK\r\n"
                             "To-Path: msrp://10.1.1.1:7001/peerA;tcp\r\n"
                             "From-Path: msrp://127.0.0.1:2855/legA;tcp\r\n"
                             "-------a786hjs2$\r\n");
    n = up_relay_response(out, sizeof(out), tid, 481, s_str("msrp://a:1/b;tcp"),
                          "msrp://c:2/d;tcp");
    out[n] = '\0';
    assert_non_null(strstr(out, "MSRP a786hjs2 481 Session Does Not Exist\r\n"));
    n = up_relay_response(out, sizeof(out), tid, 413, s_str("msrp://a:1/b;tcp"),
                          "msrp://c:2/d;tcp");
    out[n] = '\0';
    assert_non_null(strstr(out, " 413 Request Entity Too Large\r\n"));
    parsed_t p;
    s_parse(out, (size_t)n, &p);
    assert_null(p.why);
    assert_false(p.h.request);
    assert_int_equal(p.h.status, 413);

    n = up_relay_report(out, sizeof(out), NEW_TID,
                        s_str("msrp://h:1/relay;tcp msrp://10.1.1.1:7001/a;tcp"),
                        HOP_FROM, s_str("87652491"), s_str("1-11/22"), 408);
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(
        out, "MSRP " NEW_TID " REPORT\r\n"
             "To-Path: msrp://h:1/relay;tcp msrp://10.1.1.1:7001/a;tcp\r\n"
             "From-Path: " HOP_FROM "\r\n"
             "Message-ID: 87652491\r\n"
             "Byte-Range: 1-11/22\r\n"
             "Status: 000 408 Request Timeout\r\n"
             "-------" NEW_TID "$\r\n");
    s_parse(out, (size_t)n, &p);
    assert_null(p.why);
    assert_int_equal(p.ends, 1);
    n = up_relay_report(out, sizeof(out), NEW_TID, s_str("msrp://a:1/b;tcp"),
                        HOP_FROM, s_str("m"), s_str(NULL), 415);
    out[n] = '\0';
    assert_null(strstr(out, "Byte-Range"));
    assert_non_null(strstr(out, "Status: 000 415 Unsupported Media Type\r\n"));
    assert_int_equal(up_relay_report(out, 20, NEW_TID, s_str("msrp://a:1/b;tcp"),
                                     HOP_FROM, s_str("m"), s_str(NULL), 415),
                     -ENOSPC);
}

static void test_names(void **state)
{
    (void)state;
    const char *id = "abcDEF0123456789wxyz";
    assert_true(up_relay_names(
        s_str("msrp://127.0.0.1:2855/abcDEF0123456789wxyz;tcp"), id, 20));
    assert_true(up_relay_names(
        s_str(" msrp://r:1/relay;tcp msrp://127.0.0.1:2855/"
              "abcDEF0123456789wxyz;tcp "),
        id, 20));
    assert_false(up_relay_names(
        s_str("msrp://127.0.0.1:2855/abcDEF0123456789wxyZ;tcp"), id, 20));
    assert_false(up_relay_names(
        s_str("msrp://127.0.0.1:2855/abcDEF0123456789wxyz;tcp msrp://x:1/y;tcp"),
        id, 20));
    assert_false(up_relay_names(s_str("not a uri"), id, 20));
    assert_false(up_relay_names(s_str(NULL), id, 20));
    assert_int_equal(up_relay_msg_hash(s_str("a")),
                     up_relay_msg_hash(s_str("a")));
    assert_int_not_equal(up_relay_msg_hash(s_str("a")),
                         up_relay_msg_hash(s_str("b")));
}

/* ---- the pipeline of one hop ---------------------------------------------- */

/* What a worker writes on the next hop for a stream of frames: rewritten
 * header blocks, bodies as they come, end-lines with the same flag. */
static size_t s_hop(const char *in, size_t len, char *out, size_t cap,
                    size_t chunk)
{
    up_frame_t f;
    up_frame_init(&f);
    char held[4096];
    size_t held_len = 0, off = 0, o = 0;
    bool body = false;
    int k = 0;
    char tid[UP_RELAY_TID_LEN + 1];
    while (off < len || held_len) {
        size_t take = len - off < chunk ? len - off : chunk;
        assert_true(held_len + take <= sizeof(held));
        memcpy(held + held_len, in + off, take);
        held_len += take;
        off += take;
        size_t pos = 0;
        for (;;) {
            size_t used = 0;
            up_frame_head_t h;
            up_frame_event_t ev = up_frame_parse(
                &f, (uint8_t *)held + pos, held_len - pos, &used, &h);
            assert_int_not_equal(ev, UP_FRAME_ERROR);
            if (ev == UP_FRAME_MORE)
                break;
            if (ev == UP_FRAME_HEAD) {
                snprintf(tid, sizeof(tid), "Hop%013d", k++);
                int n = up_relay_rewrite(out + o, cap - o, &h, tid, HOP_TO,
                                         HOP_FROM);
                assert_true(n > 0);
                o += (size_t)n;
                body = h.has_body;
            } else if (ev == UP_FRAME_BODY) {
                assert_true(o + used <= cap);
                memcpy(out + o, held + pos, used);
                o += used;
            } else {
                int n = up_relay_end_line(out + o, cap - o, body, tid, f.flag);
                assert_true(n > 0);
                o += (size_t)n;
            }
            pos += used;
        }
        memmove(held, held + pos, held_len - pos);
        held_len -= pos;
        if (off == len && take == 0)
            break;
    }
    return o;
}

static void test_hop_pipeline(void **state)
{
    (void)state;
    /* A message in a '+' chunk and a '$' chunk, then one aborted with '#',
     * with end-line look-alikes in a body. */
    char in[4096];
    int n = snprintf(
        in, sizeof(in),
        "%s"
        "MSRP b786hjs2 SEND\r\nTo-Path: msrp://127.0.0.1:2855/legA;tcp\r\n"
        "From-Path: msrp://10.1.1.1:7001/peerA;tcp\r\nMessage-ID: 87652491\r\n"
        "Byte-Range: 12-22/22\r\nContent-Type: text/plain\r\n\r\n"
        "\r\n-------a786hjs2$\r\n-------\r\n-------b786hjs2$\r\n"
        "MSRP c786hjs2 SEND\r\nTo-Path: msrp://127.0.0.1:2855/legA;tcp\r\n"
        "From-Path: msrp://10.1.1.1:7001/peerA;tcp\r\nMessage-ID: 999\r\n"
        "Byte-Range: 1-*/*\r\nContent-Type: text/plain\r\n\r\n"
        "never finished\r\n-------c786hjs2#\r\n",
        s_in);
    assert_true(n > 0);
    static char out[8192], ref[8192];
    size_t ref_len = s_hop(in, (size_t)n, ref, sizeof(ref), (size_t)n);
    /* Whatever the read sizes, the next hop sees the same bytes. */
    for (size_t chunk = 1; chunk <= 64; chunk++) {
        size_t len = s_hop(in, (size_t)n, out, sizeof(out), chunk);
        assert_int_equal(len, ref_len);
        assert_memory_equal(out, ref, len);
    }
    /* And it parses into three frames with the same ids, ranges, bodies
     * and flags, addressed to the next hop. */
    up_frame_t f;
    up_frame_init(&f);
    size_t off = 0;
    int heads = 0;
    char flags[4] = {0};
    char bodies[3][128] = {{0}};
    size_t blen[3] = {0};
    while (off < ref_len) {
        size_t used = 0;
        up_frame_head_t h;
        up_frame_event_t ev = up_frame_parse(
            &f, (uint8_t *)ref + off, ref_len - off, &used, &h);
        assert_int_not_equal(ev, UP_FRAME_ERROR);
        if (ev == UP_FRAME_MORE)
            break;
        if (ev == UP_FRAME_HEAD) {
            assert_true(s_eq(h.to_path, HOP_TO));
            assert_true(s_eq(h.from_path, HOP_FROM));
            if (heads < 2)
                assert_true(s_eq(h.message_id, "87652491"));
            assert_true(s_eq(h.byte_range, heads == 0   ? "1-11/22"
                                           : heads == 1 ? "12-22/22"
                                                        : "1-*/*"));
            heads++;
        } else if (ev == UP_FRAME_BODY) {
            memcpy(bodies[heads - 1] + blen[heads - 1], ref + off, used);
            blen[heads - 1] += used;
        } else {
            flags[heads - 1] = f.flag;
        }
        off += used;
    }
    assert_int_equal(heads, 3);
    assert_memory_equal(flags, "+$#", 3);
    assert_string_equal(bodies[0], "Hello World");
    assert_string_equal(bodies[1],
                        "\r\n-------a786hjs2$\r\n-------");
    assert_string_equal(bodies[2], "never finished");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failure_report),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_exceeds),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_rewrite_odd_headers),
        cmocka_unit_test(test_end_lines),
        cmocka_unit_test(test_response_and_report),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_hop_pipeline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
