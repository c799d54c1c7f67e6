#include "im_curve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "im_log.h"

static const char s_z85_alphabet[] = "0123456789"
                                     "abcdefghijklmnopqrstuvwxyz"
                                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     ".-:+=^!/*?&<>()[]{}@%$#";

/* Longest key-file line accepted; a key line is 40 characters plus
 * whitespace, a comment line may be longer. */
#define IM_CURVE_LINE_MAX 512

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *s_kind_name(im_curve_kind_t kind)
{
    return kind == IM_CURVE_SECRET ? "secret key" : "public key";
}

static int s_is_z85(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0' || !strchr(s_z85_alphabet, s[i]))
            return 0;
    }
    return 1;
}

/* Text that is probably a mistyped inline key rather than a path; such an
 * argument is never echoed in a message, since it may be a secret. */
static int s_looks_like_key(const char *s)
{
    size_t len = strlen(s);

    return len >= 30 && len <= 50 && s_is_z85(s, len);
}

static int s_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n > m && strcmp(s + n - m, suffix) == 0;
}

int im_curve_key_parse(const char *z85, im_curve_key_t *out)
{
    uint8_t tmp[IM_CURVE_KEY_BYTES];

    if (!z85 || !out)
        return -EINVAL;
    /* zmq_z85_decode writes len * 4 / 5 bytes: check the length first. */
    if (strnlen(z85, IM_CURVE_Z85_LEN + 1) != IM_CURVE_Z85_LEN ||
        !s_is_z85(z85, IM_CURVE_Z85_LEN))
        return -EINVAL;
    /* Still fails for groups of 5 characters worth more than 2^32 - 1. */
    if (!zmq_z85_decode(tmp, z85)) {
        explicit_bzero(tmp, sizeof(tmp));
        return -EINVAL;
    }
    memcpy(out->b, tmp, sizeof(out->b));
    explicit_bzero(tmp, sizeof(tmp));
    return 0;
}

void im_curve_key_z85(const im_curve_key_t *key, char out[IM_CURVE_Z85_LEN + 1])
{
    if (!zmq_z85_encode(out, key->b, sizeof(key->b)))
        out[0] = '\0';
}

void im_curve_key_clear(im_curve_key_t *key)
{
    if (key)
        explicit_bzero(key->b, sizeof(key->b));
}

/* --- key files --------------------------------------------------------- */

/* Receives each key of a file; returns 0, or -E2BIG (the caller wanted
 * fewer keys), -ENOSPC (list full), -ENOMEM. */
typedef int (*s_key_sink_fn)(void *arg, const im_curve_key_t *key);

/* Reads one line without its '\n'. 1: a line, 0: end of file, -E2BIG: longer
 * than size - 1, -EILSEQ: a NUL byte, -EIO: read error. */
static int s_read_line(FILE *f, char *buf, size_t size)
{
    size_t n = 0;
    int c;

    while ((c = getc(f)) != EOF) {
        if (c == '\n')
            break;
        if (c == '\0')
            return -EILSEQ;
        if (n + 1 >= size)
            return -E2BIG;
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
    if (c == EOF) {
        if (ferror(f))
            return -EIO;
        if (n == 0)
            return 0;
    }
    return 1;
}

static char *s_trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\v' || *s == '\f')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' ||
                       end[-1] == '\v' || end[-1] == '\f'))
        end--;
    *end = '\0';
    return s;
}

/* Opens path for reading only if it is a regular file (never blocks on a
 * FIFO or device). */
