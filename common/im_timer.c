#include "im_timer.h"

#include <stdlib.h>
#include <string.h>

/* Level L has 256 slots of 256^L ms each. A timer sits in the lowest level
 * whose span covers its distance from `now`; a level-L slot is emptied
 * ("cascaded") into the lower levels when time reaches the start of its
 * granule, so level 0 only ever holds timers due at exactly one tick.
 *
 * Ordering of ties: timers cascaded into a slot were always armed earlier
 * than the timers already there with the same deadline (they were armed
 * further away), so a cascade puts them in front, keeping arming order.
 * Levels cascade low to high at a shared boundary for the same reason. */

#define IM_WHEEL_LEVELS 4
#define IM_WHEEL_BITS 8
#define IM_WHEEL_SLOTS (1u << IM_WHEEL_BITS)
#define IM_WHEEL_MASK (IM_WHEEL_SLOTS - 1u)
#define IM_WHEEL_WORDS (IM_WHEEL_SLOTS / 64u)
#define IM_WHEEL_HORIZON (UINT64_C(1) << (IM_WHEEL_LEVELS * IM_WHEEL_BITS))

/* How many entries next_expiry may look at in the next level-1 slot to turn
 * its lower bound into an exact deadline. */
#define IM_WHEEL_PEEK 64

struct im_wheel {
    uint64_t now;
    size_t count;
    /* Deadlines armed at or before `now`: fired first by the next advance. */
    im_timer_t pending;
    uint64_t pending_min;
    uint64_t occupied[IM_WHEEL_LEVELS][IM_WHEEL_WORDS];
    im_timer_t slots[IM_WHEEL_LEVELS][IM_WHEEL_SLOTS];
};

static void s_list_init(im_timer_t *head)
{
    head->next = head;
    head->prev = head;
}

static bool s_list_empty(const im_timer_t *head)
{
    return head->next == head;
}

static void s_list_append(im_timer_t *head, im_timer_t *t)
{
    t->prev = head->prev;
    t->next = head;
    head->prev->next = t;
    head->prev = t;
}

static void s_list_prepend(im_timer_t *head, im_timer_t *t)
{
    t->next = head->next;
    t->prev = head;
    head->next->prev = t;
    head->next = t;
}

/* Moves every node of src to the empty list dst. */
static void s_list_move(im_timer_t *src, im_timer_t *dst)
{
    if (s_list_empty(src)) {
        s_list_init(dst);
        return;
    }
    dst->next = src->next;
    dst->prev = src->prev;
    dst->next->prev = dst;
    dst->prev->next = dst;
    s_list_init(src);
}

static void s_bit_set(im_wheel_t *w, unsigned level, unsigned slot)
{
    w->occupied[level][slot / 64u] |= UINT64_C(1) << (slot % 64u);
}

static void s_bit_clear(im_wheel_t *w, unsigned level, unsigned slot)
{
    w->occupied[level][slot / 64u] &= ~(UINT64_C(1) << (slot % 64u));
}

/* First occupied slot >= from at this level, or -1. */
static int s_bit_next(const im_wheel_t *w, unsigned level, unsigned from)
{
    const uint64_t *bits = w->occupied[level];

    for (unsigned word = from / 64u; word < IM_WHEEL_WORDS; word++) {
        uint64_t v = bits[word];
        if (word == from / 64u)
            v &= ~UINT64_C(0) << (from % 64u);
        if (v)
            return (int)(word * 64u + (unsigned)__builtin_ctzll(v));
    }
    return -1;
}

static bool s_level_empty(const im_wheel_t *w, unsigned level)
{
    for (unsigned i = 0; i < IM_WHEEL_WORDS; i++)
        if (w->occupied[level][i])
            return false;
    return true;
}

/* When the nearest occupied slot of `level` is processed next, or
 * UINT64_MAX. A slot equal to the current index was already processed for
 * this rotation, so it is due one full rotation later. */
static uint64_t s_level_next_time(const im_wheel_t *w, unsigned level)
{
    unsigned shift = level * IM_WHEEL_BITS;
    uint64_t granule = w->now >> shift;
    unsigned cur = (unsigned)(granule & IM_WHEEL_MASK);
    uint64_t base = granule - cur;
    int slot;

    if (s_level_empty(w, level))
        return UINT64_MAX;
    slot = cur + 1 < IM_WHEEL_SLOTS ? s_bit_next(w, level, cur + 1) : -1;
    if (slot < 0) {
        slot = s_bit_next(w, level, 0);
        base += IM_WHEEL_SLOTS;
    }
    return (base + (uint64_t)slot) << shift;
}

