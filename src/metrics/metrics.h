/* metrics.h: the daemon's metrics registry: counters, gauges and histograms with labels,
 * rendered as Prometheus text (exposition format 0.0.4, served at /metrics) and as a JSON
 * snapshot (read by `segbus stat`).
 *
 * Single-threaded, like the loop: series are registered at start-up (or when an output or a
 * producer appears) and updated with plain increments on the hot path; nothing is locked or
 * formatted until a scrape. A series either owns its value (the registry returns a pointer to
 * increment) or reads one that a module keeps anyway (e.g. the pipeline's per-stage counters),
 * or calls a function at scrape time (gauges such as ring fill).
 *
 * Label values must not hold secrets: pass output and source names, never write keys.
 */
#ifndef SEGBUS_METRICS_METRICS_H
#define SEGBUS_METRICS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Metric families segbusd exports (names shared with the hub and `segbus stat`). Counters per
 * stage and per output, each with its reason where there is one. */
#define SB_M_RECEIVED "segbus_received_events_total"           /* {input} */
#define SB_M_INVALID "segbus_invalid_events_total"             /* {reason}: verify's drops */
#define SB_M_DEDUPLICATED "segbus_deduplicated_events_total"   /* duplicates dropped */
#define SB_M_STAGE_DROPPED "segbus_stage_dropped_events_total" /* {stage, reason}: other stages */
#define SB_M_BATCHED "segbus_batched_events_total"             /* {output} */
#define SB_M_BATCHES "segbus_batches_total"                    /* {output} */
#define SB_M_SPOOLED "segbus_spooled_events_total"             /* {output} */
#define SB_M_SENT "segbus_sent_events_total"                   /* {output} */
#define SB_M_RETRIED "segbus_retried_batches_total"            /* {output, reason} */
#define SB_M_FAILED "segbus_failed_requests_total"             /* {output, reason} */
#define SB_M_DEAD_LETTERED "segbus_dead_lettered_events_total" /* {output, reason} */
#define SB_M_DROPPED "segbus_dropped_events_total"             /* {where, reason}: never silent */
#define SB_M_SPOOL_BYTES "segbus_spool_bytes"                  /* gauge */
#define SB_M_RING_FILL "segbus_ring_fill_ratio"                /* gauge {producer} */
#define SB_M_PRODUCERS "segbus_producers"                      /* gauge */
#define SB_M_LATENCY "segbus_delivery_latency_seconds"         /* histogram {output} */

enum sb_metric_type { SB_METRIC_COUNTER, SB_METRIC_GAUGE, SB_METRIC_HISTOGRAM };

struct sb_metrics;
struct sb_histogram;

/* Labels are given as a NULL-terminated array of name, value, name, value, ..., NULL (or NULL
 * for none); names must match [a-zA-Z_][a-zA-Z0-9_]*; values are escaped when rendered. */
typedef const char *const *sb_labels;

typedef double (*sb_gauge_fn)(void *arg);

int sb_metrics_new(struct sb_metrics **out);
void sb_metrics_free(struct sb_metrics *m);

/* A counter series the registry owns: increment *ptr. The family is created by the first call
 * with its name (help and type must agree later). NULL on -ENOMEM or a bad name. Registering
 * the same name and labels twice returns the same pointer. */
uint64_t *sb_metrics_counter(struct sb_metrics *m, const char *name, const char *help,
                             sb_labels labels);
/* A counter series whose value lives elsewhere (must outlive the registry or be removed by
 * sb_metrics_forget). 0, -EINVAL or -ENOMEM. */
int sb_metrics_counter_ref(struct sb_metrics *m, const char *name, const char *help,
                           sb_labels labels, const uint64_t *value);
/* A gauge the registry owns: set *ptr. */
double *sb_metrics_gauge(struct sb_metrics *m, const char *name, const char *help,
                         sb_labels labels);
/* A gauge computed at scrape time. */
int sb_metrics_gauge_fn(struct sb_metrics *m, const char *name, const char *help, sb_labels labels,
                        sb_gauge_fn fn, void *arg);
/* A histogram with the given upper bounds (ascending; +Inf is implied). NULL on error. */
struct sb_histogram *sb_metrics_histogram(struct sb_metrics *m, const char *name, const char *help,
                                          sb_labels labels, const double *bounds, size_t n_bounds);
void sb_histogram_observe(struct sb_histogram *h, double v);

/* Drop every series whose labels include name=value (e.g. a producer that left). */
void sb_metrics_forget(struct sb_metrics *m, const char *label, const char *value);

/* Append the Prometheus text exposition of every family to out. 0 or -ENOMEM. */
int sb_metrics_render_prometheus(const struct sb_metrics *m, struct sb_buf *out);
/* Append a JSON snapshot: {"time_ms":T,"metrics":[{"name":N,"type":"counter","labels":{..},
 * "value":V}, ... histograms with "count","sum","buckets":[[le,count],...]]}. 0 or -ENOMEM. */
int sb_metrics_render_json(const struct sb_metrics *m, int64_t time_ms, struct sb_buf *out);

/* The value of one series (counters and gauges), for tests and `segbus stat`: 0 and *v, or
 * -ENOENT. */
int sb_metrics_get(const struct sb_metrics *m, const char *name, sb_labels labels, double *v);

#ifdef __cplusplus
}
#endif
#endif
