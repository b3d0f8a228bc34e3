/* metrics.c: the metrics registry and its two renderings (Prometheus text, JSON snapshot). */
#include "metrics/metrics.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum source { SRC_OWN_U64, SRC_REF_U64, SRC_OWN_DOUBLE, SRC_FN, SRC_HIST };

struct sb_histogram {
    double *bounds;
    uint64_t *counts; /* per bucket (not cumulative), n_bounds + 1 with +Inf */
    size_t n_bounds;
    double sum;
    uint64_t count;
};

struct series {
    char **labels; /* name, value, ..., NULL */
    size_t n_labels;
    enum source src;
    uint64_t u64;
    double dbl;
    const uint64_t *ref;
    sb_gauge_fn fn;
    void *arg;
    struct sb_histogram hist;
    struct series *next;
};

struct family {
    char *name;
    char *help;
    enum sb_metric_type type;
    struct series *first, *last;
};

struct sb_metrics {
    struct family *fams;
    size_t n, cap;
};

int sb_metrics_new(struct sb_metrics **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

static void series_free(struct series *s)
{
    for (size_t i = 0; i < s->n_labels * 2; i++)
        free(s->labels[i]);
    free(s->labels);
    free(s->hist.bounds);
    free(s->hist.counts);
    free(s);
}

void sb_metrics_free(struct sb_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        struct series *s = m->fams[i].first, *next;
        for (; s; s = next) {
            next = s->next;
            series_free(s);
        }
        free(m->fams[i].name);
        free(m->fams[i].help);
    }
    free(m->fams);
    free(m);
}

static bool valid_name(const char *s, bool allow_colon)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_' || (allow_colon && *s == ':')))
        return false;
    for (s++; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && !(allow_colon && *s == ':'))
            return false;
    return true;
}

static size_t count_labels(sb_labels labels)
{
    size_t n = 0;

    if (!labels)
        return 0;
    while (labels[2 * n] && labels[2 * n + 1])
        n++;
    return n;
}

static bool labels_equal(const struct series *s, sb_labels labels, size_t n)
{
    if (s->n_labels != n)
        return false;
    for (size_t i = 0; i < 2 * n; i++)
        if (strcmp(s->labels[i], labels[i]) != 0)
            return false;
    return true;
}

static struct family *family_get(struct sb_metrics *m, const char *name, const char *help,
                                 enum sb_metric_type type)
{
    struct family *f;

    if (!valid_name(name, true))
        return NULL;
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->fams[i].name, name))
            return m->fams[i].type == type ? &m->fams[i] : NULL;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        f = realloc(m->fams, cap * sizeof *f);
        if (!f)
            return NULL;
        m->fams = f;
        m->cap = cap;
    }
    f = &m->fams[m->n];
    memset(f, 0, sizeof *f);
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->type = type;
    if (!f->name || !f->help) {
        free(f->name);
        free(f->help);
        return NULL;
    }
    m->n++;
    return f;
}

/* The series of f with these labels, created if absent (*created says which). */
static struct series *series_get(struct family *f, sb_labels labels, bool *created)
{
    size_t n = count_labels(labels);
    struct series *s;

    *created = false;
    for (s = f->first; s; s = s->next)
        if (labels_equal(s, labels, n))
            return s;
    for (size_t i = 0; i < n; i++)
        if (!valid_name(labels[2 * i], false) || !strncmp(labels[2 * i], "__", 2))
            return NULL;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->labels = calloc(2 * n + 1, sizeof *s->labels);
    if (!s->labels) {
        free(s);
        return NULL;
    }
    s->n_labels = n;
    for (size_t i = 0; i < 2 * n; i++) {
        if (!(s->labels[i] = strdup(labels[i]))) {
            series_free(s);
            return NULL;
        }
    }
    if (f->last)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    *created = true;
    return s;
}

static struct series *add(struct sb_metrics *m, const char *name, const char *help,
                          enum sb_metric_type type, sb_labels labels, enum source src,
                          bool *created)
{
    struct family *f = family_get(m, name, help, type);
    struct series *s;

    if (!f)
        return NULL;
    s = series_get(f, labels, created);
    if (s && *created)
        s->src = src;
    return s;
}

uint64_t *sb_metrics_counter(struct sb_metrics *m, const char *name, const char *help,
                             sb_labels labels)
{
    bool created;
    struct series *s = add(m, name, help, SB_METRIC_COUNTER, labels, SRC_OWN_U64, &created);

    return s && s->src == SRC_OWN_U64 ? &s->u64 : NULL;
}

int sb_metrics_counter_ref(struct sb_metrics *m, const char *name, const char *help,
                           sb_labels labels, const uint64_t *value)
{
    bool created;
    struct series *s = add(m, name, help, SB_METRIC_COUNTER, labels, SRC_REF_U64, &created);

    if (!s)
        return -EINVAL;
    s->src = SRC_REF_U64;
    s->ref = value;
    return 0;
}

