/* warehouse_bench.c: warehouse load throughput for the seed's event mix, side by side with the
 * naive way (one autocommit INSERT per row) in the same run. Prints JSON lines.
 *   warehouse_bench sqlite DIR [EVENTS]
 *   warehouse_bench pg CONNINFO [EVENTS]
 *   warehouse_bench sqlite-only DIR [EVENTS] | pg-only CONNINFO [EVENTS] | model-only X [EVENTS]
 *   (the last three for profiling)
 * WAREHOUSE_BATCH sets the events per load (default 1000). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <msgpack.h>
#include <sqlite3.h>

#include "outputs/warehouse.h"
#include "outputs/warehouse_model.h"

struct ev {
    char *data;
    size_t len;
};

static void str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}
static void kv_s(msgpack_packer *pk, const char *k, const char *v)
{
    str(pk, k);
    str(pk, v);
}
static void kv_d(msgpack_packer *pk, const char *k, double v)
{
    str(pk, k);
    msgpack_pack_double(pk, v);
}
static void kv_i(msgpack_packer *pk, const char *k, int64_t v)
{
    str(pk, k);
    msgpack_pack_int64(pk, v);
}

/* The common envelope of every event: 9 fields, then the caller adds its own. */
static void envelope(msgpack_packer *pk, int extra, const char *type, unsigned i, unsigned user)
{
    char id[48], uid[32], anon[48];
    snprintf(id, sizeof(id), "0193f1a2-7b3c-7d4e-8f50-%012u", i);
    snprintf(uid, sizeof(uid), "USR-%05u", user);
    snprintf(anon, sizeof(anon), "anon-%08x", user * 2654435761u);
    msgpack_pack_map(pk, 9 + (size_t)extra);
    kv_s(pk, "type", type);
    kv_s(pk, "messageId", id);
    kv_s(pk, "userId", uid);
    kv_s(pk, "anonymousId", anon);
    kv_s(pk, "timestamp", "2026-11-28T10:00:00.123Z");
    kv_s(pk, "sentAt", "2026-11-28T10:00:01.000Z");
    kv_s(pk, "receivedAt", "2026-11-28T10:00:01.250Z");
    str(pk, "context");
    msgpack_pack_map(pk, 5);
    str(pk, "library");
    msgpack_pack_map(pk, 2);
    kv_s(pk, "name", "analytics-node");
    kv_s(pk, "version", "2.2.1");
    str(pk, "page");
    msgpack_pack_map(pk, 3);
    kv_s(pk, "url", "https://shop.example/products/sku-12345");
    kv_s(pk, "path", "/products/sku-12345");
    kv_s(pk, "referrer", "https://www.google.com/");
    kv_s(pk, "ip", "203.0.113.7");
    kv_s(pk, "userAgent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0");
    kv_s(pk, "locale", "en-US");
    str(pk, "integrations");
    msgpack_pack_map(pk, 1);
    str(pk, "All");
    msgpack_pack_true(pk);
}

static void track(msgpack_packer *pk, const char *event, int nprops, unsigned i, unsigned user)
{
    envelope(pk, 2, "track", i, user);
    kv_s(pk, "event", event);
    str(pk, "properties");
    msgpack_pack_map(pk, (size_t)nprops);
}

/* The seed's tracking plan: pages, the six track events, identify and group, in a mix like a
 * shop's traffic. */
