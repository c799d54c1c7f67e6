/* ctl_script: parsing, variables, building and matching (no network). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_script.h"

static ctl_script_t *s_parse_ok(const char *text)
{
    ctl_script_t *s = NULL;
    char err[512] = "";
    int rc = ctl_script_parse(text, "t.ctl", &s, err, sizeof(err));
    if (rc != 0)
        fail_msg("parse failed: %s", err);
    assert_non_null(s);
    return s;
}

/* Parsing text fails with an error that names line `line` and contains
 * `what`. */
static void s_parse_bad(const char *text, unsigned line, const char *what)
{
    ctl_script_t *s = NULL;
    char err[512] = "", where[32];
    int rc = ctl_script_parse(text, "t.ctl", &s, err, sizeof(err));
    if (rc != -EINVAL)
        fail_msg("\"%s\" parsed (rc %d)", text, rc);
    assert_null(s);
    snprintf(where, sizeof(where), "t.ctl:%u: ", line);
    if (strncmp(err, where, strlen(where)) != 0 || !strstr(err, what))
        fail_msg("\"%s\": error \"%s\", want \"%s...%s\"", text, err, where,
                 what);
}

static void test_parse_commands(void **state)
{
    (void)state;
    ctl_script_t *s = s_parse_ok(
        "# a comment\n"
        "\n"
        "send allocate_leg session_id=0x1234 direction=client "
        "call_id=\"a b\" as A   # trailing comment\n"
        "reply A allocate_leg_result status=OK path=x to=up-1\n"
        "resend A to=up-2\n"
        "expect allocate_leg_result reply_to=$A.seq path=* as R within=250 "
        "from=up-1\n"
        "expect-none release_leg_result status!=OK\n"
        "drop release_leg direction=controlling count=2 as D\n"
        "flush\n"
        "flush audit\n"
        "sleep 10\n"
        "log  hello   $A.seq  \n"
        "set X=\"1 2\"\n"
        "auto-heartbeat on 200\n"
        "auto-heartbeat off\n"
        "\tsend inventory leg=1:client leg=2:controlling last=true\r\n");
    assert_int_equal(s->ncmds, 14);

    const ctl_cmd_t *c = &s->cmds[0];
    assert_int_equal(c->kind, CTL_CMD_SEND);
    assert_int_equal(c->line, 3);
    assert_int_equal(c->body_case, IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG);
    assert_string_equal(c->as, "A");
    assert_int_equal(c->nargs, 3);
    assert_string_equal(c->args[0].path, "allocate_leg.session_id");
    assert_string_equal(c->args[2].key, "call_id");
    assert_string_equal(c->args[2].value, "a b");

    c = &s->cmds[1];
    assert_int_equal(c->kind, CTL_CMD_REPLY);
    assert_string_equal(c->ref, "A");
    assert_string_equal(c->to, "up-1");
    assert_int_equal(c->nargs, 2);

    c = &s->cmds[2];
    assert_int_equal(c->kind, CTL_CMD_RESEND);
    assert_string_equal(c->to, "up-2");

    c = &s->cmds[3];
    assert_int_equal(c->kind, CTL_CMD_EXPECT);
    assert_int_equal(c->within_ms, 250);
    assert_string_equal(c->from, "up-1");
    assert_string_equal(c->args[0].path, "reply_to");
    assert_string_equal(c->args[1].value, "*");

    c = &s->cmds[4];
    assert_int_equal(c->kind, CTL_CMD_EXPECT_NONE);
    assert_int_equal(c->within_ms, CTL_EXPECT_NONE_WITHIN_MS);
    assert_true(c->args[0].neg);
    assert_string_equal(c->args[0].key, "status");

    c = &s->cmds[5];
    assert_int_equal(c->kind, CTL_CMD_DROP);
    assert_int_equal(c->count, 2);
    assert_int_equal(c->within_ms, CTL_EXPECT_WITHIN_MS);

    assert_int_equal(s->cmds[6].kind, CTL_CMD_FLUSH);
    assert_int_equal(s->cmds[6].body_case, 0);
    assert_int_equal(s->cmds[7].body_case, IMSPLIT__V1__ENVELOPE__BODY_AUDIT);
    assert_int_equal(s->cmds[8].ms, 10);
    assert_string_equal(s->cmds[9].text, "hello   $A.seq");
    assert_string_equal(s->cmds[10].name, "X");
    assert_string_equal(s->cmds[10].text, "1 2");
    assert_true(s->cmds[11].on);
    assert_int_equal(s->cmds[11].ms, 200);
    assert_false(s->cmds[12].on);
    c = &s->cmds[13];
    assert_int_equal(c->nargs, 3);
    assert_null(c->args[0].path);
    assert_string_equal(c->args[1].value, "2:controlling");
    ctl_script_destroy(&s);
    assert_null(s);
    ctl_script_destroy(NULL);
}

