/* warehouse_pg.c: the PostgreSQL warehouse loader: the same model as SQLite, loaded per batch
 * with COPY into per-session staging tables, then INSERT ... ON CONFLICT (idempotent on id;
 * users upserted), schema evolution by ALTER TABLE ADD COLUMN, reconnection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/buf.h"
#include "outputs/warehouse.h"
#include "outputs/warehouse_model.h"

#define NULL_LEN UINT32_MAX
/* Vacuum the staging tables after this many committed loads. */
#define PG_VACUUM_EVERY 16

struct pg_col {
    char name[SB_WH_NAME_MAX + 1];
    enum sb_wh_type type;
};

/* One target table: its columns (in table order) and this batch's rows. */
struct pg_table {
    char name[SB_WH_NAME_MAX + 1];
    struct sb_wh_map cols; /* name -> (void *)(uintptr_t)(index + 1) */
    struct pg_col *colv;
    size_t ncols, capcols;
    bool upsert;
    /* a column has a type other than the one this loader would give it (made by someone
     * else): binary COPY needs the exact type, so rows go through the staging table's casts */
    bool foreign_types;
    /* the session's staging table: "_sb_stage_<stage>", with stage_ncols columns */
    unsigned stage;
    size_t stage_ncols;
    size_t rounds; /* users: upsert rounds this batch needs */
    /* this batch's rows, encoded: u32 nfields, then per field u16 column index, u32 length
     * (NULL_LEN for NULL) and the value in COPY's binary format (network byte order) */
    struct sb_buf rows;
    size_t nrows;
    bool touched;
};

struct pg_wh {
    struct sb_warehouse base;
    PGconn *conn;
    char *conninfo;
    char *qschema; /* the schema as a quoted identifier */
    int connect_timeout_s;
    struct sb_wh_map tables; /* name -> struct pg_table* */
    struct pg_table **touched;
    size_t ntouched, captouched;
    unsigned next_stage;
    unsigned long loads;
    /* the last batch held ids already loaded: batches sent again come in runs (a spool replayed
     * after a crash), so the next one goes the staging way at once */
    bool expect_duplicates;
    struct sb_buf sql, line, dest;
    const char **vals; /* per column of the table being flushed */
    uint32_t *lens;
    size_t capvals;
};

/* "schema"."table" */
static int put_qualified(struct pg_wh *w, struct sb_buf *b, const char *table)
{
    int rc = sb_buf_append_str(b, w->qschema);
    rc = rc ? rc : sb_buf_append(b, ".", 1);
    return rc ? rc : sb_wh_put_ident(b, table);
}

static const char *pg_type_name(enum sb_wh_type t)
{
    switch (t) {
    case SB_WH_INT:
        return "bigint";
    case SB_WH_REAL:
        return "double precision";
    case SB_WH_BOOL:
        return "boolean";
    case SB_WH_TS:
        return "timestamptz";
    default:
        return "text";
    }
}

/* The type as format_type() spells it, for the types this loader makes. */
static const char *pg_format_name(enum sb_wh_type t)
{
    return t == SB_WH_TS ? "timestamp with time zone" : pg_type_name(t);
}

static enum sb_wh_type pg_type_of(const char *t)
{
    if (!strcmp(t, "bigint") || !strcmp(t, "integer") || !strcmp(t, "smallint"))
        return SB_WH_INT;
    if (!strcmp(t, "double precision") || !strcmp(t, "real") || !strncmp(t, "numeric", 7))
        return SB_WH_REAL;
    if (!strcmp(t, "boolean"))
        return SB_WH_BOOL;
    if (!strncmp(t, "timestamp", 9))
        return SB_WH_TS;
    return SB_WH_TEXT;
}

static bool conn_lost(struct pg_wh *w)
{
    return !w->conn || PQstatus(w->conn) != CONNECTION_OK;
}

/* Error from a failed result (or the connection); res may be NULL. */
static int pg_fail(struct pg_wh *w, PGresult *res, const char *what)
{
    const char *msg = res ? PQresultErrorMessage(res) : "";
    if (!msg || !*msg)
        msg = w->conn ? PQerrorMessage(w->conn) : "not connected";
    snprintf(w->base.errmsg, sizeof(w->base.errmsg), "postgresql: %s: %s", what, msg);
    size_t n = strlen(w->base.errmsg);
    while (n && (w->base.errmsg[n - 1] == '\n' || w->base.errmsg[n - 1] == ' '))
        w->base.errmsg[--n] = 0;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (conn_lost(w))
        return -ENOTCONN;
    if (state) {
        if (!strncmp(state, "28", 2))
            return -EACCES;
        if (!strcmp(state, "53100"))
            return -ENOSPC;
        if (!strcmp(state, "53200"))
            return -ENOMEM;
        if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03"))
            return -EBUSY;
        if (!strncmp(state, "08", 2))
            return -ENOTCONN;
    }
    return -EIO;
}

