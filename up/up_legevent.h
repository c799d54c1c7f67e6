/* up_legevent: LegEvents delivered at least once.
 *
 * A LegEvent tells the CP that a leg's media is gone (peer closed, idle,
 * connect failed); the CP answers with a LegEventAck whose reply_to is the
 * event's seq. Each event is kept, packed, until that ack arrives; until
 * then the identical bytes go again after base, 2 * base, 3 * base, ...
 * (UP_LEGEVENT_SENDS sends in all) and the event is given up
 * UP_LEGEVENT_SENDS * base after the last send (warn log, counted in
 * imsplit_up_leg_events_abandoned_total). A resend that falls while the
 * worker is not registered waits without counting as a send.
 *
 * When the CP epoch changes, up_legevents_clear() drops every pending
 * event: the new CP knows nothing of them and audits the legs instead.
 *
 * Bounded: at most max_pending events are held; one more pushes out the
 * oldest (counted as abandoned).
 *
 * Ownership: the store owns every pending event (its bytes and its timer
 * in ctx->wheel). Destroy it before the timer driver and the wheel. */
#ifndef UP_LEGEVENT_H
#define UP_LEGEVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "up_context.h"
#include "up_leg.h"

#define UP_LEGEVENT_SENDS 5
#define UP_LEGEVENT_BASE_MS 1000

typedef struct up_legevents up_legevents_t;

/* Requires ctx->timers. NULL on allocation failure or a zero bound. */
up_legevents_t *up_legevents_new(up_context_t *ctx, size_t max_pending,
                                 uint32_t base_ms);
/* Cancels every timer and frees the pending events. NULL-safe; sets *q_p
 * to NULL. */
void up_legevents_destroy(up_legevents_t **q_p);

/* Sends LegEvent{kind} for the leg (its counters so far) and keeps it in
 * ctx->legevents until acknowledged; with no store it is sent once.
 * Returns the send's result (0 or -errno); a packed event is kept even if
 * this first send failed. */
int up_legevent_send(up_context_t *ctx, const up_leg_t *leg, int kind);

/* A LegEventAck with this reply_to arrived: forgets the event. Returns
 * false when none is pending under that seq (a duplicate ack). NULL-safe. */
bool up_legevents_ack(up_legevents_t *q, uint64_t reply_to);

/* Forgets every pending event. Returns how many. NULL-safe. */
size_t up_legevents_clear(up_legevents_t *q);

size_t up_legevents_pending(const up_legevents_t *q);

#endif
