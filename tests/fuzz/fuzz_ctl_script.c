/* fuzz_ctl_script: the script language of imsplit-ctl's fake peers
 * (tools/ctl_script) on arbitrary text.
 *
 * The input is one script (up to its first NUL byte, as ctl_script_load
 * refuses the rest). It is parsed; a script that parses is then dry-run
 * without a socket the way ctl_peer runs it: `send` and `reply` build their
 * envelope (ctl_script_build), which is packed, decoded again and, with
 * `as`, saved; `resend` decodes the saved bytes; `expect`, `expect-none`
 * and `drop` compile their matcher (ctl_matcher_new) and test it against
 * every message saved so far and against a message built from their own
 * conditions, which `as` then saves as if it had been received; `set` and
 * `log` expand their text. A failing line is reported and the run goes on
 * with the next one. The variables the tests' scripts read from the
 * environment (ID, EPOCH, SID, HB_MS, MSRP_PORT) are set beforehand.
 *
 * Besides what the sanitizers catch, the target aborts when
 * - the return code, *out and the error text disagree: a parse error is
 *   -EINVAL or -ENOMEM with "NAME:LINE: " in front, a line that exists;
 * - a parsed command has an unknown kind or body, lines out of order, an
 *   argument without key or value, a field path the envelope does not
 *   have, or a timeout beyond CTL_WITHIN_MAX_MS;
 * - parsing the same text twice gives another number of commands;
 * - a built envelope does not pack, or its bytes do not decode to the same
 *   JSON (for envelopes im_proto_unpack accepts);
 * - a matcher answers other than 0 or 1, or says 0 without a reason. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_script.h"
#include "im_proto.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Larger scripts only repeat what smaller ones reach, slower. */
#define S_SCRIPT_MAX (64u << 10)

static bool s_match_kind(ctl_cmd_kind_t k)
{
    return k == CTL_CMD_EXPECT || k == CTL_CMD_EXPECT_NONE || k == CTL_CMD_DROP;
}

static bool s_has_body(ctl_cmd_kind_t k)
{
    return k == CTL_CMD_SEND || k == CTL_CMD_REPLY || s_match_kind(k);
}

/* ---- the parsed form ------------------------------------------------- */

static void s_check_script(const ctl_script_t *s, unsigned lines)
{
    unsigned last = 0;
    S_CHECK(s->ncmds == 0 || s->cmds);
    for (size_t i = 0; i < s->ncmds; i++) {
        const ctl_cmd_t *c = &s->cmds[i];
        S_CHECK(c->line > last && c->line <= lines);
        last = c->line;
        S_CHECK(strcmp(ctl_cmd_name(c->kind), "?") != 0);
        if (s_has_body(c->kind) || (c->kind == CTL_CMD_FLUSH && c->body_case)) {
            const char *name = im_proto_body_name(c->body_case);
            S_CHECK(name && im_proto_body_case(name) == c->body_case);
        }
        if (c->kind == CTL_CMD_REPLY || c->kind == CTL_CMD_RESEND)
            S_CHECK(c->ref && c->ref[0]);
        if (c->kind == CTL_CMD_SET)
            S_CHECK(c->name && c->text);
        if (c->kind == CTL_CMD_LOG)
            S_CHECK(c->text);
        if (s_match_kind(c->kind))
            S_CHECK(c->within_ms <= CTL_WITHIN_MAX_MS && c->count > 0);
        for (size_t k = 0; k < c->nargs; k++) {
            const ctl_arg_t *a = &c->args[k];
            S_CHECK(a->key && a->value);
            if (a->path)
                S_CHECK(im_proto_check_path(&imsplit__v1__envelope__descriptor,
                                            a->path, NULL, 0) == 0);
            else
                S_CHECK(strcmp(a->key, "leg") == 0);
            S_CHECK(!a->neg || s_match_kind(c->kind));
        }
    }
}

/* ---- the dry run ----------------------------------------------------- */

typedef struct {
    ctl_vars_t *vars;
    uint64_t seq;
} s_run_t;