static FILE *s_open_regular(const char *path, char *err, size_t errlen, int *rc)
{
    struct stat st;
    FILE *f;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        *rc = -errno;
        s_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        *rc = -errno;
        s_err(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        *rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        s_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    f = fdopen(fd, "r");
    if (!f) {
        *rc = -errno;
        s_err(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    return f;
}

/* Feeds every key line of the file to sink. A file with no key is an
 * error. Returns 0 or -errno with err set. */
static int s_file_scan(const char *path, im_curve_kind_t kind,
                       s_key_sink_fn sink, void *arg, char *err, size_t errlen)
{
    char line[IM_CURVE_LINE_MAX];
    unsigned lineno = 0, nkeys = 0;
    int rc = 0;
    FILE *f = s_open_regular(path, err, errlen, &rc);

    if (!f)
        return rc;
    for (;;) {
        im_curve_key_t key;
        char *s;
        size_t len;

        rc = s_read_line(f, line, sizeof(line));
        if (rc == 0)
            break;
        lineno++;
        if (rc == -E2BIG) {
            s_err(err, errlen, "%s: line %u is longer than %d characters", path,
                  lineno, IM_CURVE_LINE_MAX - 1);
            rc = -EINVAL;
            goto out;
        }
        if (rc == -EILSEQ) {
            s_err(err, errlen, "%s: line %u contains a NUL byte", path, lineno);
            rc = -EINVAL;
            goto out;
        }
        if (rc < 0) {
            s_err(err, errlen, "%s: read error", path);
            goto out;
        }
        s = s_trim(line);
        if (s[0] == '\0' || s[0] == '#')
            continue;
        len = strlen(s);
        if (len != IM_CURVE_Z85_LEN) {
            s_err(err, errlen,
                  "%s: line %u: expected a %d-character Z85 %s, got %zu "
                  "characters",
                  path, lineno, IM_CURVE_Z85_LEN, s_kind_name(kind), len);
            rc = -EINVAL;
            goto out;
        }
        if (im_curve_key_parse(s, &key) != 0) {
            s_err(err, errlen, "%s: line %u: %s is not valid Z85", path, lineno,
                  s_kind_name(kind));
            rc = -EINVAL;
            goto out;
        }
        rc = sink(arg, &key);
        im_curve_key_clear(&key);
        if (rc == -E2BIG) {
            s_err(err, errlen, "%s: line %u: more than one key in the file",
                  path, lineno);
            rc = -EINVAL;
            goto out;
        }
        if (rc == -ENOSPC) {
            s_err(err, errlen, "%s: line %u: more than %d keys in total", path,
                  lineno, IM_CURVE_ALLOW_MAX);
            goto out;
        }
        if (rc < 0) {
            s_err(err, errlen, "%s: %s", path, strerror(-rc));
            goto out;
        }
        nkeys++;
    }
    if (nkeys == 0) {
        s_err(err, errlen, "%s: no %s in the file", path, s_kind_name(kind));
        rc = -EINVAL;
    }
out:
    explicit_bzero(line, sizeof(line));
    fclose(f);
    return rc;
}

typedef struct {
    im_curve_key_t *out;
    int got;
} s_one_key_t;

static int s_one_key_sink(void *arg, const im_curve_key_t *key)
{
    s_one_key_t *one = arg;

    if (one->got)
        return -E2BIG;
    *one->out = *key;
    one->got = 1;
    return 0;
}

/* What a key argument names. */
typedef enum { S_ARG_INLINE, S_ARG_FILE, S_ARG_DIR } s_arg_kind_t;

/* Classifies arg; an existing path wins over an inline key. For an inline
 * key, *key is set. Returns 0 or -errno with err set. */
static int s_classify(const char *arg, im_curve_kind_t kind, s_arg_kind_t *what,
                      im_curve_key_t *key, char *err, size_t errlen)
{
    struct stat st;
    int saved;

    if (!arg || !arg[0]) {
        s_err(err, errlen, "empty %s argument", s_kind_name(kind));
        return -EINVAL;
    }
    if (stat(arg, &st) == 0) {
        *what = S_ISDIR(st.st_mode) ? S_ARG_DIR : S_ARG_FILE;
        return 0;
    }
    saved = errno;
    if (kind == IM_CURVE_PUBLIC && strlen(arg) != IM_CURVE_Z85_LEN) {
        s_err(err, errlen, "public key file %s: %s", arg, strerror(saved));
        return -saved;
    }
    if (strlen(arg) == IM_CURVE_Z85_LEN) {
        if (im_curve_key_parse(arg, key) == 0) {
            *what = S_ARG_INLINE;
            return 0;
        }
        /* Public keys are not secret: name the argument. */
        if (kind == IM_CURVE_PUBLIC)
            s_err(err, errlen,
                  "public key %s: neither an existing file (%s) nor a valid "
                  "Z85 key",
                  arg, strerror(saved));
        else
            s_err(err, errlen,
                  "secret key argument is neither an existing file nor a "
                  "valid Z85 key");
        return -EINVAL;
    }
    if (s_looks_like_key(arg)) {
        s_err(err, errlen,
              "%s argument is neither an existing file nor a %d-character "
              "Z85 key (it has %zu characters)",
              s_kind_name(kind), IM_CURVE_Z85_LEN, strlen(arg));
        return -EINVAL;
    }
    s_err(err, errlen, "%s file %s: %s", s_kind_name(kind), arg,
          strerror(saved));
    return -saved;
}

int im_curve_key_load(const char *arg, im_curve_kind_t kind,
                      im_curve_key_t *out, char *err, size_t errlen)
{
    s_arg_kind_t what;
    im_curve_key_t key;
    s_one_key_t one = {.out = &key};
    int rc;

    if (!out) {
        s_err(err, errlen, "no destination for the %s", s_kind_name(kind));
        return -EINVAL;
    }
    rc = s_classify(arg, kind, &what, &key, err, errlen);
    if (rc < 0)
        return rc;
    if (what == S_ARG_DIR) {
        s_err(err, errlen, "%s file %s: is a directory", s_kind_name(kind),
              arg);
        return -EISDIR;
    }
    if (what == S_ARG_FILE) {
        rc = s_file_scan(arg, kind, s_one_key_sink, &one, err, errlen);
        if (rc < 0) {
            im_curve_key_clear(&key);
            return rc;
        }
    }
    *out = key;
    im_curve_key_clear(&key);
    return 0;
}

int im_curve_public_from_secret(const im_curve_key_t *secret,
                                im_curve_key_t *public_out)
{
    char sec_z85[IM_CURVE_Z85_LEN + 1];
    char pub_z85[IM_CURVE_Z85_LEN + 1];
    int rc = 0;

    if (!secret || !public_out)
        return -EINVAL;
    im_curve_key_z85(secret, sec_z85);
    if (zmq_curve_public(pub_z85, sec_z85) != 0)
        rc = errno ? -errno : -EINVAL;
    else if (im_curve_key_parse(pub_z85, public_out) != 0)
        rc = -EINVAL;
    explicit_bzero(sec_z85, sizeof(sec_z85));
    return rc;
}

/* --- keygen ------------------------------------------------------------ */

static int s_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Creates path (never replacing an existing file) with exactly `mode`,
 * whatever the umask, and writes the comment line and the key. Returns 0 or
 * -errno with err set; on failure after creation the file is removed and
 * *created stays 0. */
static int s_write_key_file(const char *path, mode_t mode, const char *label,
                            const char *z85, int *created, char *err,
                            size_t errlen)
{
    char buf[128];
    int n, rc, fd;

    *created = 0;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        rc = -errno;
        if (rc == -EEXIST)
            s_err(err, errlen, "%s: already exists; not overwritten", path);
        else
            s_err(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    n = snprintf(buf, sizeof(buf), "# imsplit CURVE %s\n%s\n", label, z85);
    if (fchmod(fd, mode) != 0)
        rc = -errno;
    else
        rc = s_write_all(fd, buf, (size_t)n);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    explicit_bzero(buf, sizeof(buf));
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        s_err(err, errlen, "%s: %s", path, strerror(-rc));
        unlink(path);
        return rc;
    }
    *created = 1;
    return 0;
}

int im_curve_keygen_files(const char *prefix, char *err, size_t errlen)
{
    char pub_path[PATH_MAX], key_path[PATH_MAX];
    char pub_z85[IM_CURVE_Z85_LEN + 1], sec_z85[IM_CURVE_Z85_LEN + 1];
    int key_created = 0, pub_created = 0;
    int n1, n2, rc;

    if (!prefix || !prefix[0]) {
        s_err(err, errlen, "empty key file prefix");
        return -EINVAL;
    }
    n1 = snprintf(pub_path, sizeof(pub_path), "%s.pub", prefix);
    n2 = snprintf(key_path, sizeof(key_path), "%s.key", prefix);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(pub_path) ||
        (size_t)n2 >= sizeof(key_path)) {
        s_err(err, errlen, "key file prefix is too long");
        return -ENAMETOOLONG;
    }
    if (zmq_curve_keypair(pub_z85, sec_z85) != 0) {
        rc = errno ? -errno : -EINVAL;
        s_err(err, errlen, "cannot generate a CURVE keypair: %s",
              zmq_strerror(-rc));
        return rc;
    }
    /* The secret first: if it cannot be created exclusively, nothing is
     * written at all. */
    rc = s_write_key_file(key_path, 0600, "secret key", sec_z85, &key_created,
                          err, errlen);
    if (rc == 0)
        rc = s_write_key_file(pub_path, 0644, "public key", pub_z85,
                              &pub_created, err, errlen);
    if (rc < 0 && key_created)
        unlink(key_path);
    explicit_bzero(sec_z85, sizeof(sec_z85));
    return rc;
}

/* --- allow-list -------------------------------------------------------- */

struct im_curve_allow {
    im_curve_key_t *keys; /* sorted by memcmp, no duplicates */
    size_t n, cap;
};

static int s_key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, IM_CURVE_KEY_BYTES);
}

