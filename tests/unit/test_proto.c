/* im_proto: envelope codec and validation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "im_proto.h"

#define SENDER "up-1"

/* Every body, filled with non-default values so a round trip proves each
 * field survives. */
typedef struct {
    im_env_t env;
    Imsplit__V1__Register reg;
    Imsplit__V1__RegisterAck reg_ack;
    Imsplit__V1__Heartbeat hb;
    Imsplit__V1__AllocateLeg alloc;
    Imsplit__V1__AllocateLegResult alloc_res;
    Imsplit__V1__ConnectLeg conn;
    Imsplit__V1__ConnectLegResult conn_res;
    Imsplit__V1__ReleaseLeg rel;
    Imsplit__V1__ReleaseLegResult rel_res;
    Imsplit__V1__LegCounters counters;
    Imsplit__V1__LegEvent ev;
    Imsplit__V1__LegEventAck ev_ack;
    Imsplit__V1__Audit audit;
    Imsplit__V1__Inventory inv;
    Imsplit__V1__LegRef refs[2];
    Imsplit__V1__LegRef *ref_ptrs[2];
    Imsplit__V1__Drain drain;
    Imsplit__V1__DrainResult drain_res;
    Imsplit__V1__ErrorReply err;
    Imsplit__V1__Query query;
    Imsplit__V1__QueryResult qres;
    Imsplit__V1__WorkerInfo worker;
    Imsplit__V1__WorkerInfo *worker_ptrs[1];
    Imsplit__V1__SessionInfo sess;
    Imsplit__V1__SessionInfo *sess_ptrs[1];
} s_msg_t;

static const int s_bodies[] = {
    IMSPLIT__V1__ENVELOPE__BODY_REGISTER,
    IMSPLIT__V1__ENVELOPE__BODY_REGISTER_ACK,
    IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT,
    IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG,
    IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG_RESULT,
    IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG,
    IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG_RESULT,
    IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG,
    IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT,
    IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT,
    IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT_ACK,
    IMSPLIT__V1__ENVELOPE__BODY_AUDIT,
    IMSPLIT__V1__ENVELOPE__BODY_INVENTORY,
    IMSPLIT__V1__ENVELOPE__BODY_DRAIN,
    IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT,
    IMSPLIT__V1__ENVELOPE__BODY_ERROR,
    IMSPLIT__V1__ENVELOPE__BODY_QUERY,
    IMSPLIT__V1__ENVELOPE__BODY_QUERY_RESULT,
};
#define N_BODIES (sizeof(s_bodies) / sizeof(s_bodies[0]))

static const uint64_t SID = UINT64_C(0xfedcba9876543210);
#define CLIENT IMSPLIT__V1__DIRECTION__DIRECTION_CLIENT
#define CONTROLLING IMSPLIT__V1__DIRECTION__DIRECTION_CONTROLLING

