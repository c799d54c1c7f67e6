/* up_relay: the decisions and rewrites of the MSRP relay, as pure functions
 * (no I/O, no allocation, no clock), so that every rule can be tested
 * without sockets. up_msrp applies them to live connections.
 *
 * The worker is a B2BUA in the media path: each leg is one hop. A request
 * arriving on one leg goes out on the other with To-Path and From-Path
 * rewritten for that hop and a new transaction id; Message-ID, Byte-Range
 * and every other header are kept in their order; the body passes through
 * unchanged and the end-line keeps its flag. Responses are per hop: the
 * worker answers what it receives and consumes the answers to what it
 * sends (RFC 4975 sections 7.1 and 7.2, RFC 4976 section 6). */
#ifndef UP_RELAY_H
#define UP_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "up_frame.h"

/* Transaction ids the worker generates (random, [A-Za-z0-9]). */
#define UP_RELAY_TID_LEN 16

/* RFC 4975 section 7.1.2. An absent or unknown value means "yes". */
typedef enum {
    UP_FR_YES = 0,
    UP_FR_NO,
    UP_FR_PARTIAL,
} up_fr_t;

up_fr_t up_relay_fr(up_frame_str_t value);
/* Whether a response with `code` is sent for a SEND with this
 * Failure-Report: 200 only for "yes", errors for "yes" and "partial". */
bool up_relay_fr_answers(up_fr_t fr, unsigned code);

/* The leg a request would be forwarded to, as seen by the decision. */
typedef enum {
    UP_PEER_READY = 0, /* connected, and its peer's path is known */
    UP_PEER_WAITING,   /* exists but cannot be written to yet */
    UP_PEER_UNREACHABLE, /* waited for longer than the limit */
    UP_PEER_GONE,        /* released, or never allocated */
} up_peer_state_t;

typedef enum {
    UP_ACT_FORWARD = 0, /* rewrite and send on the other leg */
    UP_ACT_ACCEPT,      /* answer on this hop, send nothing on */
    UP_ACT_REJECT,      /* answer `code` on this hop, drop the body */
    UP_ACT_DROP,        /* a REPORT with nowhere to go: drop silently */
    UP_ACT_HOLD,        /* wait for the other leg (back-pressure) */
} up_action_t;

typedef struct {
    up_action_t action;
    unsigned code; /* per-hop answer at the frame's end; 0 = none */
} up_verdict_t;

typedef struct {
    bool to_us;           /* To-Path names the leg it arrived on */
    up_peer_state_t peer; /* the other leg */
    uint64_t max_msg;     /* largest message relayed, bytes */
    bool refused;         /* this Message-ID already got a 413 */
} up_relay_in_t;

/* What to do with a request's header block (h->request). */
up_verdict_t up_relay_decide(const up_frame_head_t *h, const up_relay_in_t *in);

/* True when `body` more bytes of a chunk that starts at its Byte-Range
 * start would take the message past max_msg. */
bool up_relay_exceeds(const up_frame_head_t *h, uint64_t body,
                      uint64_t max_msg);

/* Reason phrase for the codes the worker sends. */
const char *up_relay_reason(unsigned code);

/* The header block of h for the next hop: start line with `tid`, To-Path,
 * From-Path, then every other header line of h as received, then the blank
 * line when h has a body. Returns the length written, or -ENOSPC. */
int up_relay_rewrite(char *out, size_t cap, const up_frame_head_t *h,
                     const char *tid, const char *to_path,
                     const char *from_path);

/* "-------tid<flag>\r\n", after "\r\n" when the frame had a body.
 * Returns the length, or -ENOSPC. */
int up_relay_end_line(char *out, size_t cap, bool after_body,
                      const char *tid, char flag);

/* A per-hop response: To-Path is the first URI of the request's From-Path
 * (`to`), From-Path the answering leg's path. Returns the length, or
 * -ENOSPC. */
int up_relay_response(char *out, size_t cap, up_frame_str_t tid,
                      unsigned code, up_frame_str_t to, const char *from);

/* A REPORT telling the sender of a SEND that it failed (RFC 4975 section
 * 7.1.2): To-Path = the SEND's From-Path as received, From-Path = the
 * reporting leg's path, the SEND's Message-ID and Byte-Range, and
 * "Status: 000 <code> <reason>". No body. Returns the length, or -ENOSPC. */
int up_relay_report(char *out, size_t cap, const char *tid,
                    up_frame_str_t to_path, const char *from_path,
                    up_frame_str_t message_id, up_frame_str_t byte_range,
                    unsigned code);

/* True when the last URI of the To-Path names MSRP session `id`. */
bool up_relay_names(up_frame_str_t to_path, const char *id, size_t id_len);

/* A 64-bit FNV-1a hash of a Message-ID, to remember refused messages
 * without keeping their ids. */
uint64_t up_relay_msg_hash(up_frame_str_t message_id);

#endif
