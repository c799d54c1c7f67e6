/* im_metrics: Prometheus counters/gauges and the HTTP endpoint.
 *
 * Values are atomics written by the daemon's loop thread and read by the HTTP
 * server's thread (libmicrohttpd, internal polling thread), so the loop never
 * blocks on a scrape. Metric names and label sets are fixed at registration;
 * a metric is exported (as 0) from the moment it is registered.
 *
 * /healthz answers 200 while the loop has called im_metrics_loop_tick() in
 * the last `stall_ms`, else 503. /readyz answers 200 while the daemon's ready
 * flag is set (im_metrics_set_ready), else 503. */
#ifndef IM_METRICS_H
#define IM_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { IM_METRIC_COUNTER, IM_METRIC_GAUGE } im_metric_type_t;

typedef struct im_metric im_metric_t;
typedef struct im_metrics im_metrics_t;

/* Creates an empty registry. NULL on allocation failure. */
im_metrics_t *im_metrics_new(void);
/* Stops the HTTP server (if started) and frees every metric. NULL-safe. */
void im_metrics_destroy(im_metrics_t **m_p);

/* Registers one series. `labels` is the literal label set without braces,
 * e.g. "direction=\"client\"", or NULL. Several series may share a name
 * (different labels); HELP/TYPE are printed once per name. Returns the series
 * (owned by the registry) or NULL on allocation failure. */
im_metric_t *im_metrics_add(im_metrics_t *m, const char *name,
                            const char *help, im_metric_type_t type,
                            const char *labels);
/* False once any im_metrics_add on m has failed: every series is part of
 * the operator interface, so a daemon must not start with one missing. */
bool im_metrics_complete(const im_metrics_t *m);

void im_metric_inc(im_metric_t *metric);
void im_metric_add(im_metric_t *metric, int64_t delta);
void im_metric_set(im_metric_t *metric, int64_t value);
int64_t im_metric_get(const im_metric_t *metric);

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