static void test_parse_errors(void **state)
{
    (void)state;
    s_parse_bad("send nosuchbody\n", 1, "unknown body \"nosuchbody\"");
    s_parse_bad("\nsend allocate_leg bogus=1\n", 2, "no field \"bogus\"");
    s_parse_bad("send allocate_leg direction=sideways\n", 1,
                "unknown value \"sideways\"");
    s_parse_bad("send allocate_leg call_id=\"abc\n", 1, "unterminated quote");
    s_parse_bad("send allocate_leg session_id=-1\n", 1, "session_id");
    s_parse_bad("send release_leg_result counters=5\n", 1, "is a message");
    s_parse_bad("send release_leg_result counters.nope=5\n", 1, "nope");
    s_parse_bad("send inventory legs.1.session_id=5\n", 1, "past the end");
    s_parse_bad("send inventory legs.session_id=5\n", 1, "index");
    s_parse_bad("send allocate_leg leg=1:client\n", 1, "leg= needs");
    s_parse_bad("send inventory leg=1\n", 1, "SESSION_ID:DIRECTION");
    s_parse_bad("expect inventory leg=*\n", 1, "SESSION_ID:DIRECTION");
    s_parse_bad("send inventory leg=1:up\n", 1, "unknown value \"up\"");
    s_parse_bad("send allocate_leg session_id\n", 1, "FIELD=VALUE");
    s_parse_bad("send allocate_leg as\n", 1, "needs a NAME");
    s_parse_bad("send allocate_leg as 1x\n", 1, "needs a NAME");
    s_parse_bad("send allocate_leg within=5\n", 1, "no field \"within\"");
    s_parse_bad("send allocate_leg status!=OK\n", 1, "!=");
    s_parse_bad("expect allocate_leg_result within=soon\n", 1, "within");
    s_parse_bad("drop allocate_leg count=0\n", 1, "count");
    s_parse_bad("expect\n", 1, "needs a BODY");
    s_parse_bad("reply allocate_leg_result\n", 1, "usage: reply");
    s_parse_bad("resend\n", 1, "usage: resend");
    s_parse_bad("resend A seq=1\n", 1, "only to=ID");
    s_parse_bad("sleep\n", 1, "usage: sleep");
    s_parse_bad("sleep 1s\n", 1, "usage: sleep");
    s_parse_bad("set 1=2\n", 1, "is not a NAME");
    s_parse_bad("set X\n", 1, "usage: set");
    s_parse_bad("auto-heartbeat maybe\n", 1, "usage: auto-heartbeat");
    s_parse_bad("auto-heartbeat on 0\n", 1, "not a number");
    s_parse_bad("flush audit more\n", 1, "usage: flush");
    s_parse_bad("frobnicate\n", 1, "unknown command");
    s_parse_bad("\"send\" audit\n", 1, "starts with a command");
    s_parse_bad("sleep 1\nsleep 2\nsend audit x=1\n", 3, "no field \"x\"");

    ctl_script_t *s = NULL;
    char err[128];
    assert_int_equal(
        ctl_script_load("/nonexistent/x.ctl", &s, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/x.ctl"));
    /* An empty script is a valid one. */
    s = s_parse_ok("");
    assert_int_equal(s->ncmds, 0);
    ctl_script_destroy(&s);
}

static im_env_t *s_env(const char *body)
{
    im_env_t *env = im_env_new();
    assert_non_null(env);
    assert_int_equal(im_proto_set_field(&env->base, body, "{}", NULL, 0), 0);
    return env;
}

static void s_setf(im_env_t *env, const char *path, const char *value)
{
    char err[256];
    if (im_proto_set_field(&env->base, path, value, err, sizeof(err)) != 0)
        fail_msg("%s=%s: %s", path, value, err);
}

static void test_variables(void **state)
{
    (void)state;
    ctl_vars_t *v = ctl_vars_new();
    char *out = NULL, err[256];

    assert_non_null(v);
    assert_int_equal(ctl_vars_set(v, "X", "one"), 0);
    assert_int_equal(ctl_vars_set(v, "X", "two"), 0);
    assert_string_equal(ctl_vars_get(v, "X"), "two");
    assert_null(ctl_vars_get(v, "Y"));
    setenv("CTL_TEST_SID", "0x1234", 1);

    im_env_t *a = s_env("allocate_leg_result");
    a->seq = 7;
    s_setf(a, "sender_id", "up-1");
    s_setf(a, "allocate_leg_result.session_id", "0x10");
    s_setf(a, "allocate_leg_result.path", "msrp://h:1/x;tcp");
    assert_int_equal(ctl_vars_save(v, "A", a, "up-1", NULL, 0), 0);
    im_env_t *r = s_env("release_leg_result");
    s_setf(r, "release_leg_result.counters.bytes_in", "99");
    uint8_t *bytes = malloc(3);
    assert_non_null(bytes);
    assert_int_equal(ctl_vars_save(v, "R", r, "", bytes, 3), 0);
    assert_non_null(ctl_vars_msg(v, "R")->bytes);

    static const struct {
        const char *in, *want;
    } ok[] = {
        {"plain", "plain"},
        {"$X", "two"},
        {"${X}y", "twoy"},
        {"a$X.b", "atwo.b"},
        {"$$X", "$X"},
        {"$A.seq", "7"},
        {"$A.session_id:client", "16:client"},
        {"${A.session_id}", "16"},
        {"c$A.seq;tcp", "c7;tcp"},
        {"$A.path", "msrp://h:1/x;tcp"},
        {"$A.body/$A.peer/$A.sender_id", "allocate_leg_result/up-1/up-1"},
        {"$A.epoch", "0"},
        {"$R.counters.bytes_in.", "99."},
        {"$CTL_TEST_SID", "0x1234"},
        {"${CTL_TEST_SID}", "0x1234"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (ctl_expand(v, ok[i].in, &out, err, sizeof(err)) != 0)
            fail_msg("expand \"%s\": %s", ok[i].in, err);
        assert_string_equal(out, ok[i].want);
        free(out);
    }

    static const struct {
        const char *in, *why;
    } bad[] = {
        {"$NOPE_NOT_SET", "undefined variable $NOPE_NOT_SET"},
        {"$A", "is a message"},
        {"$A.nope", "has no field"},
        {"$A.counters.bytes_in", "has no field"},
        {"$R.path", "has no field"},
        {"${A", "unterminated"},
        {"${}", "bad ${"},
        {"${B.seq}", "no message saved as B"},
        {"$ x", "must start a variable"},
        {"$", "must start a variable"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        out = NULL;
        err[0] = '\0';
        if (ctl_expand(v, bad[i].in, &out, err, sizeof(err)) != -EINVAL)
            fail_msg("\"%s\" expanded to \"%s\"", bad[i].in, out);
        assert_null(out);
        if (!strstr(err, bad[i].why))
            fail_msg("\"%s\": \"%s\", want \"%s\"", bad[i].in, err, bad[i].why);
    }
    /* A field of a sub-message that is not there. */
    im_env_t *r2 = s_env("release_leg_result");
    assert_int_equal(ctl_vars_save(v, "R", r2, NULL, NULL, 0), 0);
    assert_int_equal(
        ctl_expand(v, "$R.counters.bytes_in", &out, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not set"));
    unsetenv("CTL_TEST_SID");
    ctl_vars_destroy(&v);
    assert_null(v);
    ctl_vars_destroy(NULL);
}

static void test_build(void **state)
{
    (void)state;
    ctl_script_t *s = s_parse_ok(
        "send allocate_leg session_id=$SID direction=client call_id=\"c 1\" "
        "as A\n"
        "reply A allocate_leg_result status=ok path=p$A.seq\n"
        "reply A allocate_leg_result direction=controlling seq=99\n"
        "send release_leg_result counters.bytes_in=5 counters.msgs_out=0x10 "
        "epoch=0x20 reply_to=3 sender_id=other\n"
        "send inventory leg=$SID:client legs.1.session_id=9 "
        "legs.1.direction=controlling leg=0xdead:0 part=1 last=yes\n"
        "reply NOPE allocate_leg_result\n"
        "send allocate_leg session_id=$UNDEFINED_VAR_X\n"
        "send allocate_leg direction=$BAD\n");
    ctl_vars_t *v = ctl_vars_new();
    ctl_header_t hdr = {"cp", 77, 5};
    im_env_t *env = NULL;
    bool used = false;
    char err[256];

    assert_int_equal(ctl_vars_set(v, "SID", "0x1234"), 0);
    assert_int_equal(
        ctl_script_build(&s->cmds[0], v, &hdr, &env, &used, err, sizeof(err)),
        0);
    assert_true(used);
    assert_string_equal(env->sender_id, "cp");
    assert_int_equal(env->sender_epoch, 77);
    assert_int_equal(env->seq, 5);
    assert_int_equal(env->major, IM_PROTO_MAJOR);
    assert_int_equal(env->allocate_leg->session_id, 0x1234);
    assert_int_equal(env->allocate_leg->direction,
                     IMSPLIT__V1__DIRECTION__DIRECTION_CLIENT);
    assert_string_equal(env->allocate_leg->call_id, "c 1");
    /* It packs and validates as a real AllocateLeg. */
    uint8_t *buf;
    size_t len;
    im_env_t *back = NULL;
    assert_int_equal(im_proto_pack(env, &buf, &len), 0);
    assert_int_equal(im_proto_unpack(buf, len, &back, err, sizeof(err)),
                     IM_PROTO_OK);
    im_proto_free(back);
    assert_int_equal(ctl_vars_save(v, "A", env, "up-1", buf, len), 0);

    /* A reply: reply_to and the leg copied from A. */
    hdr.seq = 6;
    assert_int_equal(
        ctl_script_build(&s->cmds[1], v, &hdr, &env, &used, err, sizeof(err)),
        0);
    assert_int_equal(env->reply_to, 5);
    assert_int_equal(env->allocate_leg_result->status,
                     IMSPLIT__V1__STATUS__STATUS_OK);
    assert_int_equal(env->allocate_leg_result->session_id, 0x1234);
    assert_int_equal(env->allocate_leg_result->direction,
                     IMSPLIT__V1__DIRECTION__DIRECTION_CLIENT);
    assert_string_equal(env->allocate_leg_result->path, "p5");
    im_proto_free(env);

    /* Given fields win over the copied ones; seq= overrides the tool's. */
    assert_int_equal(
        ctl_script_build(&s->cmds[2], v, &hdr, &env, &used, err, sizeof(err)),
        0);
    assert_false(used);
    assert_int_equal(env->seq, 99);
    assert_int_equal(env->allocate_leg_result->direction,
                     IMSPLIT__V1__DIRECTION__DIRECTION_CONTROLLING);
    assert_int_equal(env->allocate_leg_result->session_id, 0x1234);
    im_proto_free(env);

    /* Nested fields and header overrides. */
    assert_int_equal(
        ctl_script_build(&s->cmds[3], v, &hdr, &env, &used, err, sizeof(err)),
        0);
    assert_non_null(env->release_leg_result->counters);
    assert_int_equal(env->release_leg_result->counters->bytes_in, 5);
    assert_int_equal(env->release_leg_result->counters->msgs_out, 16);
    assert_int_equal(env->sender_epoch, 0x20);
    assert_int_equal(env->reply_to, 3);
    assert_string_equal(env->sender_id, "other");
    im_proto_free(env);

    /* Repeated: leg= appends, the generic form addresses by index. */
    assert_int_equal(
        ctl_script_build(&s->cmds[4], v, &hdr, &env, &used, err, sizeof(err)),
        0);
    const Imsplit__V1__Inventory *inv = env->inventory;
    assert_int_equal(inv->n_legs, 3);
    assert_int_equal(inv->legs[0]->session_id, 0x1234);
    assert_int_equal(inv->legs[1]->session_id, 9);
    assert_int_equal(inv->legs[1]->direction,
                     IMSPLIT__V1__DIRECTION__DIRECTION_CONTROLLING);
    assert_int_equal(inv->legs[2]->session_id, 0xdead);
    assert_int_equal(inv->legs[2]->direction,
                     IMSPLIT__V1__DIRECTION__DIRECTION_UNSPECIFIED);
    assert_int_equal(inv->part, 1);
    assert_true(inv->last);
    im_proto_free(env);

    /* Run-time errors: an unknown reference, an undefined variable, a
     * variable that expands to a bad value. */
    assert_int_equal(
        ctl_script_build(&s->cmds[5], v, &hdr, &env, &used, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "NOPE"));
    assert_null(env);
    assert_int_equal(
        ctl_script_build(&s->cmds[6], v, &hdr, &env, &used, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "UNDEFINED_VAR_X"));
    assert_int_equal(ctl_vars_set(v, "BAD", "sideways"), 0);
    assert_int_equal(
        ctl_script_build(&s->cmds[7], v, &hdr, &env, &used, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "sideways"));
    ctl_vars_destroy(&v);
    ctl_script_destroy(&s);
}

static int s_match(const ctl_script_t *s, size_t i, const ctl_vars_t *v,
                   const im_env_t *env, const char *peer, char *why,
                   size_t whylen)
{
    ctl_matcher_t *m = NULL;
    char err[256];
    if (ctl_matcher_new(&s->cmds[i], v, &m, err, sizeof(err)) != 0)
        fail_msg("matcher %zu: %s", i, err);
    assert_int_equal(ctl_matcher_body(m), s->cmds[i].body_case);
    int rc = ctl_matcher_test(m, env, peer, why, whylen);
    ctl_matcher_destroy(&m);
    assert_null(m);
    return rc;
}

static void test_match(void **state)
{
    (void)state;
    ctl_script_t *s = s_parse_ok(
        /* 0 */
        "expect allocate_leg_result\n"
        /* 1 */ "expect allocate_leg_result status=OK session_id=4660 "
        "direction=client path=*\n"
        /* 2 */ "expect allocate_leg_result status=STATUS_CONFLICT\n"
        /* 3 */ "expect allocate_leg_result session_id=$SID reply_to=$A.seq\n"
        /* 4 */ "expect release_leg_result counters.bytes_in=0x5\n"
        /* 5 */ "expect release_leg_result counters=*\n"
        /* 6 */ "expect inventory leg=0xdead:client leg=$SID:controlling\n"
        /* 7 */ "expect inventory leg=0xdead:controlling\n"
        /* 8 */ "expect inventory legs.1.session_id=4660 legs=2\n"
        /* 9 */ "expect allocate_leg_result from=up-2\n"
        /* 10 */ "expect allocate_leg_result status!=OK\n"
        /* 11 */ "expect allocate_leg_result path!=*\n"
        /* 12 */ "expect allocate_leg_result seq!=$A.seq\n"
        /* 13 */ "expect inventory leg!=0xdead:client\n");
    ctl_vars_t *v = ctl_vars_new();
    char why[256];

    assert_int_equal(ctl_vars_set(v, "SID", "0x1234"), 0);
    im_env_t *a = s_env("allocate_leg");
    a->seq = 11;
    assert_int_equal(ctl_vars_save(v, "A", a, "up-1", NULL, 0), 0);

    im_env_t *res = s_env("allocate_leg_result");
    res->reply_to = 11;
    res->seq = 11;
    s_setf(res, "allocate_leg_result.session_id", "4660");
    s_setf(res, "allocate_leg_result.direction", "client");
    s_setf(res, "allocate_leg_result.path", "msrp://x");
    assert_int_equal(s_match(s, 0, v, res, "up-1", why, sizeof(why)), 1);
    assert_int_equal(s_match(s, 1, v, res, "up-1", why, sizeof(why)), 1);
    assert_int_equal(s_match(s, 2, v, res, "up-1", why, sizeof(why)), 0);
    assert_string_equal(why, "status=STATUS_OK, want STATUS_CONFLICT");
    assert_int_equal(s_match(s, 3, v, res, "up-1", why, sizeof(why)), 1);
    /* Another body never matches. */
    assert_int_equal(s_match(s, 4, v, res, "up-1", why, sizeof(why)), 0);
    assert_string_equal(why, "body allocate_leg_result");
    assert_int_equal(s_match(s, 9, v, res, "up-1", why, sizeof(why)), 0);
    assert_non_null(strstr(why, "from up-1"));
    assert_int_equal(s_match(s, 9, v, res, "up-2", why, sizeof(why)), 1);
    assert_int_equal(s_match(s, 10, v, res, "up-1", why, sizeof(why)), 0);
    assert_int_equal(s_match(s, 11, v, res, "up-1", why, sizeof(why)), 0);
    assert_int_equal(s_match(s, 12, v, res, "up-1", why, sizeof(why)), 0);
    res->seq = 12;
    assert_int_equal(s_match(s, 12, v, res, "up-1", why, sizeof(why)), 1);
    s_setf(res, "allocate_leg_result.status", "conflict");
    s_setf(res, "allocate_leg_result.path", "");
    assert_int_equal(s_match(s, 1, v, res, "up-1", why, sizeof(why)), 0);
    assert_int_equal(s_match(s, 2, v, res, "up-1", why, sizeof(why)), 1);
    assert_int_equal(s_match(s, 10, v, res, "up-1", why, sizeof(why)), 1);
    assert_int_equal(s_match(s, 11, v, res, "up-1", why, sizeof(why)), 1);
    im_proto_free(res);

    /* Nested: absent counters do not match a value, nor `*`. */
    im_env_t *rel = s_env("release_leg_result");
    assert_int_equal(s_match(s, 4, v, rel, NULL, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "absent"));
    assert_int_equal(s_match(s, 5, v, rel, NULL, why, sizeof(why)), 0);
    s_setf(rel, "release_leg_result.counters.bytes_in", "5");
    assert_int_equal(s_match(s, 4, v, rel, NULL, why, sizeof(why)), 1);
    assert_int_equal(s_match(s, 5, v, rel, NULL, why, sizeof(why)), 1);
    im_proto_free(rel);

    /* Repeated: leg= looks for an element, the generic form indexes. */
    im_env_t *inv = s_env("inventory");
    s_setf(inv, "inventory.legs.0.session_id", "0xdead");
    s_setf(inv, "inventory.legs.0.direction", "client");
    s_setf(inv, "inventory.legs.1.session_id", "0x1234");
    s_setf(inv, "inventory.legs.1.direction", "controlling");
    assert_int_equal(s_match(s, 6, v, inv, NULL, why, sizeof(why)), 1);
    assert_int_equal(s_match(s, 7, v, inv, NULL, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "no leg 57005:DIRECTION_CONTROLLING"));
    assert_int_equal(s_match(s, 8, v, inv, NULL, why, sizeof(why)), 1);
    assert_int_equal(s_match(s, 13, v, inv, NULL, why, sizeof(why)), 0);
    im_proto_free(inv);

    /* A variable that is not there fails the compile, not the match. */
    ctl_script_t *s2 = s_parse_ok("expect audit seq=$NOT_THERE_EITHER\n"
                                  "expect allocate_leg direction=$D\n");
    ctl_matcher_t *m = NULL;
    char err[256];
    assert_int_equal(ctl_matcher_new(&s2->cmds[0], v, &m, err, sizeof(err)),
                     -EINVAL);
    assert_null(m);
    assert_non_null(strstr(err, "NOT_THERE_EITHER"));
    assert_int_equal(ctl_vars_set(v, "D", "up"), 0);
    assert_int_equal(ctl_matcher_new(&s2->cmds[1], v, &m, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "\"up\""));
    ctl_script_destroy(&s2);
    ctl_vars_destroy(&v);
    ctl_script_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_commands),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_variables),
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
