/* up_frame: incremental MSRP (RFC 4975) framing over a byte stream.
 *
 * The caller owns the bytes. It calls up_frame_parse() on what it holds
 * unparsed, drops *used bytes from the front after each event, and calls
 * again until MORE (then it keeps what is left and appends the next read to
 * it). Events of one frame, in order:
 *
 *   HEAD   start line and header block complete; *used covers them (and
 *          the blank line before a body). The header values point into the
 *          caller's bytes: use them before dropping those bytes.
 *   BODY   buf[0, *used) is body data (zero or more times).
 *   END    buf[0, *used) was the end-line (with the CRLF before it); the
 *          flag is in f->flag.
 *
 * The end of a frame is found by scanning for "\r\n-------<tid>" plus a
 * flag and CRLF, never from Byte-Range, so a body of any size streams
 * through: only the last few bytes that may start an end-line are held
 * back (MORE with bytes left). A header block is kept whole until complete,
 * so the caller must be able to hold head_max bytes.
 *
 * Body text that looks like an end-line but is not one (another
 * transaction id, no flag, no CRLF after the flag) is data: RFC 4975 only
 * forbids the exact end-line inside a body. Inside a header block a line
 * starting with seven dashes must be this frame's end-line.
 *
 * Nothing here allocates; any input gives MORE, HEAD, BODY, END or ERROR,
 * and after ERROR (reason in f->why) the parser must not be fed again. */
#ifndef UP_FRAME_H
#define UP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* transact-id = 4 to 32 ident characters (RFC 4975 section 9). */
#define UP_FRAME_TID_MIN 4
#define UP_FRAME_TID_MAX 32
#define UP_FRAME_METHOD_MAX 15
/* Longest start line accepted. */
#define UP_FRAME_START_MAX 256
/* Default limits (see up_frame_limits()). */
#define UP_FRAME_HEAD_MAX 16384
#define UP_FRAME_BODY_MAX (64u * 1024 * 1024)
/* Largest Byte-Range number accepted: anything longer is hostile. */
#define UP_FRAME_RANGE_DIGITS 18
/* Byte-Range "*" (unknown end or total). */
#define UP_FRAME_RANGE_STAR UINT64_MAX

typedef enum {
    UP_FRAME_MORE = 0, /* need more bytes; *used is 0 */
    UP_FRAME_HEAD,     /* start line and headers complete */
    UP_FRAME_BODY,     /* buf[0, *used) is body data */
    UP_FRAME_END,      /* end-line of the current frame consumed */
    UP_FRAME_ERROR,    /* not MSRP: close the connection */
} up_frame_event_t;

typedef struct {
    const char *ptr; /* into the caller's buffer; NULL if absent */
    size_t len;
} up_frame_str_t;

typedef struct {
    uint64_t start; /* >= 1 */
    uint64_t end;   /* UP_FRAME_RANGE_STAR when "*" */
    uint64_t total; /* UP_FRAME_RANGE_STAR when "*" */
} up_frame_range_t;

typedef struct {
    bool request;
    char method[UP_FRAME_METHOD_MAX + 1]; /* requests: "SEND", "REPORT" */
    unsigned status;                      /* responses: 200, 481, ... */
    up_frame_str_t comment;               /* responses: may be empty */
    up_frame_str_t tid;
    up_frame_str_t to_path;
    up_frame_str_t from_path;
    up_frame_str_t message_id;
    up_frame_str_t byte_range;
    up_frame_str_t success_report;
    up_frame_str_t failure_report;
    up_frame_str_t status_header; /* REPORT "Status: 000 200 OK" */
    up_frame_str_t content_type;
    /* Every header line after the start line, each with its CRLF, without
     * the blank line or the end-line: what a relay copies. */
    up_frame_str_t headers;
    bool has_range;
    up_frame_range_t range; /* Byte-Range, valid when has_range */
    bool has_body;          /* a blank line ended the headers */
    char flag;              /* no body: the end-line's flag, seen already */
} up_frame_head_t;

/* A header value found while the header block is incomplete, as an offset
 * (the caller's buffer may move between calls). */
typedef struct {
    size_t off;
    size_t len;
    bool set;
} up_frame_span_t;

typedef struct {
    int state;
    bool at_line_start; /* body state: buffer offset 0 starts a line */
    char tid[UP_FRAME_TID_MAX + 1];
    size_t tid_len;
    char flag;       /* '$', '+' or '#' once the end-line is seen */
    const char *why; /* reason of the last UP_FRAME_ERROR */
    size_t head_max; /* longest header block (start line to blank line) */
    uint64_t body_max; /* most body bytes of one frame */
    uint64_t body;     /* body bytes of the current frame so far */
    /* Header block parsed so far, so each call resumes where the last one
     * stopped instead of rescanning the block. */
    size_t scan; /* 0: start line not parsed yet */
    size_t seek; /* where the search for the current line's CRLF resumes */
    size_t start_len; /* start line with its CRLF */
    bool request;
    char method[UP_FRAME_METHOD_MAX + 1];
    unsigned status;
    up_frame_span_t comment, to_path, from_path, message_id, byte_range,
        success_report, failure_report, status_header, content_type;
} up_frame_t;

/* Default limits: UP_FRAME_HEAD_MAX, UP_FRAME_BODY_MAX. */
void up_frame_init(up_frame_t *f);
/* Changes the limits (0 keeps the current value); takes effect from the
 * next byte parsed. */
void up_frame_limits(up_frame_t *f, size_t head_max, uint64_t body_max);

/* See the header comment. `head` (may be NULL) is filled on HEAD. */
up_frame_event_t up_frame_parse(up_frame_t *f, const uint8_t *buf, size_t len,
                                size_t *used, up_frame_head_t *head);

/* True between HEAD and END (the body, or the end-line, is pending). */
bool up_frame_in_body(const up_frame_t *f);

/* Parses a Byte-Range value "start-end/total" (end and total may be "*").
 * 0, or -EINVAL when malformed, negative, zero start, a number longer than
 * UP_FRAME_RANGE_DIGITS digits, end < start - 1, or end > total. */
int up_frame_range_parse(up_frame_str_t v, up_frame_range_t *out);

/* The last space-separated URI of a path header value. false if empty. */
bool up_frame_path_last(up_frame_str_t path, up_frame_str_t *last);
/* The first URI of a path header value. false if empty. */
bool up_frame_path_first(up_frame_str_t path, up_frame_str_t *first);

#endif