/* Appends without sorting; callers restore the invariant with
 * s_allow_normalize. */
static int s_allow_append(im_curve_allow_t *allow, const im_curve_key_t *key)
{
    if (allow->n >= IM_CURVE_ALLOW_MAX)
        return -ENOSPC;
    if (allow->n == allow->cap) {
        size_t cap = allow->cap ? allow->cap * 2 : 16;
        im_curve_key_t *keys;
        if (cap > IM_CURVE_ALLOW_MAX)
            cap = IM_CURVE_ALLOW_MAX;
        keys = realloc(allow->keys, cap * sizeof(*keys));
        if (!keys)
            return -ENOMEM;
        allow->keys = keys;
        allow->cap = cap;
    }
    allow->keys[allow->n++] = *key;
    return 0;
}

static void s_allow_normalize(im_curve_allow_t *allow)
{
    size_t o = 0;

    if (allow->n < 2)
        return;
    qsort(allow->keys, allow->n, sizeof(*allow->keys), s_key_cmp);
    for (size_t i = 1; i < allow->n; i++) {
        if (s_key_cmp(&allow->keys[o], &allow->keys[i]) != 0)
            allow->keys[++o] = allow->keys[i];
    }
    allow->n = o + 1;
}

static int s_allow_sink(void *arg, const im_curve_key_t *key)
{
    return s_allow_append(arg, key);
}