/* Run one statement that returns no rows. */
static int pg_exec(struct pg_wh *w, const char *sql, const char *what, long *tuples)
{
    PGresult *res = PQexec(w->conn, sql);
    ExecStatusType s = PQresultStatus(res);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        int rc = pg_fail(w, res, what);
        PQclear(res);
        return rc;
    }
    if (tuples)
        *tuples = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

static void table_free(void *p)
{
    struct pg_table *t = p;
    sb_wh_map_clear(&t->cols, NULL);
    free(t->colv);
    sb_buf_free(&t->rows);
    free(t);
}

/* After a failed transaction or a new session, what we knew of the schema may be wrong. */
static void forget_schema(struct pg_wh *w)
{
    sb_wh_map_clear(&w->tables, table_free);
    w->ntouched = 0;
}

static void noop_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* "relation already exists, skipping" and the like are expected */
}

static int pg_connect(struct pg_wh *w)
{
    if (w->conn)
        PQfinish(w->conn);
    forget_schema(w);
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", w->connect_timeout_s);
    const char *keys[] = {"dbname", "connect_timeout", "client_encoding", "application_name", NULL};
    const char *vals[] = {w->conninfo, timeout, "UTF8", "segbusd-warehouse", NULL};
    w->conn = PQconnectdbParams(keys, vals, 1);
    if (!w->conn)
        return -ENOMEM;
    if (PQstatus(w->conn) != CONNECTION_OK) {
        snprintf(w->base.errmsg, sizeof(w->base.errmsg), "postgresql: connecting: %s",
                 PQerrorMessage(w->conn));
        size_t n = strlen(w->base.errmsg);
        while (n && w->base.errmsg[n - 1] == '\n')
            w->base.errmsg[--n] = 0;
        bool auth = strstr(w->base.errmsg, "authentication") || strstr(w->base.errmsg, "password");
        PQfinish(w->conn);
        w->conn = NULL;
        return auth ? -EACCES : -ECONNREFUSED;
    }
    PQsetNoticeProcessor(w->conn, noop_notice, NULL);
    sb_buf_clear(&w->sql);
    int rc = sb_buf_append_str(&w->sql, "CREATE SCHEMA IF NOT EXISTS ");
    rc = rc ? rc : sb_buf_append_str(&w->sql, w->qschema);
    rc = rc ? rc : sb_buf_append(&w->sql, "", 1);
    if (rc)
        return rc;
    return pg_exec(w, (const char *)w->sql.data, "creating the schema", NULL);
}

static int add_col(struct pg_table *t, const char *name, enum sb_wh_type type)
{
    if (t->ncols == t->capcols) {
        size_t ncap = t->capcols ? t->capcols * 2 : 32;
        struct pg_col *nc = realloc(t->colv, ncap * sizeof(*nc));
        if (!nc)
            return -ENOMEM;
        t->colv = nc;
        t->capcols = ncap;
    }
    snprintf(t->colv[t->ncols].name, sizeof(t->colv[t->ncols].name), "%s", name);
    t->colv[t->ncols].type = type;
    t->ncols++;
    return sb_wh_map_put(&t->cols, name, strlen(name), (void *)(uintptr_t)t->ncols);
}

/* Record a column of a table being created (sb_wh_put_new_table): 1 if it is there already. */
static int pg_add_new_col(void *table, const char *name, enum sb_wh_type type)
{
    struct pg_table *t = table;
    return sb_wh_map_get(&t->cols, name, strlen(name)) ? 1 : add_col(t, name, type);
}

