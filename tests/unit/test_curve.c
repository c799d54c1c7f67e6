/* im_curve and the CURVE sockets of im_zmq: key arguments and files, keygen,
 * allow-lists, the ZAP handler (real and forged requests) and CURVE
 * ROUTER/DEALER pairs over loopback TCP. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

#include "im_curve.h"
#include "im_log.h"
#include "im_zmq.h"

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

#define DOMAIN "imsplit"
/* Upper bound for something that must happen (a handshake, a ZAP decision);
 * never a speed requirement. */
#define WAIT_MS 10000
/* How long a refused peer is given to get a message through. */
#define REFUSED_MS 300

typedef struct {
    char dir[64];
} s_tmp_t;

typedef struct {
    im_curve_key_t pub, sec;
    char pub_z85[IM_CURVE_Z85_LEN + 1], sec_z85[IM_CURVE_Z85_LEN + 1];
} s_pair_t;

static void s_pair(s_pair_t *p)
{
    assert_int_equal(zmq_curve_keypair(p->pub_z85, p->sec_z85), 0);
    assert_int_equal(im_curve_key_parse(p->pub_z85, &p->pub), 0);
    assert_int_equal(im_curve_key_parse(p->sec_z85, &p->sec), 0);
}

static int s_rm_one(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int s_setup(void **state)
{
    s_tmp_t *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    snprintf(t->dir, sizeof(t->dir), "/tmp/test_curve.XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int s_teardown(void **state)
{
    s_tmp_t *t = *state;
    nftw(t->dir, s_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
    return 0;
}

static const char *s_path(s_tmp_t *t, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", t->dir, name);
    return buf;
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static char *s_read(const char *path)
{
    static char buf[16384];
    FILE *f = fopen(path, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* --- keys -------------------------------------------------------------- */

static void test_key_parse(void **state)
{
    (void)state;
    s_pair_t p;
    im_curve_key_t k;
    char z85[IM_CURVE_Z85_LEN + 1];
    char bad[IM_CURVE_Z85_LEN + 2];

    s_pair(&p);
    im_curve_key_z85(&p.pub, z85);
    assert_string_equal(z85, p.pub_z85);

    memcpy(bad, p.pub_z85, IM_CURVE_Z85_LEN);
    bad[39] = '\0';
    assert_int_equal(im_curve_key_parse(bad, &k), -EINVAL);
    bad[39] = p.pub_z85[39];
    bad[40] = 'a';
    bad[41] = '\0';
    assert_int_equal(im_curve_key_parse(bad, &k), -EINVAL);
    /* '~' and ',' are outside the Z85 alphabet. */
    memcpy(bad, p.pub_z85, sizeof(p.pub_z85));
    bad[7] = '~';
    assert_int_equal(im_curve_key_parse(bad, &k), -EINVAL);
    bad[7] = ',';
    assert_int_equal(im_curve_key_parse(bad, &k), -EINVAL);
    bad[7] = (char)0xc3;
    assert_int_equal(im_curve_key_parse(bad, &k), -EINVAL);
    /* Every character valid, but "#####" is worth more than 2^32 - 1. */
    memcpy(bad, p.pub_z85, sizeof(p.pub_z85));
    memcpy(bad, "#####", 5);
    assert_int_equal(im_curve_key_parse(bad, &k), -EINVAL);
    assert_int_equal(im_curve_key_parse("", &k), -EINVAL);
    assert_int_equal(im_curve_key_parse(NULL, &k), -EINVAL);

    im_curve_key_clear(&p.sec);
    for (size_t i = 0; i < sizeof(p.sec.b); i++)
        assert_int_equal(p.sec.b[i], 0);
}

static void test_key_load_inline(void **state)
{
    s_tmp_t *t = *state;
    s_pair_t p;
    im_curve_key_t k;
    char err[256] = "";
    char arg[64];

    (void)t;
    s_pair(&p);
    assert_int_equal(
        im_curve_key_load(p.pub_z85, IM_CURVE_PUBLIC, &k, err, sizeof(err)), 0);
    assert_memory_equal(k.b, p.pub.b, 32);
    assert_int_equal(
        im_curve_key_load(p.sec_z85, IM_CURVE_SECRET, &k, err, sizeof(err)), 0);
    assert_memory_equal(k.b, p.sec.b, 32);

    /* A secret one character short: refused, and never echoed. */
    snprintf(arg, sizeof(arg), "%.39s", p.sec_z85);
    assert_int_equal(
        im_curve_key_load(arg, IM_CURVE_SECRET, &k, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "secret key"));
    assert_null(strstr(err, arg));
    /* 40 characters, not valid Z85. */
    snprintf(arg, sizeof(arg), "%.39s~", p.sec_z85);
    assert_int_equal(
        im_curve_key_load(arg, IM_CURVE_SECRET, &k, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "Z85"));
    assert_null(strstr(err, p.sec_z85 + 5));

    /* Public keys are named in messages. */
    snprintf(arg, sizeof(arg), "%.39s", p.pub_z85);
    assert_int_equal(
        im_curve_key_load(arg, IM_CURVE_PUBLIC, &k, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, arg));
    snprintf(arg, sizeof(arg), "%.39s~", p.pub_z85);
    assert_int_equal(
        im_curve_key_load(arg, IM_CURVE_PUBLIC, &k, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, arg));

    assert_int_equal(
        im_curve_key_load("", IM_CURVE_PUBLIC, &k, err, sizeof(err)), -EINVAL);
    assert_int_equal(
        im_curve_key_load(NULL, IM_CURVE_PUBLIC, &k, err, sizeof(err)),
        -EINVAL);
}

static void test_key_load_file(void **state)
{
    s_tmp_t *t = *state;
    s_pair_t p, q;
    im_curve_key_t k;
    char err[512] = "";
    char path[256], text[512];

    s_pair(&p);
    s_pair(&q);

    /* Comments, blank lines, surrounding whitespace, CRLF, no final
     * newline. */
    s_path(t, "w1.key", path, sizeof(path));
    snprintf(text, sizeof(text),
             "# imsplit CURVE secret key\r\n\n   \n  #indented comment\n"
             " \t%s  \r\n\n# trailing",
             p.sec_z85);
    s_write(path, text);
    assert_int_equal(
        im_curve_key_load(path, IM_CURVE_SECRET, &k, err, sizeof(err)), 0);
    assert_memory_equal(k.b, p.sec.b, 32);

    /* Wrong length: the file and the line are named, the text is not. */
    s_path(t, "short.key", path, sizeof(path));
    snprintf(text, sizeof(text), "# c\n%.39s\n", p.sec_z85);
    s_write(path, text);
    assert_int_equal(
        im_curve_key_load(path, IM_CURVE_SECRET, &k, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "line 2"));
    assert_non_null(strstr(err, "39"));
    assert_null(strstr(err, p.sec_z85 + 5));

    /* Right length, bad Z85. */
    s_path(t, "bad.key", path, sizeof(path));
    snprintf(text, sizeof(text), "%.39s~\n", p.sec_z85);
    s_write(path, text);
    assert_int_equal(
        im_curve_key_load(path, IM_CURVE_SECRET, &k, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "Z85"));
    assert_null(strstr(err, p.sec_z85 + 5));

    /* Two keys where one is expected. */
    s_path(t, "two.pub", path, sizeof(path));
    snprintf(text, sizeof(text), "%s\n%s\n", p.pub_z85, q.pub_z85);
    s_write(path, text);
    assert_int_equal(
        im_curve_key_load(path, IM_CURVE_PUBLIC, &k, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "more than one key"));

    /* Only comments. */
    s_path(t, "empty.pub", path, sizeof(path));
    s_write(path, "# nothing here\n\n");
    assert_int_equal(
        im_curve_key_load(path, IM_CURVE_PUBLIC, &k, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "no public key"));

    /* A NUL byte and an overlong line. */
    s_path(t, "nul.pub", path, sizeof(path));
    {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fwrite(p.pub_z85, 1, 20, f);
        fputc('\0', f);
        fwrite(p.pub_z85 + 20, 1, 20, f);
        fclose(f);
    }
    assert_int_equal(
        im_curve_key_load(path, IM_CURVE_PUBLIC, &k, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "NUL"));
    s_path(t, "long.pub", path, sizeof(path));
    {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        for (int i = 0; i < 2000; i++)
            fputc('#', f);
        fputc('\n', f);
        fclose(f);
    }
    assert_int_equal(
        im_curve_key_load(path, IM_CURVE_PUBLIC, &k, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "longer than"));

    /* Missing file, directory. */
    s_path(t, "missing.key", path, sizeof(path));
    assert_int_equal(
        im_curve_key_load(path, IM_CURVE_SECRET, &k, err, sizeof(err)),
        -ENOENT);
    assert_non_null(strstr(err, path));
    assert_int_equal(
        im_curve_key_load(t->dir, IM_CURVE_PUBLIC, &k, err, sizeof(err)),
        -EISDIR);
}

static void test_public_from_secret(void **state)
{
    (void)state;
    s_pair_t p;
    im_curve_key_t pub;

    s_pair(&p);
    assert_int_equal(im_curve_public_from_secret(&p.sec, &pub), 0);
    assert_memory_equal(pub.b, p.pub.b, 32);
    assert_int_equal(im_curve_public_from_secret(NULL, &pub), -EINVAL);
}

static void test_keygen_files(void **state)
{
    s_tmp_t *t = *state;
    char prefix[256], pub_path[300], key_path[300], err[512];
    char pub_text[256], key_text[256];
    im_curve_key_t pub, sec, derived;
    struct stat st;
    mode_t old_mask;

    s_path(t, "worker1", prefix, sizeof(prefix));
    snprintf(pub_path, sizeof(pub_path), "%s.pub", prefix);
    snprintf(key_path, sizeof(key_path), "%s.key", prefix);

    /* The modes are exact whatever the umask. */
    old_mask = umask(0077);
    assert_int_equal(im_curve_keygen_files(prefix, err, sizeof(err)), 0);
    umask(old_mask);

    assert_int_equal(stat(pub_path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(stat(key_path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    /* s_read() returns one static buffer: each text is copied out whole
     * (both files are under 100 bytes). */
    assert_true(strlen(s_read(pub_path)) < sizeof(pub_text));
    strcpy(pub_text, s_read(pub_path));
    assert_true(strlen(s_read(key_path)) < sizeof(key_text));
    strcpy(key_text, s_read(key_path));
    assert_int_equal(strncmp(pub_text, "# imsplit CURVE public key\n", 27), 0);
    assert_int_equal(strncmp(key_text, "# imsplit CURVE secret key\n", 27), 0);
    assert_int_equal(strlen(pub_text), 27 + 40 + 1);
    assert_int_equal(strlen(key_text), 27 + 40 + 1);

    assert_int_equal(
        im_curve_key_load(pub_path, IM_CURVE_PUBLIC, &pub, err, sizeof(err)),
        0);
    assert_int_equal(
        im_curve_key_load(key_path, IM_CURVE_SECRET, &sec, err, sizeof(err)),
        0);
    assert_int_equal(im_curve_public_from_secret(&sec, &derived), 0);
    assert_memory_equal(derived.b, pub.b, 32);

    /* Never overwritten. */
    assert_int_equal(im_curve_keygen_files(prefix, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, key_path));
    assert_string_equal(s_read(pub_path), pub_text);
    assert_string_equal(s_read(key_path), key_text);

    /* A lone .pub is not replaced either, and no .key is left behind. */
    assert_int_equal(unlink(key_path), 0);
    assert_int_equal(im_curve_keygen_files(prefix, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, pub_path));
    assert_int_equal(stat(key_path, &st), -1);
    assert_string_equal(s_read(pub_path), pub_text);

    assert_int_equal(im_curve_keygen_files("", err, sizeof(err)), -EINVAL);
    s_path(t, "no/such/dir/w", prefix, sizeof(prefix));
    assert_int_equal(im_curve_keygen_files(prefix, err, sizeof(err)), -ENOENT);
}

/* --- allow-lists ------------------------------------------------------- */

static void test_allow_list(void **state)
{
    s_tmp_t *t = *state;
    s_pair_t a, b, c, d, e, stranger;
    char err[512], path[320], dir[256], text[512];
    im_curve_allow_t *allow, *copy;

    s_pair(&a);
    s_pair(&b);
    s_pair(&c);
    s_pair(&d);
    s_pair(&e);
    s_pair(&stranger);

    /* keys/: two .pub files, a secret key and a note, all but the .pub
     * files ignored. */
    s_path(t, "keys", dir, sizeof(dir));
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof(path), "%s/c.pub", dir);
    snprintf(text, sizeof(text), "# imsplit CURVE public key\n%s\n", c.pub_z85);
    s_write(path, text);
    snprintf(path, sizeof(path), "%s/d.pub", dir);
    snprintf(text, sizeof(text), "# imsplit CURVE public key\n%s\n", d.pub_z85);
    s_write(path, text);
    snprintf(path, sizeof(path), "%s/e.key", dir);
    snprintf(text, sizeof(text), "# imsplit CURVE secret key\n%s\n", e.sec_z85);
    s_write(path, text);
    snprintf(path, sizeof(path), "%s/README", dir);
    s_write(path, "not a key\n");

    /* A list file: several keys, a duplicate. */
    s_path(t, "workers.list", path, sizeof(path));
    snprintf(text, sizeof(text), "# workers\n%s\n\n  %s\n%s\n", b.pub_z85,
             d.pub_z85, b.pub_z85);
    s_write(path, text);

    {
        const char *args[] = {a.pub_z85, path, dir};
        allow = im_curve_allow_load(args, 3, err, sizeof(err));
    }
    assert_non_null(allow);
    assert_int_equal(im_curve_allow_count(allow), 4);
    assert_true(im_curve_allow_contains(allow, a.pub.b));
    assert_true(im_curve_allow_contains(allow, b.pub.b));
    assert_true(im_curve_allow_contains(allow, c.pub.b));
    assert_true(im_curve_allow_contains(allow, d.pub.b));
    assert_false(im_curve_allow_contains(allow, e.pub.b));
    assert_false(im_curve_allow_contains(allow, e.sec.b));
    assert_false(im_curve_allow_contains(allow, stranger.pub.b));
    assert_false(im_curve_allow_contains(NULL, a.pub.b));

    /* Failed arguments leave the list as it was. */
    snprintf(path, sizeof(path), "%s/e.key", dir);
    assert_int_equal(im_curve_allow_add_arg(allow, path, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, ".pub"));
    s_path(t, "half.list", path, sizeof(path));
    snprintf(text, sizeof(text), "%s\n%.39s\n", e.pub_z85, stranger.pub_z85);
    s_write(path, text);
    assert_int_equal(im_curve_allow_add_arg(allow, path, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "line 2"));
    assert_int_equal(im_curve_allow_count(allow), 4);
    assert_false(im_curve_allow_contains(allow, e.pub.b));
    s_path(t, "empty", path, sizeof(path));
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(im_curve_allow_add_arg(allow, path, err, sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, "no *.pub"));
    s_path(t, "nope.pub", path, sizeof(path));
    assert_int_equal(im_curve_allow_add_arg(allow, path, err, sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, path));

    /* Single adds, duplicates, copies. */
    assert_int_equal(im_curve_allow_add(allow, &a.pub), 0);
    assert_int_equal(im_curve_allow_count(allow), 4);
    assert_int_equal(im_curve_allow_add(allow, &e.pub), 0);
    assert_int_equal(im_curve_allow_count(allow), 5);
    copy = im_curve_allow_dup(allow);
    assert_non_null(copy);
    im_curve_allow_destroy(&allow);
    assert_null(allow);
    im_curve_allow_destroy(&allow);
    assert_int_equal(im_curve_allow_count(copy), 5);
    assert_true(im_curve_allow_contains(copy, e.pub.b));
    assert_true(im_curve_allow_contains(copy, c.pub.b));
    im_curve_allow_destroy(&copy);

    {
        const char *args[] = {a.pub_z85, "/nonexistent/keys"};
        assert_null(im_curve_allow_load(args, 2, err, sizeof(err)));
        assert_non_null(strstr(err, "/nonexistent/keys"));
    }
}

/* --- ZAP handler and CURVE sockets --------------------------------------- */

static void s_server_curve(im_zmq_curve_t *cfg, const s_pair_t *server)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->secret_key = server->sec;
    cfg->zap_domain = DOMAIN;
}

static void s_client_curve(im_zmq_curve_t *cfg, const s_pair_t *client,
                           const s_pair_t *server)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->secret_key = client->sec;
    cfg->public_key = client->pub;
    cfg->server_key = server->pub;
}

static void s_last_endpoint(void *sock, char *buf, size_t size)
{
    assert_int_equal(zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, buf, &size), 0);
}

static int s_poll_in(void *sock, long ms)
{
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    int rc = zmq_poll(&it, 1, ms);
    assert_true(rc >= 0);
    return (it.revents & ZMQ_POLLIN) != 0;
}

/* Receives [routing id, body] on the router; returns the User-Id property
 * of the body in user (empty if none). */
static void s_router_recv(void *router, char *rid, size_t rid_size, char *body,
                          size_t body_size, char *user, size_t user_size)
{
    zmq_msg_t m;
    int n;
    const char *uid;

    n = zmq_recv(router, rid, rid_size - 1, 0);
    assert_true(n >= 0);
    rid[n] = '\0';
    assert_int_equal(zmq_msg_init(&m), 0);
    n = zmq_msg_recv(&m, router, 0);
    assert_true(n >= 0 && (size_t)n < body_size);
    memcpy(body, zmq_msg_data(&m), (size_t)n);
    body[n] = '\0';
    uid = zmq_msg_gets(&m, "User-Id");
    snprintf(user, user_size, "%s", uid ? uid : "");
    zmq_msg_close(&m);
}

/* Waits (bounded) until the handler has refused at least `n` requests. */
static void s_wait_denied(im_zap_t *zap, uint64_t n)
{
    for (int waited = 0; im_zap_denied(zap) < n && waited < WAIT_MS;
         waited += 10)
        usleep(10 * 1000);
    assert_true(im_zap_denied(zap) >= n);
}

static void test_curve_end_to_end(void **state)
{
    s_tmp_t *t = *state;
    s_pair_t server, good, stranger;
    im_zmq_curve_t scfg, gcfg, xcfg;
    im_curve_allow_t *allow;
    im_zap_t *zap;
    void *zctx, *router, *dealer, *bad, *plain;
    char ep[256], rid[64], body[64], user[64], logpath[256];
    int val = 0, saved_err;
    size_t len = sizeof(val);
    char *log;

    s_pair(&server);
    s_pair(&good);
    s_pair(&stranger);

    /* Capture the log lines of this test. */
    s_path(t, "log", logpath, sizeof(logpath));
    fflush(stderr);
    saved_err = dup(STDERR_FILENO);
    assert_true(saved_err >= 0);
    {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_true(dup2(fd, STDERR_FILENO) >= 0);
        close(fd);
    }

    zctx = zmq_ctx_new();
    assert_non_null(zctx);
    allow = im_curve_allow_new();
    assert_non_null(allow);
    assert_int_equal(im_curve_allow_add(allow, &good.pub), 0);

    zap = im_zap_start(zctx, allow, DOMAIN);
    assert_non_null(zap);
    /* The handler has its own copy. */
    im_curve_allow_destroy(&allow);

    s_server_curve(&scfg, &server);
    router = im_zmq_router_bind_opts(zctx, "tcp://127.0.0.1:*", &scfg);
    assert_non_null(router);
    im_curve_key_clear(&scfg.secret_key);
    assert_int_equal(zmq_getsockopt(router, ZMQ_ZAP_ENFORCE_DOMAIN, &val, &len),
                     0);
    assert_int_equal(val, 1);
    s_last_endpoint(router, ep, sizeof(ep));

    /* An allowed worker: both directions work; User-Id is its key. */
    s_client_curve(&gcfg, &good, &server);
    dealer = im_zmq_dealer_connect_opts(zctx, ep, "w-good", &gcfg);
    assert_non_null(dealer);
    assert_int_equal(zmq_send(dealer, "hello", 5, 0), 5);
    assert_true(s_poll_in(router, WAIT_MS));
    s_router_recv(router, rid, sizeof(rid), body, sizeof(body), user,
                  sizeof(user));
    assert_string_equal(rid, "w-good");
    assert_string_equal(body, "hello");
    assert_string_equal(user, good.pub_z85);
    assert_int_equal(zmq_send(router, "w-good", 6, ZMQ_SNDMORE), 6);
    assert_int_equal(zmq_send(router, "ack", 3, 0), 3);
    assert_true(s_poll_in(dealer, WAIT_MS));
    assert_int_equal(zmq_recv(dealer, body, sizeof(body), 0), 3);
    assert_int_equal(memcmp(body, "ack", 3), 0);
    assert_int_equal(im_zap_allowed(zap), 1);

    /* A worker that knows the server key but is not listed. */
    s_client_curve(&xcfg, &stranger, &server);
    bad = im_zmq_dealer_connect_opts(zctx, ep, "w-bad", &xcfg);
    assert_non_null(bad);
    assert_int_equal(zmq_send(bad, "let me in", 9, 0), 9);
    s_wait_denied(zap, 1);
    assert_false(s_poll_in(router, REFUSED_MS));

    /* A plain worker: the mechanisms differ, nothing reaches the router. */
    plain = im_zmq_dealer_connect(zctx, ep, "w-plain");
    assert_non_null(plain);
    assert_int_equal(zmq_send(plain, "plain", 5, 0), 5);
    assert_false(s_poll_in(router, REFUSED_MS));
    assert_int_equal(im_zap_allowed(zap), 1);

    /* The allowed worker is still served. */
    assert_int_equal(zmq_send(dealer, "again", 5, 0), 5);
    assert_true(s_poll_in(router, WAIT_MS));
    s_router_recv(router, rid, sizeof(rid), body, sizeof(body), user,
                  sizeof(user));
    assert_string_equal(rid, "w-good");
    assert_string_equal(body, "again");

    im_zmq_close(&plain);
    im_zmq_close(&bad);
    im_zmq_close(&dealer);
    im_zmq_close(&router);
    im_zap_stop(&zap);
    assert_null(zap);
    im_zap_stop(&zap);
    im_zap_stop(NULL);
    assert_int_equal(zmq_ctx_term(zctx), 0);

    fflush(stderr);
    assert_true(dup2(saved_err, STDERR_FILENO) >= 0);
    close(saved_err);

    log = s_read(logpath);
    {
        char want[128], q[64];
        snprintf(want, sizeof(want), "event=zap_allowed key=%s address=",
                 im_log_quote(q, sizeof(q), good.pub_z85));
        assert_non_null(strstr(log, want));
        snprintf(want, sizeof(want), "key=%s",
                 im_log_quote(q, sizeof(q), stranger.pub_z85));
        assert_non_null(strstr(log, want));
    }
    assert_non_null(strstr(log, "event=zap_denied"));
    assert_non_null(strstr(log, "why=key_not_allowed"));
    assert_null(strstr(log, server.sec_z85));
    assert_null(strstr(log, good.sec_z85));
    assert_null(strstr(log, stranger.sec_z85));
    fputs(log, stderr);
}

/* A CURVE server with no ZAP handler refuses everyone: ZAP_ENFORCE_DOMAIN
 * keeps CURVE from admitting any client that knows the server key. */
static void test_curve_without_handler_fails_closed(void **state)
{
    (void)state;
    s_pair_t server, client;
    im_zmq_curve_t scfg, ccfg;
    void *zctx, *router, *dealer;
    char ep[256];

    s_pair(&server);
    s_pair(&client);
    zctx = zmq_ctx_new();
    assert_non_null(zctx);
    s_server_curve(&scfg, &server);
    router = im_zmq_router_bind_opts(zctx, "tcp://127.0.0.1:*", &scfg);
    assert_non_null(router);
    s_last_endpoint(router, ep, sizeof(ep));
    s_client_curve(&ccfg, &client, &server);
    dealer = im_zmq_dealer_connect_opts(zctx, ep, "w1", &ccfg);
    assert_non_null(dealer);
    assert_int_equal(zmq_send(dealer, "hello", 5, 0), 5);
    assert_false(s_poll_in(router, REFUSED_MS));

    /* A CURVE server needs a domain. */
    scfg.zap_domain = "";
    errno = 0;
    assert_null(im_zmq_router_bind_opts(zctx, "tcp://127.0.0.1:*", &scfg));
    assert_int_equal(errno, EINVAL);

    im_zmq_close(&dealer);
    im_zmq_close(&router);
    assert_int_equal(zmq_ctx_term(zctx), 0);
}

/* Sends a forged request over REQ and checks the reply's status code and
 * request id; returns the user id frame's length. */
static size_t s_forged(void *req, const char *const *frames,
                       const size_t *sizes, size_t n, const char *want_code,
                       const char *want_id)
{
    char buf[256];
    int more = 1, i = 0, len;
    size_t user_len = 0;

    for (size_t f = 0; f < n; f++)
        assert_true(zmq_send(req, frames[f], sizes[f],
                             f + 1 < n ? ZMQ_SNDMORE : 0) >= 0);
    assert_true(s_poll_in(req, WAIT_MS));
    while (more) {
        size_t more_len = sizeof(more);
        len = zmq_recv(req, buf, sizeof(buf) - 1, 0);
        assert_true(len >= 0);
        buf[len] = '\0';
        if (i == 0)
            assert_string_equal(buf, "1.0");
        if (i == 1)
            assert_string_equal(buf, want_id);
        if (i == 2)
            assert_string_equal(buf, want_code);
        if (i == 4)
            user_len = (size_t)len;
        i++;
        assert_int_equal(zmq_getsockopt(req, ZMQ_RCVMORE, &more, &more_len), 0);
    }
    assert_int_equal(i, 6);
    return user_len;
}

static void test_zap_forged_requests(void **state)
{
    (void)state;
    s_pair_t good, other;
    im_curve_allow_t *allow;
    im_zap_t *zap;
    void *zctx, *req;
    char big[300];

    s_pair(&good);
    s_pair(&other);
    zctx = zmq_ctx_new();
    assert_non_null(zctx);
    allow = im_curve_allow_new();
    assert_non_null(allow);
    assert_int_equal(im_curve_allow_add(allow, &good.pub), 0);

    errno = 0;
    assert_null(im_zap_start(zctx, allow, ""));
    assert_int_equal(errno, EINVAL);
    zap = im_zap_start(zctx, allow, DOMAIN);
    assert_non_null(zap);
    /* One handler per context. */
    errno = 0;
    assert_null(im_zap_start(zctx, allow, DOMAIN));
    assert_int_equal(errno, EADDRINUSE);
    im_curve_allow_destroy(&allow);

    req = zmq_socket(zctx, ZMQ_REQ);
    assert_non_null(req);
    {
        int zero = 0;
        zmq_setsockopt(req, ZMQ_LINGER, &zero, sizeof(zero));
    }
    assert_int_equal(zmq_connect(req, "inproc://zeromq.zap.01"), 0);

    {
        const char *f[] = {"1.0",
                           "7",
                           DOMAIN,
                           "127.0.0.1",
                           "",
                           "CURVE",
                           (const char *)good.pub.b};
        size_t s[] = {3, 1, strlen(DOMAIN), 9, 0, 5, 32};
        assert_int_equal(s_forged(req, f, s, 7, "200", "7"), 40);
    }
    {
        const char *f[] = {"1.0",
                           "8",
                           DOMAIN,
                           "127.0.0.1",
                           "",
                           "CURVE",
                           (const char *)other.pub.b};
        size_t s[] = {3, 1, strlen(DOMAIN), 9, 0, 5, 32};
        assert_int_equal(s_forged(req, f, s, 7, "400", "8"), 0);
    }
    {
        /* Wrong domain. */
        const char *f[] = {"1.0",
                           "9",
                           "other",
                           "127.0.0.1",
                           "",
                           "CURVE",
                           (const char *)good.pub.b};
        size_t s[] = {3, 1, 5, 9, 0, 5, 32};
        assert_int_equal(s_forged(req, f, s, 7, "400", "9"), 0);
    }
    {
        /* Other mechanisms. */
        const char *f[] = {"1.0", "10",    DOMAIN, "127.0.0.1",
                           "",    "PLAIN", "user", "password"};
        size_t s[] = {3, 2, strlen(DOMAIN), 9, 0, 5, 4, 8};
        s_forged(req, f, s, 8, "400", "10");
        const char *g[] = {"1.0", "11", DOMAIN, "127.0.0.1", "", "NULL"};
        size_t t[] = {3, 2, strlen(DOMAIN), 9, 0, 4};
        s_forged(req, g, t, 6, "400", "11");
    }
    {
        /* Short credentials, missing credentials, extra frames. */
        const char *f[] = {"1.0",
                           "12",
                           DOMAIN,
                           "127.0.0.1",
                           "",
                           "CURVE",
                           (const char *)good.pub.b,
                           "x",
                           "y",
                           "z"};
        size_t s[] = {3, 2, strlen(DOMAIN), 9, 0, 5, 31, 1, 1, 1};
        s_forged(req, f, s, 7, "500", "12");
        s_forged(req, f, s, 6, "500", "12");
        s[6] = 32;
        s_forged(req, f, s, 10, "500", "12");
    }
    {
        /* Wrong version, too few frames, a lone frame, binary junk. */
        const char *f[] = {"2.0",
                           "13",
                           DOMAIN,
                           "127.0.0.1",
                           "",
                           "CURVE",
                           (const char *)good.pub.b};
        size_t s[] = {3, 2, strlen(DOMAIN), 9, 0, 5, 32};
        s_forged(req, f, s, 7, "500", "13");
        f[0] = "1.0";
        s_forged(req, f, s, 3, "500", "13");
        s_forged(req, f, s, 1, "500", "");
        memset(big, 0, sizeof(big));
        const char *j[] = {"1.0", "14", big, big, big, big, big};
        size_t js[] = {3,           2,           sizeof(big), sizeof(big),
                       sizeof(big), sizeof(big), sizeof(big)};
        s_forged(req, j, js, 7, "400", "14");
        const char *e[] = {""};
        size_t es[] = {0};
        s_forged(req, e, es, 1, "500", "");
    }
    assert_int_equal(im_zap_allowed(zap), 1);
    assert_int_equal(im_zap_denied(zap), 12);

    zmq_close(req);
    im_zap_stop(&zap);
    assert_int_equal(zmq_ctx_term(zctx), 0);
}

/* Stopping an idle handler, and starting again in the same context. */
static void test_zap_stop_restart(void **state)
{
    (void)state;
    im_curve_allow_t *allow = im_curve_allow_new();
    void *zctx = zmq_ctx_new();
    void *other;
    im_zap_t *zap;

    assert_non_null(allow);
    assert_non_null(zctx);
    /* The owner keeps a socket of its own open across the stop. */
    other = zmq_socket(zctx, ZMQ_PAIR);
    assert_non_null(other);
    assert_int_equal(zmq_bind(other, "inproc://owner"), 0);
    for (int i = 0; i < 3; i++) {
        zap = im_zap_start(zctx, allow, DOMAIN);
        assert_non_null(zap);
        assert_int_equal(im_zap_denied(zap), 0);
        im_zap_stop(&zap);
        assert_null(zap);
    }
    assert_int_equal(zmq_close(other), 0);
    im_curve_allow_destroy(&allow);
    assert_int_equal(zmq_ctx_term(zctx), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_parse),
        cmocka_unit_test_setup_teardown(test_key_load_inline, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_key_load_file, s_setup,
                                        s_teardown),
        cmocka_unit_test(test_public_from_secret),
        cmocka_unit_test_setup_teardown(test_keygen_files, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_allow_list, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_curve_end_to_end, s_setup,
                                        s_teardown),
        cmocka_unit_test(test_curve_without_handler_fails_closed),
        cmocka_unit_test(test_zap_forged_requests),
        cmocka_unit_test(test_zap_stop_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
