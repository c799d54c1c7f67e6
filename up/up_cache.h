/* up_cache: the worker's result cache for at-least-once commands.
 *
 * The CP resends a command it has no result for with the same (sender_id,
 * sender_epoch, seq). The worker answers such a duplicate with the bytes it
 * sent the first time, so the command is applied once and every copy of the
 * answer carries the same seq and reply_to.
 *
 * Entries sit in a hash on the key and in one FIFO in insertion order. An
 * entry leaves when it is ttl_ms old or, once the cache holds max_entries,
 * when a newer one needs its place (oldest first). Insert, lookup and
 * eviction are O(1). Time is passed in by the caller (monotonic ms, never
 * decreasing), so tests drive the cache with a fake clock.
 *
 * Ownership: the cache owns a copy of every key and answer; bytes returned
 * by up_cache_find() stay valid until the next call into the cache. */
#ifndef UP_CACHE_H
#define UP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest sender id cached; a longer one is never cached (-EINVAL). */
#define UP_CACHE_SENDER_MAX 255

typedef struct up_cache up_cache_t;

/* NULL on allocation failure or when either bound is 0. */
up_cache_t *up_cache_new(size_t max_entries, uint64_t ttl_ms);
/* Frees every entry. NULL-safe; sets *c_p to NULL. */
void up_cache_destroy(up_cache_t **c_p);

/* A fingerprint of a command's bytes. A resend is the identical bytes, so
 * the same key with another fingerprint is a different command reusing a
 * seq: a protocol violation, never a duplicate. */
uint64_t up_cache_fingerprint(const void *bytes, size_t len);

/* The answer cached for the key, or NULL when there is none or it is
 * ttl_ms old (expired entries are dropped on the way). *len gets its size.
 * When the key is cached for a command with another fingerprint, returns
 * NULL and sets *reused (if given). A NULL cache or sender finds nothing. */
const uint8_t *up_cache_find(up_cache_t *c, const char *sender, uint64_t epoch,
                             uint64_t seq, uint64_t command_fp,
                             uint64_t now_ms, size_t *len, bool *reused);

/* Stores a copy of the answer under the key, with the fingerprint of the
 * command it answers, evicting the oldest entries
 * the bounds require. A key already present keeps its first answer.
 * Returns 0, -EEXIST, -EINVAL (NULL cache, sender or bytes, empty answer,
 * sender longer than UP_CACHE_SENDER_MAX) or -ENOMEM. */
int up_cache_put(up_cache_t *c, const char *sender, uint64_t epoch,
                 uint64_t seq, uint64_t command_fp, const uint8_t *bytes,
                 size_t len, uint64_t now_ms);

/* Drops the entries that are ttl_ms old. Returns how many. */
size_t up_cache_expire(up_cache_t *c, uint64_t now_ms);

size_t up_cache_count(const up_cache_t *c);
/* Bytes held by the entries (headers, keys and answers). */
size_t up_cache_bytes(const up_cache_t *c);
/* Entries dropped to make room (not by age) since creation. */
uint64_t up_cache_evicted(const up_cache_t *c);

#endif