static void make_event(msgpack_packer *pk, unsigned i)
{
    unsigned user = (i * 7919u) % 5000u;
    unsigned r = i % 100;
    if (r < 30) {
        envelope(pk, 3, "page", i, user);
        kv_s(pk, "name", "Product Detail");
        kv_s(pk, "category", "Products");
        str(pk, "properties");
        msgpack_pack_map(pk, 4);
        kv_s(pk, "name", "Product Detail");
        kv_s(pk, "category", "Products");
        kv_s(pk, "url", "https://shop.example/products/sku-12345");
        kv_s(pk, "referrer", "https://www.google.com/");
    } else if (r < 50) {
        track(pk, "Product Viewed", 4, i, user);
        kv_s(pk, "product_id", "SKU-12345");
        kv_s(pk, "name", "Premium Widget");
        kv_d(pk, "price", 49.99);
        kv_s(pk, "category", "Widgets");
    } else if (r < 60) {
        track(pk, "Product Added", 7, i, user);
        kv_s(pk, "product_id", "SKU-12345");
        kv_s(pk, "name", "Premium Widget");
        kv_d(pk, "price", 49.99);
        kv_i(pk, "quantity", 1);
        kv_s(pk, "category", "Widgets");
        kv_s(pk, "currency", "USD");
        kv_s(pk, "cart_id", "CART-789");
    } else if (r < 70) {
        track(pk, "Feature Activated", 3, i, user);
        kv_s(pk, "feature_name", "Export Dashboard");
        kv_s(pk, "plan_required", "pro");
        kv_s(pk, "export_format", "csv");
    } else if (r < 78) {
        track(pk, "Logged In", 1, i, user);
        kv_s(pk, "login_method", "password");
    } else if (r < 82) {
        track(pk, "Signed Up", 2, i, user);
        kv_s(pk, "signup_method", "google");
        kv_s(pk, "plan_type", "trial");
    } else if (r < 87) {
        track(pk, "Order Completed", 10, i, user);
        kv_s(pk, "order_id", "ORD-2024-12345");
        kv_d(pk, "total", 129.98);
        kv_d(pk, "subtotal", 119.98);
        kv_d(pk, "tax", 10.40);
        kv_d(pk, "shipping", 5.99);
        kv_d(pk, "discount", 6.39);
        kv_s(pk, "coupon", "SAVE10");
        kv_s(pk, "currency", "USD");
        kv_s(pk, "affiliation", "web");
        str(pk, "products");
        msgpack_pack_array(pk, 2);
        for (int p = 0; p < 2; p++) {
            msgpack_pack_map(pk, 6);
            kv_s(pk, "product_id", p ? "SKU-67890" : "SKU-12345");
            kv_s(pk, "name", p ? "Deluxe Gadget" : "Premium Widget");
            kv_d(pk, "price", p ? 79.99 : 49.99);
            kv_i(pk, "quantity", 1);
            kv_s(pk, "category", p ? "Gadgets" : "Widgets");
            kv_s(pk, "brand", "Acme");
        }
    } else if (r < 95) {
        envelope(pk, 1, "identify", i, user);
        str(pk, "traits");
        msgpack_pack_map(pk, 5);
        kv_s(pk, "email", "ada@example.com");
        kv_s(pk, "name", "Ada Lovelace");
        kv_s(pk, "plan", (i & 1) ? "pro" : "free");
        str(pk, "company");
        msgpack_pack_map(pk, 4);
        kv_s(pk, "name", "Acme");
        kv_s(pk, "id", "CMP-1");
        kv_s(pk, "industry", "Manufacturing");
        kv_i(pk, "employee_count", 40);
        kv_s(pk, "created_at", "2024-01-02T03:04:05Z");
    } else {
        envelope(pk, 2, "group", i, user);
        kv_s(pk, "groupId", "CMP-1");
        str(pk, "traits");
        msgpack_pack_map(pk, 4);
        kv_s(pk, "name", "Acme");
        kv_s(pk, "industry", "Manufacturing");
        kv_s(pk, "plan", "enterprise");
        kv_i(pk, "employee_count", 40);
    }
}

static struct ev *make_events(unsigned n, unsigned first)
{
    struct ev *evs = calloc(n, sizeof(*evs));
    msgpack_sbuffer sb;
    msgpack_packer pk;
    for (unsigned i = 0; i < n; i++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        make_event(&pk, first + i);
        evs[i].data = sb.data;
        evs[i].len = sb.size;
    }
    return evs;
}

