#include "im_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "im_clock.h"
#include "im_config.h"
#include "im_log.h"

#define IM_METRICS_DEFAULT_STALL_MS 5000
/* Lookup chains of a run-time family. */
#define IM_FAMILY_BUCKETS 64
/* Reads of a histogram that met an observation in progress: spin this
 * many times, then yield the CPU between tries, and after IM_HIST_READ_MAX
 * settle for the last read (the observer never paused). */
#define IM_HIST_READ_SPINS 64
#define IM_HIST_READ_MAX 100000
/* Largest PUT /log-level body read. */
#define IM_LOG_LEVEL_BODY_MAX 64

struct im_metric_family {
    im_metric_family_t *next;
    char *name;
    char *help;
    im_metric_type_t type;
    double *bounds; /* histograms: nbounds finite upper bounds */
    size_t nbounds;
    im_metric_t *head; /* series in registration order */
    im_metric_t *tail;
    size_t count;
    /* Run-time families only (label != NULL). */
    im_metrics_t *reg;
    char *label;
    size_t max_series;
    im_metric_t *index[IM_FAMILY_BUCKETS];
};

struct im_metric {
    im_metric_t *next;  /* in the family's list */
    im_metric_t *hnext; /* in the family's index (run-time families) */
    im_metric_family_t *family;
    char *labels; /* rendered pairs without braces, NULL when none */
    char *key;    /* run-time families: the label value */
    _Atomic int64_t value;
    /* Histograms: per-bucket (not cumulative) counts, nbounds + 1 of them
     * (the last is above every bound), the sum as double bits, and a
     * sequence counter that is odd while an observation is written. */
    _Atomic uint64_t *buckets;
    _Atomic uint64_t sum_bits;
    _Atomic uint64_t seq;
};