im_curve_allow_t *im_curve_allow_new(void)
{
    return calloc(1, sizeof(im_curve_allow_t));
}

void im_curve_allow_destroy(im_curve_allow_t **allow_p)
{
    if (!allow_p || !*allow_p)
        return;
    free((*allow_p)->keys);
    free(*allow_p);
    *allow_p = NULL;
}

int im_curve_allow_add(im_curve_allow_t *allow, const im_curve_key_t *key)
{
    int rc;

    if (!allow || !key)
        return -EINVAL;
    if (im_curve_allow_contains(allow, key->b))
        return 0;
    rc = s_allow_append(allow, key);
    if (rc == 0)
        s_allow_normalize(allow);
    return rc;
}

static int s_allow_add_dir(im_curve_allow_t *allow, const char *dir, char *err,
                           size_t errlen)
{
    char path[PATH_MAX];
    struct dirent *de;
    unsigned files = 0;
    int rc = 0;
    DIR *d = opendir(dir);

    if (!d) {
        rc = -errno;
        s_err(err, errlen, "allow-list directory %s: %s", dir, strerror(-rc));
        return rc;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        struct stat st;
        int n;

        if (de->d_name[0] == '.' || !s_has_suffix(de->d_name, ".pub"))
            continue;
        n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            s_err(err, errlen, "%s/%s: path too long", dir, de->d_name);
            rc = -ENAMETOOLONG;
            break;
        }
        if (stat(path, &st) != 0) {
            rc = -errno;
            s_err(err, errlen, "%s: %s", path, strerror(-rc));
            break;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        rc = s_file_scan(path, IM_CURVE_PUBLIC, s_allow_sink, allow, err,
                         errlen);
        if (rc < 0)
            break;
        files++;
    }
    if (rc == 0 && errno != 0) {
        rc = -errno;
        s_err(err, errlen, "allow-list directory %s: %s", dir, strerror(-rc));
    }
    closedir(d);
    if (rc == 0 && files == 0) {
        s_err(err, errlen, "allow-list directory %s: no *.pub files", dir);
        rc = -ENOENT;
    }
    return rc;
}