/* Packs env and decodes the bytes again: the same JSON when it decodes. */
static void s_roundtrip(const im_env_t *env, uint8_t **bytes_out,
                        size_t *len_out)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    S_CHECK(im_proto_pack(env, &bytes, &len) == 0);
    im_env_t *back = NULL;
    char why[160];
    im_proto_err_t err =
        len ? im_proto_unpack(bytes, len, &back, why, sizeof(why))
            : IM_PROTO_EMPTY;
    if (err == IM_PROTO_OK) {
        char *a = im_proto_to_json(env), *b = im_proto_to_json(back);
        S_CHECK(a && b);
        if (strcmp(a, b) != 0) {
            fprintf(stderr, "built:   %s\ndecoded: %s\n", a, b);
            S_CHECK(!"a built envelope decodes to what was built");
        }
        free(a);
        free(b);
    }
    im_proto_free(back);
    *bytes_out = bytes;
    *len_out = len;
}

static void s_save(s_run_t *r, const char *name, im_env_t *env, uint8_t *bytes,
                   size_t len)
{
    int rc = ctl_vars_save(r->vars, name, env, "fuzz-peer", bytes, len);
    S_CHECK(rc == 0 || rc == -ENOMEM);
    S_CHECK(rc < 0 || ctl_vars_msg(r->vars, name));
}

static void s_send(s_run_t *r, const ctl_cmd_t *c)
{
    ctl_header_t hdr = {"fuzz", 1717000000123ull, r->seq};
    im_env_t *env = NULL;
    bool seq_used = true;
    char err[512];
    int rc =
        ctl_script_build(c, r->vars, &hdr, &env, &seq_used, err, sizeof(err));
    S_CHECK((rc == 0) == (env != NULL));
    S_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
    S_CHECK(rc == 0 || (err[0] && !seq_used));
    if (rc < 0)
        return;
    S_CHECK((int)env->body_case == c->body_case);
    if (seq_used)
        r->seq++;
    uint8_t *bytes = NULL;
    size_t len = 0;
    s_roundtrip(env, &bytes, &len);
    if (c->as) {
        s_save(r, c->as, env, bytes, len);
        return;
    }
    im_proto_free(env);
    free(bytes);
}

static void s_resend(s_run_t *r, const ctl_cmd_t *c)
{
    const ctl_msg_t *m = ctl_vars_msg(r->vars, c->ref);
    if (!m || !m->bytes)
        return;
    im_env_t *env = NULL;
    im_proto_err_t err = im_proto_unpack(m->bytes, m->len, &env, NULL, 0);
    S_CHECK((env != NULL) == (err == IM_PROTO_OK || err == IM_PROTO_VERSION));
    im_proto_free(env);
}

static void s_test(const ctl_matcher_t *m, const im_env_t *env,
                   const char *peer)
{
    char why[512];
    memset(why, 'x', sizeof(why));
    int rc = ctl_matcher_test(m, env, peer, why, sizeof(why));
    S_CHECK(rc == 0 || rc == 1);
    S_CHECK(memchr(why, '\0', sizeof(why)));
    S_CHECK(rc == 1 || why[0] || !env);
}

/* The message an expect's own positive conditions describe, built as a
 * send with the same arguments less the `*` and `!=` ones. */
static im_env_t *s_from_conditions(s_run_t *r, const ctl_cmd_t *c)
{
    ctl_cmd_t send = *c;
    ctl_arg_t *args = calloc(c->nargs ? c->nargs : 1, sizeof(*args));
    if (!args)
        return NULL;
    send.kind = CTL_CMD_SEND;
    send.args = args;
    send.nargs = 0;
    for (size_t i = 0; i < c->nargs; i++)
        if (!c->args[i].neg && strcmp(c->args[i].value, "*") != 0)
            args[send.nargs++] = c->args[i];
    ctl_header_t hdr = {"fuzz-peer", 42, ++r->seq};
    im_env_t *env = NULL;
    bool seq_used;
    char err[512];
    if (ctl_script_build(&send, r->vars, &hdr, &env, &seq_used, err,
                         sizeof(err)) < 0)
        env = NULL;
    free(args);
    return env;
}