struct im_metrics {
    /* Guards the family and series lists: the HTTP thread walks them while
     * the loop thread may register, add or remove. Values are atomics and
     * need no lock. */
    pthread_mutex_t lock;
    im_metric_family_t *head;
    im_metric_family_t *tail;
    struct MHD_Daemon *daemon;
    unsigned port;
    _Atomic uint64_t last_tick_ms;
    _Atomic uint64_t stall_ms;
    atomic_bool ready;
    bool add_failed; /* a registration returned NULL */
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

static void s_series_free(im_metric_t *s)
{
    if (!s)
        return;
    free(s->labels);
    free(s->key);
    free(s->buckets);
    free(s);
}

static void s_family_free(im_metric_family_t *f)
{
    if (!f)
        return;
    for (im_metric_t *s = f->head; s;) {
        im_metric_t *next = s->next;
        s_series_free(s);
        s = next;
    }
    free(f->name);
    free(f->help);
    free(f->bounds);
    free(f->label);
    free(f);
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
    for (im_metric_family_t *f = m->head; f;) {
        im_metric_family_t *next = f->next;
        s_family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
    *m_p = NULL;
}

/* ---- registration ------------------------------------------------------- */

/* Families are only added by the registering thread, so it may walk the
 * list without the lock. */
static im_metric_family_t *s_family_find(const im_metrics_t *m,
                                         const char *name)
{
    for (im_metric_family_t *f = m->head; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static im_metric_family_t *s_family_new(const char *name, const char *help,
                                        im_metric_type_t type)
{
    im_metric_family_t *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->type = type;
    if (!f->name || !f->help) {
        s_family_free(f);
        return NULL;
    }
    return f;
}

static void s_family_link(im_metrics_t *m, im_metric_family_t *f)
{
    pthread_mutex_lock(&m->lock);
    if (m->tail)
        m->tail->next = f;
    else
        m->head = f;
    m->tail = f;
    pthread_mutex_unlock(&m->lock);
}

static void s_series_link(im_metrics_t *m, im_metric_family_t *f,
                          im_metric_t *s)
{
    s->family = f;
    pthread_mutex_lock(&m->lock);
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
    f->count++;
    pthread_mutex_unlock(&m->lock);
}

static bool s_same_bounds(const im_metric_family_t *f, const double *bounds,
                          size_t nbounds)
{
    if (f->nbounds != nbounds)
        return false;
    for (size_t i = 0; i < nbounds; i++)
        if (f->bounds[i] != bounds[i])
            return false;
    return true;
}

/* The family a static series of that name and type joins, created (and
 * linked) if new. NULL when the name belongs to another type, to a
 * run-time family, or to a histogram with other bounds. */
static im_metric_family_t *s_family_for(im_metrics_t *m, const char *name,
                                        const char *help, im_metric_type_t type,
                                        const double *bounds, size_t nbounds)
{
    im_metric_family_t *f = s_family_find(m, name);

    if (f) {
        if (f->type != type || f->label ||
            (type == IM_METRIC_HISTOGRAM && !s_same_bounds(f, bounds, nbounds)))
            return NULL;
        return f;
    }
    f = s_family_new(name, help, type);
    if (!f)
        return NULL;
    if (type == IM_METRIC_HISTOGRAM) {
        f->bounds = malloc(nbounds * sizeof(*f->bounds));
        if (!f->bounds) {
            s_family_free(f);
            return NULL;
        }
        memcpy(f->bounds, bounds, nbounds * sizeof(*f->bounds));
        f->nbounds = nbounds;
    }
    s_family_link(m, f);
    return f;
}

static im_metric_t *s_series_new(const im_metric_family_t *f,
                                 const char *labels)
{
    im_metric_t *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    if (labels && labels[0]) {
        s->labels = strdup(labels);
        if (!s->labels)
            goto fail;
    }
    atomic_init(&s->value, 0);
    atomic_init(&s->sum_bits, 0);
    atomic_init(&s->seq, 0);
    if (f->type == IM_METRIC_HISTOGRAM) {
        s->buckets = calloc(f->nbounds + 1, sizeof(*s->buckets));
        if (!s->buckets)
            goto fail;
        for (size_t i = 0; i <= f->nbounds; i++)
            atomic_init(&s->buckets[i], 0);
    }
    return s;
fail:
    s_series_free(s);
    return NULL;
}

static im_metric_t *s_add(im_metrics_t *m, const char *name, const char *help,
                          im_metric_type_t type, const char *labels,
                          const double *bounds, size_t nbounds)
{
    im_metric_family_t *f;
    im_metric_t *s;

    if (!m)
        return NULL;
    if (!name || !name[0])
        goto fail;
    f = s_family_for(m, name, help, type, bounds, nbounds);
    if (!f)
        goto fail;
    s = s_series_new(f, labels);
    if (!s)
        goto fail;
    s_series_link(m, f, s);
    return s;
fail:
    m->add_failed = true;
    return NULL;
}

im_metric_t *im_metrics_add(im_metrics_t *m, const char *name, const char *help,
                            im_metric_type_t type, const char *labels)
{
    if (m && type == IM_METRIC_HISTOGRAM) {
        m->add_failed = true;
        return NULL;
    }
    return s_add(m, name, help, type, labels, NULL, 0);
}

im_metric_t *im_metrics_add_histogram(im_metrics_t *m, const char *name,
                                      const char *help, const char *labels,
                                      const double *bounds, size_t nbounds)
{
    bool ok = bounds && nbounds > 0;

    for (size_t i = 0; ok && i < nbounds; i++)
        ok = isfinite(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]);
    if (!ok) {
        if (m)
            m->add_failed = true;
        return NULL;
    }
    return s_add(m, name, help, IM_METRIC_HISTOGRAM, labels, bounds, nbounds);
}

bool im_metrics_complete(const im_metrics_t *m)
{
    return m && !m->add_failed;
}

/* ---- run-time families -------------------------------------------------- */

im_metric_family_t *im_metrics_add_family(im_metrics_t *m, const char *name,
                                          const char *help,
                                          im_metric_type_t type,
                                          const char *label, size_t max_series)
{
    im_metric_family_t *f;

    if (!m)
        return NULL;
    if (!name || !name[0] || !label || !label[0] ||
        type == IM_METRIC_HISTOGRAM || s_family_find(m, name))
        goto fail;
    f = s_family_new(name, help, type);
    if (!f)
        goto fail;
    f->label = strdup(label);
    if (!f->label) {
        s_family_free(f);
        goto fail;
    }
    f->reg = m;
    f->max_series = max_series;
    s_family_link(m, f);
    return f;
fail:
    m->add_failed = true;
    return NULL;
}

static size_t s_key_bucket(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % IM_FAMILY_BUCKETS;
}

im_metric_t *im_metric_family_find(const im_metric_family_t *f,
                                   const char *value)
{
    if (!f || !value)
        return NULL;
    for (im_metric_t *s = f->index[s_key_bucket(value)]; s; s = s->hnext)
        if (strcmp(s->key, value) == 0)
            return s;
    return NULL;
}

/* Printable ASCII only: anything else would need escaping or UTF-8 checks,
 * and a peer-chosen value must never make the scrape unparsable. */
static bool s_value_ok(const char *value)
{
    size_t n = 0;

    if (!value || !value[0])
        return false;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p < 0x20 || *p > 0x7e || ++n > IM_METRIC_LABEL_VALUE_MAX)
            return false;
    }
    return true;
}

/* label="value" with '\' and '"' escaped (exposition format 0.0.4). */
static char *s_label_pair(const char *label, const char *value)
{
    size_t n = strlen(label) + 4;
    char *out, *o;

    for (const char *p = value; *p; p++)
        n += (*p == '\\' || *p == '"') ? 2 : 1;
    out = malloc(n);
    if (!out)
        return NULL;
    o = out + sprintf(out, "%s=\"", label);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            *o++ = '\\';
        *o++ = *p;
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

int im_metric_family_add(im_metric_family_t *f, const char *value,
                         im_metric_t **out)
{
    im_metric_t *s;

    if (out)
        *out = NULL;
    if (!f || !s_value_ok(value))
        return -EINVAL;
    s = im_metric_family_find(f, value);
    if (s) {
        if (out)
            *out = s;
        return 0;
    }
    if (f->count >= f->max_series)
        return -ENOSPC;
    s = s_series_new(f, NULL);
    if (!s)
        return -ENOMEM;
    s->key = strdup(value);
    s->labels = s_label_pair(f->label, value);
    if (!s->key || !s->labels) {
        s_series_free(s);
        return -ENOMEM;
    }
    size_t b = s_key_bucket(value);
    s->hnext = f->index[b];
    f->index[b] = s;
    s_series_link(f->reg, f, s);
    if (out)
        *out = s;
    return 0;
}

bool im_metric_family_remove(im_metric_family_t *f, const char *value)
{
    im_metric_t **pp, *s = NULL, *prev = NULL;

    if (!f || !value)
        return false;
    for (pp = &f->index[s_key_bucket(value)]; *pp; pp = &(*pp)->hnext) {
        if (strcmp((*pp)->key, value) == 0) {
            s = *pp;
            *pp = s->hnext;
            break;
        }
    }
    if (!s)
        return false;
    pthread_mutex_lock(&f->reg->lock);
    for (im_metric_t *q = f->head; q && q != s; q = q->next)
        prev = q;
    if (prev)
        prev->next = s->next;
    else
        f->head = s->next;
    if (f->tail == s)
        f->tail = prev;
    f->count--;
    pthread_mutex_unlock(&f->reg->lock);
    /* Unlinked under the lock that every render holds for its whole walk:
     * no render can reach it any more. */
    s_series_free(s);
    return true;
}

size_t im_metric_family_size(const im_metric_family_t *f)
{
    return f ? f->count : 0;
}

/* ---- values ------------------------------------------------------------- */

static bool s_scalar(const im_metric_t *metric)
{
    return metric && metric->family->type != IM_METRIC_HISTOGRAM;
}

void im_metric_inc(im_metric_t *metric)
{
    if (s_scalar(metric))
        atomic_fetch_add_explicit(&metric->value, 1, memory_order_relaxed);
}

void im_metric_add(im_metric_t *metric, int64_t delta)
{
    if (s_scalar(metric))
        atomic_fetch_add_explicit(&metric->value, delta, memory_order_relaxed);
}

void im_metric_set(im_metric_t *metric, int64_t value)
{
    if (s_scalar(metric))
        atomic_store_explicit(&metric->value, value, memory_order_relaxed);
}

static double s_bits_double(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static uint64_t s_double_bits(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    return bits;
}

/* A histogram as one render sees it: cumulative counts, the sum. */
typedef struct {
    uint64_t *cum; /* nbounds + 1 entries; the last is the total */
    double sum;
} s_hist_view_t;

/* Seqlock read: the observer makes seq odd, writes, makes it even again.
 * A read that saw the same even seq before and after is a snapshot. */
static void s_hist_read(const im_metric_t *h, s_hist_view_t *v)
{
    size_t n = h->family->nbounds + 1;
    _Atomic uint64_t *seq = &((im_metric_t *)h)->seq;

    for (unsigned tries = 0;; tries++) {
        uint64_t s1 = atomic_load_explicit(seq, memory_order_acquire);
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++) {
            total += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
            v->cum[i] = total;
        }
        v->sum = s_bits_double(atomic_load_explicit(
            &((im_metric_t *)h)->sum_bits, memory_order_relaxed));
        atomic_thread_fence(memory_order_acquire);
        uint64_t s2 = atomic_load_explicit(seq, memory_order_relaxed);
        if ((s1 == s2 && !(s1 & 1)) || tries + 1 >= IM_HIST_READ_MAX)
            return;
        /* An observer faster than one read would win every race: let it
         * run into a pause (it blocks on the registry lock this render
         * holds as soon as it adds or removes a series). */
        if (tries >= IM_HIST_READ_SPINS)
            sched_yield();
    }
}

int64_t im_metric_get(const im_metric_t *metric)
{
    if (!metric)
        return 0;
    if (metric->family->type == IM_METRIC_HISTOGRAM) {
        uint64_t total = 0;
        for (size_t i = 0; i <= metric->family->nbounds; i++)
            total +=
                atomic_load_explicit(&metric->buckets[i], memory_order_relaxed);
        return (int64_t)total;
    }
    return atomic_load_explicit(&((im_metric_t *)metric)->value,
                                memory_order_relaxed);
}

void im_metric_observe(im_metric_t *hist, double value)
{
    const im_metric_family_t *f;
    size_t i = 0;

    if (!hist || hist->family->type != IM_METRIC_HISTOGRAM || isnan(value))
        return;
    f = hist->family;
    while (i < f->nbounds && value > f->bounds[i])
        i++;
    atomic_fetch_add_explicit(&hist->seq, 1, memory_order_relaxed);
    /* Keeps the odd seq ahead of the writes below, for readers. */
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&hist->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&hist->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(
        &hist->sum_bits, &old, s_double_bits(s_bits_double(old) + value),
        memory_order_relaxed, memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&hist->seq, 1, memory_order_release);
}

double im_metric_sum(const im_metric_t *hist)
{
    if (!hist || hist->family->type != IM_METRIC_HISTOGRAM)
        return 0;
    return s_bits_double(atomic_load_explicit(&((im_metric_t *)hist)->sum_bits,
                                              memory_order_relaxed));
}

/* ---- exposition text ---------------------------------------------------- */

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

static void s_text_u64(s_text_t *t, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRIu64, v);
    if (n > 0)
        s_text_put(t, num, (size_t)n);
}

/* The shortest text that reads back as the same double, laid out as
 * Prometheus' Go clients print floats (strconv 'g', shortest): plain
 * decimals for exponents -4..5 ("0.0005", "10", "2.5"), else exponent form
 * ("1e-05", "1e+06"). */
static const char *s_fmt_double(char *buf, size_t size, double v)
{
    int prec, exp;

    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return buf;
    }
    if (isinf(v)) {
        snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
        return buf;
    }
    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, size, "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    snprintf(buf, size, "%.*e", prec - 1, v);
    const char *e = strchr(buf, 'e');
    exp = e ? atoi(e + 1) : 0;
    if (v == 0 || (exp >= -4 && exp < 6)) {
        int decimals = prec - 1 - exp;
        snprintf(buf, size, "%.*f", decimals > 0 ? decimals : 0, v);
    }
    return buf;
}