static void s_build(s_msg_t *m, int body)
{
    memset(m, 0, sizeof(*m));
    im_env_init(&m->env, SENDER, UINT64_C(0x1122334455667788), 42);
    m->env.reply_to = 41;
    m->env.body_case = (Imsplit__V1__Envelope__BodyCase)body;
    switch (body) {
    case IMSPLIT__V1__ENVELOPE__BODY_REGISTER:
        imsplit__v1__register__init(&m->reg);
        m->reg.node_id = "up-1";
        m->reg.msrp_address = "127.0.0.1:2855";
        m->reg.capacity = 5000;
        m->reg.legs_active = 3;
        m->env.register_ = &m->reg;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_REGISTER_ACK:
        imsplit__v1__register_ack__init(&m->reg_ack);
        m->reg_ack.cp_epoch = 99;
        m->reg_ack.heartbeat_ms = 1000;
        m->reg_ack.liveness = 3;
        m->env.register_ack = &m->reg_ack;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT:
        imsplit__v1__heartbeat__init(&m->hb);
        m->hb.legs_active = 7;
        m->hb.sockets_open = 8;
        m->hb.buffer_bytes = UINT64_C(1) << 40;
        m->hb.draining = 1;
        m->env.heartbeat = &m->hb;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG:
        imsplit__v1__allocate_leg__init(&m->alloc);
        m->alloc.session_id = SID;
        m->alloc.direction = CLIENT;
        m->env.allocate_leg = &m->alloc;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG_RESULT:
        imsplit__v1__allocate_leg_result__init(&m->alloc_res);
        m->alloc_res.status = IMSPLIT__V1__STATUS__STATUS_OK;
        m->alloc_res.session_id = SID;
        m->alloc_res.direction = CONTROLLING;
        m->alloc_res.path = "msrp://127.0.0.1:2855/abc;tcp";
        m->env.allocate_leg_result = &m->alloc_res;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG:
        imsplit__v1__connect_leg__init(&m->conn);
        m->conn.session_id = SID;
        m->conn.direction = CONTROLLING;
        m->conn.peer_path = "msrp://10.0.0.1:1/x;tcp msrp://10.0.0.2:2/y;tcp";
        m->conn.setup = "active";
        m->env.connect_leg = &m->conn;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG_RESULT:
        imsplit__v1__connect_leg_result__init(&m->conn_res);
        m->conn_res.status = IMSPLIT__V1__STATUS__STATUS_CONFLICT;
        m->conn_res.session_id = SID;
        m->conn_res.direction = CLIENT;
        m->env.connect_leg_result = &m->conn_res;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG:
        imsplit__v1__release_leg__init(&m->rel);
        m->rel.session_id = SID;
        m->rel.direction = CLIENT;
        m->rel.reason = IMSPLIT__V1__RELEASE_REASON__RELEASE_BYE_2XX;
        m->rel.cause = IMSPLIT__V1__RELEASE_REASON__RELEASE_SESSION_TIMER_EXPIRED;
        m->env.release_leg = &m->rel;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT:
        imsplit__v1__release_leg_result__init(&m->rel_res);
        imsplit__v1__leg_counters__init(&m->counters);
        m->counters.bytes_in = 1;
        m->counters.bytes_out = 2;
        m->counters.msgs_in = 3;
        m->counters.msgs_out = 4;
        m->rel_res.status = IMSPLIT__V1__STATUS__STATUS_NOT_FOUND;
        m->rel_res.session_id = SID;
        m->rel_res.direction = CONTROLLING;
        m->rel_res.counters = &m->counters;
        m->env.release_leg_result = &m->rel_res;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT:
        imsplit__v1__leg_event__init(&m->ev);
        imsplit__v1__leg_counters__init(&m->counters);
        m->counters.bytes_in = 10;
        m->ev.session_id = SID;
        m->ev.direction = CLIENT;
        m->ev.kind = IMSPLIT__V1__LEG_EVENT_KIND__LEG_EVENT_PEER_CLOSED;
        m->ev.counters = &m->counters;
        m->env.leg_event = &m->ev;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT_ACK:
        imsplit__v1__leg_event_ack__init(&m->ev_ack);
        m->ev_ack.session_id = SID;
        m->ev_ack.direction = CLIENT;
        m->env.leg_event_ack = &m->ev_ack;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_AUDIT:
        imsplit__v1__audit__init(&m->audit);
        m->env.audit = &m->audit;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_INVENTORY:
        imsplit__v1__inventory__init(&m->inv);
        for (int i = 0; i < 2; i++) {
            imsplit__v1__leg_ref__init(&m->refs[i]);
            m->refs[i].session_id = SID + (uint64_t)i;
            m->refs[i].direction = i ? CONTROLLING : CLIENT;
            m->ref_ptrs[i] = &m->refs[i];
        }
        m->inv.n_legs = 2;
        m->inv.legs = m->ref_ptrs;
        m->env.inventory = &m->inv;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_DRAIN:
        imsplit__v1__drain__init(&m->drain);
        m->drain.node_id = "up-2";
        m->env.drain = &m->drain;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_DRAIN_RESULT:
        imsplit__v1__drain_result__init(&m->drain_res);
        m->drain_res.status = IMSPLIT__V1__STATUS__STATUS_DRAINING;
        m->env.drain_result = &m->drain_res;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_ERROR:
        imsplit__v1__error_reply__init(&m->err);
        m->err.code = IMSPLIT__V1__ERROR_CODE__ERROR_MALFORMED;
        m->err.message = "bad \"frame\"\n\x01";
        m->env.error = &m->err;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_QUERY:
        imsplit__v1__query__init(&m->query);
        m->query.kind = IMSPLIT__V1__QUERY_KIND__QUERY_SESSIONS;
        m->env.query = &m->query;
        break;
    case IMSPLIT__V1__ENVELOPE__BODY_QUERY_RESULT:
        imsplit__v1__query_result__init(&m->qres);
        imsplit__v1__worker_info__init(&m->worker);
        imsplit__v1__session_info__init(&m->sess);
        m->worker.node_id = "up-1";
        m->worker.state = IMSPLIT__V1__WORKER_STATE__WORKER_LIVE;
        m->worker.legs_active = 2;
        m->worker_ptrs[0] = &m->worker;
        m->sess.session_id = SID;
        m->sess.call_id = "abc@host";
        m->sess.client_se = 1800;
        m->sess_ptrs[0] = &m->sess;
        m->qres.n_workers = 1;
        m->qres.workers = m->worker_ptrs;
        m->qres.n_sessions = 1;
        m->qres.sessions = m->sess_ptrs;
        m->env.query_result = &m->qres;
        break;
    default:
        fail_msg("unknown body %d", body);
    }
}

static void s_pack(const im_env_t *env, uint8_t **buf, size_t *len)
{
    assert_int_equal(im_proto_pack(env, buf, len), 0);
    assert_non_null(*buf);
    assert_true(*len > 0);
}

