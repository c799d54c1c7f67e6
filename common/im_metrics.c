#include "im_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "im_clock.h"
#include "im_config.h"

#define IM_METRICS_DEFAULT_STALL_MS 5000

struct im_metric {
    im_metric_t *next;
    char *name;
    char *help;
    char *labels; /* NULL when the series has none */
    im_metric_type_t type;
    _Atomic int64_t value;
};

struct im_metrics {
    /* Guards the series list: the HTTP thread walks it while the loop
     * thread may still be registering. Values are atomics and need no lock. */
    pthread_mutex_t lock;
    im_metric_t *head;
    im_metric_t *tail;
    struct MHD_Daemon *daemon;
    unsigned port;
    _Atomic uint64_t last_tick_ms;
    _Atomic uint64_t stall_ms;
    atomic_bool ready;
    bool add_failed; /* an im_metrics_add returned NULL */
};

im_metrics_t *im_metrics_new(void)
{
    im_metrics_t *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    /* A daemon counts as live from creation until its loop first stalls. */
    atomic_init(&m->last_tick_ms, im_clock_ms());
    atomic_init(&m->stall_ms, IM_METRICS_DEFAULT_STALL_MS);
    atomic_init(&m->ready, false);
    return m;
}

void im_metrics_destroy(im_metrics_t **m_p)
{
    im_metrics_t *m;

    if (!m_p || !*m_p)
        return;
    m = *m_p;
    /* Stopping the daemon joins its thread, so no scrape can still be
     * reading the series freed below. */
    if (m->daemon)
        MHD_stop_daemon(m->daemon);
    for (im_metric_t *s = m->head; s;) {
        im_metric_t *next = s->next;
        free(s->name);
        free(s->help);
        free(s->labels);
        free(s);
        s = next;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
    *m_p = NULL;
}

im_metric_t *im_metrics_add(im_metrics_t *m, const char *name,
                            const char *help, im_metric_type_t type,
                            const char *labels)
{
    im_metric_t *s;

    if (!m)
        return NULL;
    if (!name || !name[0]) {
        m->add_failed = true;
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        m->add_failed = true;
        return NULL;
    }
    s->name = strdup(name);
    s->help = strdup(help ? help : "");
    s->labels = labels && labels[0] ? strdup(labels) : NULL;
    if (!s->name || !s->help || (labels && labels[0] && !s->labels)) {
        free(s->name);
        free(s->help);
        free(s->labels);
        free(s);
        m->add_failed = true;
        return NULL;
    }
    s->type = type;
    atomic_init(&s->value, 0);
    pthread_mutex_lock(&m->lock);
    if (m->tail)
        m->tail->next = s;
    else
        m->head = s;
    m->tail = s;
    pthread_mutex_unlock(&m->lock);
    return s;
}

bool im_metrics_complete(const im_metrics_t *m)
{
    return m && !m->add_failed;
}

void im_metric_inc(im_metric_t *metric)
{
    if (metric)
        atomic_fetch_add_explicit(&metric->value, 1, memory_order_relaxed);
}

void im_metric_add(im_metric_t *metric, int64_t delta)
{
    if (metric)
        atomic_fetch_add_explicit(&metric->value, delta, memory_order_relaxed);
}

void im_metric_set(im_metric_t *metric, int64_t value)
{
    if (metric)
        atomic_store_explicit(&metric->value, value, memory_order_relaxed);
}

int64_t im_metric_get(const im_metric_t *metric)
{
    if (!metric)
        return 0;
    return atomic_load_explicit(&((im_metric_t *)metric)->value,
                                memory_order_relaxed);
}

typedef struct {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
} s_text_t;

static void s_text_put(s_text_t *t, const char *s, size_t n)
{
    if (t->oom)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *np = realloc(t->p, cap);
        if (!np) {
            t->oom = true;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void s_text_str(s_text_t *t, const char *s)
{
    s_text_put(t, s, strlen(s));
}

/* HELP text escapes only backslash and newline (format 0.0.4). */
static void s_text_help(s_text_t *t, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            s_text_put(t, "\\\\", 2);
        else if (*s == '\n')
            s_text_put(t, "\\n", 2);
        else
            s_text_put(t, s, 1);
    }
}

static void s_render_series(s_text_t *t, const im_metric_t *s)
{
    char num[32];
    int n;

    s_text_str(t, s->name);
    if (s->labels) {
        s_text_put(t, "{", 1);
        s_text_str(t, s->labels);
        s_text_put(t, "}", 1);
    }
    n = snprintf(num, sizeof(num), " %" PRId64 "\n", im_metric_get(s));
    if (n > 0)
        s_text_put(t, num, (size_t)n);
}

char *im_metrics_render(im_metrics_t *m, size_t *len)
{
    s_text_t t = {0};

    if (len)
        *len = 0;
    if (!m)
        return NULL;
    s_text_put(&t, "", 0);
    pthread_mutex_lock(&m->lock);
    for (const im_metric_t *s = m->head; s; s = s->next) {
        bool seen = false;
        /* The first series of a name prints the family with all its
         * series; later ones were already printed. Registries hold tens
         * of series, so the quadratic scan is cheaper than an index. */
        for (const im_metric_t *p = m->head; p != s; p = p->next) {
            if (strcmp(p->name, s->name) == 0) {
                seen = true;
                break;
            }
        }
        if (seen)
            continue;
        s_text_str(&t, "# HELP ");
        s_text_str(&t, s->name);
        s_text_put(&t, " ", 1);
        s_text_help(&t, s->help);
        s_text_str(&t, "\n# TYPE ");
        s_text_str(&t, s->name);
        s_text_str(&t, s->type == IM_METRIC_COUNTER ? " counter\n" : " gauge\n");
        for (const im_metric_t *q = s; q; q = q->next)
            if (strcmp(q->name, s->name) == 0)
                s_render_series(&t, q);
    }
    pthread_mutex_unlock(&m->lock);
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    if (len)
        *len = t.len;
    return t.p;
}

static enum MHD_Result s_reply(struct MHD_Connection *conn, unsigned status,
                               const char *type, void *body, size_t len,
                               enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result s_reply_text(struct MHD_Connection *conn,
                                    unsigned status, const char *text)
{
    return s_reply(conn, status, "text/plain; charset=utf-8", (void *)text,
                   strlen(text), MHD_RESPMEM_PERSISTENT);
}

static bool s_healthy(im_metrics_t *m)
{
    uint64_t now = im_clock_ms();
    uint64_t last = atomic_load(&m->last_tick_ms);

    /* A tick stamped later than our clock reading is fresh, not stale. */
    return now <= last || now - last <= atomic_load(&m->stall_ms);
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    im_metrics_t *m = cls;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(url, "/metrics") != 0 && strcmp(url, "/healthz") != 0 &&
        strcmp(url, "/readyz") != 0)
        return s_reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return s_reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "method not allowed\n");

    if (strcmp(url, "/metrics") == 0) {
        size_t len;
        char *text = im_metrics_render(m, &len);
        if (!text)
            return s_reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                "out of memory\n");
        return s_reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", text,
                       len, MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(url, "/healthz") == 0)
        return s_healthy(m) ? s_reply_text(conn, MHD_HTTP_OK, "ok\n")
                            : s_reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                           "stalled\n");
    return atomic_load(&m->ready)
               ? s_reply_text(conn, MHD_HTTP_OK, "ready\n")
               : s_reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                              "not ready\n");
}

