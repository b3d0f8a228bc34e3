/* cmd_stat.c: `segbus stat`: a running segbusd's ring and pipeline counters, read from its /stats
 * JSON snapshot, as tables per stage and per output (with reasons), once or refreshing with
 * rates per second (--watch), or as JSON for scripts (--json). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/ops.h"

/* One series of a snapshot. */
struct series {
    const char *name; /* family, e.g. segbus_sent_events_total */
    json_t *labels;   /* object */
    char *key;        /* name + sorted compact labels: identifies the series across snapshots */
    const char *type; /* counter, gauge, histogram */
    double value;     /* counters, gauges; histograms: count */
    double rate;      /* per second since the previous snapshot; NAN if none */
    json_t *obj;      /* the snapshot's object (histogram buckets) */
};

struct snap {
    json_t *root;
    int64_t time_ms;
    struct series *s;
    size_t n;
};

static void snap_free(struct snap *sn)
{
    for (size_t i = 0; i < sn->n; i++)
        free(sn->s[i].key);
    free(sn->s);
    json_decref(sn->root);
    memset(sn, 0, sizeof *sn);
}

/* Parse a /stats body; 0 or -EPROTO with err saying what is wrong. */
static int snap_parse(struct snap *sn, const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *ms, *t;
    size_t i;

    memset(sn, 0, sizeof *sn);
    sn->root = json_loadb(text, len, 0, &je);
    if (!sn->root) {
        snprintf(err, errlen, "/stats is not JSON: %s at line %d", je.text, je.line);
        return -EPROTO;
    }
    t = json_object_get(sn->root, "time_ms");
    ms = json_object_get(sn->root, "metrics");
    if (!json_is_integer(t) || !json_is_array(ms)) {
        snprintf(err, errlen, "/stats lacks time_ms or its metrics array");
        json_decref(sn->root);
        sn->root = NULL;
        return -EPROTO;
    }
    sn->time_ms = json_integer_value(t);
    sn->s = calloc(json_array_size(ms) + 1, sizeof *sn->s);
    if (!sn->s)
        return -ENOMEM;
    json_array_foreach(ms, i, t)
    {
        struct series *s = &sn->s[sn->n];
        json_t *name = json_object_get(t, "name"), *type = json_object_get(t, "type");
        json_t *v = json_object_get(t, "value"), *labels = json_object_get(t, "labels");
        char *lj;
        if (!json_is_string(name) || !json_is_string(type))
            continue; /* not a series we understand: skip rather than guess */
        s->name = json_string_value(name);
        s->type = json_string_value(type);
        s->labels = json_is_object(labels) ? labels : NULL;
        if (!strcmp(s->type, "histogram"))
            v = json_object_get(t, "count");
        s->value = json_is_number(v) ? json_number_value(v) : NAN;
        s->rate = NAN;
        s->obj = t;
        lj = s->labels ? json_dumps(s->labels, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        if (asprintf(&s->key, "%s%s", s->name, lj ? lj : "{}") < 0)
            s->key = NULL;
        free(lj);
        if (!s->key)
            return -ENOMEM;
        sn->n++;
    }
    return 0;
}

static void snap_rates(struct snap *cur, const struct snap *prev)
{
    double dt = (double)(cur->time_ms - prev->time_ms) / 1000.0;
    if (dt <= 0)
        return;
    for (size_t i = 0; i < cur->n; i++) {
        if (strcmp(cur->s[i].type, "gauge") == 0)
            continue;
        for (size_t j = 0; j < prev->n; j++)
            if (!strcmp(cur->s[i].key, prev->s[j].key)) {
                cur->s[i].rate = (cur->s[i].value - prev->s[j].value) / dt;
                break;
            }
    }
}

static const char *label(const struct series *s, const char *name)
{
    json_t *v = s->labels ? json_object_get(s->labels, name) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* "segbus_sent_events_total" -> "sent_events". */
static void short_name(const char *name, char *out, size_t outlen)
{
    size_t n;
    if (!strncmp(name, "segbus_", 7))
        name += 7;
    snprintf(out, outlen, "%s", name);
    n = strlen(out);
    if (n > 6 && !strcmp(out + n - 6, "_total"))
        out[n - 6] = 0;
}

/* Labels as "k=v k=v", leaving out `skip` (the column it is already shown in). */
static void label_text(const struct series *s, const char *skip, char *out, size_t outlen)
{
    const char *k;
    json_t *v;
    size_t used = 0;
    out[0] = 0;
    if (!s->labels)
        return;
    json_object_foreach(s->labels, k, v)
    {
        if ((skip && !strcmp(k, skip)) || !json_is_string(v) || used >= outlen)
            continue;
        used += (size_t)snprintf(out + used, outlen - used, "%s%s=%s", used ? " " : "", k,
                                 json_string_value(v));
    }
}

/* Per-output columns: the families that carry an {output} label, in pipeline order. */
static const struct {
    const char *family, *column;
} out_cols[] = {
    {"segbus_batched_events_total", "batched"},    {"segbus_batches_total", "batches"},
    {"segbus_spooled_events_total", "spooled"},    {"segbus_sent_events_total", "sent"},
    {"segbus_retried_batches_total", "retried"},   {"segbus_failed_requests_total", "failed"},
    {"segbus_dead_lettered_events_total", "dead"}, {"segbus_dropped_events_total", "dropped"},
};
#define N_OUT_COLS (sizeof out_cols / sizeof out_cols[0])

struct outrow {
    const char *name;
    double v[N_OUT_COLS], r[N_OUT_COLS];
    double lat_p50, lat_p99; /* seconds, from the delivery latency histogram; NAN if none */
    double st[5];            /* the status gauges of st_gauges[], NAN if absent */
};

/* Per-output delivery status gauges (src/outputs/output.h), in struct outrow's st[] order. */
static const char *const st_gauges[] = {
    "segbus_output_last_error_status", "segbus_output_last_error_timestamp_seconds",
    "segbus_output_last_success_timestamp_seconds", "segbus_output_consecutive_failures",
    "segbus_output_retrying_events"};
enum { ST_ERR, ST_ERR_TIME, ST_OK_TIME, ST_FAILS, ST_RETRYING, N_ST };

static int st_of(const char *family)
{
    for (int k = 0; k < N_ST; k++)
        if (!strcmp(st_gauges[k], family))
            return k;
    return -1;
}

/* "HTTP 503", "Connection refused" for a status gauge's value. */
static void error_text(double status, char *out, size_t outlen)
{
    if (status > 0)
        snprintf(out, outlen, "HTTP %.0f", status);
    else
        snprintf(out, outlen, "%s", strerror((int)-status));
}

static int col_of(const char *family)
{
    for (size_t c = 0; c < N_OUT_COLS; c++)
        if (!strcmp(out_cols[c].family, family))
            return (int)c;
    return -1;
}

/* A quantile from cumulative Prometheus buckets [[le,count],...]: the upper bound of the first
 * bucket holding it (an upper estimate, as histogram_quantile without interpolation). */
static double hist_quantile(json_t *obj, double q)
{
    json_t *b = json_object_get(obj, "buckets"), *e;
    double total = json_number_value(json_object_get(obj, "count"));
    size_t i;
    if (!json_is_array(b) || total <= 0)
        return NAN;
    json_array_foreach(b, i, e)
    {
        json_t *le = json_array_get(e, 0), *c = json_array_get(e, 1);
        if (json_is_number(c) && json_number_value(c) >= q * total)
            return json_is_number(le) ? json_number_value(le) : INFINITY;
    }
    return INFINITY;
}

static size_t out_rows(const struct snap *sn, struct outrow *rows, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < sn->n; i++) {
        const char *o = label(&sn->s[i], "output");
        int c = col_of(sn->s[i].name), g = st_of(sn->s[i].name);
        bool lat = !strcmp(sn->s[i].name, "segbus_delivery_latency_seconds");
        size_t r;
        if (!o || (c < 0 && !lat && g < 0))
            continue;
        for (r = 0; r < n && strcmp(rows[r].name, o); r++)
            ;
        if (r == n) {
            if (n == max)
                continue;
            memset(&rows[n], 0, sizeof rows[n]);
            rows[n].name = o;
            rows[n].lat_p50 = rows[n].lat_p99 = NAN;
            for (size_t k = 0; k < N_OUT_COLS; k++)
                rows[n].r[k] = NAN;
            for (int k = 0; k < N_ST; k++)
                rows[n].st[k] = NAN;
            n++;
        }
        if (g >= 0) {
            rows[r].st[g] = sn->s[i].value;
            continue;
        }
        if (lat) {
            rows[r].lat_p50 = hist_quantile(sn->s[i].obj, 0.5);
            rows[r].lat_p99 = hist_quantile(sn->s[i].obj, 0.99);
            continue;
        }
        rows[r].v[c] += sn->s[i].value;
        if (!isnan(sn->s[i].rate))
            rows[r].r[c] = (isnan(rows[r].r[c]) ? 0 : rows[r].r[c]) + sn->s[i].rate;
    }
    return n;
}

static double gauge(const struct snap *sn, const char *family, bool max)
{
    double v = NAN;
    for (size_t i = 0; i < sn->n; i++)
        if (!strcmp(sn->s[i].name, family) && !isnan(sn->s[i].value))
            v = isnan(v) ? sn->s[i].value : (max ? fmax(v, sn->s[i].value) : v + sn->s[i].value);
    return v;
}

static void human_bytes(double b, char *out, size_t outlen)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    if (isnan(b)) {
        snprintf(out, outlen, "-");
        return;
    }
    while (b >= 1024 && i < 4) {
        b /= 1024;
        i++;
    }
    snprintf(out, outlen, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static bool is_stage_family(const char *name)
{
    return !strcmp(name, "segbus_received_events_total") ||
           !strcmp(name, "segbus_invalid_events_total") ||
           !strcmp(name, "segbus_deduplicated_events_total") ||
           !strcmp(name, "segbus_stage_dropped_events_total");
}

static void print_human(FILE *f, const char *addr, const struct snap *sn, bool rates)
{
    struct outrow rows[64];
    size_t nrows = out_rows(sn, rows, 64);
    char when[64], txt[256], nm[96], sb[32];
    time_t t = (time_t)(sn->time_ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    fprintf(f, "segbusd at %s, %s\n\n", addr, when);

    fprintf(f, "%-44s %14s%s\n", "pipeline (per stage)", "events", rates ? "         /s" : "");
    for (size_t i = 0; i < sn->n; i++) {
        const struct series *s = &sn->s[i];
        if (!is_stage_family(s->name))
            continue;
        if (label(s, "reason") && !(s->value > 0))
            continue; /* a reason that never happened: noise in a table for people */
        short_name(s->name, nm, sizeof nm);
        label_text(s, NULL, txt, sizeof txt);
        char lhs[400];
        snprintf(lhs, sizeof lhs, "  %s%s%s", nm, txt[0] ? " " : "", txt);
        fprintf(f, "%-44s %14.0f", lhs, s->value);
        if (rates)
            fprintf(f, " %10.1f", isnan(s->rate) ? 0.0 : s->rate);
        fputc('\n', f);
    }

    fprintf(f, "\n%-12s", "output");
    for (size_t c = 0; c < N_OUT_COLS; c++)
        fprintf(f, " %11s", out_cols[c].column);
    fprintf(f, " %15s\n", "latency p50/p99");
    for (size_t r = 0; r < nrows; r++) {
        fprintf(f, "  %-10.10s", rows[r].name);
        for (size_t c = 0; c < N_OUT_COLS; c++)
            fprintf(f, " %11.0f", rows[r].v[c]);
        if (isnan(rows[r].lat_p50))
            fprintf(f, " %15s\n", "-");
        else
            fprintf(f, " %6.0fms/%.0fms\n", rows[r].lat_p50 * 1e3, rows[r].lat_p99 * 1e3);
        if (rates) {
            fprintf(f, "  %-10s", "  /s");
            for (size_t c = 0; c < N_OUT_COLS; c++)
                fprintf(f, " %11.1f", isnan(rows[r].r[c]) ? 0.0 : rows[r].r[c]);
            fputc('\n', f);
        }
    }
    if (!nrows)
        fprintf(f, "  (no outputs)\n");

    /* Delivery status: is each output keeping up, and if not, what went wrong last. */
    bool st_header = false;
    for (size_t r = 0; r < nrows; r++) {
        const double *g = rows[r].st;
        double now = (double)sn->time_ms / 1000.0;
        char err[128];
        if (isnan(g[ST_FAILS]))
            continue;
        if (!st_header) {
            fprintf(f, "\ndelivery status\n");
            st_header = true;
        }
        fprintf(f, "  %-10.10s ", rows[r].name);
        if (g[ST_FAILS] > 0)
            fprintf(f, "FAILING: %.0f failed attempts in a row", g[ST_FAILS]);
        else
            fprintf(f, "ok");
        if (g[ST_RETRYING] > 0)
            fprintf(f, ", retrying %.0f events", g[ST_RETRYING]);
        if (g[ST_ERR_TIME] > 0) {
            error_text(g[ST_ERR], err, sizeof err);
            fprintf(f, "; last error %s, %.0f s ago", err, fmax(0, now - g[ST_ERR_TIME]));
        }
        if (g[ST_OK_TIME] > 0)
            fprintf(f, "; last delivery %.0f s ago", fmax(0, now - g[ST_OK_TIME]));
        fputc('\n', f);
    }

    /* Reasons: every non-zero series with a reason label, per output or place. */
    bool header = false;
    for (size_t i = 0; i < sn->n; i++) {
        const struct series *s = &sn->s[i];
        if (!label(s, "reason") || !(s->value > 0) || is_stage_family(s->name))
            continue;
        if (!header) {
            fprintf(f, "\nreasons\n");
            header = true;
        }
        short_name(s->name, nm, sizeof nm);
        label_text(s, NULL, txt, sizeof txt);
        char lhs[400];
        snprintf(lhs, sizeof lhs, "  %s %s", nm, txt);
        fprintf(f, "%-60s %12.0f\n", lhs, s->value);
    }

    human_bytes(gauge(sn, "segbus_spool_bytes", false), sb, sizeof sb);
    double fill = gauge(sn, "segbus_ring_fill_ratio", true);
    double prod = gauge(sn, "segbus_producers", false);
    fprintf(f, "\nspool %s   ring fill %s", sb, isnan(fill) ? "-" : "");
    if (!isnan(fill))
        fprintf(f, "%.1f%%", fill * 100);
    fprintf(f, "   producers %.0f\n", isnan(prod) ? 0.0 : prod);
}

static json_t *num(double v)
{
    return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

static void print_json(FILE *f, const char *addr, const struct snap *sn, double interval)
{
    struct outrow rows[64];
    size_t nrows = out_rows(sn, rows, 64);
    json_t *o = json_object(), *series = json_array(), *outs = json_object();
    char nm[96];

    json_object_set_new(o, "address", json_string(addr));
    json_object_set_new(o, "time_ms", json_integer(sn->time_ms));
    json_object_set_new(o, "interval_s", num(interval));
    for (size_t i = 0; i < sn->n; i++) {
        json_t *s = json_object();
        json_object_set_new(s, "name", json_string(sn->s[i].name));
        json_object_set_new(s, "labels",
                            sn->s[i].labels ? json_incref(sn->s[i].labels) : json_object());
        json_object_set_new(s, "value", num(sn->s[i].value));
        json_object_set_new(s, "rate", num(sn->s[i].rate));
        json_array_append_new(series, s);
    }
    for (size_t r = 0; r < nrows; r++) {
        json_t *row = json_object(), *rt = json_object();
        for (size_t c = 0; c < N_OUT_COLS; c++) {
            json_object_set_new(row, out_cols[c].column, num(rows[r].v[c]));
            json_object_set_new(rt, out_cols[c].column, num(rows[r].r[c]));
        }
        json_object_set_new(row, "rates", rt);
        json_object_set_new(row, "latency_p50_s", num(rows[r].lat_p50));
        json_object_set_new(row, "latency_p99_s", num(rows[r].lat_p99));
        if (!isnan(rows[r].st[ST_FAILS])) {
            const double *g = rows[r].st;
            char err[128];
            json_object_set_new(row, "consecutive_failures", num(g[ST_FAILS]));
            json_object_set_new(row, "retrying_events", num(g[ST_RETRYING]));
            json_object_set_new(row, "last_success_ms",
                                g[ST_OK_TIME] > 0 ? json_integer((json_int_t)(g[ST_OK_TIME] * 1e3))
                                                  : json_null());
            if (g[ST_ERR_TIME] > 0) {
                error_text(g[ST_ERR], err, sizeof err);
                json_object_set_new(row, "last_error", json_string(err));
                json_object_set_new(row, "last_error_status", num(g[ST_ERR]));
                json_object_set_new(row, "last_error_ms",
                                    json_integer((json_int_t)(g[ST_ERR_TIME] * 1e3)));
            } else {
                json_object_set_new(row, "last_error", json_null());
            }
        }
        json_object_set_new(outs, rows[r].name, row);
    }
    json_t *stages = json_object();
    for (size_t i = 0; i < sn->n; i++)
        if (is_stage_family(sn->s[i].name)) {
            short_name(sn->s[i].name, nm, sizeof nm);
            json_t *cur = json_object_get(stages, nm);
            double v = sn->s[i].value + (cur ? json_number_value(cur) : 0);
            json_object_set_new(stages, nm, json_real(v));
        }
    json_object_set_new(o, "stages", stages);
    json_object_set_new(o, "outputs", outs);
    json_object_set_new(o, "spool_bytes", num(gauge(sn, "segbus_spool_bytes", false)));
    json_object_set_new(o, "ring_fill", num(gauge(sn, "segbus_ring_fill_ratio", true)));
    json_object_set_new(o, "producers", num(gauge(sn, "segbus_producers", false)));
    json_object_set_new(o, "series", series);
    json_dumpf(o, f, JSON_COMPACT);
    fputc('\n', f);
    fflush(f);
    json_decref(o);
}

static void help(FILE *f)
{
    fprintf(f,
            "usage: segbus stat [--metrics HOST:PORT | --config FILE] [--watch [SECONDS]]\n"
            "                   [--count N] [--json]\n\n"
            "A running segbusd's counters per stage and per output (with reasons), spool bytes\n"
            "and ring fill, read from its /stats endpoint.\n\nflags:\n"
            "  --metrics HOST:PORT  the daemon's metrics.listen (else --config's, else\n"
            "                       $SEGBUS_METRICS, else %s)\n"
            "  --config FILE        read metrics.listen from segbusd's config\n"
            "  --watch [SECONDS]    refresh every SECONDS (default 2) with rates per second\n"
            "  --count N            with --watch: stop after N refreshes\n"
            "  --json               one JSON object per snapshot (for scripts)\n\n"
            "Exit codes: 0 ok; 2 bad command line; 69 no daemon at the address; 1 bad answer.\n",
            SB_OPS_DEFAULT_METRICS);
}

static int fetch(const char *addr, struct snap *sn)
{
    struct sb_buf body = SB_BUF_INIT;
    char err[300];
    int status = 0, rc = sb_ops_get(addr, "/stats", 5000, &status, &body, err, sizeof err);

    if (rc == 0 && status != 200) {
        snprintf(err, sizeof err, "%.200s/stats answered %d", addr, status);
        rc = -EPROTO;
    }
    if (rc == 0)
        rc = snap_parse(sn, (const char *)body.data, body.len, err, sizeof err);
    sb_buf_free(&body);
    if (rc) {
        fprintf(stderr, "segbus stat: %s\n", err);
        return rc == -ECONNREFUSED || rc == -ENOENT || rc == -ETIMEDOUT ? SB_EXIT_UNAVAILABLE
               : rc == -EINVAL                                          ? SB_EXIT_USAGE
                                                                        : SB_EXIT_FAIL;
    }
    return 0;
}

static int run_stat(int argc, char **argv)
{
    enum { O_METRICS = 1, O_CONFIG, O_WATCH, O_COUNT, O_JSON, O_HELP };
    static const struct option opts[] = {
        {"metrics", required_argument, NULL, O_METRICS},
        {"config", required_argument, NULL, O_CONFIG},
        {"watch", optional_argument, NULL, O_WATCH},
        {"count", required_argument, NULL, O_COUNT},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *metrics = NULL, *config = NULL;
    double every = 0;
    long count = 0;
    bool json = false;
    char addr[300], *end;
    int o, rc;

    opterr = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_METRICS:
            metrics = optarg;
            break;
        case O_CONFIG:
            config = optarg;
            break;
        case O_WATCH: {
            const char *v = optarg;
            /* "--watch 5" as well as "--watch=5": take a following number as the interval. */
            if (!v && optind < argc && argv[optind][0] >= '0' && argv[optind][0] <= '9')
                v = argv[optind++];
            every = 2;
            if (v) {
                every = strtod(v, &end);
                if (*end || !(every >= 0.1) || every > 86400) {
                    fprintf(stderr,
                            "segbus stat: --watch wants seconds from 0.1 to 86400, not "
                            "\"%s\"\n",
                            v);
                    return SB_EXIT_USAGE;
                }
            }
            break;
        }
        case O_COUNT:
            count = strtol(optarg, &end, 10);
            if (*end || count < 1) {
                fprintf(stderr, "segbus stat: --count wants a number >= 1, not \"%s\"\n", optarg);
                return SB_EXIT_USAGE;
            }
            break;
        case O_JSON:
            json = true;
            break;
        case O_HELP:
            help(stdout);
            return SB_EXIT_OK;
        default:
            return sb_cli_bad_flag("stat", argv);
        }
    }
    if ((rc = sb_ops_check_args("stat", argc, argv, metrics, config)) != 0)
        return rc;
    if (count && every == 0) {
        fprintf(stderr, "segbus stat: --count goes with --watch\n");
        return SB_EXIT_USAGE;
    }
    if ((rc = sb_ops_address(metrics, config, addr, sizeof addr, "stat")) != 0)
        return rc;

    struct snap prev = {0}, cur;
    bool tty = isatty(1);
    for (long i = 0;; i++) {
        if ((rc = fetch(addr, &cur)) != 0) {
            snap_free(&prev);
            return rc;
        }
        double interval = NAN;
        if (prev.root) {
            snap_rates(&cur, &prev);
            interval = (double)(cur.time_ms - prev.time_ms) / 1000.0;
        }
        if (json) {
            print_json(stdout, addr, &cur, interval);
        } else {
            if (every > 0 && tty)
                fputs("\033[H\033[2J", stdout); /* a refreshing view on a terminal */
            else if (i)
                fputc('\n', stdout);
            print_human(stdout, addr, &cur, prev.root != NULL);
            fflush(stdout);
        }
        snap_free(&prev);
        prev = cur;
        if (every == 0 || (count && i + 1 >= count))
            break;
        struct timespec ts = {(time_t)every, (long)((every - (double)(time_t)every) * 1e9)};
        nanosleep(&ts, NULL);
    }
    snap_free(&prev);
    return SB_EXIT_OK;
}

const struct sb_cli_cmd sb_cli_stat = {"stat", "a running segbusd's counters (once or --watch)",
                                       run_stat};
