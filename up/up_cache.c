#include "up_cache.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Bucket counts are powers of two sized from max_entries, within these. */
#define UP_CACHE_BUCKETS_MIN 16u
#define UP_CACHE_BUCKETS_MAX (1u << 20)

typedef struct s_entry {
    struct s_entry *newer; /* FIFO towards the tail */
    struct s_entry *next_hash;
    struct s_entry **pprev_hash; /* the pointer that points at this entry */
    uint64_t epoch;
    uint64_t seq;
    uint64_t at_ms;
    uint64_t hash;
    uint64_t command_fp; /* up_cache_fingerprint() of the command */
    size_t len; /* answer bytes */
    size_t sender_len;
    /* The sender id (not NUL-terminated), then the answer. */
    uint8_t data[];
} s_entry_t;

struct up_cache {
    s_entry_t **buckets;
    size_t nbuckets;
    s_entry_t *oldest;
    s_entry_t *newest;
    size_t count;
    size_t max_entries;
    uint64_t ttl_ms;
    size_t bytes;
    uint64_t evicted;
};

static uint64_t s_hash(const char *sender, size_t n, uint64_t epoch,
                       uint64_t seq)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over the sender */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)sender[i];
        h *= 0x100000001b3ull;
    }
    h ^= epoch * 0x9E3779B97F4A7C15ull;
    h ^= seq * 0xC2B2AE3D27D4EB4Full;
    return h ^ (h >> 29);
}

static size_t s_entry_size(const s_entry_t *e)
{
    return sizeof(*e) + e->sender_len + e->len;
}

up_cache_t *up_cache_new(size_t max_entries, uint64_t ttl_ms)
{
    if (max_entries == 0 || ttl_ms == 0)
        return NULL;
    up_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    size_t n = UP_CACHE_BUCKETS_MIN;
    while (n < max_entries && n < UP_CACHE_BUCKETS_MAX)
        n <<= 1;
    c->buckets = calloc(n, sizeof(*c->buckets));
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    c->nbuckets = n;
    c->max_entries = max_entries;
    c->ttl_ms = ttl_ms;
    return c;
}

void up_cache_destroy(up_cache_t **c_p)
{
    if (!c_p || !*c_p)
        return;
    up_cache_t *c = *c_p;
    s_entry_t *e = c->oldest;
    while (e) {
        s_entry_t *next = e->newer;
        free(e);
        e = next;
    }
    free(c->buckets);
    free(c);
    *c_p = NULL;
}

/* Entries leave only from the FIFO head: every bound removes the oldest. */
static void s_drop_oldest(up_cache_t *c)
{
    s_entry_t *e = c->oldest;
    c->oldest = e->newer;
    if (!c->oldest)
        c->newest = NULL;
    *e->pprev_hash = e->next_hash;
    if (e->next_hash)
        e->next_hash->pprev_hash = e->pprev_hash;
    c->count--;
    c->bytes -= s_entry_size(e);
    free(e);
}

static bool s_expired(const up_cache_t *c, const s_entry_t *e, uint64_t now)
{
    return now >= e->at_ms && now - e->at_ms >= c->ttl_ms;
}

size_t up_cache_expire(up_cache_t *c, uint64_t now_ms)
{
    size_t n = 0;
    while (c && c->oldest && s_expired(c, c->oldest, now_ms)) {
        s_drop_oldest(c);
        n++;
    }
    return n;
}

static s_entry_t *s_lookup(const up_cache_t *c, const char *sender,
                           size_t sender_len, uint64_t epoch, uint64_t seq,
                           uint64_t hash)
{
    for (s_entry_t *e = c->buckets[hash & (c->nbuckets - 1)]; e;
         e = e->next_hash) {
        if (e->hash == hash && e->epoch == epoch && e->seq == seq &&
            e->sender_len == sender_len &&
            memcmp(e->data, sender, sender_len) == 0)
            return e;
    }
    return NULL;
}

uint64_t up_cache_fingerprint(const void *bytes, size_t len)
{
    /* FNV-1a, 64 bits. */
    const uint8_t *p = bytes;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

const uint8_t *up_cache_find(up_cache_t *c, const char *sender, uint64_t epoch,
                             uint64_t seq, uint64_t command_fp,
                             uint64_t now_ms, size_t *len, bool *reused)
{
    if (reused)
        *reused = false;
    if (!c || !sender)
        return NULL;
    up_cache_expire(c, now_ms);
    size_t n = strlen(sender);
    if (n > UP_CACHE_SENDER_MAX)
        return NULL;
    s_entry_t *e =
        s_lookup(c, sender, n, epoch, seq, s_hash(sender, n, epoch, seq));
    if (!e)
        return NULL;
    if (e->command_fp != command_fp) {
        if (reused)
            *reused = true;
        return NULL;
    }
    if (len)
        *len = e->len;
    return e->data + e->sender_len;
}

int up_cache_put(up_cache_t *c, const char *sender, uint64_t epoch,
                 uint64_t seq, uint64_t command_fp, const uint8_t *bytes,
                 size_t len, uint64_t now_ms)
{
    if (!c || !sender || !bytes || len == 0)
        return -EINVAL;
    size_t n = strlen(sender);
    if (n > UP_CACHE_SENDER_MAX)
        return -EINVAL;
    up_cache_expire(c, now_ms);
    uint64_t hash = s_hash(sender, n, epoch, seq);
    if (s_lookup(c, sender, n, epoch, seq, hash))
        return -EEXIST;
    s_entry_t *e = malloc(sizeof(*e) + n + len);
    if (!e)
        return -ENOMEM;
    while (c->count >= c->max_entries) {
        s_drop_oldest(c);
        c->evicted++;
    }
    e->epoch = epoch;
    e->seq = seq;
    /* A clock that went back would make this entry older than the FIFO
     * order says; keeping at_ms monotonic keeps expiry at the head. */
    e->at_ms =
        c->newest && c->newest->at_ms > now_ms ? c->newest->at_ms : now_ms;
    e->hash = hash;
    e->command_fp = command_fp;
    e->len = len;
    e->sender_len = n;
    memcpy(e->data, sender, n);
    memcpy(e->data + n, bytes, len);
    s_entry_t **head = &c->buckets[hash & (c->nbuckets - 1)];
    e->next_hash = *head;
    if (*head)
        (*head)->pprev_hash = &e->next_hash;
    *head = e;
    e->pprev_hash = head;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
    c->count++;
    c->bytes += s_entry_size(e);
    return 0;
}

size_t up_cache_count(const up_cache_t *c)
{
    return c ? c->count : 0;
}

size_t up_cache_bytes(const up_cache_t *c)
{
    return c ? c->bytes : 0;
}

uint64_t up_cache_evicted(const up_cache_t *c)
{
    return c ? c->evicted : 0;
}