/* Links t (expires > now, or == now during a cascade) into its slot. */
static void s_place(im_wheel_t *w, im_timer_t *t, bool front)
{
    uint64_t e = t->expires > w->now ? t->expires : w->now;
    uint64_t diff = e - w->now;
    unsigned level, slot;

    if (diff >= IM_WHEEL_HORIZON) {
        /* The current top-level slot comes round again just before the
         * horizon; the timer is placed afresh from there. */
        level = IM_WHEEL_LEVELS - 1;
        slot = (unsigned)((w->now >> (level * IM_WHEEL_BITS)) & IM_WHEEL_MASK);
    } else {
        level = 0;
        while (diff >= (UINT64_C(1) << ((level + 1) * IM_WHEEL_BITS)))
            level++;
        slot = (unsigned)((e >> (level * IM_WHEEL_BITS)) & IM_WHEEL_MASK);
    }
    if (front)
        s_list_prepend(&w->slots[level][slot], t);
    else
        s_list_append(&w->slots[level][slot], t);
    s_bit_set(w, level, slot);
}

/* Unlinks an armed timer; clears the slot's occupancy bit when it empties. */
static void s_unlink(im_wheel_t *w, im_timer_t *t)
{
    im_timer_t *prev = t->prev;
    im_timer_t *next = t->next;

    prev->next = next;
    next->prev = prev;
    t->next = NULL;
    t->prev = NULL;
    w->count--;
    /* In a circular list the only node left when next == prev is the head. */
    if (next == prev) {
        uintptr_t p = (uintptr_t)next;
        uintptr_t base = (uintptr_t)&w->slots[0][0];
        if (p >= base && p < base + sizeof(w->slots)) {
            size_t idx = (p - base) / sizeof(im_timer_t);
            s_bit_clear(w, (unsigned)(idx / IM_WHEEL_SLOTS),
                        (unsigned)(idx % IM_WHEEL_SLOTS));
        }
    }
}

im_wheel_t *im_wheel_new(uint64_t now_ms)
{
    im_wheel_t *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->now = now_ms;
    w->pending_min = UINT64_MAX;
    s_list_init(&w->pending);
    for (unsigned l = 0; l < IM_WHEEL_LEVELS; l++)
        for (unsigned s = 0; s < IM_WHEEL_SLOTS; s++)
            s_list_init(&w->slots[l][s]);
    return w;
}

static void s_list_forget(im_timer_t *head)
{
    im_timer_t *t = head->next;

    while (t != head) {
        im_timer_t *next = t->next;
        t->next = NULL;
        t->prev = NULL;
        t = next;
    }
    s_list_init(head);
}

void im_wheel_destroy(im_wheel_t **wheel_p)
{
    im_wheel_t *w;

    if (!wheel_p || !*wheel_p)
        return;
    w = *wheel_p;
    s_list_forget(&w->pending);
    for (unsigned l = 0; l < IM_WHEEL_LEVELS; l++)
        for (unsigned s = 0; s < IM_WHEEL_SLOTS; s++)
            s_list_forget(&w->slots[l][s]);
    free(w);
    *wheel_p = NULL;
}

void im_timer_init(im_timer_t *timer, im_timer_cb *cb, void *arg)
{
    if (!timer)
        return;
    timer->next = NULL;
    timer->prev = NULL;
    timer->expires = 0;
    timer->cb = cb;
    timer->arg = arg;
}

bool im_timer_armed(const im_timer_t *timer)
{
    return timer && timer->next != NULL;
}

void im_wheel_arm(im_wheel_t *wheel, im_timer_t *timer, uint64_t expires_ms)
{
    if (!wheel || !timer)
        return;
    if (timer->next)
        s_unlink(wheel, timer);
    timer->expires = expires_ms;
    wheel->count++;
    if (expires_ms <= wheel->now) {
        s_list_append(&wheel->pending, timer);
        if (expires_ms < wheel->pending_min)
            wheel->pending_min = expires_ms;
        return;
    }
    s_place(wheel, timer, false);
}

