#include "up_build.h"

#include <errno.h>
#include <stdlib.h>

#include "im_log.h"
#include "im_proto.h"
#include "up_path.h"

/* LegRefs per Inventory: about 16 bytes each keeps the frame well under
 * IM_PROTO_MAX_FRAME. */
#define UP_BUILD_INVENTORY_MAX 12000

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
                  uint64_t reply_to)
{
    env->reply_to = reply_to;
    return up_path_send(ctx->path, env);
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
    return s_send(ctx, &env, 0);
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
    return s_send(ctx, &env, 0);
}

int up_build_allocate_result(up_context_t *ctx, uint64_t reply_to, int status,
                             uint64_t session_id, int direction,
                             const char *path)
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
    return s_send(ctx, &env, reply_to);
}

int up_build_connect_result(up_context_t *ctx, uint64_t reply_to, int status,
                            uint64_t session_id, int direction)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__ConnectLegResult body = IMSPLIT__V1__CONNECT_LEG_RESULT__INIT;
    body.status = status;
    body.session_id = session_id;
    body.direction = direction;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG_RESULT;
    env.connect_leg_result = &body;
    return s_send(ctx, &env, reply_to);
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

int up_build_release_result(up_context_t *ctx, uint64_t reply_to, int status,
                            uint64_t session_id, int direction,
                            const up_leg_counters_t *counters)
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
    return s_send(ctx, &env, reply_to);
}

int up_build_drain_result(up_context_t *ctx, uint64_t reply_to, int status)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__DrainResult body = IMSPLIT__V1__DRAIN_RESULT__INIT;
    body.status = status;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT;
    env.drain_result = &body;
    return s_send(ctx, &env, reply_to);
}

typedef struct {
    Imsplit__V1__LegRef *items;
    Imsplit__V1__LegRef **ptrs;
    size_t n;
    size_t max;
} s_inventory_t;

static void s_add_ref(const up_leg_t *leg, void *arg)
{
    s_inventory_t *inv = arg;
    if (inv->n == inv->max)
        return;
    Imsplit__V1__LegRef *ref = &inv->items[inv->n];
    imsplit__v1__leg_ref__init(ref);
    ref->session_id = leg->session_id;
    ref->direction = up_build_direction(leg->dir);
    inv->ptrs[inv->n++] = ref;
}

int up_build_inventory(up_context_t *ctx, uint64_t reply_to)
{
    size_t count = up_legs_count(ctx->legs);
    s_inventory_t inv = {0};
    inv.max = count < UP_BUILD_INVENTORY_MAX ? count : UP_BUILD_INVENTORY_MAX;
    inv.items = calloc(inv.max ? inv.max : 1, sizeof(*inv.items));
    inv.ptrs = calloc(inv.max ? inv.max : 1, sizeof(*inv.ptrs));
    int rc = -ENOMEM;
    if (!inv.items || !inv.ptrs)
        goto out;
    up_legs_foreach(ctx->legs, s_add_ref, &inv);
    if (count > inv.n)
        IM_LOG_WARN("event=inventory_truncated legs=%zu sent=%zu", count,
                    inv.n);
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__Inventory body = IMSPLIT__V1__INVENTORY__INIT;
    body.n_legs = inv.n;
    body.legs = inv.ptrs;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_INVENTORY;
    env.inventory = &body;
    rc = s_send(ctx, &env, reply_to);
out:
    free(inv.items);
    free(inv.ptrs);
    return rc;
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
    return s_send(ctx, &env, reply_to);
}

int up_build_leg_event(up_context_t *ctx, const up_leg_t *leg, int kind)
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
    return s_send(ctx, &env, 0);
}