static void s_text_double(s_text_t *t, double v)
{
    char num[32];
    s_text_str(t, s_fmt_double(num, sizeof(num), v));
}

static void s_text_labels(s_text_t *t, const char *labels, const char *le)
{
    if (!labels && !le)
        return;
    s_text_put(t, "{", 1);
    if (labels)
        s_text_str(t, labels);
    if (le) {
        if (labels)
            s_text_put(t, ",", 1);
        s_text_str(t, "le=\"");
        s_text_str(t, le);
        s_text_put(t, "\"", 1);
    }
    s_text_put(t, "}", 1);
}

static void s_render_scalar(s_text_t *t, const im_metric_family_t *f,
                            const im_metric_t *s)
{
    char num[32];
    int n;

    s_text_str(t, f->name);
    s_text_labels(t, s->labels, NULL);
    n = snprintf(num, sizeof(num), " %" PRId64 "\n", im_metric_get(s));
    if (n > 0)
        s_text_put(t, num, (size_t)n);
}

static void s_render_hist(s_text_t *t, const im_metric_family_t *f,
                          const im_metric_t *s, uint64_t *cum)
{
    s_hist_view_t v = {cum, 0};
    char le[32];

    s_hist_read(s, &v);
    for (size_t i = 0; i <= f->nbounds; i++) {
        s_text_str(t, f->name);
        s_text_str(t, "_bucket");
        s_text_labels(t, s->labels,
                      i < f->nbounds
                          ? s_fmt_double(le, sizeof(le), f->bounds[i])
                          : "+Inf");
        s_text_put(t, " ", 1);
        s_text_u64(t, cum[i]);
        s_text_put(t, "\n", 1);
    }
    s_text_str(t, f->name);
    s_text_str(t, "_sum");
    s_text_labels(t, s->labels, NULL);
    s_text_put(t, " ", 1);
    s_text_double(t, v.sum);
    s_text_put(t, "\n", 1);
    s_text_str(t, f->name);
    s_text_str(t, "_count");
    s_text_labels(t, s->labels, NULL);
    s_text_put(t, " ", 1);
    s_text_u64(t, cum[f->nbounds]);
    s_text_put(t, "\n", 1);
}

