#include "cp_build.h"

#include "cp_path.h"
#include "im_proto.h"

int cp_build_direction(cp_dir_t dir)
{
    return dir == CP_DIR_CLIENT ? IMSPLIT__V1__DIRECTION__DIRECTION_CLIENT
                                : IMSPLIT__V1__DIRECTION__DIRECTION_CONTROLLING;
}

int cp_build_dir_from_proto(int direction)
{
    switch (direction) {
    case IMSPLIT__V1__DIRECTION__DIRECTION_CLIENT:
        return CP_DIR_CLIENT;
    case IMSPLIT__V1__DIRECTION__DIRECTION_CONTROLLING:
        return CP_DIR_CONTROLLING;
    default:
        return -1;
    }
}

uint64_t cp_build_allocate(cp_context_t *ctx, const cp_session_t *s,
                           cp_dir_t dir)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__AllocateLeg body = IMSPLIT__V1__ALLOCATE_LEG__INIT;
    body.session_id = s->id;
    body.direction = cp_build_direction(dir);
    body.call_id = s->call_id ? s->call_id : (char *)"";
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG;
    env.allocate_leg = &body;
    return cp_path_command(ctx->path, s->worker, &env, s->id, (int)dir);
}

uint64_t cp_build_connect(cp_context_t *ctx, const cp_session_t *s,
                          cp_dir_t dir)
{
    const cp_leg_t *leg = &s->legs[dir];
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__ConnectLeg body = IMSPLIT__V1__CONNECT_LEG__INIT;
    body.session_id = s->id;
    body.direction = cp_build_direction(dir);
    body.peer_path = leg->peer_path ? leg->peer_path : (char *)"";
    body.setup = leg->peer_setup ? leg->peer_setup : (char *)"";
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG;
    env.connect_leg = &body;
    return cp_path_command(ctx->path, s->worker, &env, s->id, (int)dir);
}

static uint64_t s_release(cp_context_t *ctx, const char *worker,
                          uint64_t session_id, cp_dir_t dir, int reason,
                          int cause, uint64_t owner)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__ReleaseLeg body = IMSPLIT__V1__RELEASE_LEG__INIT;
    body.session_id = session_id;
    body.direction = cp_build_direction(dir);
    body.reason = reason;
    body.cause = cause;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG;
    env.release_leg = &body;
    return cp_path_command(ctx->path, worker, &env, owner, (int)dir);
}

uint64_t cp_build_release(cp_context_t *ctx, const char *worker,
                          uint64_t session_id, cp_dir_t dir, int reason,
                          int cause)
{
    return s_release(ctx, worker, session_id, dir, reason, cause, session_id);
}

uint64_t cp_build_release_orphan(cp_context_t *ctx, const char *worker,
                                 uint64_t session_id, cp_dir_t dir,
                                 int reason)
{
    return s_release(ctx, worker, session_id, dir, reason, reason, 0);
}

uint64_t cp_build_audit(cp_context_t *ctx, const char *worker)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__Audit body = IMSPLIT__V1__AUDIT__INIT;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_AUDIT;
    env.audit = &body;
    return cp_path_command(ctx->path, worker, &env, 0, 0);
}

uint64_t cp_build_drain(cp_context_t *ctx, const char *worker)
{
    Imsplit__V1__Envelope env = IMSPLIT__V1__ENVELOPE__INIT;
    Imsplit__V1__Drain body = IMSPLIT__V1__DRAIN__INIT;
    body.node_id = (char *)worker;
    env.body_case = IMSPLIT__V1__ENVELOPE__BODY_DRAIN;
    env.drain = &body;
    return cp_path_command(ctx->path, worker, &env, 0, 0);
}