static void test_round_trip_every_body(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_BODIES; i++) {
        s_msg_t m;
        uint8_t *buf, *buf2;
        size_t len, len2;
        im_env_t *out = NULL;
        char why[128] = "x";

        s_build(&m, s_bodies[i]);
        s_pack(&m.env, &buf, &len);
        assert_int_equal(im_proto_unpack(buf, len, &out, why, sizeof(why)),
                         IM_PROTO_OK);
        assert_string_equal(why, "");
        assert_non_null(out);
        assert_int_equal(out->body_case, s_bodies[i]);
        assert_int_equal(out->major, IM_PROTO_MAJOR);
        assert_int_equal(out->minor, IM_PROTO_MINOR);
        assert_string_equal(out->sender_id, SENDER);
        assert_true(out->sender_epoch == UINT64_C(0x1122334455667788));
        assert_true(out->seq == 42);
        assert_true(out->reply_to == 41);
        /* Serialization is deterministic: equal bytes prove equal fields. */
        s_pack(out, &buf2, &len2);
        assert_int_equal(len2, len);
        assert_memory_equal(buf2, buf, len);
        free(buf2);
        im_proto_free(out);
        free(buf);
    }
}

static void test_round_trip_fields(void **state)
{
    (void)state;
    s_msg_t m;
    uint8_t *buf;
    size_t len;
    im_env_t *out = NULL;

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT);
    s_pack(&m.env, &buf, &len);
    assert_int_equal(im_proto_unpack(buf, len, &out, NULL, 0), IM_PROTO_OK);
    assert_true(out->release_leg_result->session_id == SID);
    assert_int_equal(out->release_leg_result->direction, CONTROLLING);
    assert_int_equal(out->release_leg_result->status,
                     IMSPLIT__V1__STATUS__STATUS_NOT_FOUND);
    assert_non_null(out->release_leg_result->counters);
    assert_true(out->release_leg_result->counters->msgs_out == 4);
    im_proto_free(out);
    free(buf);

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG);
    s_pack(&m.env, &buf, &len);
    assert_int_equal(im_proto_unpack(buf, len, &out, NULL, 0), IM_PROTO_OK);
    assert_string_equal(out->connect_leg->peer_path, m.conn.peer_path);
    assert_string_equal(out->connect_leg->setup, "active");
    im_proto_free(out);
    free(buf);
}

static void test_truncated_frames(void **state)
{
    (void)state;
    size_t malformed = 0, judged = 0;

    for (size_t i = 0; i < N_BODIES; i++) {
        s_msg_t m;
        uint8_t *buf;
        size_t len;

        s_build(&m, s_bodies[i]);
        s_pack(&m.env, &buf, &len);
        for (size_t n = 1; n < len; n++) {
            /* An exact-size copy lets ASan see any read past the end. */
            uint8_t *cut = malloc(n);
            im_env_t *out = (im_env_t *)(uintptr_t)1;
            char why[128];
            assert_non_null(cut);
            memcpy(cut, buf, n);
            im_proto_err_t err = im_proto_unpack(cut, n, &out, why, sizeof(why));
            switch (err) {
            case IM_PROTO_OK:
                assert_non_null(out);
                break;
            case IM_PROTO_MALFORMED:
                assert_null(out);
                assert_true(why[0] != '\0');
                malformed++;
                break;
            case IM_PROTO_NO_BODY:
            case IM_PROTO_BAD_FIELD:
                /* A cut at a field boundary leaves a valid but shorter
                 * envelope; validation then judges what remains. */
                assert_null(out);
                judged++;
                break;
            default:
                fail_msg("body %d cut at %zu: %s", s_bodies[i], n,
                         im_proto_err_name(err));
            }
            im_proto_free(err == IM_PROTO_OK ? out : NULL);
            free(cut);
        }
        free(buf);
    }
    assert_true(malformed > 0);
    assert_true(judged > 0);
}

static void test_empty_and_oversize(void **state)
{
    (void)state;
    im_env_t *out = (im_env_t *)(uintptr_t)1;
    char why[128];
    uint8_t byte = 0x08;

    assert_int_equal(im_proto_unpack(&byte, 0, &out, why, sizeof(why)),
                     IM_PROTO_EMPTY);
    assert_null(out);
    assert_true(why[0] != '\0');
    assert_int_equal(im_proto_unpack(NULL, 0, &out, NULL, 0), IM_PROTO_EMPTY);

    uint8_t *big = calloc(1, IM_PROTO_MAX_FRAME + 1);
    assert_non_null(big);
    out = (im_env_t *)(uintptr_t)1;
    assert_int_equal(im_proto_unpack(big, IM_PROTO_MAX_FRAME + 1, &out, why,
                                     sizeof(why)),
                     IM_PROTO_OVERSIZE);
    assert_null(out);
    free(big);

    /* Garbage: a length-delimited field running past the end. */
    uint8_t junk[] = {0x1a, 0x7f, 'a'};
    assert_int_equal(im_proto_unpack(junk, sizeof(junk), &out, NULL, 0),
                     IM_PROTO_MALFORMED);
    assert_null(out);
}