double *sb_metrics_gauge(struct sb_metrics *m, const char *name, const char *help, sb_labels labels)
{
    bool created;
    struct series *s = add(m, name, help, SB_METRIC_GAUGE, labels, SRC_OWN_DOUBLE, &created);

    return s && s->src == SRC_OWN_DOUBLE ? &s->dbl : NULL;
}

int sb_metrics_gauge_fn(struct sb_metrics *m, const char *name, const char *help, sb_labels labels,
                        sb_gauge_fn fn, void *arg)
{
    bool created;
    struct series *s = add(m, name, help, SB_METRIC_GAUGE, labels, SRC_FN, &created);

    if (!s)
        return -EINVAL;
    s->src = SRC_FN;
    s->fn = fn;
    s->arg = arg;
    return 0;
}

struct sb_histogram *sb_metrics_histogram(struct sb_metrics *m, const char *name, const char *help,
                                          sb_labels labels, const double *bounds, size_t n_bounds)
{
    bool created;
    struct series *s;

    for (size_t i = 0; i + 1 < n_bounds; i++)
        if (!(bounds[i] < bounds[i + 1]))
            return NULL;
    s = add(m, name, help, SB_METRIC_HISTOGRAM, labels, SRC_HIST, &created);
    if (!s)
        return NULL;
    if (!created)
        return &s->hist;
    s->hist.bounds = malloc((n_bounds ? n_bounds : 1) * sizeof(double));
    s->hist.counts = calloc(n_bounds + 1, sizeof(uint64_t));
    if (!s->hist.bounds || !s->hist.counts)
        return NULL; /* freed with the registry */
    memcpy(s->hist.bounds, bounds, n_bounds * sizeof(double));
    s->hist.n_bounds = n_bounds;
    return &s->hist;
}

