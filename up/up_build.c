#include "up_build.h"

#include <errno.h>
#include <stdlib.h>

#include "im_log.h"
#include "im_proto.h"
#include "up_path.h"

/* A LegRef packs to at most 19 bytes: a full page stays far below
 * IM_PROTO_MAX_FRAME. */
_Static_assert(UP_BUILD_INVENTORY_PAGE * 19 + 64 < IM_PROTO_MAX_FRAME,
               "an Inventory page must fit one frame");

int up_build_direction(up_dir_t dir)
{
    return dir == UP_DIR_CLIENT ? IMSPLIT__V1__DIRECTION__DIRECTION_CLIENT
                                : IMSPLIT__V1__DIRECTION__DIRECTION_CONTROLLING;
}

int up_build_dir_from_proto(int direction)
{
    switch (direction) {
    case IMSPLIT__V1__DIRECTION__DIRECTION_CLIENT:
        return UP_DIR_CLIENT;
    case IMSPLIT__V1__DIRECTION__DIRECTION_CONTROLLING:
        return UP_DIR_CONTROLLING;
    default:
        return -1;
    }
}

static int s_send(up_context_t *ctx, Imsplit__V1__Envelope *env,
                  uint64_t reply_to, up_sent_t *keep)
{
    env->reply_to = reply_to;
    return up_path_send(ctx->path, env, keep);
}

static uint32_t s_u32(size_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

int up_build_register(up_context_t *ctx)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__Register body = IMSPLIT__V1__REGISTER__INIT;
    body.node_id = (char *)ctx->cfg.id;
    body.msrp_address = ctx->msrp_address;
    body.capacity = ctx->cfg.capacity;
    body.legs_active = s_u32(up_legs_count(ctx->legs));
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_REGISTER;
    env.register_ = &body;
    return s_send(ctx, &env, 0, NULL);
}

int up_build_heartbeat(up_context_t *ctx)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__Heartbeat body = IMSPLIT__V1__HEARTBEAT__INIT;
    body.legs_active = s_u32(up_legs_count(ctx->legs));
    body.sockets_open = s_u32(up_legs_sockets(ctx->legs));
    body.buffer_bytes = up_legs_buffer_bytes(ctx->legs);
    body.draining = ctx->draining;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &body;
    return s_send(ctx, &env, 0, NULL);
}

int up_build_deregister(up_context_t *ctx, const char *reason)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__Deregister body = IMSPLIT__V1__DEREGISTER__INIT;
    body.reason = (char *)reason;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_DEREGISTER;
    env.deregister = &body;
    return s_send(ctx, &env, 0, NULL);
}

int up_build_allocate_result(up_context_t *ctx, up_sent_t *keep,
                             uint64_t reply_to, int status, uint64_t session_id,
                             int direction, const char *path)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__AllocateLegResult body =
        IMSPLIT__V1__ALLOCATE_LEG_RESULT__INIT;
    body.status = status;
    body.session_id = session_id;
    body.direction = direction;
    body.path = path ? (char *)path : (char *)"";
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG_RESULT;
    env.allocate_leg_result = &body;
    return s_send(ctx, &env, reply_to, keep);
}

int up_build_connect_result(up_context_t *ctx, up_sent_t *keep,
                            uint64_t reply_to, int status, uint64_t session_id,
                            int direction)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__ConnectLegResult body = IMSPLIT__V1__CONNECT_LEG_RESULT__INIT;
    body.status = status;
    body.session_id = session_id;
    body.direction = direction;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG_RESULT;
    env.connect_leg_result = &body;
    return s_send(ctx, &env, reply_to, keep);
}

static void s_counters(Imsplit__V1__LegCounters *out,
                       const up_leg_counters_t *c)
{
    if (!c)
        return;
    out->bytes_in = c->bytes_in;
    out->bytes_out = c->bytes_out;
    out->msgs_in = c->msgs_in;
    out->msgs_out = c->msgs_out;
}