int im_metrics_listen(im_metrics_t *m, const char *hostport)
{
    char host[256];
    char portstr[8];
    unsigned port;
    struct addrinfo hints, *res = NULL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
    const union MHD_DaemonInfo *info;
    int rc;

    if (!m || !hostport)
        return -EINVAL;
    if (m->daemon)
        return -EALREADY;
    /* Failures are returned, not logged: the daemon logs them with its
     * own context. */
    if (im_config_split_hostport(hostport, host, sizeof(host), &port) != 0)
        return -EINVAL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%u", port);
    rc = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
    if (rc != 0 || !res) {
        if (res)
            freeaddrinfo(res);
        return -EINVAL;
    }
    if (res->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    m->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, s_handle,
                                 m, MHD_OPTION_SOCK_ADDR, res->ai_addr,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                                 MHD_OPTION_END);
    freeaddrinfo(res);
    if (!m->daemon)
        return errno ? -errno : -EADDRINUSE;
    info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info ? info->port : port;
    return 0;
}

unsigned im_metrics_port(const im_metrics_t *m)
{
    return m ? m->port : 0;
}

void im_metrics_loop_tick(im_metrics_t *m, uint64_t now_ms)
{
    if (m)
        atomic_store(&m->last_tick_ms, now_ms);
}

void im_metrics_set_stall_ms(im_metrics_t *m, uint64_t stall_ms)
{
    if (m)
        atomic_store(&m->stall_ms, stall_ms);
}

void im_metrics_set_ready(im_metrics_t *m, bool ready)
{
    if (m)
        atomic_store(&m->ready, ready);
}