int im_curve_allow_add_arg(im_curve_allow_t *allow, const char *arg, char *err,
                           size_t errlen)
{
    s_arg_kind_t what;
    im_curve_key_t key;
    size_t old_n;
    int rc;

    if (!allow) {
        s_err(err, errlen, "no allow-list");
        return -EINVAL;
    }
    rc = s_classify(arg, IM_CURVE_PUBLIC, &what, &key, err, errlen);
    if (rc < 0)
        return rc;
    old_n = allow->n;
    switch (what) {
    case S_ARG_INLINE:
        rc = s_allow_append(allow, &key);
        if (rc == -ENOSPC)
            s_err(err, errlen, "more than %d allowed keys", IM_CURVE_ALLOW_MAX);
        else if (rc < 0)
            s_err(err, errlen, "%s", strerror(-rc));
        break;
    case S_ARG_FILE:
        if (s_has_suffix(arg, ".key")) {
            s_err(err, errlen,
                  "%s: a secret key file; list the public key (.pub) instead",
                  arg);
            rc = -EINVAL;
            break;
        }
        rc =
            s_file_scan(arg, IM_CURVE_PUBLIC, s_allow_sink, allow, err, errlen);
        break;
    case S_ARG_DIR: rc = s_allow_add_dir(allow, arg, err, errlen); break;
    }
    if (rc < 0) {
        /* Appended keys sit after old_n until the list is normalized. */
        allow->n = old_n;
        return rc;
    }
    s_allow_normalize(allow);
    return 0;
}