static double loadavg(void)
{
    double l = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = 0;
        fclose(f);
    }
    return l;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The CPU-time rate of the last load_all: what one core does when it is not shared (this
 * machine's cores are shared with other jobs, so wall time alone undersells it). */
static double last_cpu_rate;
/* Extra fields for the next emitted row (JSON text starting with ", "), then cleared. */
static char extra_fields[256];
/* Events per load: what the hub's batcher hands an output (WAREHOUSE_BATCH, default 1000). */
static unsigned batch_size = 1000;

/* Load n events in batches; returns events/s, or -1. */
static double load_all(struct sb_warehouse *w, const struct ev *evs, unsigned n, unsigned batch)
{
    struct sb_warehouse_msg *msgs = calloc(batch, sizeof(*msgs));
    double t0 = now_s(), c0 = cpu_s();
    for (unsigned i = 0; i < n; i += batch) {
        unsigned k = n - i < batch ? n - i : batch;
        for (unsigned j = 0; j < k; j++)
            msgs[j] = (struct sb_warehouse_msg){(const uint8_t *)evs[i + j].data, evs[i + j].len};
        struct sb_warehouse_stats st;
        int rc = sb_warehouse_load(w, msgs, k, &st);
        if (rc || st.events != k) {
            fprintf(stderr, "load failed: %d %s\n", rc, sb_warehouse_errmsg(w));
            free(msgs);
            return -1;
        }
    }
    double dt = now_s() - t0;
    last_cpu_rate = n / (cpu_s() - c0);
    free(msgs);
    if (getenv("WAREHOUSE_VERBOSE"))
        fprintf(stderr, "load: %u events in %.3f s\n", n, dt);
    return n / dt;
}

/* The naive peer: the same rows (same model), each as its own INSERT statement text with
 * quoted literals, executed in autocommit mode: one transaction, one WAL sync, per row. */
static double sqlite_naive(const char *path, const struct ev *evs, unsigned n, double budget_s)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL);
    struct sb_wh_model m;
    sb_wh_model_init(&m, NULL);
    char now[32];
    sb_wh_now(now);
    double t0 = now_s();
    unsigned done = 0;
    char *sql = NULL;
    size_t cap = 0;
    for (; done < n && now_s() - t0 < budget_s; done++) {
        if (sb_wh_model_event(&m, (const uint8_t *)evs[done].data, evs[done].len, now))
            return -1;
        for (size_t r = 0; r < m.nrows; r++) {
            const struct sb_wh_row *row = &m.rows[r];
            FILE *f = open_memstream(&sql, &cap);
            fprintf(f, "INSERT OR IGNORE INTO \"%s\" (", row->table);
            for (size_t i = 0; i < row->nfields; i++)
                fprintf(f, "%s\"%s\"", i ? "," : "", row->fields[i].name);
            fprintf(f, ") VALUES (");
            for (size_t i = 0; i < row->nfields; i++) {
                const struct sb_wh_value *v = &row->fields[i].v;
                fputs(i ? "," : "", f);
                if (v->type == SB_WH_INT || v->type == SB_WH_BOOL) {
                    fprintf(f, "%lld", (long long)v->i);
                } else if (v->type == SB_WH_REAL) {
                    fprintf(f, "%.17g", v->d);
                } else {
                    char *q = sqlite3_mprintf("%.*Q", (int)v->n, v->s);
                    fputs(q, f);
                    sqlite3_free(q);
                }
            }
            fprintf(f, ")");
            fclose(f);
            char *err = NULL;
            if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
                fprintf(stderr, "naive insert failed: %s\n", err);
                return -1;
            }
        }
    }
    double dt = now_s() - t0;
    free(sql);
    sb_wh_model_free(&m);
    sqlite3_close(db);
    return done / dt;
}

static void emit(const char *c, const char *unit, double value, const char *peer, double pv,
                 const char *goal, int met)
{
    printf("{\"suite\": \"warehouse\", \"case\": \"%s\", \"unit\": \"%s\", \"value\": %.0f", c,
           unit, value);
    if (last_cpu_rate > 0)
        printf(", \"cpu_events_per_s\": %.0f", last_cpu_rate);
    last_cpu_rate = 0;
    if (peer)
        printf(", \"peer\": \"%s\", \"peer_value\": %.0f, \"ratio\": %.2f", peer, pv,
               pv > 0 ? value / pv : 0);
    if (goal)
        printf(", \"goal\": \"%s\", \"met\": %s", goal, met ? "true" : "false");
    printf("%s}\n", extra_fields);
    extra_fields[0] = 0;
    fflush(stdout);
}