static void test_unknown_major(void **state)
{
    (void)state;
    s_msg_t m;
    uint8_t *buf;
    size_t len;
    im_env_t *out = NULL;
    char why[128];

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT);
    m.env.major = 2;
    s_pack(&m.env, &buf, &len);
    assert_int_equal(im_proto_unpack(buf, len, &out, why, sizeof(why)),
                     IM_PROTO_VERSION);
    /* Still handed over so the caller can answer the sender. */
    assert_non_null(out);
    assert_int_equal(out->major, 2);
    assert_string_equal(out->sender_id, SENDER);
    assert_true(out->seq == 42);
    assert_non_null(strstr(why, "2"));
    im_proto_free(out);
    free(buf);

    /* Major 0 (field absent) is not ours either. */
    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT);
    m.env.major = 0;
    s_pack(&m.env, &buf, &len);
    assert_int_equal(im_proto_unpack(buf, len, &out, NULL, 0), IM_PROTO_VERSION);
    im_proto_free(out);
    free(buf);
}

static void test_no_body(void **state)
{
    (void)state;
    im_env_t env;
    uint8_t *buf, *buf2;
    size_t len;
    im_env_t *out = (im_env_t *)(uintptr_t)1;

    im_env_init(&env, SENDER, 1, 1);
    s_pack(&env, &buf, &len);
    assert_int_equal(im_proto_unpack(buf, len, &out, NULL, 0), IM_PROTO_NO_BODY);
    assert_null(out);

    /* A body number from a newer schema (field 40, empty message). */
    buf2 = malloc(len + 2);
    assert_non_null(buf2);
    memcpy(buf2, buf, len);
    buf2[len] = 0xc2; /* (40 << 3) | 2 as a varint */
    buf2[len + 1] = 0x02;
    uint8_t *buf3 = malloc(len + 3);
    assert_non_null(buf3);
    memcpy(buf3, buf2, len + 2);
    buf3[len + 2] = 0x00; /* length 0 */
    assert_int_equal(im_proto_unpack(buf3, len + 3, &out, NULL, 0),
                     IM_PROTO_NO_BODY);
    assert_null(out);
    free(buf3);
    free(buf2);
    free(buf);
}

static void test_unknown_fields_ignored(void **state)
{
    (void)state;
    s_msg_t m;
    uint8_t *buf, *ext;
    size_t len;
    im_env_t *out = NULL;

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG);
    s_pack(&m.env, &buf, &len);
    /* Field 99, varint 1; and field 100, a 3-byte string. */
    static const uint8_t extra[] = {0x98, 0x06, 0x01, 0xa2, 0x06, 0x03,
                                    'a',  'b',  'c'};
    ext = malloc(len + sizeof(extra));
    assert_non_null(ext);
    memcpy(ext, buf, len);
    memcpy(ext + len, extra, sizeof(extra));
    assert_int_equal(im_proto_unpack(ext, len + sizeof(extra), &out, NULL, 0),
                     IM_PROTO_OK);
    assert_int_equal(out->body_case, IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG);
    assert_true(out->allocate_leg->session_id == SID);
    assert_int_equal(out->allocate_leg->direction, CLIENT);
    im_proto_free(out);
    free(ext);
    free(buf);
}

static im_proto_err_t s_roundtrip_err(const im_env_t *env, char *why,
                                      size_t why_size)
{
    uint8_t *buf;
    size_t len;
    im_env_t *out = (im_env_t *)(uintptr_t)1;
    im_proto_err_t err;

    s_pack(env, &buf, &len);
    err = im_proto_unpack(buf, len, &out, why, why_size);
    if (err == IM_PROTO_OK)
        im_proto_free(out);
    else
        assert_null(out);
    free(buf);
    return err;
}

static void test_bad_fields(void **state)
{
    (void)state;
    s_msg_t m;
    char why[128];

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG);
    m.alloc.direction = IMSPLIT__V1__DIRECTION__DIRECTION_UNSPECIFIED;
    assert_int_equal(s_roundtrip_err(&m.env, why, sizeof(why)),
                     IM_PROTO_BAD_FIELD);
    assert_non_null(strstr(why, "direction"));

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG);
    m.rel.direction = 7; /* not in the enum */
    assert_int_equal(s_roundtrip_err(&m.env, why, sizeof(why)),
                     IM_PROTO_BAD_FIELD);

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_CONNECT_LEG);
    m.conn.session_id = 0;
    assert_int_equal(s_roundtrip_err(&m.env, why, sizeof(why)),
                     IM_PROTO_BAD_FIELD);
    assert_non_null(strstr(why, "session_id"));

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT);
    m.ev.direction = 0;
    assert_int_equal(s_roundtrip_err(&m.env, NULL, 0), IM_PROTO_BAD_FIELD);

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT);
    m.rel_res.direction = 0;
    assert_int_equal(s_roundtrip_err(&m.env, NULL, 0), IM_PROTO_BAD_FIELD);

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_REGISTER);
    m.reg.node_id = "";
    assert_int_equal(s_roundtrip_err(&m.env, why, sizeof(why)),
                     IM_PROTO_BAD_FIELD);
    assert_non_null(strstr(why, "node_id"));

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT);
    m.env.sender_id = "";
    assert_int_equal(s_roundtrip_err(&m.env, why, sizeof(why)),
                     IM_PROTO_BAD_FIELD);
    assert_non_null(strstr(why, "sender_id"));

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_INVENTORY);
    m.refs[1].session_id = 0;
    assert_int_equal(s_roundtrip_err(&m.env, NULL, 0), IM_PROTO_BAD_FIELD);

    /* An empty body message is still a body. */
    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_AUDIT);
    assert_int_equal(s_roundtrip_err(&m.env, NULL, 0), IM_PROTO_OK);
}

