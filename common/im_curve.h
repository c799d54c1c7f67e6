/* im_curve: CURVE key material, worker allow-lists and the ZAP handler.
 *
 * A key is 32 bytes, written as 40 characters of Z85. A key *argument* (a
 * flag value) is either the path of a key file or the 40-character key
 * itself: an argument that names an existing file is read as a file,
 * anything else must be an inline key. A key file holds the key on one line;
 * blank lines and lines starting with '#' are ignored and surrounding
 * whitespace is trimmed. `imsplit-ctl keygen PREFIX` writes PREFIX.pub and
 * PREFIX.key in that format (im_curve_keygen_files).
 *
 * Functions that read or write files report failures as a one-line message
 * in `err` (naming the file and the reason) and return -errno; they print
 * nothing. No message ever contains the text of a secret key.
 *
 * The ZAP handler (im_zap_*) answers the ZeroMQ authentication requests of
 * every CURVE server socket in one ZeroMQ context; see im_zap_start. */
#ifndef IM_CURVE_H
#define IM_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IM_CURVE_KEY_BYTES 32
#define IM_CURVE_Z85_LEN 40 /* characters, without the NUL */

/* Bounds what an allow-list argument (a huge file, a big directory) can make
 * the process hold. */
#define IM_CURVE_ALLOW_MAX 65536

typedef struct {
    uint8_t b[IM_CURVE_KEY_BYTES];
} im_curve_key_t;

typedef enum {
    IM_CURVE_PUBLIC, /* messages say "public key" */
    IM_CURVE_SECRET, /* messages say "secret key" */
} im_curve_kind_t;

/* Decodes exactly 40 Z85 characters (no surrounding whitespace). Returns 0 or
 * -EINVAL; *out is untouched on error. */
int im_curve_key_parse(const char *z85, im_curve_key_t *out);
/* Encodes the key as 40 Z85 characters plus the NUL into out. */
void im_curve_key_z85(const im_curve_key_t *key,
                      char out[IM_CURVE_Z85_LEN + 1]);
/* Overwrites the key with zeros in a way the compiler keeps. */
void im_curve_key_clear(im_curve_key_t *key);

/* Loads one key from a key argument (inline key or key file, see above).
 * A file must hold exactly one key line. Returns 0, or -errno with the reason
 * in err (-EINVAL for a malformed key or file). */
int im_curve_key_load(const char *arg, im_curve_kind_t kind,
                      im_curve_key_t *out, char *err, size_t errlen);

/* The public key belonging to a secret key. Returns 0 or -errno (-ENOTSUP
 * when libzmq was built without CURVE). */
int im_curve_public_from_secret(const im_curve_key_t *secret,
                                im_curve_key_t *public_out);

/* Generates a new keypair and writes PREFIX.pub (mode 0644) and PREFIX.key
 * (mode 0600), each as a comment line followed by the key. Neither file is
 * ever overwritten: if either exists, nothing is written and -EEXIST is
 * returned. On any failure no partial file is left behind. */
int im_curve_keygen_files(const char *prefix, char *err, size_t errlen);

/* A set of client public keys (decoded, 32 bytes each). Built by the owner
 * before the ZAP handler starts; the handler keeps its own copy, so the list
 * may be freed or changed once im_zap_start has returned. */
typedef struct im_curve_allow im_curve_allow_t;

/* An empty list. NULL on allocation failure. */
im_curve_allow_t *im_curve_allow_new(void);
/* NULL-safe; NULLs the caller's pointer. */
void im_curve_allow_destroy(im_curve_allow_t **allow_p);
/* Adds one key (duplicates are kept once). Returns 0, -ENOMEM or -ENOSPC
 * (more than IM_CURVE_ALLOW_MAX keys). */
int im_curve_allow_add(im_curve_allow_t *allow, const im_curve_key_t *key);
/* Adds the keys named by one argument: an inline key; a file with one public
 * key per line (a .pub file is the one-key case); or a directory, whose
 * regular files named *.pub are read (anything else in it is ignored). A file
 * or directory that yields no key, and a file named *.key (a secret key), are
 * errors. On error the list is unchanged. Returns 0 or -errno with err set. */
int im_curve_allow_add_arg(im_curve_allow_t *allow, const char *arg, char *err,
                           size_t errlen);
/* A new list from `n` arguments (im_curve_allow_add_arg for each). NULL on
 * error, with the reason in err. The caller owns the result. */
im_curve_allow_t *im_curve_allow_load(const char *const *args, size_t n,
                                      char *err, size_t errlen);
/* A copy of the list. NULL on allocation failure. */
im_curve_allow_t *im_curve_allow_dup(const im_curve_allow_t *allow);
size_t im_curve_allow_count(const im_curve_allow_t *allow);
/* True if the 32-byte key is on the list. NULL-safe (false). */
bool im_curve_allow_contains(const im_curve_allow_t *allow,
                             const uint8_t key[IM_CURVE_KEY_BYTES]);

/* The ZAP handler (ZeroMQ RFC 27, ZAP 1.0).
 *
 * im_zap_start binds a REP socket on inproc://zeromq.zap.01 in `zctx` and
 * serves it from a thread of its own (all signals blocked there). It admits
 * a handshake only when the mechanism is CURVE, the domain equals `domain`
 * and the client's public key is on `allow` (200, with the client's Z85
 * public key as the user id, so the server socket can read it as the
 * "User-Id" message property). Everything else is refused: 400 for a
 * well-formed request, 500 for a malformed one. Each decision is one log
 * line: `event=zap_allowed` (info) or `event=zap_denied ... why=` (warn).
 *
 * Order: call im_zap_start before binding any CURVE server socket in the
 * context. Such a socket (im_zmq_router_bind_opts) sets ZAP_ENFORCE_DOMAIN, so
 * without a handler every handshake fails rather than going unauthenticated.
 * Only one handler can exist per context (the second bind fails, EADDRINUSE).
 *
 * The thread waits in zmq_poll on the REP socket and on an inproc PAIR socket
 * that only im_zap_stop writes to. im_zap_stop sends one message on that pair,
 * joins the thread, then closes the handler's sockets from the owner thread;
 * the owner's own sockets in the context are not touched. It must be called
 * before zmq_ctx_term on the context (which would otherwise wait for the
 * handler's sockets forever). Handshakes arriving after the stop fail.
 *
 * `allow` is copied; `domain` must be non-empty and is copied. Returns NULL
 * with errno set (reason logged) on error. Logs go through im_log from the
 * handler thread; each line is a single stdio write. */
typedef struct im_zap im_zap_t;

im_zap_t *im_zap_start(void *zctx, const im_curve_allow_t *allow,
                       const char *domain);
/* Stops the thread and frees the handler. NULL-safe; NULLs *zap_p. */
void im_zap_stop(im_zap_t **zap_p);
/* Decisions so far; any thread may read them. */
uint64_t im_zap_allowed(const im_zap_t *zap);
uint64_t im_zap_denied(const im_zap_t *zap);

#endif
