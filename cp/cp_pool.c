#include "cp_pool.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

struct cp_pool {
    cp_worker_t *head;
    size_t size;
};

const char *cp_worker_state_name(cp_worker_state_t st)
{
    switch (st) {
    case CP_WORKER_LIVE: return "live";
    case CP_WORKER_DRAINING: return "draining";
    case CP_WORKER_DEAD: return "dead";
    }
    return "?";
}

cp_pool_t *cp_pool_new(void)
{
    return calloc(1, sizeof(cp_pool_t));
}

void cp_pool_destroy(cp_pool_t **pool_p)
{
    if (!pool_p || !*pool_p)
        return;
    cp_worker_t *w = (*pool_p)->head;
    while (w) {
        cp_worker_t *next = w->next;
        free(w);
        w = next;
    }
    free(*pool_p);
    *pool_p = NULL;
}

cp_worker_t *cp_pool_find(const cp_pool_t *pool, const char *id)
{
    for (cp_worker_t *w = pool->head; w; w = w->next)
        if (strcmp(w->id, id) == 0)
            return w;
    return NULL;
}

cp_worker_t *cp_pool_register(cp_pool_t *pool, const char *id, uint64_t epoch,
                              const char *msrp_address, uint32_t capacity,
                              uint64_t now_ms, bool *restarted)
{
    *restarted = false;
    if (!id || !*id || strlen(id) >= CP_WORKER_ID_MAX)
        return NULL;
    cp_worker_t *w = cp_pool_find(pool, id);
    if (w) {
        *restarted = w->epoch != epoch || w->state == CP_WORKER_DEAD;
        if (w->epoch != epoch)
            w->state = CP_WORKER_LIVE;
        w->audit_seq = 0;
    } else {
        w = calloc(1, sizeof(*w));
        if (!w)
            return NULL;
        strcpy(w->id, id);
        w->next = pool->head;
        pool->head = w;
        pool->size++;
        w->state = CP_WORKER_LIVE;
    }
    if (w->state == CP_WORKER_DEAD)
        w->state = CP_WORKER_LIVE;
    w->epoch = epoch;
    snprintf(w->msrp_address, sizeof(w->msrp_address), "%s",
             msrp_address ? msrp_address : "");
    w->capacity = capacity;
    w->last_seen_ms = now_ms;
    return w;
}

cp_worker_t *cp_pool_pick(const cp_pool_t *pool)
{
    cp_worker_t *best = NULL;
    for (cp_worker_t *w = pool->head; w; w = w->next) {
        if (w->state != CP_WORKER_LIVE)
            continue;
        /* Two legs per session. */
        if (w->capacity && (uint64_t)w->sessions * 2 + 2 > w->capacity)
            continue;
        if (!best || w->sessions < best->sessions ||
            (w->sessions == best->sessions &&
             w->legs_active < best->legs_active))
            best = w;
    }
    return best;
}

void cp_pool_count(const cp_pool_t *pool, size_t counts[3])
{
    counts[0] = counts[1] = counts[2] = 0;
    for (cp_worker_t *w = pool->head; w; w = w->next)
        counts[w->state]++;
}

void cp_pool_remove(cp_pool_t *pool, cp_worker_t *w)
{
    for (cp_worker_t **pp = &pool->head; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            pool->size--;
            free(w);
            return;
        }
    }
}

void cp_pool_foreach(cp_pool_t *pool, void (*fn)(cp_worker_t *w, void *arg),
                     void *arg)
{
    for (cp_worker_t *w = pool->head; w; w = w->next)
        fn(w, arg);
}

size_t cp_pool_size(const cp_pool_t *pool)
{
    return pool->size;
}
