/* im_heap: the process heap as glibc's malloc sees it, and handing its
 * free pages back to the kernel.
 *
 * glibc returns freed memory to the kernel only from the top of a heap.
 * A daemon that holds many long-lived small objects (sessions, legs)
 * interleaved with short-lived large ones (SIP transactions with their
 * messages, which live for up to 64*T1 after a session is set up) keeps
 * every page it ever touched resident: after a burst of set-ups its RSS
 * stays at the burst's peak although most of that memory is free.
 * im_heap_trim() gives the free pages inside the heap back (malloc_trim),
 * so RSS follows what is really in use. */
#ifndef IM_HEAP_H
#define IM_HEAP_H

#include <stddef.h>

typedef struct {
    size_t in_use; /* bytes handed out by malloc (arenas and mmap) */
    size_t free;   /* bytes free inside the arenas */
} im_heap_stats_t;

/* Fills *st. Both 0 where the allocator is not glibc's (e.g. under
 * AddressSanitizer). */
void im_heap_stats(im_heap_stats_t *st);

/* When at least min_free bytes are free in the arenas, returns every
 * whole free page to the kernel and returns 1; else 0. *st (if not NULL)
 * gets the figures seen before trimming. */
int im_heap_trim(size_t min_free, im_heap_stats_t *st);

#endif