/* The table's catalogue, read from the server the first time it is used in a session. */
static int table_get(struct pg_wh *w, const char *name, struct pg_table **out)
{
    struct pg_table *t = sb_wh_map_get(&w->tables, name, strlen(name));
    if (t) {
        *out = t;
        return 0;
    }
    t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    snprintf(t->name, sizeof(t->name), "%s", name);
    sb_buf_clear(&w->sql);
    int rc = put_qualified(w, &w->sql, name);
    rc = rc ? rc : sb_buf_append(&w->sql, "", 1);
    if (rc) {
        table_free(t);
        return rc;
    }
    const char *params[1] = {(const char *)w->sql.data};
    PGresult *res = PQexecParams(w->conn,
                                 "SELECT attname, format_type(atttypid, atttypmod) FROM "
                                 "pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 "
                                 "AND NOT attisdropped ORDER BY attnum",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pg_fail(w, res, "reading a table's columns");
        PQclear(res);
        table_free(t);
        return rc;
    }
    for (int i = 0; i < PQntuples(res) && !rc; i++) {
        const char *type = PQgetvalue(res, i, 1);
        enum sb_wh_type ty = pg_type_of(type);
        t->foreign_types |= strcmp(type, pg_format_name(ty)) != 0;
        rc = add_col(t, PQgetvalue(res, i, 0), ty);
    }
    PQclear(res);
    if (rc || (rc = sb_wh_map_put(&w->tables, name, strlen(name), t))) {
        table_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* Create the table or add the row's missing columns; writes each field's column index (or -1
 * past the column cap) to idx. */
static int ensure_columns(struct pg_wh *w, const struct sb_wh_row *row, struct pg_table *t,
                          int *idx)
{
    const struct sb_wh_field *f = row->fields;
    int rc = 0;
    if (t->ncols == 0) {
        sb_buf_clear(&w->sql);
        rc = sb_buf_append_str(&w->sql, "CREATE TABLE IF NOT EXISTS ");
        rc = rc ? rc : put_qualified(w, &w->sql, row->table);
        rc = rc ? rc
                : sb_wh_put_new_table(&w->sql, row, w->base.model.opt.max_columns, pg_type_name,
                                      pg_add_new_col, t);
        rc = rc ? rc : sb_buf_append(&w->sql, "", 1);
        if (rc || (rc = pg_exec(w, (const char *)w->sql.data, "creating a table", NULL)))
            return rc;
        w->base.st->tables_created++;
        w->base.st->columns_added += t->ncols;
    }
    for (size_t i = 0; i < row->nfields; i++) {
        uintptr_t have = (uintptr_t)sb_wh_map_get(&t->cols, f[i].name, f[i].name_len);
        if (!have) {
            if (t->ncols >= w->base.model.opt.max_columns) {
                idx[i] = -1;
                continue;
            }
            sb_buf_clear(&w->sql);
            rc = sb_buf_append_str(&w->sql, "ALTER TABLE ");
            rc = rc ? rc : put_qualified(w, &w->sql, row->table);
            rc = rc ? rc : sb_buf_append_str(&w->sql, " ADD COLUMN IF NOT EXISTS ");
            rc = rc ? rc : sb_wh_put_column(&w->sql, f[i].name, pg_type_name(f[i].v.type));
            rc = rc ? rc : sb_buf_append(&w->sql, "", 1);
            if (rc || (rc = pg_exec(w, (const char *)w->sql.data, "adding a column", NULL)))
                return rc;
            if ((rc = add_col(t, f[i].name, f[i].v.type)))
                return rc;
            w->base.st->columns_added++;
            have = t->ncols;
        }
        idx[i] = (int)have - 1;
    }
    return 0;
}

static int stage_row(struct sb_warehouse *base, const struct sb_wh_row *row)
{
    struct pg_wh *w = (struct pg_wh *)base;
    struct pg_table *t = NULL;
    int rc = table_get(w, row->table, &t);
    if (rc || !t)
        return rc ? rc : -EIO;
    int idx[SB_WH_FIELDS_MAX];
    if ((rc = ensure_columns(w, row, t, idx)))
        return rc;
    t->upsert = row->upsert;
    if (!t->touched) {
        if (w->ntouched == w->captouched) {
            size_t ncap = w->captouched ? w->captouched * 2 : 16;
            void *p = realloc(w->touched, ncap * sizeof(*w->touched));
            if (!p)
                return -ENOMEM;
            w->touched = p;
            w->captouched = ncap;
        }
        w->touched[w->ntouched++] = t;
        t->touched = true;
    }
    struct sb_buf *b = &t->rows;
    uint32_t nf = 0;
    size_t count_at = b->len;
    if (sb_buf_append(b, &nf, 4))
        return -ENOMEM;
    for (size_t i = 0; i < row->nfields; i++) {
        if (idx[i] < 0) {
            w->base.st->fields_dropped++;
            continue;
        }
        struct sb_wh_value v = row->fields[i].v;
        char cbuf[40];
        if (!sb_wh_coerce(&v, t->colv[idx[i]].type, cbuf)) {
            w->base.st->fields_dropped++;
            continue; /* NULL: simply absent from the staged row */
        }
        /* binary COPY: no text for the server to parse (timestamps above all) */
        uint8_t bin[8];
        const void *s = bin;
        size_t n = 8;
        uint64_t u = 0;
        switch (v.type) {
        case SB_WH_INT:
            u = (uint64_t)v.i;
            break;
        case SB_WH_REAL:
            memcpy(&u, &v.d, 8);
            break;
        case SB_WH_TS: /* microseconds since 2000-01-01 UTC */
            u = (uint64_t)((sb_wh_canon_ms(v.s) - INT64_C(946684800000)) * 1000);
            break;
        case SB_WH_BOOL:
            bin[0] = v.i ? 1 : 0;
            n = 1;
            break;
        case SB_WH_NULL:
            continue;
        default:
            s = v.s;
            n = v.n;
        }
        if (n == 8 && s == bin)
            for (int k = 0; k < 8; k++)
                bin[k] = (uint8_t)(u >> (56 - 8 * k));
        uint16_t ci = (uint16_t)idx[i];
        uint32_t len = (uint32_t)n;
        if (sb_buf_reserve(b, 6 + n)) /* one check for the three pieces */
            return -ENOMEM;
        memcpy(b->data + b->len, &ci, 2);
        memcpy(b->data + b->len + 2, &len, 4);
        memcpy(b->data + b->len + 6, s, n);
        b->len += 6 + n;
        nf++;
    }
    memcpy(b->data + count_at, &nf, 4);
    t->nrows++;
    return 0;
}

/* Read one encoded row at *pos into w->vals/lens (indexed by column). */
static void decode_row(struct pg_wh *w, const struct pg_table *t, size_t *pos)
{
    const uint8_t *d = t->rows.data;
    uint32_t nf;
    memcpy(&nf, d + *pos, 4);
    *pos += 4;
    for (size_t c = 0; c < t->ncols; c++)
        w->lens[c] = NULL_LEN;
    for (uint32_t i = 0; i < nf; i++) {
        uint16_t ci;
        uint32_t len;
        memcpy(&ci, d + *pos, 2);
        memcpy(&len, d + *pos + 2, 4);
        *pos += 6;
        w->vals[ci] = (const char *)d + *pos;
        w->lens[ci] = len;
        *pos += len;
    }
}

static int put_be(struct sb_buf *b, uint64_t v, unsigned n)
{
    uint8_t x[8];
    for (unsigned k = 0; k < n; k++)
        x[k] = (uint8_t)(v >> (8 * (n - 1 - k)));
    return sb_buf_append(b, x, n);
}

/* One tuple of binary COPY: field count, then each field's length (-1: NULL) and bytes. */
static int copy_line(struct pg_wh *w, const struct pg_table *t, const char **vals,
                     const uint32_t *lens, long round)
{
    struct sb_buf *l = &w->line;
    if (put_be(l, t->ncols + (round >= 0), 2))
        return -ENOMEM;
    for (size_t c = 0; c < t->ncols; c++) {
        uint32_t n = lens[c] == NULL_LEN ? 0 : lens[c];
        if (sb_buf_reserve(l, 4 + (size_t)n))
            return -ENOMEM;
        uint8_t *o = l->data + l->len;
        uint32_t be = lens[c]; /* NULL_LEN is -1, COPY's NULL */
        o[0] = (uint8_t)(be >> 24);
        o[1] = (uint8_t)(be >> 16);
        o[2] = (uint8_t)(be >> 8);
        o[3] = (uint8_t)be;
        if (n)
            memcpy(o + 4, vals[c], n);
        l->len += 4 + (size_t)n;
    }
    if (round >= 0 && (put_be(l, 8, 4) || put_be(l, (uint64_t)round, 8)))
        return -ENOMEM;
    return 0;
}

static int send_copy(struct pg_wh *w)
{
    if (w->line.len && PQputCopyData(w->conn, (const char *)w->line.data, (int)w->line.len) != 1)
        return pg_fail(w, NULL, "sending COPY data");
    sb_buf_clear(&w->line);
    return 0;
}

/* COPY the batch's rows of t into dest (an SQL table name, already quoted). Straight into the
 * target table this fails with -EEXIST on the first id already there (unique_violation); into
 * the staging table any rows go, and users rows carry their upsert round. */
static int copy_rows(struct pg_wh *w, struct pg_table *t, const char *dest, bool staging)
{
    int rc;
    if (t->ncols > w->capvals) {
        size_t ncap = t->ncols * 2;
        void *a = realloc(w->vals, ncap * sizeof(*w->vals));
        if (!a)
            return -ENOMEM;
        w->vals = a;
        void *b = realloc(w->lens, ncap * sizeof(*w->lens));
        if (!b)
            return -ENOMEM;
        w->lens = b;
        w->capvals = ncap;
    }
    bool rounds = staging && t->upsert;
    sb_buf_clear(&w->sql);
    rc = sb_buf_append_str(&w->sql, "COPY ");
    rc = rc ? rc : sb_buf_append_str(&w->sql, dest);
    rc = rc ? rc : sb_buf_append_str(&w->sql, " (");
    for (size_t c = 0; !rc && c < t->ncols; c++) {
        rc = c ? sb_buf_append(&w->sql, ",", 1) : 0;
        rc = rc ? rc : sb_wh_put_ident(&w->sql, t->colv[c].name);
    }
    if (rounds)
        rc = rc ? rc : sb_buf_append_str(&w->sql, ",\"_sb_round\"");
    rc = rc ? rc : sb_buf_append(&w->sql, ") FROM STDIN (FORMAT binary)", 29);
    if (rc)
        return rc;
    PGresult *res = PQexec(w->conn, (const char *)w->sql.data);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        rc = pg_fail(w, res, "starting COPY");
        PQclear(res);
        return rc;
    }
    PQclear(res);
    sb_buf_clear(&w->line);
    /* binary COPY header: signature, flags, header extension length */
    if (sb_buf_append(&w->line, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19))
        rc = -ENOMEM;
    size_t pos = 0;
    if (!rounds) {
        for (size_t r = 0; r < t->nrows && !rc; r++) {
            decode_row(w, t, &pos);
            rc = copy_line(w, t, w->vals, w->lens, -1);
            if (!rc && w->line.len > (1u << 20))
                rc = send_copy(w);
        }
    } else {
        /* users: a user's k-th identify of the batch goes to round k; the rounds are upserted
         * one after the other, so each user's identifies apply in batch order, exactly as
         * the sequential upserts of the SQLite loader (and no INSERT touches a row twice) */
        size_t id_c = (uintptr_t)sb_wh_map_get(&t->cols, "id", 2) - 1;
        struct sb_wh_map seen = {0};
        t->rounds = 0;
        for (size_t r = 0; r < t->nrows && !rc; r++) {
            decode_row(w, t, &pos);
            if (w->lens[id_c] == NULL_LEN)
                continue;
            uintptr_t k = (uintptr_t)sb_wh_map_get(&seen, w->vals[id_c], w->lens[id_c]);
            if (sb_wh_map_put(&seen, w->vals[id_c], w->lens[id_c], (void *)(k + 1))) {
                rc = -ENOMEM;
                break;
            }
            if (k + 1 > t->rounds)
                t->rounds = k + 1;
            rc = copy_line(w, t, w->vals, w->lens, (long)k);
            if (!rc && w->line.len > (1u << 20))
                rc = send_copy(w);
        }
        sb_wh_map_clear(&seen, NULL);
    }
    if (!rc && put_be(&w->line, UINT16_MAX, 2)) /* the trailer: -1 */
        rc = -ENOMEM;
    if (!rc)
        rc = send_copy(w);
    if (PQputCopyEnd(w->conn, rc ? "segbus: staging failed" : NULL) != 1 && !rc)
        rc = pg_fail(w, NULL, "ending COPY");
    res = PQgetResult(w->conn);
    if (!rc && PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        rc = pg_fail(w, res, staging ? "COPY into the staging table" : "COPY into a table");
        if (!staging && state && !strcmp(state, "23505"))
            rc = -EEXIST;
    }
    PQclear(res);
    while ((res = PQgetResult(w->conn)))
        PQclear(res);
    return rc;
}

/* Make sure the session's staging table for t exists with all of t's columns. */
static int stage_ensure(struct pg_wh *w, struct pg_table *t)
{
    char stage[32];
    int rc = 0;
    if (!t->stage) {
        t->stage = ++w->next_stage;
        snprintf(stage, sizeof(stage), "_sb_stage_%u", t->stage);
        sb_buf_clear(&w->sql);
        /* a temporary table without constraints (so duplicates can be staged), for the whole
         * session. Not ON COMMIT DELETE ROWS: that truncates every such table at every commit,
         * a new file each, which cost ~3 ms per table here; rows are deleted after use and
         * the tables vacuumed now and then instead (see pg_load). */
        rc = sb_buf_append_str(&w->sql, "CREATE TEMP TABLE ");
        rc = rc ? rc : sb_wh_put_ident(&w->sql, stage);
        rc = rc ? rc : sb_buf_append_str(&w->sql, " (");
        for (size_t c = 0; !rc && c < t->ncols; c++) {
            rc = c ? sb_buf_append(&w->sql, ",", 1) : 0;
            rc =
                rc ? rc : sb_wh_put_column(&w->sql, t->colv[c].name, pg_type_name(t->colv[c].type));
        }
        if (t->upsert) /* the upsert round of each staged users row (see copy_rows) */
            rc = rc ? rc : sb_buf_append_str(&w->sql, ",\"_sb_round\" bigint");
        rc = rc ? rc : sb_buf_append_str(&w->sql, ")");
        rc = rc ? rc : sb_buf_append(&w->sql, "", 1);
        if (rc || (rc = pg_exec(w, (const char *)w->sql.data, "creating a staging table", NULL)))
            return rc;
        t->stage_ncols = t->ncols;
        return 0;
    }
    snprintf(stage, sizeof(stage), "_sb_stage_%u", t->stage);
    for (size_t c = t->stage_ncols; c < t->ncols; c++) {
        sb_buf_clear(&w->sql);
        rc = sb_buf_append_str(&w->sql, "ALTER TABLE ");
        rc = rc ? rc : sb_wh_put_ident(&w->sql, stage);
        rc = rc ? rc : sb_buf_append_str(&w->sql, " ADD COLUMN ");
        rc = rc ? rc : sb_wh_put_column(&w->sql, t->colv[c].name, pg_type_name(t->colv[c].type));
        rc = rc ? rc : sb_buf_append(&w->sql, "", 1);
        if (rc || (rc = pg_exec(w, (const char *)w->sql.data, "widening a staging table", NULL)))
            return rc;
    }
    t->stage_ncols = t->ncols;
    return 0;
}

/* Empty a staging table once its rows are in the target (in the batch's transaction). */
static int stage_clear(struct pg_wh *w, const char *stage)
{
    char sql[64];
    snprintf(sql, sizeof(sql), "DELETE FROM %s", stage);
    return pg_exec(w, sql, "emptying a staging table", NULL);
}

static int flush_table(struct pg_wh *w, struct pg_table *t)
{
    int rc = stage_ensure(w, t);
    if (rc)
        return rc;
    char stage[32];
    snprintf(stage, sizeof(stage), "\"_sb_stage_%u\"", t->stage);
    if ((rc = copy_rows(w, t, stage, true)))
        return rc;
    struct sb_buf *q = &w->sql;
    sb_buf_clear(q);
    rc = sb_buf_append_str(q, "INSERT INTO ");
    rc = rc ? rc : put_qualified(w, q, t->name);
    rc = rc ? rc : sb_buf_append_str(q, " AS t (");
    for (size_t c = 0; !rc && c < t->ncols; c++) {
        rc = c ? sb_buf_append(q, ",", 1) : 0;
        rc = rc ? rc : sb_wh_put_ident(q, t->colv[c].name);
    }
    rc = rc ? rc : sb_buf_append_str(q, ") SELECT ");
    for (size_t c = 0; !rc && c < t->ncols; c++) {
        rc = c ? sb_buf_append(q, ",", 1) : 0;
        rc = rc ? rc : sb_wh_put_ident(q, t->colv[c].name);
    }
    rc = rc ? rc : sb_buf_append_str(q, " FROM ");
    rc = rc ? rc : sb_buf_append_str(q, stage);
    if (t->upsert)
        rc = rc ? rc : sb_buf_append_str(q, " WHERE \"_sb_round\" = $1");
    if (!t->upsert) {
        rc = rc ? rc : sb_buf_append_str(q, " ON CONFLICT (\"id\") DO NOTHING");
    } else {
        rc = rc ? rc : sb_wh_put_users_update(q, "t");
        for (size_t c = 0; !rc && c < t->ncols; c++)
            rc = sb_wh_put_users_column(q, "t", t->colv[c].name);
    }
    rc = rc ? rc : sb_buf_append(q, "", 1);
    if (rc)
        return rc;
    long inserted = 0;
    if (!t->upsert) {
        rc = pg_exec(w, (const char *)q->data, "inserting from the staging table", &inserted);
        if (rc)
            return rc;
        w->base.st->rows_inserted += (size_t)inserted;
        w->base.st->rows_duplicate += t->nrows - (size_t)inserted;
        return stage_clear(w, stage);
    }
    for (size_t r = 0; r < t->rounds; r++) {
        char round[24];
        snprintf(round, sizeof(round), "%zu", r);
        const char *params[1] = {round};
        PGresult *res =
            PQexecParams(w->conn, (const char *)q->data, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = pg_fail(w, res, "upserting users");
            PQclear(res);
            return rc;
        }
        w->base.st->rows_inserted += strtoul(PQcmdTuples(res), NULL, 10);
        PQclear(res);
    }
    return stage_clear(w, stage);
}

/* Can t's rows be COPied straight into it? Not users (an upsert), not a table whose column
 * types are not ours. */
static bool direct_ok(const struct pg_table *t)
{
    return !t->upsert && !t->foreign_types;
}

/* Load every touched table. The fast way, COPY straight into each table, holds while no id of
 * the batch is loaded already, which is the rule: a batch commits whole, so ids repeat only
 * when a batch is sent again, and then nearly all of them do. It runs under a savepoint; the
 * first id already there (unique_violation) rolls it back, and every table then goes the
 * general way: COPY into its staging table, INSERT ... ON CONFLICT. The savepoint is taken
 * after this batch's DDL, so rolling back to it never undoes a column we believe exists. */
static int flush_all(struct pg_wh *w)
{
    int rc = 0;
    size_t direct = 0, inserted = 0;
    for (size_t i = 0; i < w->ntouched; i++)
        direct += direct_ok(w->touched[i]);
    bool fast = direct > 0 && !w->expect_duplicates;
    if (fast) {
        char keep[sizeof(w->base.errmsg)];
        memcpy(keep, w->base.errmsg, sizeof(keep));
        rc = pg_exec(w, "SAVEPOINT sb_direct", "taking a savepoint", NULL);
        for (size_t i = 0; i < w->ntouched && !rc; i++) {
            struct pg_table *t = w->touched[i];
            if (!direct_ok(t))
                continue;
            sb_buf_clear(&w->dest);
            rc = put_qualified(w, &w->dest, t->name);
            rc = rc ? rc : sb_buf_append(&w->dest, "", 1);
            rc = rc ? rc : copy_rows(w, t, (const char *)w->dest.data, false);
            inserted += t->nrows;
        }
        if (rc == -EEXIST) {
            fast = false;
            rc = pg_exec(w, "ROLLBACK TO SAVEPOINT sb_direct", "rolling back to a savepoint", NULL);
            if (!rc)
                memcpy(w->base.errmsg, keep, sizeof(keep));
        } else if (!rc) {
            w->base.st->rows_inserted += inserted;
        }
    }
    for (size_t i = 0; i < w->ntouched && !rc; i++)
        if (!fast || !direct_ok(w->touched[i]))
            rc = flush_table(w, w->touched[i]);
    if (!rc)
        w->expect_duplicates = w->base.st->rows_duplicate > 0;
    return rc;
}

static void batch_reset(struct pg_wh *w)
{
    for (size_t i = 0; i < w->ntouched; i++) {
        sb_buf_clear(&w->touched[i]->rows);
        w->touched[i]->nrows = 0;
        w->touched[i]->touched = false;
    }
    w->ntouched = 0;
}

static void add_stage_name(void *value, void *arg)
{
    struct pg_table *t = value;
    struct pg_wh *w = arg;
    char stage[40];
    if (!t->stage)
        return;
    snprintf(stage, sizeof(stage), "%s\"_sb_stage_%u\"", w->sql.len ? "," : "", t->stage);
    if (sb_buf_append_str(&w->sql, stage))
        sb_buf_clear(&w->sql); /* out of memory: vacuum another time */
}

static int pg_begin(struct sb_warehouse *base)
{
    struct pg_wh *w = (struct pg_wh *)base;
    int rc = 0;
    /* reconnect if the last session broke; a server that restarted since shows up on the
     * first statement, so BEGIN gets one retry on a fresh connection */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (conn_lost(w) && (rc = pg_connect(w)))
            return rc == -ECONNREFUSED ? -ENOTCONN : rc;
        rc = pg_exec(w, "BEGIN", "starting the batch's transaction", NULL);
        if (rc != -ENOTCONN)
            break;
        PQfinish(w->conn);
        w->conn = NULL;
    }
    return rc;
}