void sb_histogram_observe(struct sb_histogram *h, double v)
{
    size_t i = 0;

    if (!h || !h->counts)
        return;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void sb_metrics_forget(struct sb_metrics *m, const char *label, const char *value)
{
    for (size_t i = 0; i < m->n; i++) {
        struct family *f = &m->fams[i];
        struct series **pp = &f->first, *s;
        f->last = NULL;
        while ((s = *pp)) {
            bool match = false;
            for (size_t k = 0; k < s->n_labels; k++)
                if (!strcmp(s->labels[2 * k], label) && !strcmp(s->labels[2 * k + 1], value))
                    match = true;
            if (match) {
                *pp = s->next;
                series_free(s);
            } else {
                f->last = s;
                pp = &s->next;
            }
        }
    }
}

static double series_value(const struct series *s)
{
    switch (s->src) {
    case SRC_OWN_U64:
        return (double)s->u64;
    case SRC_REF_U64:
        return (double)*s->ref;
    case SRC_OWN_DOUBLE:
        return s->dbl;
    case SRC_FN:
        return s->fn(s->arg);
    case SRC_HIST:
        return (double)s->hist.count;
    }
    return 0;
}

static bool series_u64(const struct series *s, uint64_t *v)
{
    if (s->src == SRC_OWN_U64)
        *v = s->u64;
    else if (s->src == SRC_REF_U64)
        *v = *s->ref;
    else
        return false;
    return true;
}

/* ---- rendering ---------------------------------------------------------------------------- */

static int put(struct sb_buf *b, const char *s)
{
    return sb_buf_append_str(b, s);
}

static int putf(struct sb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int putf(struct sb_buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    return sb_buf_append(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Prometheus: label values escape \ " and newline; HELP escapes \ and newline. */
static int put_escaped(struct sb_buf *b, const char *s, bool quote)
{
    int rc = 0;

    for (; *s && !rc; s++) {
        if (*s == '\\')
            rc = put(b, "\\\\");
        else if (*s == '\n')
            rc = put(b, "\\n");
        else if (*s == '"' && quote)
            rc = put(b, "\\\"");
        else
            rc = sb_buf_append(b, s, 1);
    }
    return rc;
}

/* The shortest of %.15g..%.17g that reads back as the same double: 0.1 stays "0.1". */
static void fmt_double(char out[40], double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, 40, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static int put_double(struct sb_buf *b, double v)
{
    char tmp[40];

    if (isnan(v))
        return put(b, "NaN");
    if (isinf(v))
        return put(b, v > 0 ? "+Inf" : "-Inf");
    if (v == (double)(int64_t)v && fabs(v) < 9e15)
        return putf(b, "%lld", (long long)v);
    fmt_double(tmp, v);
    return put(b, tmp);
}

static int put_labels(struct sb_buf *b, const struct series *s, const char *extra_name,
                      const char *extra_value)
{
    int rc = 0;
    bool any = s->n_labels || extra_name;

    if (!any)
        return 0;
    rc |= put(b, "{");
    for (size_t i = 0; i < s->n_labels; i++) {
        rc |= putf(b, "%s%s=\"", i ? "," : "", s->labels[2 * i]);
        rc |= put_escaped(b, s->labels[2 * i + 1], true);
        rc |= put(b, "\"");
    }
    if (extra_name) {
        rc |= putf(b, "%s%s=\"", s->n_labels ? "," : "", extra_name);
        rc |= put(b, extra_value);
        rc |= put(b, "\"");
    }
    rc |= put(b, "}");
    return rc ? -ENOMEM : 0;
}

int sb_metrics_render_prometheus(const struct sb_metrics *m, struct sb_buf *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    int rc = 0;

    for (size_t i = 0; i < m->n && !rc; i++) {
        const struct family *f = &m->fams[i];
        if (!f->first)
            continue;
        rc |= putf(out, "# HELP %s ", f->name);
        rc |= put_escaped(out, f->help, false);
        rc |= putf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);
        for (const struct series *s = f->first; s && !rc; s = s->next) {
            if (f->type != SB_METRIC_HISTOGRAM) {
                uint64_t u;
                rc |= put(out, f->name);
                rc |= put_labels(out, s, NULL, NULL);
                rc |= put(out, " ");
                if (series_u64(s, &u))
                    rc |= putf(out, "%llu", (unsigned long long)u);
                else
                    rc |= put_double(out, series_value(s));
                rc |= put(out, "\n");
                continue;
            }
            uint64_t cum = 0;
            for (size_t k = 0; k <= s->hist.n_bounds; k++) {
                char le[40];
                cum += s->hist.counts[k];
                if (k < s->hist.n_bounds)
                    fmt_double(le, s->hist.bounds[k]);
                else
                    snprintf(le, sizeof le, "+Inf");
                rc |= putf(out, "%s_bucket", f->name);
                rc |= put_labels(out, s, "le", le);
                rc |= putf(out, " %llu\n", (unsigned long long)cum);
            }
            rc |= putf(out, "%s_sum", f->name);
            rc |= put_labels(out, s, NULL, NULL);
            rc |= put(out, " ");
            rc |= put_double(out, s->hist.sum);
            rc |= putf(out, "\n%s_count", f->name);
            rc |= put_labels(out, s, NULL, NULL);
            rc |= putf(out, " %llu\n", (unsigned long long)s->hist.count);
        }
    }
    return rc ? -ENOMEM : 0;
}

static int put_json_str(struct sb_buf *b, const char *s)
{
    int rc = put(b, "\"");

    for (; *s && !rc; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            rc = putf(b, "\\%c", c);
        else if (c < 0x20)
            rc = putf(b, "\\u%04x", c);
        else
            rc = sb_buf_append(b, s, 1);
    }
    return rc ? rc : put(b, "\"");
}

static int put_json_double(struct sb_buf *b, double v)
{
    if (isnan(v) || isinf(v))
        return put(b, "null"); /* JSON has no NaN/Inf */
    return put_double(b, v);
}

int sb_metrics_render_json(const struct sb_metrics *m, int64_t time_ms, struct sb_buf *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    bool first = true;
    int rc = putf(out, "{\"time_ms\":%lld,\"metrics\":[", (long long)time_ms);

    for (size_t i = 0; i < m->n && !rc; i++) {
        const struct family *f = &m->fams[i];
        for (const struct series *s = f->first; s && !rc; s = s->next) {
            rc |= put(out, first ? "{\"name\":" : ",{\"name\":");
            first = false;
            rc |= put_json_str(out, f->name);
            rc |= putf(out, ",\"type\":\"%s\",\"labels\":{", types[f->type]);
            for (size_t k = 0; k < s->n_labels; k++) {
                if (k)
                    rc |= put(out, ",");
                rc |= put_json_str(out, s->labels[2 * k]);
                rc |= put(out, ":");
                rc |= put_json_str(out, s->labels[2 * k + 1]);
            }
            rc |= put(out, "}");
            if (f->type == SB_METRIC_HISTOGRAM) {
                uint64_t cum = 0;
                rc |= putf(out, ",\"count\":%llu,\"sum\":", (unsigned long long)s->hist.count);
                rc |= put_json_double(out, s->hist.sum);
                rc |= put(out, ",\"buckets\":[");
                for (size_t k = 0; k <= s->hist.n_bounds; k++) {
                    cum += s->hist.counts[k];
                    rc |= put(out, k ? ",[" : "[");
                    if (k < s->hist.n_bounds)
                        rc |= put_json_double(out, s->hist.bounds[k]);
                    else
                        rc |= put(out, "null");
                    rc |= putf(out, ",%llu]", (unsigned long long)cum);
                }
                rc |= put(out, "]}");
            } else {
                uint64_t u;
                rc |= put(out, ",\"value\":");
                if (series_u64(s, &u))
                    rc |= putf(out, "%llu", (unsigned long long)u);
                else
                    rc |= put_json_double(out, series_value(s));
                rc |= put(out, "}");
            }
        }
    }
    rc |= put(out, "]}\n");
    return rc ? -ENOMEM : 0;
}

int sb_metrics_get(const struct sb_metrics *m, const char *name, sb_labels labels, double *v)
{
    size_t n = count_labels(labels);

    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->fams[i].name, name))
            continue;
        for (const struct series *s = m->fams[i].first; s; s = s->next)
            if (labels_equal(s, labels, n)) {
                *v = series_value(s);
                return 0;
            }
    }
    return -ENOENT;
}