void im_wheel_cancel(im_wheel_t *wheel, im_timer_t *timer)
{
    if (!wheel || !timer || !timer->next)
        return;
    s_unlink(wheel, timer);
}

/* Fires every timer of `list` (a local head). Each is unlinked before its
 * callback runs, and the list is re-read after every callback, so callbacks
 * may cancel or re-arm timers still waiting in it. */
static size_t s_fire_list(im_wheel_t *w, im_timer_t *list)
{
    size_t fired = 0;

    while (!s_list_empty(list)) {
        im_timer_t *t = list->next;
        s_unlink(w, t);
        fired++;
        if (t->cb)
            t->cb(t, t->arg);
    }
    return fired;
}

static void s_cascade_slot(im_wheel_t *w, unsigned level, unsigned slot)
{
    im_timer_t local;

    s_list_move(&w->slots[level][slot], &local);
    s_bit_clear(w, level, slot);
    /* Back to front with prepend keeps their order, ahead of later arms. */
    while (!s_list_empty(&local)) {
        im_timer_t *t = local.prev;
        t->prev->next = &local;
        local.prev = t->prev;
        s_place(w, t, true);
    }
}

static size_t s_step(im_wheel_t *w, uint64_t t)
{
    im_timer_t local;
    unsigned slot0 = (unsigned)(t & IM_WHEEL_MASK);

    w->now = t;
    for (unsigned l = 1; l < IM_WHEEL_LEVELS; l++) {
        unsigned shift = l * IM_WHEEL_BITS;
        if (t & ((UINT64_C(1) << shift) - 1))
            break;
        s_cascade_slot(w, l, (unsigned)((t >> shift) & IM_WHEEL_MASK));
    }
    s_list_move(&w->slots[0][slot0], &local);
    s_bit_clear(w, 0, slot0);
    return s_fire_list(w, &local);
}

size_t im_wheel_advance(im_wheel_t *wheel, uint64_t now_ms)
{
    size_t fired = 0;

    if (!wheel)
        return 0;
    if (!s_list_empty(&wheel->pending)) {
        im_timer_t local;
        s_list_move(&wheel->pending, &local);
        wheel->pending_min = UINT64_MAX;
        fired += s_fire_list(wheel, &local);
    }
    /* Jump straight to the next tick at which some slot is due, so empty
     * stretches of any length cost one bitmap scan per level. */
    for (;;) {
        uint64_t next = UINT64_MAX;
        for (unsigned l = 0; l < IM_WHEEL_LEVELS; l++) {
            uint64_t t = s_level_next_time(wheel, l);
            if (t < next)
                next = t;
        }
        if (next > now_ms)
            break;
        fired += s_step(wheel, next);
    }
    if (now_ms > wheel->now)
        wheel->now = now_ms;
    return fired;
}

/* Smallest deadline in a level-1 slot if it is short enough to scan. */
static uint64_t s_slot_peek_min(const im_timer_t *head, uint64_t fallback)
{
    uint64_t min = UINT64_MAX;
    unsigned n = 0;

    for (const im_timer_t *t = head->next; t != head; t = t->next) {
        if (++n > IM_WHEEL_PEEK)
            return fallback;
        if (t->expires < min)
            min = t->expires;
    }
    return min < fallback ? fallback : min;
}

uint64_t im_wheel_next_expiry(const im_wheel_t *wheel)
{
    uint64_t best = UINT64_MAX;

    if (!wheel || wheel->count == 0)
        return UINT64_MAX;
    if (!s_list_empty(&wheel->pending))
        return wheel->pending_min;
    /* Level 0 holds exact deadlines; higher levels give the tick at which
     * their slot cascades, a lower bound for everything in it. */
    for (unsigned l = 0; l < IM_WHEEL_LEVELS; l++) {
        uint64_t t = s_level_next_time(wheel, l);
        if (t >= best)
            continue;
        if (l == 1) {
            unsigned slot = (unsigned)((t >> IM_WHEEL_BITS) & IM_WHEEL_MASK);
            t = s_slot_peek_min(&wheel->slots[1][slot], t);
            if (t >= best)
                continue;
        }
        best = t;
    }
    return best;
}

size_t im_wheel_count(const im_wheel_t *wheel)
{
    return wheel ? wheel->count : 0;
}

uint64_t im_wheel_now(const im_wheel_t *wheel)
{
    return wheel ? wheel->now : 0;
}
