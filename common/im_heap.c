/* im_heap: see im_heap.h. */
#include "im_heap.h"

#include <malloc.h>

void im_heap_stats(im_heap_stats_t *st)
{
    struct mallinfo2 mi = mallinfo2();
    st->in_use = mi.uordblks + mi.hblkhd;
    st->free = mi.fordblks;
}

int im_heap_trim(size_t min_free, im_heap_stats_t *st)
{
    im_heap_stats_t local;
    if (!st)
        st = &local;
    im_heap_stats(st);
    if (st->free == 0 || st->free < min_free)
        return 0;
    (void)malloc_trim(0);
    return 1;
}