static const char *s_type_name(im_metric_type_t type)
{
    switch (type) {
    case IM_METRIC_COUNTER: return "counter";
    case IM_METRIC_GAUGE: return "gauge";
    case IM_METRIC_HISTOGRAM: return "histogram";
    }
    return "untyped";
}

char *im_metrics_render(im_metrics_t *m, size_t *len)
{
    s_text_t t = {0};
    uint64_t *cum = NULL;
    size_t cum_n = 0;

    if (len)
        *len = 0;
    if (!m)
        return NULL;
    s_text_put(&t, "", 0);
    pthread_mutex_lock(&m->lock);
    for (const im_metric_family_t *f = m->head; f; f = f->next) {
        if (f->type == IM_METRIC_HISTOGRAM && cum_n < f->nbounds + 1) {
            uint64_t *nc = realloc(cum, (f->nbounds + 1) * sizeof(*cum));
            if (!nc) {
                t.oom = true;
                break;
            }
            cum = nc;
            cum_n = f->nbounds + 1;
        }
        s_text_str(&t, "# HELP ");
        s_text_str(&t, f->name);
        s_text_put(&t, " ", 1);
        s_text_help(&t, f->help);
        s_text_str(&t, "\n# TYPE ");
        s_text_str(&t, f->name);
        s_text_put(&t, " ", 1);
        s_text_str(&t, s_type_name(f->type));
        s_text_put(&t, "\n", 1);
        for (const im_metric_t *s = f->head; s; s = s->next) {
            if (f->type == IM_METRIC_HISTOGRAM)
                s_render_hist(&t, f, s, cum);
            else
                s_render_scalar(&t, f, s);
        }
    }
    pthread_mutex_unlock(&m->lock);
    free(cum);
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    if (len)
        *len = t.len;
    return t.p;
}

