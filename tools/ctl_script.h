/* ctl_script: the script language of imsplit-ctl's fake peers (the `worker`
 * and `cp` commands): parsing, variables, building the envelopes a script
 * sends and matching the ones it receives. Nothing here touches the
 * network; ctl_peer runs a parsed script against a socket.
 *
 * A script is line oriented; '#' at the start of a token starts a comment;
 * tokens are split on blanks; double quotes group blanks into a token and
 * may start anywhere in it (call_id="a b"), with \" and \\ inside them.
 *
 *   send BODY [FIELD=VALUE ...] [as NAME] [to=ID]
 *   reply NAME BODY [FIELD=VALUE ...] [as NAME2] [to=ID]
 *   resend NAME [to=ID]
 *   expect BODY [FIELD=VALUE ...] [as NAME] [within=MS] [from=ID]
 *   expect-none BODY [FIELD=VALUE ...] [within=MS] [from=ID]
 *   drop BODY [FIELD=VALUE ...] [count=N] [as NAME] [within=MS] [from=ID]
 *   flush [BODY]
 *   sleep MS
 *   log TEXT
 *   set NAME=VALUE
 *   auto-heartbeat on|off [MS | ms=MS]
 *
 * send      builds and sends an envelope; the header (sender_id, epoch, seq
 *           counting from 1) is the tool's unless the line sets it.
 * reply     a send with reply_to = the seq of message NAME, and NAME's
 *           session_id and direction when both bodies have them and the
 *           line does not set them; in cp mode it goes to NAME's peer.
 * resend    the identical bytes of sent message NAME again.
 * expect    takes the oldest received message that matches, waiting up to
 *           within (default 5000 ms); messages that do not match wait in a
 *           backlog for later lines, so the order between bodies does not
 *           matter. Heartbeats are never kept in the backlog.
 * expect-none  fails if a matching message is in the backlog or arrives
 *           within MS (default 1000).
 * drop      takes N (default 1) matching messages like expect and does
 *           nothing with them: a lossy peer. `as` keeps the last one.
 * flush     forgets the backlog (of one body).
 * sleep     keeps receiving (and heartbeating) for MS.
 * log       prints TEXT (variables expanded) on stderr.
 * set       a variable.
 * auto-heartbeat  sends heartbeats every MS (see ctl_peer.h).
 *
 * In cp mode to=ID (send, reply, resend) and from=ID (matches) name a
 * worker's routing id; a send without to= goes to the peer of the message
 * replied to, else of the last message received.
 *
 * BODY is an envelope body's proto field name (register, allocate_leg, ...).
 * FIELD is a path of proto field names of the body, '.' for nested messages
 * and an index for repeated ones (counters.bytes_in, legs.0.session_id), or
 * an envelope header field (seq, reply_to, sender_id, sender_epoch or
 * epoch, major, minor). `leg=SID:DIR` (repeatable) appends a LegRef to the
 * body's legs (Inventory); in a match it asks for such an element. Values
 * follow im_proto_set_field (0x hex, enums by full or short name); in a
 * match, both sides are rendered by im_proto_get_field and compared as
 * strings, and `*` asks for a value other than the default. A match may
 * also say FIELD!=VALUE (FIELD!=* : the field is at its default).
 *
 * Values (not keywords or numbers of within/count/sleep) expand variables
 * when the line runs: $NAME.FIELD is a field of the message saved with
 * `as NAME` (body first, then header; also .body and .peer), $NAME a
 * variable from `set` or else from the environment, ${NAME} the same
 * delimited, $$ a '$'. */
#ifndef CTL_SCRIPT_H
#define CTL_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "im_proto.h"

#define CTL_EXPECT_WITHIN_MS 5000u
#define CTL_EXPECT_NONE_WITHIN_MS 1000u
#define CTL_WITHIN_MAX_MS 3600000u

typedef enum {
    CTL_CMD_SEND,
    CTL_CMD_REPLY,
    CTL_CMD_RESEND,
    CTL_CMD_EXPECT,
    CTL_CMD_EXPECT_NONE,
    CTL_CMD_DROP,
    CTL_CMD_FLUSH,
    CTL_CMD_SLEEP,
    CTL_CMD_LOG,
    CTL_CMD_SET,
    CTL_CMD_AUTO_HEARTBEAT,
} ctl_cmd_kind_t;

typedef struct {
    char *key;   /* as written: "session_id", "seq", "leg" */
    char *path;  /* envelope path: "allocate_leg.session_id", "seq"; NULL
                  * for leg= */
    char *value; /* quotes removed, variables not yet expanded */
    bool neg;    /* FIELD!=VALUE (matches only) */
} ctl_arg_t;