static void s_expect(s_run_t *r, const ctl_cmd_t *c, const ctl_script_t *s)
{
    ctl_matcher_t *m = NULL;
    char err[512];
    int rc = ctl_matcher_new(c, r->vars, &m, err, sizeof(err));
    S_CHECK((rc == 0) == (m != NULL));
    S_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
    if (rc < 0)
        return;
    S_CHECK(ctl_matcher_body(m) == c->body_case);
    /* Every message a name of this script may hold. */
    for (size_t i = 0; i < s->ncmds; i++) {
        const ctl_msg_t *saved = ctl_vars_msg(r->vars, s->cmds[i].as);
        if (saved)
            s_test(m, saved->env, saved->peer);
    }
    s_test(m, NULL, NULL);
    im_env_t *env = s_from_conditions(r, c);
    if (env) {
        s_test(m, env, "fuzz-peer");
        s_test(m, env, NULL);
        if (c->as && c->kind != CTL_CMD_EXPECT_NONE) {
            s_save(r, c->as, env, NULL, 0);
            env = NULL;
        }
    }
    im_proto_free(env);
    ctl_matcher_destroy(&m);
    S_CHECK(m == NULL);
}

static void s_text(s_run_t *r, const ctl_cmd_t *c)
{
    char *out = NULL;
    char err[512];
    int rc = ctl_expand(r->vars, c->text, &out, err, sizeof(err));
    S_CHECK((rc == 0) == (out != NULL));
    S_CHECK(rc == 0 || ((rc == -EINVAL || rc == -ENOMEM) && err[0]));
    if (rc == 0 && c->kind == CTL_CMD_SET) {
        S_CHECK(ctl_vars_set(r->vars, c->name, out) == 0);
        const char *v = ctl_vars_get(r->vars, c->name);
        S_CHECK(v && strcmp(v, out) == 0);
    }
    free(out);
}

static void s_dry_run(const ctl_script_t *s)
{
    s_run_t r = {ctl_vars_new(), 1};
    if (!r.vars)
        return;
    static const char *const env[][2] = {
        {"ID", "up-1"},   {"EPOCH", "1717000000123"}, {"SID", "0x1a2b"},
        {"HB_MS", "200"}, {"MSRP_PORT", "2855"},      {"PEER", "up-1"},
    };
    for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
        S_CHECK(ctl_vars_set(r.vars, env[i][0], env[i][1]) == 0);
    for (size_t i = 0; i < s->ncmds; i++) {
        const ctl_cmd_t *c = &s->cmds[i];
        switch (c->kind) {
        case CTL_CMD_SEND:
        case CTL_CMD_REPLY: s_send(&r, c); break;
        case CTL_CMD_RESEND: s_resend(&r, c); break;
        case CTL_CMD_EXPECT:
        case CTL_CMD_EXPECT_NONE:
        case CTL_CMD_DROP: s_expect(&r, c, s); break;
        case CTL_CMD_SET:
        case CTL_CMD_LOG: s_text(&r, c); break;
        case CTL_CMD_FLUSH:
        case CTL_CMD_SLEEP:
        case CTL_CMD_AUTO_HEARTBEAT: break;
        }
    }
    ctl_vars_destroy(&r.vars);
    S_CHECK(r.vars == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > S_SCRIPT_MAX)
        return -1;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    unsigned lines = 1;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';

    ctl_script_t *s = NULL;
    char err[512];
    memset(err, 'x', sizeof(err));
    int rc = ctl_script_parse(text, "f.ctl", &s, err, sizeof(err));
    S_CHECK(memchr(err, '\0', sizeof(err)));
    S_CHECK((rc == 0) == (s != NULL));
    if (rc < 0) {
        unsigned line = 0;
        S_CHECK(rc == -EINVAL || rc == -ENOMEM);
        S_CHECK(sscanf(err, "f.ctl:%u: ", &line) == 1);
        S_CHECK(line >= 1 && line <= lines);
        free(text);
        return 0;
    }
    S_CHECK(err[0] == '\0');
    S_CHECK(s->name && strcmp(s->name, "f.ctl") == 0);
    s_check_script(s, lines);

    ctl_script_t *again = NULL;
    S_CHECK(ctl_script_parse(text, NULL, &again, NULL, 0) == 0);
    S_CHECK(again->ncmds == s->ncmds);
    ctl_script_destroy(&again);

    s_dry_run(s);
    ctl_script_destroy(&s);
    S_CHECK(s == NULL);
    free(text);
    return 0;
}
