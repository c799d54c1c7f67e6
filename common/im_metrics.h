/* im_metrics: Prometheus counters, gauges, histograms and the HTTP endpoint.
 *
 * Threads. Values are atomics written by the daemon's loop thread and read
 * by the HTTP server's thread (libmicrohttpd, internal polling thread), so
 * the loop never blocks on a value update or a scrape. Registration, adding
 * and removing the series of a run-time family (im_metric_family_*) and
 * their lookups belong to one thread, the loop's. The lists of families
 * and series are guarded by the registry's mutex, which a render holds for
 * its whole walk: the loop thread waits for at most one render when it
 * adds or removes a series, and a removed series is freed only after it
 * was unlinked under that mutex, so no render can still be reading it.
 * A series pointer is the caller's to use until the series is removed or
 * the registry destroyed.
 *
 * Interface. Metric names and label sets are fixed at registration, and a
 * metric is exported (as 0) from the moment it is registered, except the
 * series of a run-time family, which exist between im_metric_family_add()
 * and im_metric_family_remove(). Series of one name form one family: HELP
 * and TYPE are printed once, then every series in registration order.
 *
 * Histograms follow the Prometheus layout: for each series, one
 * cumulative `_bucket{...,le="B"}` per bound and `le="+Inf"`, then `_sum`
 * and `_count`. Observing is lock-free (a few relaxed atomics and a
 * sequence counter). Rendering guarantees, whatever runs concurrently:
 * buckets never decrease with `le`, `+Inf` equals `_count`, and no value
 * goes down between scrapes (with non-negative observations). When all
 * observations of a series come from one thread (the loop), `_sum` and the
 * buckets are also one consistent snapshot: a render reads again while an
 * observation is being written (yielding the CPU if that keeps happening,
 * and settling for the last read only if the observer never pauses for
 * 100000 tries). With several observing threads `_sum` may include or miss
 * an observation in flight.
 *
 * HTTP. /metrics renders the registry. /healthz answers 200 while the loop
 * has called im_metrics_loop_tick() in the last `stall_ms`, else 503.
 * /readyz answers 200 while the daemon's ready flag is set
 * (im_metrics_set_ready), else 503. /log-level: GET answers the current
 * im_log level ("info\n"); PUT sets it from the query (`?level=debug`) or
 * the body (`debug` or `level=debug`), answers 200 with the new level and
 * logs event=log_level_changed, or 400 with the reason for a missing or
 * unknown level. */
#ifndef IM_METRICS_H
#define IM_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    IM_METRIC_COUNTER,
    IM_METRIC_GAUGE,
    IM_METRIC_HISTOGRAM, /* only through im_metrics_add_histogram */
} im_metric_type_t;

typedef struct im_metric im_metric_t;
typedef struct im_metrics im_metrics_t;
typedef struct im_metric_family im_metric_family_t;

/* Longest label value a run-time family accepts. */
#define IM_METRIC_LABEL_VALUE_MAX 128

/* Creates an empty registry. NULL on allocation failure. */
im_metrics_t *im_metrics_new(void);
/* Stops the HTTP server (if started) and frees every metric. NULL-safe. */
void im_metrics_destroy(im_metrics_t **m_p);

/* Registers one counter or gauge series. `labels` is the literal label set
 * without braces, e.g. "direction=\"client\"", or NULL. Several series may
 * share a name (different labels) if they share its type. Returns the
 * series (owned by the registry) or NULL on allocation failure, an empty
 * name, or a name already used by another type or by a run-time family. */
im_metric_t *im_metrics_add(im_metrics_t *m, const char *name, const char *help,
                            im_metric_type_t type, const char *labels);

/* Registers one histogram series with `nbounds` finite upper bounds in
 * strictly increasing order (`+Inf` is implied). Series of one name must
 * have the same bounds. NULL on allocation failure or bad bounds. */
im_metric_t *im_metrics_add_histogram(im_metrics_t *m, const char *name,
                                      const char *help, const char *labels,
                                      const double *bounds, size_t nbounds);

/* Registers a counter or gauge family whose series are created and removed
 * at run time, one per value of the label `label` (e.g. one per worker),
 * at most `max_series` of them. Until a series is added only HELP and TYPE
 * are rendered. NULL on allocation failure or a name already in use. */
im_metric_family_t *im_metrics_add_family(im_metrics_t *m, const char *name,
                                          const char *help,
                                          im_metric_type_t type,
                                          const char *label, size_t max_series);
/* The series for `value`, created at 0 if it does not exist. Returns 0 and
 * sets *out; -EINVAL for an empty value, one longer than
 * IM_METRIC_LABEL_VALUE_MAX or with bytes outside printable ASCII (they
 * could not be told apart once escaped for the exposition format);
 * -ENOSPC when the family already holds max_series; -ENOMEM. */
int im_metric_family_add(im_metric_family_t *f, const char *value,
                         im_metric_t **out);
/* The series for `value`, NULL if there is none. */
im_metric_t *im_metric_family_find(const im_metric_family_t *f,
                                   const char *value);
/* Removes and frees the series for `value`; false if there was none. Any
 * pointer to it is invalid afterwards. */
bool im_metric_family_remove(im_metric_family_t *f, const char *value);
size_t im_metric_family_size(const im_metric_family_t *f);

/* False once any registration on m has failed: every series is part of
 * the operator interface, so a daemon must not start with one missing.
 * Run-time family additions do not count. */
bool im_metrics_complete(const im_metrics_t *m);

/* Counter and gauge updates (no-ops on NULL and on histograms). */
void im_metric_inc(im_metric_t *metric);
void im_metric_add(im_metric_t *metric, int64_t delta);
void im_metric_set(im_metric_t *metric, int64_t value);
/* A counter's or gauge's value; a histogram's observation count. */
int64_t im_metric_get(const im_metric_t *metric);

/* Records one observation in a histogram (no-op on NULL, other types and
 * NaN). */
void im_metric_observe(im_metric_t *hist, double value);
/* A histogram's sum of observations (0 for other types). */
double im_metric_sum(const im_metric_t *hist);

/* Renders the exposition text into a malloc'd string (*len set). */
char *im_metrics_render(im_metrics_t *m, size_t *len);

/* Starts the HTTP server on "host:port" (port 0 = ephemeral). Returns 0 or
 * -errno. im_metrics_port() then gives the bound port. */
int im_metrics_listen(im_metrics_t *m, const char *hostport);
unsigned im_metrics_port(const im_metrics_t *m);

void im_metrics_loop_tick(im_metrics_t *m, uint64_t now_ms);
void im_metrics_set_stall_ms(im_metrics_t *m, uint64_t stall_ms);
void im_metrics_set_ready(im_metrics_t *m, bool ready);

#endif