typedef struct {
    ctl_cmd_kind_t kind;
    unsigned line;
    int body_case; /* 0 for flush without a body */
    char *ref;     /* reply, resend: the saved message named */
    char *as;      /* save the message under this name */
    char *to;      /* destination routing id (cp mode), unexpanded */
    char *from;    /* sender routing id a match asks for, unexpanded */
    char *name;    /* set: the variable */
    char *text;    /* set: its value; log: the text; both unexpanded */
    uint32_t within_ms;
    uint32_t count; /* drop */
    uint32_t ms;    /* sleep; auto-heartbeat interval (0: default) */
    bool on;        /* auto-heartbeat */
    ctl_arg_t *args;
    size_t nargs;
} ctl_cmd_t;

typedef struct {
    char *name; /* for messages: "FILE:LINE: ..." */
    ctl_cmd_t *cmds;
    size_t ncmds;
} ctl_script_t;

/* Parses a whole script; every line is checked (body names, field paths,
 * literal values) before anything runs. On error returns -EINVAL (or
 * -ENOMEM) with "NAME:LINE: reason" in err and *out NULL. */
int ctl_script_parse(const char *text, const char *name, ctl_script_t **out,
                     char *err, size_t errlen);
/* Reads and parses a file; -errno if it cannot be read. */
int ctl_script_load(const char *path, ctl_script_t **out, char *err,
                    size_t errlen);
void ctl_script_destroy(ctl_script_t **s_p);
/* "send", "expect-none", ... */
const char *ctl_cmd_name(ctl_cmd_kind_t kind);

/* ---- variables and saved messages ---------------------------------------- */

typedef struct {
    char *name;
    im_env_t *env;  /* owned */
    char *peer;     /* routing id it came from / went to ("" if none) */
    uint8_t *bytes; /* sent messages: the frame as sent; NULL if received */
    size_t len;
} ctl_msg_t;

typedef struct ctl_vars ctl_vars_t;

ctl_vars_t *ctl_vars_new(void);
void ctl_vars_destroy(ctl_vars_t **v_p);
/* A plain variable ($NAME); replaces an older value. 0 or -ENOMEM. */
int ctl_vars_set(ctl_vars_t *v, const char *name, const char *value);
const char *ctl_vars_get(const ctl_vars_t *v, const char *name);
/* Saves a message under name, replacing one of the same name. Takes
 * ownership of env and bytes, also when it fails (-ENOMEM). */
int ctl_vars_save(ctl_vars_t *v, const char *name, im_env_t *env,
                  const char *peer, uint8_t *bytes, size_t len);
const ctl_msg_t *ctl_vars_msg(const ctl_vars_t *v, const char *name);
/* A field of a saved message as $NAME.FIELD renders it. 0, or -ENOENT /
 * -EINVAL with the reason in err. */
int ctl_msg_field(const ctl_msg_t *m, const char *path, char *out,
                  size_t outlen, char *err, size_t errlen);

/* Expands the variables of in into a new string (*out, caller frees).
 * 0, or -EINVAL (undefined variable, unset field, bad syntax; err says
 * which) or -ENOMEM. */
int ctl_expand(const ctl_vars_t *v, const char *in, char **out, char *err,
               size_t errlen);

/* ---- building and matching --------------------------------------------------
 */

typedef struct {
    const char *sender_id;
    uint64_t epoch;
    uint64_t seq; /* used unless the command gives seq= */
} ctl_header_t;

/* Builds the envelope of a send or reply command (see the header comment).
 * A reply gets reply_to = the seq of the message it names and, unless the
 * command sets them, that message's session_id and direction when both
 * bodies have such fields. *seq_used says whether hdr->seq was taken.
 * 0, or -EINVAL/-ENOMEM with err set; *out is freed with im_proto_free. */
int ctl_script_build(const ctl_cmd_t *cmd, const ctl_vars_t *vars,
                     const ctl_header_t *hdr, im_env_t **out, bool *seq_used,
                     char *err, size_t errlen);

typedef struct ctl_matcher ctl_matcher_t;

/* Compiles the conditions of an expect, expect-none or drop command:
 * variables are expanded and values normalised now. 0 or -EINVAL/-ENOMEM
 * with err set. */
int ctl_matcher_new(const ctl_cmd_t *cmd, const ctl_vars_t *vars,
                    ctl_matcher_t **out, char *err, size_t errlen);
/* 1 when env (received from peer, which may be NULL) matches, else 0 with
 * the first difference in why ("status=STATUS_CONFLICT, want STATUS_OK"). */
int ctl_matcher_test(const ctl_matcher_t *m, const im_env_t *env,
                     const char *peer, char *why, size_t whylen);
int ctl_matcher_body(const ctl_matcher_t *m);
void ctl_matcher_destroy(ctl_matcher_t **m_p);

#endif