static void test_to_json(void **state)
{
    (void)state;
    s_msg_t m;
    char *json;

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG);
    json = im_proto_to_json(&m.env);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"major\":1"));
    assert_non_null(strstr(json, "\"sender_id\":\"up-1\""));
    assert_non_null(strstr(json, "\"sender_epoch\":1234605616436508552"));
    assert_non_null(strstr(json, "\"seq\":42"));
    assert_non_null(strstr(json, "\"reply_to\":41"));
    assert_non_null(strstr(json, "\"allocate_leg\":{\"session_id\":"
                                 "18364758544493064720,"
                                 "\"direction\":\"DIRECTION_CLIENT\","
                                 "\"call_id\":\"\"}"));
    assert_non_null(strstr(json, "\"body\":\"allocate_leg\""));
    assert_int_equal(json[0], '{');
    assert_int_equal(json[strlen(json) - 1], '}');
    assert_null(strchr(json, '\n'));
    free(json);

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_ERROR);
    json = im_proto_to_json(&m.env);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"code\":\"ERROR_MALFORMED\""));
    assert_non_null(
        strstr(json, "\"message\":\"bad \\\"frame\\\"\\n\\u0001\""));
    free(json);

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_QUERY_RESULT);
    json = im_proto_to_json(&m.env);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"workers\":[{\"node_id\":\"up-1\""));
    assert_non_null(strstr(json, "\"state\":\"WORKER_LIVE\""));
    assert_non_null(strstr(json, "\"sessions\":[{\"session_id\":"));
    assert_non_null(strstr(json, "\"call_id\":\"abc@host\""));
    free(json);

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT);
    json = im_proto_to_json(&m.env);
    assert_non_null(strstr(json, "\"draining\":true"));
    free(json);

    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_INVENTORY);
    json = im_proto_to_json(&m.env);
    assert_non_null(strstr(json, "\"legs\":[{"));
    assert_non_null(strstr(json, "\"direction\":\"DIRECTION_CONTROLLING\"}]"));
    free(json);

    /* A nested message left unset is simply omitted. */
    s_build(&m, IMSPLIT__V1__ENVELOPE__BODY_LEG_EVENT);
    m.ev.counters = NULL;
    json = im_proto_to_json(&m.env);
    assert_null(strstr(json, "counters"));
    free(json);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(im_proto_err_name(IM_PROTO_OK), "ok");
    assert_string_equal(im_proto_err_name(IM_PROTO_EMPTY), "empty");
    assert_string_equal(im_proto_err_name(IM_PROTO_OVERSIZE), "oversize");
    assert_string_equal(im_proto_err_name(IM_PROTO_MALFORMED), "malformed");
    assert_string_equal(im_proto_err_name(IM_PROTO_VERSION), "version");
    assert_string_equal(im_proto_err_name(IM_PROTO_NO_BODY), "no_body");
    assert_string_equal(im_proto_err_name(IM_PROTO_BAD_FIELD), "bad_field");

    assert_string_equal(im_proto_body_name(0), "none");
    assert_string_equal(
        im_proto_body_name(IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG),
        "allocate_leg");
    assert_string_equal(
        im_proto_body_name(IMSPLIT__V1__ENVELOPE__BODY_REGISTER), "register");
    assert_string_equal(
        im_proto_body_name(IMSPLIT__V1__ENVELOPE__BODY_QUERY_RESULT),
        "query_result");
    assert_string_equal(im_proto_body_name(77), "unknown");
    assert_string_equal(im_proto_body_name(1), "unknown"); /* header field */

    assert_string_equal(im_proto_direction_name(CLIENT), "client");
    assert_string_equal(im_proto_direction_name(CONTROLLING), "controlling");
    assert_string_equal(im_proto_direction_name(0), "unspecified");
    assert_string_equal(im_proto_direction_name(9), "unknown");

    assert_string_equal(
        im_proto_reason_name(
            IMSPLIT__V1__RELEASE_REASON__RELEASE_SESSION_TIMER_EXPIRED),
        "session_timer_expired");
    assert_string_equal(
        im_proto_reason_name(IMSPLIT__V1__RELEASE_REASON__RELEASE_BYE_2XX),
        "bye_2xx");
    assert_string_equal(
        im_proto_reason_name(IMSPLIT__V1__RELEASE_REASON__RELEASE_BYE_TIMEOUT),
        "bye_timeout");
    assert_string_equal(
        im_proto_reason_name(IMSPLIT__V1__RELEASE_REASON__RELEASE_PEER_BYE),
        "peer_bye");
    assert_string_equal(im_proto_reason_name(-1), "unknown");
    assert_string_equal(im_proto_reason_name(1000), "unknown");

    assert_string_equal(im_proto_status_name(IMSPLIT__V1__STATUS__STATUS_OK),
                        "ok");
    assert_string_equal(
        im_proto_status_name(IMSPLIT__V1__STATUS__STATUS_NOT_FOUND),
        "not_found");
    assert_string_equal(
        im_proto_status_name(IMSPLIT__V1__STATUS__STATUS_NO_CAPACITY),
        "no_capacity");
    assert_string_equal(im_proto_status_name(99), "unknown");

    /* Every reason and status in the schema has a name of its own. */
    const ProtobufCEnumDescriptor *rd = &imsplit__v1__release_reason__descriptor;
    for (unsigned i = 0; i < rd->n_values; i++)
        assert_string_not_equal(im_proto_reason_name(rd->values[i].value),
                                "unknown");
    const ProtobufCEnumDescriptor *sd = &imsplit__v1__status__descriptor;
    for (unsigned i = 0; i < sd->n_values; i++)
        assert_string_not_equal(im_proto_status_name(sd->values[i].value),
                                "unknown");
}