/* Reclaim the staging tables' deleted rows so that they do not grow without end; a failure
 * here costs nothing but space, the batch is committed. */
static void vacuum_stages(struct pg_wh *w)
{
    sb_buf_clear(&w->sql);
    sb_wh_map_each(&w->tables, add_stage_name, w);
    if (!w->sql.len || sb_buf_append(&w->sql, "", 1))
        return;
    /* only staging tables of committed work are listed: all of them exist */
    struct sb_buf list = w->sql;
    w->sql = (struct sb_buf)SB_BUF_INIT;
    char *sql = malloc(list.len + 8);
    if (sql) {
        memcpy(sql, "VACUUM ", 7);
        memcpy(sql + 7, list.data, list.len);
        PQclear(PQexec(w->conn, sql));
        free(sql);
    }
    sb_buf_free(&w->sql);
    w->sql = list;
}

static int pg_commit(struct sb_warehouse *base)
{
    struct pg_wh *w = (struct pg_wh *)base;
    int rc = flush_all(w);
    if (!rc)
        rc = pg_exec(w, "COMMIT", "committing the batch", NULL);
    if (rc)
        return rc;
    batch_reset(w);
    if (++w->loads % PG_VACUUM_EVERY == 0)
        vacuum_stages(w);
    return 0;
}