im_curve_allow_t *im_curve_allow_load(const char *const *args, size_t n,
                                      char *err, size_t errlen)
{
    im_curve_allow_t *allow = im_curve_allow_new();

    if (!allow) {
        s_err(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (im_curve_allow_add_arg(allow, args ? args[i] : NULL, err, errlen) <
            0) {
            im_curve_allow_destroy(&allow);
            return NULL;
        }
    }
    return allow;
}

im_curve_allow_t *im_curve_allow_dup(const im_curve_allow_t *allow)
{
    im_curve_allow_t *copy;

    if (!allow)
        return NULL;
    copy = im_curve_allow_new();
    if (!copy)
        return NULL;
    if (allow->n > 0) {
        copy->keys = malloc(allow->n * sizeof(*copy->keys));
        if (!copy->keys) {
            free(copy);
            return NULL;
        }
        memcpy(copy->keys, allow->keys, allow->n * sizeof(*copy->keys));
        copy->n = copy->cap = allow->n;
    }
    return copy;
}

size_t im_curve_allow_count(const im_curve_allow_t *allow)
{
    return allow ? allow->n : 0;
}

bool im_curve_allow_contains(const im_curve_allow_t *allow,
                             const uint8_t key[IM_CURVE_KEY_BYTES])
{
    if (!allow || !key || allow->n == 0)
        return false;
    return bsearch(key, allow->keys, allow->n, sizeof(*allow->keys),
                   s_key_cmp) != NULL;
}

/* --- ZAP handler ------------------------------------------------------- */

#define IM_ZAP_ENDPOINT "inproc://zeromq.zap.01"
/* A ZAP 1.0 request has 6 frames plus the mechanism's credentials (CURVE:
 * one); further frames are received and dropped. */
#define IM_ZAP_FRAMES_MAX 8

struct im_zap {
    void *rep;     /* the handler thread's while it runs */
    void *stop_rx; /* the handler thread's while it runs */
    void *stop_tx; /* the owner's */
    pthread_t thread;
    im_curve_allow_t *allow; /* own copy, read-only while the thread runs */
    char *domain;
    char stop_ep[64];
    _Atomic uint64_t allowed;
    _Atomic uint64_t denied;
};

static int s_frame_eq(zmq_msg_t *m, const char *s)
{
    size_t len = strlen(s);

    return zmq_msg_size(m) == len && memcmp(zmq_msg_data(m), s, len) == 0;
}

/* A frame as a logfmt value (bounded, quoted when needed). */
static const char *s_frame_log(zmq_msg_t *m, char *out, size_t outlen)
{
    char text[96];
    size_t len = zmq_msg_size(m);
    const char *data = zmq_msg_data(m);

    if (len >= sizeof(text))
        len = sizeof(text) - 1;
    for (size_t i = 0; i < len; i++)
        text[i] = data[i] ? data[i] : '?';
    text[len] = '\0';
    return im_log_quote(out, outlen, text);
}

static int s_zap_send(void *sock, const void *data, size_t len, int more)
{
    while (zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}

/* The answer to one request; why is the log's reason, NULL when admitted. */
typedef struct {
    const char *code, *text, *why;
} s_verdict_t;

static const s_verdict_t s_v_ok = {"200", "OK", NULL};
static const s_verdict_t s_v_malformed = {"500", "malformed request",
                                          "malformed"};
static const s_verdict_t s_v_version = {"500", "unsupported ZAP version",
                                        "version"};
static const s_verdict_t s_v_credentials = {
    "500", "malformed CURVE credentials", "credentials"};
static const s_verdict_t s_v_mechanism = {"400", "mechanism not allowed",
                                          "mechanism"};
static const s_verdict_t s_v_domain = {"400", "domain not allowed", "domain"};
static const s_verdict_t s_v_key = {"400", "key not allowed",
                                    "key_not_allowed"};

/* Request frames: version, request id, domain, address, routing id,
 * mechanism, credentials. `total` counts frames beyond the stored `nf`. The
 * client key is stored in *key when the request carries one. */
static const s_verdict_t *s_zap_decide(const im_zap_t *zap, zmq_msg_t *f,
                                       size_t nf, size_t total,
                                       im_curve_key_t *key, bool *have_key)
{
    *have_key = false;
    if (nf < 6)
        return &s_v_malformed;
    if (!s_frame_eq(&f[0], "1.0"))
        return &s_v_version;
    if (!s_frame_eq(&f[5], "CURVE"))
        return &s_v_mechanism;
    if (total != 7 || zmq_msg_size(&f[6]) != IM_CURVE_KEY_BYTES)
        return &s_v_credentials;
    memcpy(key->b, zmq_msg_data(&f[6]), sizeof(key->b));
    *have_key = true;
    if (!s_frame_eq(&f[2], zap->domain))
        return &s_v_domain;
    if (!im_curve_allow_contains(zap->allow, key->b))
        return &s_v_key;
    return &s_v_ok;
}

/* Receives one request and answers it. Returns 0, or -errno when the socket
 * is unusable (ETERM: the context is terminating); the thread then stops. */
static int s_zap_serve(im_zap_t *zap)
{
    zmq_msg_t f[IM_ZAP_FRAMES_MAX];
    size_t nf = 0, total = 0;
    int more = 1, rc = 0;
    const s_verdict_t *v;
    char key_z85[IM_CURVE_Z85_LEN + 1] = "-";
    /* Z85 may contain '=', so the key is quoted for logfmt like the rest. */
    char key_log[IM_CURVE_Z85_LEN + 3];
    char addr[256] = "-", dom[256] = "-", mech[256] = "-";
    im_curve_key_t key;
    bool have_key, admit;

    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *m = nf < IM_ZAP_FRAMES_MAX ? &f[nf] : &scratch;

        zmq_msg_init(m);
        if (zmq_msg_recv(m, zap->rep, total == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            int e = errno;
            zmq_msg_close(m);
            if (e == EINTR)
                continue;
            if (total == 0 && e == EAGAIN)
                goto out;
            if (e != ETERM)
                IM_LOG_ERROR("event=zap_recv_failed err=\"%s\"",
                             zmq_strerror(e));
            rc = -e;
            goto out;
        }
        more = zmq_msg_more(m);
        total++;
        if (m == &scratch)
            zmq_msg_close(m);
        else
            nf++;
    }

    v = s_zap_decide(zap, f, nf, total, &key, &have_key);
    admit = v->why == NULL;
    if (have_key)
        im_curve_key_z85(&key, key_z85);
    im_log_quote(key_log, sizeof(key_log), key_z85);
    if (nf >= 4)
        s_frame_log(&f[3], addr, sizeof(addr));
    if (nf >= 3)
        s_frame_log(&f[2], dom, sizeof(dom));
    if (nf >= 6)
        s_frame_log(&f[5], mech, sizeof(mech));
    if (admit) {
        atomic_fetch_add_explicit(&zap->allowed, 1, memory_order_relaxed);
        IM_LOG_INFO("event=zap_allowed key=%s address=%s domain=%s", key_log,
                    addr, dom);
    } else {
        atomic_fetch_add_explicit(&zap->denied, 1, memory_order_relaxed);
        IM_LOG_WARN("event=zap_denied status=%s key=%s address=%s domain=%s "
                    "mechanism=%s why=%s",
                    v->code, key_log, addr, dom, mech, v->why);
    }

    /* Reply frames: version, request id, status code, status text, user id
     * (the client's key when admitted), metadata (none). */
    if (s_zap_send(zap->rep, "1.0", 3, 1) < 0 ||
        s_zap_send(zap->rep, nf >= 2 ? zmq_msg_data(&f[1]) : "",
                   nf >= 2 ? zmq_msg_size(&f[1]) : 0, 1) < 0 ||
        s_zap_send(zap->rep, v->code, 3, 1) < 0 ||
        s_zap_send(zap->rep, v->text, strlen(v->text), 1) < 0 ||
        s_zap_send(zap->rep, admit ? key_z85 : "", admit ? IM_CURVE_Z85_LEN : 0,
                   1) < 0 ||
        s_zap_send(zap->rep, "", 0, 0) < 0) {
        int e = errno;
        if (e != ETERM)
            IM_LOG_ERROR("event=zap_send_failed err=\"%s\"", zmq_strerror(e));
        rc = -e;
    }
out:
    for (size_t i = 0; i < nf; i++)
        zmq_msg_close(&f[i]);
    return rc;
}

static void *s_zap_main(void *arg)
{
    im_zap_t *zap = arg;
    zmq_pollitem_t items[2] = {
        {.socket = zap->rep, .events = ZMQ_POLLIN},
        {.socket = zap->stop_rx, .events = ZMQ_POLLIN},
    };
    int rc = 0;

    while (rc == 0) {
        if (zmq_poll(items, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            if (rc != -ETERM)
                IM_LOG_ERROR("event=zap_poll_failed err=\"%s\"",
                             zmq_strerror(-rc));
            break;
        }
        if (items[1].revents & ZMQ_POLLIN)
            return NULL;
        if (items[0].revents & ZMQ_POLLIN)
            rc = s_zap_serve(zap);
    }
    /* From here on requests go unanswered and their handshakes time out, so
     * clients stay refused. */
    IM_LOG_WARN("event=zap_handler_exited reason=%s",
                rc == -ETERM ? "context_terminated" : "error");
    return NULL;
}

static int s_linger0(void *sock)
{
    int zero = 0;

    return zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
}

static void s_zap_free(im_zap_t *zap)
{
    /* Closing alone releases an inproc name only later, in libzmq's reaper
     * thread; unbinding releases it now, so a new handler (or a new stop
     * pair at a reused address) can bind at once. */
    if (zap->rep) {
        zmq_unbind(zap->rep, IM_ZAP_ENDPOINT);
        zmq_close(zap->rep);
    }
    if (zap->stop_rx)
        zmq_close(zap->stop_rx);
    if (zap->stop_tx) {
        zmq_unbind(zap->stop_tx, zap->stop_ep);
        zmq_close(zap->stop_tx);
    }
    im_curve_allow_destroy(&zap->allow);
    free(zap->domain);
    free(zap);
}

im_zap_t *im_zap_start(void *zctx, const im_curve_allow_t *allow,
                       const char *domain)
{
    sigset_t all, old;
    const char *step;
    im_zap_t *zap;
    int rc, err;

    if (!zctx || !allow || !domain || !domain[0]) {
        errno = EINVAL;
        return NULL;
    }
    zap = calloc(1, sizeof(*zap));
    if (!zap) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&zap->allowed, 0);
    atomic_init(&zap->denied, 0);
    zap->allow = im_curve_allow_dup(allow);
    zap->domain = strdup(domain);
    if (!zap->allow || !zap->domain) {
        errno = ENOMEM;
        step = "alloc";
        goto fail;
    }
    step = "rep";
    zap->rep = zmq_socket(zctx, ZMQ_REP);
    if (!zap->rep || s_linger0(zap->rep) != 0 ||
        zmq_bind(zap->rep, IM_ZAP_ENDPOINT) != 0)
        goto fail;
    /* Unique per handler; only the two ends below ever use it. */
    snprintf(zap->stop_ep, sizeof(zap->stop_ep), "inproc://imsplit.zap.stop.%p",
             (void *)zap);
    step = "stop_pair";
    zap->stop_tx = zmq_socket(zctx, ZMQ_PAIR);
    if (!zap->stop_tx || s_linger0(zap->stop_tx) != 0 ||
        zmq_bind(zap->stop_tx, zap->stop_ep) != 0)
        goto fail;
    zap->stop_rx = zmq_socket(zctx, ZMQ_PAIR);
    if (!zap->stop_rx || s_linger0(zap->stop_rx) != 0 ||
        zmq_connect(zap->stop_rx, zap->stop_ep) != 0)
        goto fail;
    /* Signals stay with the owner's threads. pthread_create is the memory
     * barrier that hands rep and stop_rx over to the new thread. */
    step = "thread";
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&zap->thread, NULL, s_zap_main, zap);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    IM_LOG_INFO("event=zap_started endpoint=%s domain=%s keys=%zu",
                IM_ZAP_ENDPOINT, zap->domain, im_curve_allow_count(zap->allow));
    return zap;
fail:
    err = errno;
    IM_LOG_ERROR("event=zap_start_failed step=%s err=\"%s\"", step,
                 zmq_strerror(err));
    s_zap_free(zap);
    errno = err;
    return NULL;
}

void im_zap_stop(im_zap_t **zap_p)
{
    im_zap_t *zap;

    if (!zap_p || !*zap_p)
        return;
    zap = *zap_p;
    *zap_p = NULL;
    /* Fails only while the context terminates, and then the thread's poll
     * fails with ETERM too: the join returns either way. */
    if (zmq_send(zap->stop_tx, "", 0, 0) < 0)
        IM_LOG_ERROR("event=zap_stop_send_failed err=\"%s\"",
                     zmq_strerror(errno));
    pthread_join(zap->thread, NULL);
    IM_LOG_INFO("event=zap_stopped allowed=%" PRIu64 " denied=%" PRIu64,
                im_zap_allowed(zap), im_zap_denied(zap));
    /* After the join the handler's sockets belong to this thread again. */
    s_zap_free(zap);
}

uint64_t im_zap_allowed(const im_zap_t *zap)
{
    if (!zap)
        return 0;
    return atomic_load_explicit(&zap->allowed, memory_order_relaxed);
}

uint64_t im_zap_denied(const im_zap_t *zap)
{
    if (!zap)
        return 0;
    return atomic_load_explicit(&zap->denied, memory_order_relaxed);
}