/* ---- generic field access ---------------------------------------------- */

/* Sets path=value on m and checks that it reads back as want. */
static void s_set_get(ProtobufCMessage *m, const char *path, const char *value,
                      const char *want)
{
    char err[256] = "", out[256];
    int rc = im_proto_set_field(m, path, value, err, sizeof(err));
    if (rc != 0)
        fail_msg("set %s=%s: %d %s", path, value, rc, err);
    assert_true(im_proto_get_field(m, path, out, sizeof(out)) >= 0);
    assert_string_equal(out, want);
}

static void test_field_scalars(void **state)
{
    (void)state;
    im_env_t *env = im_env_new();
    char out[128];
    assert_non_null(env);
    assert_int_equal(env->major, IM_PROTO_MAJOR);

    s_set_get(&env->base, "seq", "42", "42");
    s_set_get(&env->base, "reply_to", "0x10", "16");
    s_set_get(&env->base, "sender_epoch", "18446744073709551615",
              "18446744073709551615");
    s_set_get(&env->base, "sender_id", "up 1", "up 1");
    s_set_get(&env->base, "sender_id", "", "");
    s_set_get(&env->base, "heartbeat.draining", "on", "true");
    s_set_get(&env->base, "heartbeat.draining", "FALSE", "false");
    s_set_get(&env->base, "heartbeat.buffer_bytes", "0xFFFFFFFFFF",
              "1099511627775");
    assert_int_equal(env->body_case, IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT);
    assert_int_equal(im_proto_body_case("heartbeat"),
                     IMSPLIT__V1__ENVELOPE__BODY_HEARTBEAT);
    assert_ptr_equal(im_env_body(env), &env->heartbeat->base);

    /* 1 for a non-default value, 0 for the default. */
    assert_int_equal(im_proto_get_field(&env->base, "seq", out, sizeof(out)),
                     1);
    assert_int_equal(im_proto_get_field(&env->base, "minor", out, sizeof(out)),
                     1);
    assert_int_equal(im_proto_get_field(&env->base, "heartbeat.legs_active",
                                        out, sizeof(out)),
                     0);
    assert_string_equal(out, "0");
    assert_int_equal(
        im_proto_get_field(&env->base, "sender_id", out, sizeof(out)), 0);

    /* The envelope packs and decodes like one built by hand. */
    uint8_t *buf;
    size_t len;
    im_env_t *back = NULL;
    s_set_get(&env->base, "sender_id", "up-1", "up-1");
    assert_int_equal(im_proto_pack(env, &buf, &len), 0);
    assert_int_equal(im_proto_unpack(buf, len, &back, NULL, 0), IM_PROTO_OK);
    assert_int_equal(back->seq, 42);
    assert_int_equal(back->heartbeat->buffer_bytes, UINT64_C(0xFFFFFFFFFF));
    /* Unpacked messages take set_field too, and free the same way. */
    s_set_get(&back->base, "heartbeat.legs_active", "7", "7");
    s_set_get(&back->base, "sender_id", "up-2", "up-2");
    free(buf);
    im_proto_free(back);
    im_proto_free(env);
}

