#include "up_leg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Bucket counts are powers of two sized from the capacity, within these. */
#define UP_LEGS_BUCKETS_MIN 16u
#define UP_LEGS_BUCKETS_MAX (1u << 20)
/* Fresh ids tried before allocation gives up (a clash is ~2^-119 likely). */
#define UP_LEGS_ID_TRIES 8

struct up_legs {
    up_leg_ops_t ops;
    void *ops_arg;
    uint32_t capacity;
    size_t buf_start;
    size_t buf_max;
    up_leg_t **by_key;
    up_leg_t **by_msrp;
    size_t nbuckets;
    up_leg_t *all; /* live legs, newest first */
    size_t count;
    size_t sockets;
    size_t buffer_bytes;
    size_t zombies;
};

static const char s_alnum[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

const char *up_dir_name(up_dir_t dir)
{
    return dir == UP_DIR_CLIENT ? "client" : "controlling";
}

int up_leg_random_id(char *buf, size_t n)
{
    size_t filled = 0;
    while (filled < n) {
        uint8_t raw[64];
        ssize_t got = getrandom(raw, sizeof(raw), 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (ssize_t i = 0; i < got && filled < n; i++) {
            /* 248 = 4 * 62: rejecting the rest keeps the draw unbiased. */
            if (raw[i] < 248)
                buf[filled++] = s_alnum[raw[i] % 62];
        }
    }
    buf[n] = '\0';
    return 0;
}

static size_t s_key_bucket(const up_legs_t *t, uint64_t sid, up_dir_t dir)
{
    uint64_t h = (sid ^ ((uint64_t)dir << 63)) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (t->nbuckets - 1);
}

static size_t s_msrp_bucket(const up_legs_t *t, const char *id, size_t len)
{
    /* FNV-1a: ids are random already, this only spreads them. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 0x100000001b3ull;
    }
    return (size_t)h & (t->nbuckets - 1);
}

up_legs_t *up_legs_new(uint32_t capacity, size_t buf_start, size_t buf_max,
                       const up_leg_ops_t *ops, void *ops_arg)
{
    if (capacity == 0 || buf_start == 0 || buf_max < buf_start)
        return NULL;
    up_legs_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (ops)
        t->ops = *ops;
    t->ops_arg = ops_arg;
    t->capacity = capacity;
    t->buf_start = buf_start;
    t->buf_max = buf_max;
    size_t n = UP_LEGS_BUCKETS_MIN;
    while (n < capacity && n < UP_LEGS_BUCKETS_MAX)
        n <<= 1;
    t->nbuckets = n;
    t->by_key = calloc(n, sizeof(*t->by_key));
    t->by_msrp = calloc(n, sizeof(*t->by_msrp));
    if (!t->by_key || !t->by_msrp) {
        up_legs_destroy(&t);
        return NULL;
    }
    return t;
}

static void s_leg_free(up_leg_t *leg)
{
    free(leg->call_id);
    free(leg->peer_path);
    free(leg->buf);
    free(leg);
}

void up_legs_destroy(up_legs_t **t_p)
{
    if (!t_p || !*t_p)
        return;
    up_legs_t *t = *t_p;
    up_leg_t *leg = t->all;
    while (leg) {
        up_leg_t *next = leg->next_all;
        s_leg_free(leg);
        leg = next;
    }
    /* Zombies are reachable only through their connections, which are
     * gone by contract when the table is destroyed. */
    free(t->by_key);
    free(t->by_msrp);
    free(t);
    *t_p = NULL;
}

up_leg_t *up_legs_find(const up_legs_t *t, uint64_t session_id, up_dir_t dir)
{
    if (!t)
        return NULL;
    for (up_leg_t *l = t->by_key[s_key_bucket(t, session_id, dir)]; l;
         l = l->next_key) {
        if (l->session_id == session_id && l->dir == dir)
            return l;
    }
    return NULL;
}

up_leg_t *up_legs_find_msrp(const up_legs_t *t, const char *msrp_id,
                            size_t len)
{
    if (!t || !msrp_id || len != UP_LEG_MSRP_ID_LEN)
        return NULL;
    for (up_leg_t *l = t->by_msrp[s_msrp_bucket(t, msrp_id, len)]; l;
         l = l->next_msrp) {
        if (memcmp(l->msrp_id, msrp_id, len) == 0)
            return l;
    }
    return NULL;
}

int up_legs_allocate(up_legs_t *t, uint64_t session_id, up_dir_t dir,
                     uint64_t cp_epoch, const char *call_id, const char *host,
                     unsigned port, up_leg_t **out, bool *created)
{
    if (created)
        *created = false;
    if (dir != UP_DIR_CLIENT && dir != UP_DIR_CONTROLLING)
        return -EINVAL;
    up_leg_t *leg = up_legs_find(t, session_id, dir);
    if (leg) {
        if (out)
            *out = leg;
        return 0;
    }
    if (t->count >= t->capacity)
        return -ENOSPC;
    leg = calloc(1, sizeof(*leg));
    if (!leg)
        return -ENOMEM;
    leg->session_id = session_id;
    leg->dir = dir;
    leg->cp_epoch = cp_epoch;
    int rc = -ENOMEM;
    if (call_id && *call_id) {
        leg->call_id = strndup(call_id, UP_LEG_CALL_ID_MAX);
        if (!leg->call_id)
            goto fail;
    }
    rc = -EEXIST;
    for (int i = 0; i < UP_LEGS_ID_TRIES && rc == -EEXIST; i++) {
        rc = up_leg_random_id(leg->msrp_id, UP_LEG_MSRP_ID_LEN);
        if (rc == 0 &&
            up_legs_find_msrp(t, leg->msrp_id, UP_LEG_MSRP_ID_LEN))
            rc = -EEXIST;
    }
    if (rc < 0)
        goto fail;
    int n = im_msrp_uri_format(leg->path, sizeof(leg->path), host, port,
                               leg->msrp_id);
    if (n < 0 || (size_t)n >= sizeof(leg->path) || !host || !*host ||
        port == 0 || port > 65535) {
        rc = -EINVAL;
        goto fail;
    }
    /* No buffer yet: most legs never need one, and an idle leg stays
     * small. */
    size_t kb = s_key_bucket(t, session_id, dir);
    leg->next_key = t->by_key[kb];
    t->by_key[kb] = leg;
    size_t mb = s_msrp_bucket(t, leg->msrp_id, UP_LEG_MSRP_ID_LEN);
    leg->next_msrp = t->by_msrp[mb];
    t->by_msrp[mb] = leg;
    leg->next_all = t->all;
    if (t->all)
        t->all->prev_all = leg;
    t->all = leg;
    t->count++;
    if (out)
        *out = leg;
    if (created)
        *created = true;
    return 0;
fail:
    s_leg_free(leg);
    return rc;
}

bool up_leg_same_owner(const up_leg_t *leg, uint64_t cp_epoch,
                       const char *call_id)
{
    const char *mine = leg->call_id ? leg->call_id : "";
    return leg->cp_epoch == cp_epoch &&
           strncmp(mine, call_id ? call_id : "", UP_LEG_CALL_ID_MAX) == 0;
}

int up_leg_set_peer_path(up_leg_t *leg, const char *path)
{
    if (!path || !*path || strlen(path) > UP_LEG_PEER_PATH_MAX)
        return -EINVAL;
    if (leg->peer_path && strcmp(leg->peer_path, path) == 0)
        return 0;
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    free(leg->peer_path);
    leg->peer_path = copy;
    return 0;
}

static void s_unlink(up_legs_t *t, up_leg_t *leg)
{
    up_leg_t **pp = &t->by_key[s_key_bucket(t, leg->session_id, leg->dir)];
    while (*pp && *pp != leg)
        pp = &(*pp)->next_key;
    if (*pp)
        *pp = leg->next_key;
    pp = &t->by_msrp[s_msrp_bucket(t, leg->msrp_id, UP_LEG_MSRP_ID_LEN)];
    while (*pp && *pp != leg)
        pp = &(*pp)->next_msrp;
    if (*pp)
        *pp = leg->next_msrp;
    if (leg->prev_all)
        leg->prev_all->next_all = leg->next_all;
    else
        t->all = leg->next_all;
    if (leg->next_all)
        leg->next_all->prev_all = leg->prev_all;
    leg->next_key = leg->next_msrp = leg->prev_all = leg->next_all = NULL;
    t->count--;
}

/* Phase one of the teardown; phase two is s_leg_free, here or from
 * up_legs_conn_closed. */
static void s_release(up_legs_t *t, up_leg_t *leg)
{
    s_unlink(t, leg);
    leg->released = true;
    if (t->ops.released)
        t->ops.released(leg, t->ops_arg);
    t->buffer_bytes -= leg->buf_cap + leg->held;
    leg->held = 0;
    free(leg->buf);
    leg->buf = NULL;
    leg->buf_len = leg->buf_cap = leg->buf_frames = 0;
    up_conn_t *conn = leg->conn;
    if (conn) {
        leg->conn = NULL;
        t->sockets--;
        if (t->ops.conn_close) {
            leg->closes_pending++;
            t->zombies++;
            t->ops.conn_close(conn, t->ops_arg);
            return;
        }
    }
    s_leg_free(leg);
}

int up_legs_release(up_legs_t *t, uint64_t session_id, up_dir_t dir,
                    up_leg_counters_t *out)
{
    up_leg_t *leg = up_legs_find(t, session_id, dir);
    if (!leg)
        return -ENOENT;
    if (out)
        *out = leg->counters;
    s_release(t, leg);
    return 0;
}

static size_t s_release_where(up_legs_t *t, bool all, uint64_t keep_epoch,
                              up_leg_visit_cb *cb, void *arg)
{
    size_t n = 0;
    up_leg_t *leg = t->all;
    while (leg) {
        up_leg_t *next = leg->next_all;
        if (all || leg->cp_epoch != keep_epoch) {
            if (cb)
                cb(leg, arg);
            s_release(t, leg);
            n++;
        }
        leg = next;
    }
    return n;
}

size_t up_legs_release_stale(up_legs_t *t, uint64_t keep_epoch,
                             up_leg_visit_cb *cb, void *arg)
{
    return s_release_where(t, false, keep_epoch, cb, arg);
}

size_t up_legs_release_all(up_legs_t *t, up_leg_visit_cb *cb, void *arg)
{
    return s_release_where(t, true, 0, cb, arg);
}

void up_legs_foreach(const up_legs_t *t, up_leg_visit_cb *cb, void *arg)
{
    for (const up_leg_t *leg = t->all; leg; leg = leg->next_all)
        cb(leg, arg);
}

int up_legs_attach_conn(up_legs_t *t, up_leg_t *leg, up_conn_t *conn)
{
    if (!conn || leg->released)
        return -EINVAL;
    if (leg->conn)
        return -EBUSY;
    leg->conn = conn;
    t->sockets++;
    return 0;
}

void up_legs_detach_conn(up_legs_t *t, up_leg_t *leg)
{
    if (!leg->conn)
        return;
    leg->conn = NULL;
    t->sockets--;
}

void up_legs_conn_closed(up_legs_t *t, up_leg_t *leg)
{
    if (!leg || leg->closes_pending == 0)
        return;
    if (--leg->closes_pending > 0 || !leg->released)
        return;
    t->zombies--;
    s_leg_free(leg);
}

int up_legs_buf_reserve(up_legs_t *t, up_leg_t *leg, size_t need)
{
    if (need <= leg->buf_cap)
        return 0;
    if (need > t->buf_max || leg->released)
        return -ENOBUFS;
    size_t cap = leg->buf_cap ? leg->buf_cap : t->buf_start;
    while (cap < need)
        cap = cap > t->buf_max / 2 ? t->buf_max : cap * 2;
    uint8_t *buf = realloc(leg->buf, cap);
    if (!buf)
        return -ENOMEM;
    t->buffer_bytes += cap - leg->buf_cap;
    leg->buf = buf;
    leg->buf_cap = cap;
    return 0;
}

void up_legs_buf_free(up_legs_t *t, up_leg_t *leg)
{
    if (!leg->buf)
        return;
    t->buffer_bytes -= leg->buf_cap;
    free(leg->buf);
    leg->buf = NULL;
    leg->buf_len = leg->buf_cap = leg->buf_frames = 0;
}

void up_legs_account(up_legs_t *t, up_leg_t *leg, int64_t delta)
{
    if (!t || !leg || leg->released || delta == 0)
        return;
    if (delta < 0 && (uint64_t)-delta > leg->held)
        delta = -(int64_t)leg->held; /* never below zero */
    leg->held = (size_t)((int64_t)leg->held + delta);
    t->buffer_bytes = (size_t)((int64_t)t->buffer_bytes + delta);
}

size_t up_legs_count(const up_legs_t *t)
{
    return t ? t->count : 0;
}

uint32_t up_legs_capacity(const up_legs_t *t)
{
    return t ? t->capacity : 0;
}

size_t up_legs_sockets(const up_legs_t *t)
{
    return t ? t->sockets : 0;
}

size_t up_legs_buffer_bytes(const up_legs_t *t)
{
    return t ? t->buffer_bytes : 0;
}

size_t up_legs_zombies(const up_legs_t *t)
{
    return t ? t->zombies : 0;
}