static int pg_rollback(struct sb_warehouse *base, int rc)
{
    struct pg_wh *w = (struct pg_wh *)base;
    batch_reset(w);
    if (!conn_lost(w))
        PQclear(PQexec(w->conn, "ROLLBACK"));
    /* DDL and staging tables made in the failed transaction are gone with it */
    forget_schema(w);
    if (conn_lost(w)) {
        PQfinish(w->conn);
        w->conn = NULL;
        rc = -ENOTCONN;
    }
    return rc;
}

static void pg_close(struct sb_warehouse *base)
{
    struct pg_wh *w = (struct pg_wh *)base;
    forget_schema(w);
    if (w->conn)
        PQfinish(w->conn);
    sb_buf_free(&w->sql);
    sb_buf_free(&w->line);
    sb_buf_free(&w->dest);
    free(w->touched);
    free(w->vals);
    free(w->lens);
    free(w->conninfo);
    free(w->qschema);
}

static const struct sb_wh_ops pg_ops = {pg_begin, stage_row, pg_commit, pg_rollback, pg_close};

int sb_warehouse_pg_open(struct sb_warehouse **out, const char *conninfo,
                         const struct sb_warehouse_options *opt, char *errmsg, size_t errmsg_len)
{
    int rc = sb_wh_open_args(out, conninfo, "postgresql: no connection string", errmsg, errmsg_len);
    if (rc)
        return rc;
    struct pg_wh *w = sb_wh_handle_new(sizeof(*w), &pg_ops, opt);
    if (!w)
        return -ENOMEM;
    if (w->base.model.opt.max_columns > 1500)
        w->base.model.opt.max_columns = 1500; /* PostgreSQL's limit is 1600 per table */
    w->connect_timeout_s = opt && opt->connect_timeout_s > 0 ? opt->connect_timeout_s : 10;
    const char *schema = opt && opt->schema && *opt->schema ? opt->schema : "public";
    struct sb_buf q = SB_BUF_INIT;
    w->conninfo = strdup(conninfo);
    if (!w->conninfo || sb_wh_put_ident(&q, schema) || sb_buf_append(&q, "", 1)) {
        sb_buf_free(&q);
        sb_warehouse_close(&w->base);
        return -ENOMEM;
    }
    w->qschema = (char *)q.data;
    if ((rc = pg_connect(w)))
        return sb_wh_open_failed(&w->base, rc, errmsg, errmsg_len);
    *out = &w->base;
    return 0;
}