static void test_field_enums(void **state)
{
    (void)state;
    im_env_t *env = im_env_new();
    char err[256];

    s_set_get(&env->base, "allocate_leg_result.status", "STATUS_CONFLICT",
              "STATUS_CONFLICT");
    s_set_get(&env->base, "allocate_leg_result.status", "OK", "STATUS_OK");
    s_set_get(&env->base, "allocate_leg_result.status", "not_found",
              "STATUS_NOT_FOUND");
    s_set_get(&env->base, "allocate_leg_result.direction", "client",
              "DIRECTION_CLIENT");
    s_set_get(&env->base, "allocate_leg_result.direction", "Controlling",
              "DIRECTION_CONTROLLING");
    s_set_get(&env->base, "allocate_leg_result.direction", "2",
              "DIRECTION_CONTROLLING");
    /* A number the schema does not know is kept and shown as a number. */
    s_set_get(&env->base, "allocate_leg_result.direction", "9", "9");
    /* Short forms are the part after any '_': "bye_2xx", "2xx", "audit". */
    s_set_get(&env->base, "release_leg.reason", "bye_2xx", "RELEASE_BYE_2XX");
    s_set_get(&env->base, "release_leg.reason", "2xx", "RELEASE_BYE_2XX");
    s_set_get(&env->base, "release_leg.cause", "audit", "RELEASE_AUDIT");
    s_set_get(&env->base, "release_leg.cause", "unspecified",
              "RELEASE_REASON_UNSPECIFIED");

    assert_int_equal(im_proto_set_field(&env->base, "release_leg.direction",
                                        "sideways", err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "direction"));
    assert_non_null(strstr(err, "DIRECTION_CLIENT"));
    /* A short form must end at a '_' boundary of the name. */
    s_set_get(&env->base, "release_leg.reason", "bye", "RELEASE_PEER_BYE");
    assert_int_equal(im_proto_set_field(&env->base, "release_leg.reason", "ye",
                                        err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(im_proto_set_field(&env->base, "release_leg.reason",
                                        "99999999999", err, sizeof(err)),
                     -EINVAL);
    /* A failed set leaves the field as it was. */
    char out[64];
    assert_true(im_proto_get_field(&env->base, "release_leg.cause", out,
                                   sizeof(out)) >= 0);
    assert_string_equal(out, "RELEASE_REASON_UNSPECIFIED");
    im_proto_free(env);
}

static void test_field_nested_and_oneof(void **state)
{
    (void)state;
    im_env_t *env = im_env_new();
    char out[256], err[256];

    /* Through a body that is not selected: nothing there yet. */
    assert_int_equal(im_proto_get_field(&env->base,
                                        "release_leg_result.counters.bytes_in",
                                        out, sizeof(out)),
                     -ENOENT);
    assert_string_equal(out, "");
    s_set_get(&env->base, "release_leg_result.counters.bytes_in", "5", "5");
    assert_int_equal(env->body_case,
                     IMSPLIT__V1__ENVELOPE__BODY_RELEASE_LEG_RESULT);
    assert_non_null(env->release_leg_result->counters);
    assert_int_equal(env->release_leg_result->counters->bytes_in, 5);
    assert_int_equal(im_proto_get_field(&env->base,
                                        "release_leg_result.counters", out,
                                        sizeof(out)),
                     1);
    assert_non_null(strstr(out, "\"bytes_in\":5"));

    /* Selecting another body frees the first (ASan checks the leak). */
    s_set_get(&env->base, "allocate_leg.call_id", "abc", "abc");
    assert_int_equal(env->body_case, IMSPLIT__V1__ENVELOPE__BODY_ALLOCATE_LEG);
    assert_int_equal(im_proto_get_field(&env->base, "release_leg_result.status",
                                        out, sizeof(out)),
                     -ENOENT);
    /* An empty body is made present with "{}". */
    assert_int_equal(
        im_proto_set_field(&env->base, "audit", "{}", err, sizeof(err)), 0);
    assert_int_equal(env->body_case, IMSPLIT__V1__ENVELOPE__BODY_AUDIT);
    assert_int_equal(im_proto_get_field(&env->base, "audit", out, sizeof(out)),
                     1);
    assert_string_equal(out, "{}");
    assert_int_equal(
        im_proto_set_field(&env->base, "audit", "x", err, sizeof(err)),
        -EINVAL);

    /* Paths the schema does not have. */
    assert_int_equal(im_proto_set_field(&env->base, "allocate_leg.nope", "1",
                                        err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "nope"));
    assert_int_equal(
        im_proto_set_field(&env->base, "seq.x", "1", err, sizeof(err)),
        -EINVAL);
    assert_int_equal(im_proto_set_field(&env->base, "allocate_leg..call_id",
                                        "1", err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(im_proto_set_field(&env->base, "", "1", err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(im_proto_get_field(&env->base, "bogus", out, sizeof(out)),
                     -EINVAL);
    assert_int_equal(
        im_proto_check_path(&imsplit__v1__release_leg_result__descriptor,
                            "counters.msgs_out", NULL, 0),
        0);
    assert_int_equal(im_proto_check_path(&imsplit__v1__inventory__descriptor,
                                         "legs.7.direction", NULL, 0),
                     0);
    assert_int_equal(im_proto_check_path(&imsplit__v1__inventory__descriptor,
                                         "legs.direction", err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(im_proto_check_path(&imsplit__v1__inventory__descriptor,
                                         "part.x", err, sizeof(err)),
                     -EINVAL);
    im_proto_free(env);
}

static void test_field_repeated(void **state)
{
    (void)state;
    im_env_t *env = im_env_new();
    char out[256], err[256];

    assert_int_equal(im_proto_set_field(&env->base, "inventory.last", "true",
                                        err, sizeof(err)),
                     0);
    assert_int_equal(
        im_proto_get_field(&env->base, "inventory.legs", out, sizeof(out)), 0);
    assert_string_equal(out, "0");
    /* Index == count appends; past it is refused. */
    s_set_get(&env->base, "inventory.legs.0.session_id", "0xdead", "57005");
    s_set_get(&env->base, "inventory.legs.0.direction", "client",
              "DIRECTION_CLIENT");
    s_set_get(&env->base, "inventory.legs.1.session_id", "7", "7");
    assert_int_equal(im_proto_set_field(&env->base,
                                        "inventory.legs.3.session_id", "1", err,
                                        sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "past the end"));
    assert_int_equal(
        im_proto_set_field(&env->base, "inventory.legs", "1", err, sizeof(err)),
        -EINVAL);
    assert_int_equal(im_proto_set_field(&env->base, "inventory.legs.x", "1",
                                        err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(
        im_proto_get_field(&env->base, "inventory.legs", out, sizeof(out)), 1);
    assert_string_equal(out, "2");
    assert_int_equal(
        im_proto_get_field(&env->base, "inventory.legs.2", out, sizeof(out)),
        -ENOENT);
    assert_int_equal(env->inventory->n_legs, 2);
    assert_int_equal(env->inventory->legs[1]->session_id, 7);

    /* Round trip, then free: every element and the array are owned. */
    s_set_get(&env->base, "inventory.legs.1.direction", "controlling",
              "DIRECTION_CONTROLLING");
    s_set_get(&env->base, "sender_id", "up-1", "up-1");
    uint8_t *buf;
    size_t len;
    im_env_t *back = NULL;
    assert_int_equal(im_proto_pack(env, &buf, &len), 0);
    assert_int_equal(im_proto_unpack(buf, len, &back, NULL, 0), IM_PROTO_OK);
    assert_int_equal(back->inventory->n_legs, 2);
    assert_int_equal(back->inventory->legs[0]->session_id, 0xdead);
    /* Appending to an unpacked message's array. */
    s_set_get(&back->base, "inventory.legs.2.session_id", "9", "9");
    free(buf);
    im_proto_free(back);

    /* A repeated message in another message: QueryResult.workers. */
    s_set_get(&env->base, "query_result.workers.0.node_id", "up-9", "up-9");
    s_set_get(&env->base, "query_result.workers.0.state", "draining",
              "WORKER_DRAINING");
    assert_int_equal(env->query_result->n_workers, 1);
    im_proto_free(env);
}

static void test_field_bad_values(void **state)
{
    (void)state;
    im_env_t *env = im_env_new();
    char err[256], out[8];
    static const struct {
        const char *path, *value;
    } bad[] = {
        {"seq", ""},
        {"seq", "-1"},
        {"seq", "12x"},
        {"seq", " 1"},
        {"seq", "+1"},
        {"seq", "0x"},
        {"seq", "18446744073709551616"},
        {"major", "4294967296"},
        {"heartbeat.draining", "maybe"},
        {"allocate_leg.direction", ""},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (im_proto_set_field(&env->base, bad[i].path, bad[i].value, err,
                               sizeof(err)) != -EINVAL)
            fail_msg("%s=\"%s\" accepted", bad[i].path, bad[i].value);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(env->seq, 0);
    s_set_get(&env->base, "major", "4294967295", "4294967295");
    /* A short output buffer is reported and still terminated. */
    assert_int_equal(im_proto_get_field(&env->base, "major", out, sizeof(out)),
                     -ENOSPC);
    assert_string_equal(out, "4294967");
    /* NULL-safe. */
    im_proto_msg_free(NULL);
    assert_int_equal(im_proto_set_field(NULL, "seq", "1", err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(im_proto_body_case("nope"), -1);
    assert_int_equal(im_proto_body_case(NULL), -1);
    im_proto_free(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_body),
        cmocka_unit_test(test_round_trip_fields),
        cmocka_unit_test(test_truncated_frames),
        cmocka_unit_test(test_empty_and_oversize),
        cmocka_unit_test(test_unknown_major),
        cmocka_unit_test(test_no_body),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_field_scalars),
        cmocka_unit_test(test_field_enums),
        cmocka_unit_test(test_field_nested_and_oneof),
        cmocka_unit_test(test_field_repeated),
        cmocka_unit_test(test_field_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
