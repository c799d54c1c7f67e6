/* cp_slab: fixed-size blocks for long-lived objects, kept apart from
 * malloc's heap.
 *
 * A session lives for minutes or hours; the SIP transactions that set it up
 * live for 32 seconds and take several times its size. Allocated from the
 * same heap, every session would pin pages of freed transaction memory that
 * malloc can neither reuse for other sizes nor give back. Sessions come from
 * here instead: blocks of one size, packed into chunks mapped from the
 * kernel; a chunk whose blocks are all free is unmapped (except the last
 * one, kept to absorb churn), so memory follows the number of live objects
 * both ways.
 *
 * Single-threaded. Blocks are zeroed when allocated. */
#ifndef CP_SLAB_H
#define CP_SLAB_H

#include <stddef.h>

typedef struct cp_slab cp_slab_t;

/* Blocks of `block_size` bytes (rounded up to 16), grouped into chunks of
 * CP_SLAB_CHUNK bytes. NULL if out of memory or block_size does not fit a
 * chunk. */
cp_slab_t *cp_slab_new(size_t block_size);
/* Unmaps every chunk; blocks still allocated are gone with them. */
void cp_slab_destroy(cp_slab_t **slab_p);

void *cp_slab_alloc(cp_slab_t *slab);
/* `p` must come from this slab (or be NULL). */
void cp_slab_free(cp_slab_t *slab, void *p);

size_t cp_slab_block_size(const cp_slab_t *slab);
size_t cp_slab_live(const cp_slab_t *slab);   /* blocks allocated */
size_t cp_slab_mapped(const cp_slab_t *slab); /* bytes mapped */

#define CP_SLAB_CHUNK (256 * 1024)

#endif