static int bench_sqlite(const char *dir, unsigned n)
{
    char path[4096], naive[4096];
    snprintf(path, sizeof(path), "%s/bench.db", dir);
    snprintf(naive, sizeof(naive), "%s/naive.db", dir);
    struct ev *evs = make_events(n, 0);
    size_t bytes = 0;
    for (unsigned i = 0; i < n; i++)
        bytes += evs[i].len;
    fprintf(stderr, "warehouse: %u events, %.0f bytes each on average\n", n, (double)bytes / n);

    /* our loader: batches of 1000 (as the hub's batcher hands them over), durable commits */
    struct sb_warehouse *w;
    char err[256];
    if (sb_warehouse_sqlite_open(&w, path, NULL, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double warm = load_all(w, evs, n < 2000 ? n : 2000, 1000); /* tables created here */
    double ours = load_all(w, evs + 2000, n - 2000, batch_size);
    double ours_cpu = last_cpu_rate;
    sb_warehouse_close(w);
    if (warm < 0 || ours < 0)
        return 1;

    /* the naive way, on the same schema (made by loading then deleting the first events) */
    if (sb_warehouse_sqlite_open(&w, naive, NULL, err, sizeof(err)))
        return 1;
    load_all(w, evs, 2000, 1000);
    sb_warehouse_close(w);
    sqlite3 *db;
    sqlite3_open(naive, &db);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type='table'", -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
        char *q = sqlite3_mprintf("DELETE FROM \"%w\"", sqlite3_column_text(st, 0));
        sqlite3_exec(db, q, NULL, NULL, NULL);
        sqlite3_free(q);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    double peer = sqlite_naive(naive, evs + 2000, n - 2000, 3.0);
    last_cpu_rate = ours_cpu;
    snprintf(extra_fields, sizeof(extra_fields), ", \"load_average\": %.2f", loadavg());
    emit("sqlite_load_seed_mix", "events/s", ours, "row-by-row autocommit INSERT", peer,
         ">= 100000", ours >= 100000);

    /* the same with synchronous=NORMAL, for scale (acknowledged loads may be lost at power cut) */
    snprintf(path, sizeof(path), "%s/relaxed.db", dir);
    struct sb_warehouse_options opt = {0};
    opt.relaxed_durability = 1;
    if (sb_warehouse_sqlite_open(&w, path, &opt, err, sizeof(err)))
        return 1;
    load_all(w, evs, 2000, 1000);
    double relaxed = load_all(w, evs + 2000, n - 2000, batch_size);
    sb_warehouse_close(w);
    emit("sqlite_load_seed_mix_relaxed_sync", "events/s", relaxed, NULL, 0, NULL, 0);

    /* a resent batch: every row is a duplicate */
    if (sb_warehouse_sqlite_open(&w, path, &opt, err, sizeof(err)))
        return 1;
    double again = load_all(w, evs + 2000, n - 2000, batch_size);
    sb_warehouse_close(w);
    emit("sqlite_reload_duplicates", "events/s", again, NULL, 0, NULL, 0);
    for (unsigned i = 0; i < n; i++)
        free(evs[i].data);
    free(evs);
    return 0;
}

/* The naive PostgreSQL peer: one INSERT statement per row, literal values, autocommit. */
static double pg_naive(const char *conninfo, const char *schema, const struct ev *evs, unsigned n,
                       double budget_s)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "naive: %s", PQerrorMessage(c));
        return -1;
    }
    struct sb_wh_model m;
    sb_wh_model_init(&m, NULL);
    char now[32];
    sb_wh_now(now);
    char *sql = NULL;
    size_t cap = 0;
    double t0 = now_s();
    unsigned done = 0;
    for (; done < n && now_s() - t0 < budget_s; done++) {
        if (sb_wh_model_event(&m, (const uint8_t *)evs[done].data, evs[done].len, now))
            return -1;
        for (size_t r = 0; r < m.nrows; r++) {
            const struct sb_wh_row *row = &m.rows[r];
            FILE *f = open_memstream(&sql, &cap);
            fprintf(f, "INSERT INTO \"%s\".\"%s\" (", schema, row->table);
            for (size_t i = 0; i < row->nfields; i++)
                fprintf(f, "%s\"%s\"", i ? "," : "", row->fields[i].name);
            fprintf(f, ") VALUES (");
            for (size_t i = 0; i < row->nfields; i++) {
                const struct sb_wh_value *v = &row->fields[i].v;
                fputs(i ? "," : "", f);
                if (v->type == SB_WH_INT)
                    fprintf(f, "%lld", (long long)v->i);
                else if (v->type == SB_WH_BOOL)
                    fputs(v->i ? "true" : "false", f);
                else if (v->type == SB_WH_REAL)
                    fprintf(f, "%.17g", v->d);
                else {
                    char *q = PQescapeLiteral(c, v->s, v->n);
                    fputs(q, f);
                    PQfreemem(q);
                }
            }
            fprintf(f, ") ON CONFLICT (\"id\") DO NOTHING");
            fclose(f);
            PGresult *res = PQexec(c, sql);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                fprintf(stderr, "naive insert failed: %s", PQresultErrorMessage(res));
                return -1;
            }
            PQclear(res);
        }
    }
    double dt = now_s() - t0;
    free(sql);
    sb_wh_model_free(&m);
    PQfinish(c);
    return done / dt;
}

