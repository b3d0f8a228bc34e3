/* sql_output.c: the sqlite and postgres outputs: each batch loaded into Segment's warehouse
 * schema through src/outputs/warehouse.h in one transaction (idempotent on messageId, so a
 * batch resent after a crash adds no rows). Loads are synchronous on the loop thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp/mp_reader.h"
#include "outputs/output.h"
#include "outputs/warehouse.h"
#include "pipeline/batch.h"

struct sql_out {
    struct sb_warehouse *w;
    struct sb_warehouse_msg *msgs;
    size_t cap;
};

static int sql_open(void **state, const struct sb_output_config *cfg, char *err, size_t errlen,
                    bool pg)
{
    struct sql_out *s = calloc(1, sizeof *s);
    struct sb_warehouse_options o = {0};
    char why[256] = "";
    int rc;

    if (!s)
        return -ENOMEM;
    o.schema = cfg->schema;
    rc = pg ? sb_warehouse_pg_open(&s->w, cfg->dsn, &o, why, sizeof why)
            : sb_warehouse_sqlite_open(&s->w, cfg->path, &o, why, sizeof why);
    if (rc) {
        /* The DSN may hold a password: name the output, not the connection string. */
        snprintf(err, errlen, "output %s: cannot open the %s database: %s", cfg->name,
                 pg ? "postgres" : "sqlite", why[0] ? why : strerror(-rc));
        free(s);
        return rc;
    }
    *state = s;
    return 0;
}

static int sqlite_init(void **state, const struct sb_output_config *cfg, struct sb_loop *loop,
                       char *err, size_t errlen)
{
    return sql_open(state, cfg, err, errlen, false);
}

static int pg_init(void **state, const struct sb_output_config *cfg, struct sb_loop *loop,
                   char *err, size_t errlen)
{
    return sql_open(state, cfg, err, errlen, true);
}

static int sql_deliver(void *state, struct sb_delivery *d)
{
    struct sql_out *s = state;
    struct sb_mp_reader r;
    struct sb_output_result res = {.status = 200};
    size_t n = 0;
    int rc;

    if (d->count > s->cap) {
        struct sb_warehouse_msg *m = realloc(s->msgs, d->count * sizeof *m);
        if (!m)
            return -ENOMEM;
        s->msgs = m;
        s->cap = d->count;
    }
    sb_mp_reader_init(&r, d->envelope + SB_BATCH_HEAD_BYTES,
                      d->len - SB_BATCH_HEAD_BYTES - SB_BATCH_TAIL_BYTES);
    while (n < d->count && sb_mp_reader_left(&r)) {
        const uint8_t *start = r.p;
        if (sb_mp_skip(&r) != 0)
            return -EPROTO;
        s->msgs[n].data = start;
        s->msgs[n].len = (size_t)(r.p - start);
        n++;
    }
    rc = sb_warehouse_load(s->w, s->msgs, n, NULL);
    if (rc) {
        /* Database trouble is transient from here (locks, a lost connection, a full disk):
         * report it as no response so that the batch is retried with backoff. */
        res.status = rc;
        res.detail = sb_warehouse_errmsg(s->w);
        res.detail_len = strlen(res.detail);
    }
    sb_delivery_done(d, &res);
    return 0;
}

static void sql_destroy(void *state)
{
    struct sql_out *s = state;

    if (!s)
        return;
    sb_warehouse_close(s->w);
    free(s->msgs);
    free(s);
}

const struct sb_output_plugin sb_output_sqlite = {"sqlite", sqlite_init, sql_deliver, sql_destroy,
                                                  NULL};
const struct sb_output_plugin sb_output_postgres = {"postgres", pg_init, sql_deliver, sql_destroy,
                                                    NULL};
