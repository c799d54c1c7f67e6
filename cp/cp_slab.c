#include "cp_slab.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* A chunk is CP_SLAB_CHUNK bytes aligned on its size, so a block finds its
 * chunk by masking its address. The header sits at the start; blocks follow.
 * Free blocks of a chunk form a list threaded through their first bytes;
 * blocks never handed out yet are taken from `fresh` (the chunk is not
 * touched, so not made resident, beyond what was used). */
typedef struct cp_chunk {
    struct cp_chunk *next, *prev; /* in the slab's list of non-full chunks */
    void *free_list;
    char *fresh;
    size_t live;
} cp_chunk_t;

struct cp_slab {
    size_t block;
    size_t per_chunk;
    cp_chunk_t *avail; /* chunks with a free block */
    cp_chunk_t *full;  /* chunks without (kept to be unmapped at the end) */
    size_t live;
    size_t chunks;
};

#define S_HEADER ((sizeof(cp_chunk_t) + 15) & ~(size_t)15)

static void s_unlink(cp_chunk_t **head, cp_chunk_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void s_push(cp_chunk_t **head, cp_chunk_t *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

static cp_chunk_t *s_chunk_map(cp_slab_t *slab)
{
    /* Twice the size, then the aligned half is kept and the rest given
     * back: mmap only promises page alignment. */
    size_t size = 2 * (size_t)CP_SLAB_CHUNK;
    char *raw = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)raw + CP_SLAB_CHUNK - 1) &
                  ~(uintptr_t)(CP_SLAB_CHUNK - 1);
    char *base = (char *)a;
    size_t head = (size_t)(base - raw);
    size_t tail = size - head - CP_SLAB_CHUNK;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap(base + CP_SLAB_CHUNK, tail);
    cp_chunk_t *c = (cp_chunk_t *)(void *)base;
    memset(c, 0, sizeof(*c));
    c->fresh = base + S_HEADER;
    slab->chunks++;
    return c;
}

static void s_chunk_unmap(cp_slab_t *slab, cp_chunk_t *c)
{
    slab->chunks--;
    munmap(c, CP_SLAB_CHUNK);
}

cp_slab_t *cp_slab_new(size_t block_size)
{
    size_t block = (block_size + 15) & ~(size_t)15;
    if (block < sizeof(void *) || block > CP_SLAB_CHUNK - S_HEADER)
        return NULL;
    cp_slab_t *slab = calloc(1, sizeof(*slab));
    if (!slab)
        return NULL;
    slab->block = block;
    slab->per_chunk = (CP_SLAB_CHUNK - S_HEADER) / block;
    return slab;
}

static void s_unmap_list(cp_slab_t *slab, cp_chunk_t *c)
{
    while (c) {
        cp_chunk_t *next = c->next;
        s_chunk_unmap(slab, c);
        c = next;
    }
}

void cp_slab_destroy(cp_slab_t **slab_p)
{
    if (!slab_p || !*slab_p)
        return;
    cp_slab_t *slab = *slab_p;
    s_unmap_list(slab, slab->avail);
    s_unmap_list(slab, slab->full);
    free(slab);
    *slab_p = NULL;
}

void *cp_slab_alloc(cp_slab_t *slab)
{
    cp_chunk_t *c = slab->avail;
    if (!c) {
        c = s_chunk_map(slab);
        if (!c)
            return NULL;
        s_push(&slab->avail, c);
    }
    void *p;
    if (c->free_list) {
        p = c->free_list;
        memcpy(&c->free_list, p, sizeof(void *));
    } else {
        p = c->fresh;
        c->fresh += slab->block;
    }
    c->live++;
    slab->live++;
    char *end = (char *)c + S_HEADER + slab->per_chunk * slab->block;
    if (!c->free_list && c->fresh >= end) {
        s_unlink(&slab->avail, c);
        s_push(&slab->full, c);
    }
    memset(p, 0, slab->block);
    return p;
}

void cp_slab_free(cp_slab_t *slab, void *p)
{
    if (!p)
        return;
    cp_chunk_t *c = (cp_chunk_t *)(void *)((uintptr_t)p &
                                           ~(uintptr_t)(CP_SLAB_CHUNK - 1));
    char *end = (char *)c + S_HEADER + slab->per_chunk * slab->block;
    bool was_full = !c->free_list && c->fresh >= end;
    memcpy(p, &c->free_list, sizeof(void *));
    c->free_list = p;
    c->live--;
    slab->live--;
    if (was_full) {
        s_unlink(&slab->full, c);
        s_push(&slab->avail, c);
    }
    /* An empty chunk goes back to the kernel unless it is the only one
     * with room: a session ending and the next starting must not map and
     * unmap a chunk each time. */
    if (c->live == 0 && (c->prev || c->next)) {
        s_unlink(&slab->avail, c);
        s_chunk_unmap(slab, c);
    }
}

size_t cp_slab_block_size(const cp_slab_t *slab)
{
    return slab->block;
}

size_t cp_slab_live(const cp_slab_t *slab)
{
    return slab->live;
}

size_t cp_slab_mapped(const cp_slab_t *slab)
{
    return slab->chunks * (size_t)CP_SLAB_CHUNK;
}