/* CPU seconds used so far by the server backends serving our loader (same machine), found by
 * the application_name the loader sets. */
static double backend_cpu_s(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE application_name = "
                            "'segbusd-warehouse'");
    double total = 0;
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%s/stat", PQgetvalue(r, i, 0));
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        unsigned long ut = 0, st = 0;
        /* fields 14 and 15: utime, stime (after "pid (comm) state" and 10 numbers) */
        if (fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            total += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
        fclose(f);
    }
    PQclear(r);
    return total;
}

static double wal_lsn(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT pg_current_wal_lsn() - '0/0'");
    double v = PQresultStatus(r) == PGRES_TUPLES_OK ? strtod(PQgetvalue(r, 0, 0), NULL) : 0;
    PQclear(r);
    return v;
}

static int bench_pg(const char *conninfo, unsigned n)
{
    struct ev *evs = make_events(n, 0);
    struct sb_warehouse *w;
    char err[512];
    struct sb_warehouse_options opt = {0};
    opt.schema = "bench";
    if (sb_warehouse_pg_open(&w, conninfo, &opt, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    PGconn *mon = PQconnectdb(conninfo);
    double warm = load_all(w, evs, 2000, 1000); /* tables created here */
    double srv0 = backend_cpu_s(mon), wal0 = wal_lsn(mon);
    double ours = load_all(w, evs + 2000, n - 2000, batch_size);
    double client_cpu = (n - 2000) / last_cpu_rate;
    double srv = backend_cpu_s(mon) - srv0, wal = wal_lsn(mon) - wal0;
    PQfinish(mon);
    /* client and server CPU together: the rate one machine sustains when the disk keeps up */
    double ours_cpu = (n - 2000) / (client_cpu + srv);
    fprintf(stderr,
            "warehouse: pg: client %.2f s cpu, server backend %.2f s cpu, %.0f WAL bytes "
            "per event\n",
            client_cpu, srv, wal / (n - 2000));
    sb_warehouse_close(w);
    if (warm < 0 || ours < 0)
        return 1;
    /* the naive way on the same schema, made by our loader then emptied */
    opt.schema = "naive";
    if (sb_warehouse_pg_open(&w, conninfo, &opt, err, sizeof(err)))
        return 1;
    load_all(w, evs, 2000, 1000);
    sb_warehouse_close(w);
    PGconn *c = PQconnectdb(conninfo);
    PGresult *res = PQexec(c, "DO $$ DECLARE r record; BEGIN FOR r IN SELECT tablename FROM "
                              "pg_tables WHERE schemaname = 'naive' LOOP EXECUTE 'TRUNCATE "
                              "naive.' || quote_ident(r.tablename); END LOOP; END $$");
    PQclear(res);
    PQfinish(c);
    double peer = pg_naive(conninfo, "naive", evs + 2000, n - 2000, 3.0);
    last_cpu_rate = ours_cpu;
    /* the server's part apart: on a shared machine CPU time is the cost that load does not
     * change, and the server backend is the limit */
    snprintf(extra_fields, sizeof(extra_fields),
             ", \"client_cpu_s\": %.2f, \"server_cpu_s\": %.2f, \"server_events_per_cpu_s\": "
             "%.0f, \"wal_bytes_per_event\": %.0f, \"load_average\": %.2f",
             client_cpu, srv, srv > 0 ? (n - 2000) / srv : 0, wal / (n - 2000), loadavg());
    emit("pg_copy_load_seed_mix", "events/s", ours, "row-by-row autocommit INSERT", peer,
         ">= 100000", ours >= 100000);
    /* a resent batch: every row a duplicate */
    opt.schema = "bench";
    if (sb_warehouse_pg_open(&w, conninfo, &opt, err, sizeof(err)))
        return 1;
    double again = load_all(w, evs + 2000, n - 2000, batch_size);
    sb_warehouse_close(w);
    emit("pg_reload_duplicates", "events/s", again, NULL, 0, NULL, 0);
    for (unsigned i = 0; i < n; i++)
        free(evs[i].data);
    free(evs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s sqlite DIR [EVENTS] | pg CONNINFO [EVENTS]\n", argv[0]);
        return 2;
    }
    unsigned n = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 200000;
    if (getenv("WAREHOUSE_BATCH") && atoi(getenv("WAREHOUSE_BATCH")) > 0)
        batch_size = (unsigned)atoi(getenv("WAREHOUSE_BATCH"));
    if (n < 4000)
        n = 4000;
    if (!strcmp(argv[1], "sqlite"))
        return bench_sqlite(argv[2], n);
    if (!strcmp(argv[1], "model-only")) { /* for profiling: the model alone */
        struct ev *evs = make_events(n, 0);
        struct sb_wh_model m;
        sb_wh_model_init(&m, NULL);
        char now[32];
        sb_wh_now(now);
        struct timespec a, b;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
        size_t fields = 0;
        for (unsigned i = 0; i < n; i++) {
            if (sb_wh_model_event(&m, (const uint8_t *)evs[i].data, evs[i].len, now))
                return 1;
            for (size_t r = 0; r < m.nrows; r++)
                fields += m.rows[r].nfields;
        }
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
        double dt = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        fprintf(stderr, "model: %.2f us/event cpu, %.1f fields/event\n", dt / n * 1e6,
                (double)fields / n);
        return 0;
    }
    if (!strcmp(argv[1], "sqlite-only")) { /* for profiling: our loader alone */
        char path[4096], err[256];
        snprintf(path, sizeof(path), "%s/only.db", argv[2]);
        struct ev *evs = make_events(n, 0);
        struct sb_warehouse *w;
        if (sb_warehouse_sqlite_open(&w, path, NULL, err, sizeof(err)))
            return 1;
        double r = load_all(w, evs, n, batch_size);
        sb_warehouse_close(w);
        emit("sqlite_load_only", "events/s", r, NULL, 0, NULL, 0);
        return 0;
    }
    if (!strcmp(argv[1], "pg-only")) { /* for profiling: our PostgreSQL loader alone */
        struct ev *evs = make_events(n, 0);
        struct sb_warehouse *w;
        char err[512];
        struct sb_warehouse_options opt = {0};
        opt.schema = "only";
        if (sb_warehouse_pg_open(&w, argv[2], &opt, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        double r = load_all(w, evs, n, batch_size);
        sb_warehouse_close(w);
        emit("pg_load_only", "events/s", r, NULL, 0, NULL, 0);
        return r < 0;
    }
    if (!strcmp(argv[1], "pg"))
        return bench_pg(argv[2], n);
    fprintf(stderr, "unknown backend %s\n", argv[1]);
    return 2;
}