/* ---- HTTP --------------------------------------------------------------- */

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

static enum MHD_Result s_not_allowed(struct MHD_Connection *conn,
                                     const char *allow)
{
    static const char text[] = "method not allowed\n";
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(sizeof(text) - 1, (void *)text,
                                           MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result s_reply_copy(struct MHD_Connection *conn,
                                    unsigned status, const char *text)
{
    return s_reply(conn, status, "text/plain; charset=utf-8", (void *)text,
                   strlen(text), MHD_RESPMEM_MUST_COPY);
}

static bool s_healthy(im_metrics_t *m)
{
    uint64_t now = im_clock_ms();
    uint64_t last = atomic_load(&m->last_tick_ms);

    /* A tick stamped later than our clock reading is fresh, not stale. */
    return now <= last || now - last <= atomic_load(&m->stall_ms);
}

/* A PUT /log-level body as it arrives. */
typedef struct {
    char body[IM_LOG_LEVEL_BODY_MAX + 1];
    size_t len;
    bool too_long;
} s_upload_t;

static void s_on_completed(void *cls, struct MHD_Connection *conn,
                           void **con_cls, enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    free(*con_cls);
    *con_cls = NULL;
}

/* The level named by a PUT: "?level=X" wins, else a body "X" or
 * "level=X" (a form body may carry other fields after '&'). Writes the
 * level name into out, "" when none was given. */
static void s_level_arg(struct MHD_Connection *conn, s_upload_t *up, char *out,
                        size_t size)
{
    const char *q =
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "level");
    char *b = up->body, *e;

    if (q) {
        snprintf(out, size, "%s", q);
        return;
    }
    up->body[up->len] = '\0';
    while (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n')
        b++;
    if (strncmp(b, "level=", 6) == 0)
        b += 6;
    e = b + strcspn(b, "&");
    while (e > b &&
           (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        e--;
    snprintf(out, size, "%.*s", (int)(e - b), b);
}

static enum MHD_Result s_put_log_level(struct MHD_Connection *conn,
                                       s_upload_t *up)
{
    char arg[IM_LOG_LEVEL_BODY_MAX + 1];
    char text[96];
    im_log_level_t level;

    if (up->too_long)
        return s_reply_text(conn, MHD_HTTP_CONTENT_TOO_LARGE,
                            "body too long: send the level name only\n");
    s_level_arg(conn, up, arg, sizeof(arg));
    if (!arg[0])
        return s_reply_text(conn, MHD_HTTP_BAD_REQUEST,
                            "missing level: use error, warn, info or debug\n");
    if (im_log_level_parse(arg, &level) < 0)
        return s_reply_text(conn, MHD_HTTP_BAD_REQUEST,
                            "unknown level: use error, warn, info or debug\n");
    im_log_change_level(level, "http");
    snprintf(text, sizeof(text), "%s\n", im_log_level_name(level));
    return s_reply_copy(conn, MHD_HTTP_OK, text);
}

static enum MHD_Result s_log_level(struct MHD_Connection *conn,
                                   const char *method, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    char text[16];

    if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
        strcmp(method, MHD_HTTP_METHOD_HEAD) == 0) {
        snprintf(text, sizeof(text), "%s\n",
                 im_log_level_name(im_log_get_level()));
        return s_reply_copy(conn, MHD_HTTP_OK, text);
    }
    if (strcmp(method, MHD_HTTP_METHOD_PUT) != 0)
        return s_not_allowed(conn, "GET, HEAD, PUT");
    /* libmicrohttpd calls once for the headers, once per body chunk, and
     * once more at the end of the body, when the answer is sent. */
    s_upload_t *up = *con_cls;
    if (!up) {
        up = calloc(1, sizeof(*up));
        if (!up)
            return MHD_NO;
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        if (up->len + n > IM_LOG_LEVEL_BODY_MAX)
            up->too_long = true;
        else {
            memcpy(up->body + up->len, upload_data, n);
            up->len += n;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return s_put_log_level(conn, up);
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    im_metrics_t *m = cls;

    (void)version;
    if (strcmp(url, "/log-level") == 0)
        return s_log_level(conn, method, upload_data, upload_data_size,
                           con_cls);
    if (strcmp(url, "/metrics") != 0 && strcmp(url, "/healthz") != 0 &&
        strcmp(url, "/readyz") != 0)
        return s_reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return s_not_allowed(conn, "GET, HEAD");

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
    m->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, s_handle, m, MHD_OPTION_SOCK_ADDR,
        res->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
        MHD_OPTION_NOTIFY_COMPLETED, s_on_completed, NULL, MHD_OPTION_END);
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