int up_build_release_result(up_context_t *ctx, up_sent_t *keep,
                            uint64_t reply_to, int status, uint64_t session_id,
                            int direction, const up_leg_counters_t *counters)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__ReleaseLegResult body = IMSPLIT__V1__RELEASE_LEG_RESULT__INIT;
    Imsplit__V1__LegCounters c = IMSPLIT__V1__LEG_COUNTERS__INIT;
    s_counters(&c, counters);
    body.status = status;
    body.session_id = session_id;
    body.direction = direction;
    body.counters = &c;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT;
    env.release_leg_result = &body;
    return s_send(ctx, &env, reply_to, keep);
}

int up_build_drain_result(up_context_t *ctx, up_sent_t *keep, uint64_t reply_to,
                          int status)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__DrainResult body = IMSPLIT__V1__DRAIN_RESULT__INIT;
    body.status = status;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT;
    env.drain_result = &body;
    return s_send(ctx, &env, reply_to, keep);
}

typedef struct {
    up_context_t *ctx;
    uint64_t reply_to;
    Imsplit__V1__LegRef *items;
    Imsplit__V1__LegRef **ptrs;
    size_t n;    /* refs in the page being filled */
    size_t max;  /* page size */
    size_t left; /* legs not yet visited */
    uint32_t part;
    int rc;
} s_inventory_t;

static void s_inventory_flush(s_inventory_t *inv, bool last)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__Inventory body = IMSPLIT__V1__INVENTORY__INIT;
    body.n_legs = inv->n;
    body.legs = inv->ptrs;
    body.part = inv->part++;
    body.last = last;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_INVENTORY;
    env.inventory = &body;
    int rc = s_send(inv->ctx, &env, inv->reply_to, NULL);
    if (rc < 0 && inv->rc == 0)
        inv->rc = rc;
    inv->n = 0;
}

static void s_add_ref(const up_leg_t *leg, void *arg)
{
    s_inventory_t *inv = arg;
    if (inv->left == 0)
        return; /* more legs than counted: the table broke its promise */
    Imsplit__V1__LegRef *ref = &inv->items[inv->n];
    imsplit__v1__leg_ref__init(ref);
    ref->session_id = leg->session_id;
    ref->direction = up_build_direction(leg->dir);
    inv->ptrs[inv->n++] = ref;
    inv->left--;
    /* The page holding the last leg is sent by the caller, with last set. */
    if (inv->n == inv->max && inv->left > 0)
        s_inventory_flush(inv, false);
}

int up_build_inventory(up_context_t *ctx, uint64_t reply_to, uint32_t *parts)
{
    size_t count = up_legs_count(ctx->legs);
    s_inventory_t inv = {.ctx = ctx, .reply_to = reply_to, .left = count};
    inv.max = count < UP_BUILD_INVENTORY_PAGE ? count : UP_BUILD_INVENTORY_PAGE;
    inv.items = calloc(inv.max ? inv.max : 1, sizeof(*inv.items));
    inv.ptrs = calloc(inv.max ? inv.max : 1, sizeof(*inv.ptrs));
    if (!inv.items || !inv.ptrs) {
        inv.rc = -ENOMEM;
        goto out;
    }
    if (count > 0)
        up_legs_foreach(ctx->legs, s_add_ref, &inv);
    s_inventory_flush(&inv, true);
out:
    free(inv.items);
    free(inv.ptrs);
    if (parts)
        *parts = inv.part;
    return inv.rc;
}

int up_build_error(up_context_t *ctx, uint64_t reply_to, int code,
                   const char *message)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__ErrorReply body = IMSPLIT__V1__ERROR_REPLY__INIT;
    body.code = code;
    body.message = (char *)message;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_ERROR;
    env.error = &body;
    return s_send(ctx, &env, reply_to, NULL);
}

int up_build_leg_event(up_context_t *ctx, up_sent_t *keep, const up_leg_t *leg,
                       int kind)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__LegEvent body = IMSPLIT__V1__LEG_EVENT__INIT;
    Imsplit__V1__LegCounters c = IMSPLIT__V1__LEG_COUNTERS__INIT;
    s_counters(&c, &leg->counters);
    body.session_id = leg->session_id;
    body.direction = up_build_direction(leg->dir);
    body.kind = kind;
    body.counters = &c;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT;
    env.leg_event = &body;
    return s_send(ctx, &env, 0, keep);
}
