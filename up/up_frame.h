/* up_frame: incremental MSRP (RFC 4975) framing over a byte stream.
 *
 * The caller owns the buffer: it appends what it reads, calls
 * up_frame_parse() until it returns UP_FRAME_MORE, and after each call drops
 * *used bytes from the front. A frame is reported twice: UP_FRAME_HEAD once
 * the start line and headers are complete (the header values point into the
 * caller's buffer and are valid until it drops the bytes), and UP_FRAME_END
 * at its end-line. The end of a frame is found by scanning for
 * "-------<transaction-id>" plus a flag, never from Byte-Range, so body
 * bytes can be dropped as they pass (MORE with *used > 0) and a body of any
 * size streams through a bounded buffer. Header blocks are kept whole: one
 * that does not fit the caller's buffer is the caller's error to raise.
 *
 * Nothing here allocates; any input gives MORE, HEAD, END or ERROR. */
#ifndef UP_FRAME_H
#define UP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* transact-id = 4 to 32 ident characters (RFC 4975 section 9). */
#define UP_FRAME_TID_MAX 32
#define UP_FRAME_METHOD_MAX 15
/* Longest start line accepted. */
#define UP_FRAME_START_MAX 256

typedef enum {
    UP_FRAME_MORE = 0, /* need more bytes (after dropping *used) */
    UP_FRAME_HEAD,     /* start line and headers complete */
    UP_FRAME_END,      /* end-line of the current frame consumed */
    UP_FRAME_ERROR,    /* not MSRP: close the connection */
} up_frame_event_t;

typedef struct {
    const char *ptr; /* into the caller's buffer; NULL if absent */
    size_t len;
} up_frame_str_t;

typedef struct {
    bool request;
    char method[UP_FRAME_METHOD_MAX + 1]; /* requests: "SEND", "REPORT" */
    unsigned status;                      /* responses: 200, 481, ... */
    up_frame_str_t to_path;
    up_frame_str_t from_path;
    up_frame_str_t message_id;
    up_frame_str_t byte_range;
    up_frame_str_t failure_report;
    bool has_body; /* a blank line ended the headers */
} up_frame_head_t;

/* A header value found while the header block is incomplete, as an offset
 * (the caller's buffer may move when it grows). */
typedef struct {
    size_t off;
    size_t len;
    bool set;
} up_frame_span_t;

typedef struct {
    int state;
    bool at_line_start; /* buffer offset 0 starts a line (body state) */
    char tid[UP_FRAME_TID_MAX + 1];
    size_t tid_len;
    char flag;          /* '$', '+' or '#' once the end-line is seen */
    const char *why;    /* reason of the last UP_FRAME_ERROR */
    /* Header block parsed so far, so each call resumes where the last one
     * stopped instead of rescanning the block. */
    size_t scan; /* 0: start line not parsed yet */
    size_t seek; /* where the search for the current line's CRLF resumes */
    bool request;
    char method[UP_FRAME_METHOD_MAX + 1];
    unsigned status;
    up_frame_span_t to_path, from_path, message_id, byte_range,
        failure_report;
} up_frame_t;

void up_frame_init(up_frame_t *f);

/* See the header comment. `head` is filled on UP_FRAME_HEAD. */
up_frame_event_t up_frame_parse(up_frame_t *f, const uint8_t *buf, size_t len,
                                size_t *used, up_frame_head_t *head);

/* True between HEAD and END (the body, or the end-line, is pending). */
bool up_frame_in_body(const up_frame_t *f);

/* The last space-separated URI of a path header value. false if empty. */
bool up_frame_path_last(up_frame_str_t path, up_frame_str_t *last);
/* The first URI of a path header value. false if empty. */
bool up_frame_path_first(up_frame_str_t path, up_frame_str_t *first);

#endif
