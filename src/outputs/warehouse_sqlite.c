/* warehouse_sqlite.c: the SQLite warehouse loader: Segment's warehouse schema in one database
 * file, one transaction per batch, schema evolution, idempotent on id, users upserted. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/buf.h"
#include "outputs/warehouse.h"
#include "outputs/warehouse_model.h"

/* What we know of one table: its columns and their types. */
struct sq_table {
    struct sb_wh_map cols; /* column name -> (void *)(uintptr_t)enum sb_wh_type */
    size_t ncols;
};

struct sq_wh {
    struct sb_warehouse base;
    sqlite3 *db;
    struct sb_wh_model model;
    struct sb_wh_map tables; /* name -> struct sq_table* (loaded lazily) */
    struct sb_wh_map stmts;  /* table + column list -> sqlite3_stmt* */
    struct sb_buf sql, sig;
    char (*cbuf)[40]; /* per-field scratch for coerced text */
    uint8_t *keep;    /* per-field: its column's enum sb_wh_type, or DROPPED (column cap) */
    size_t fcap;
    struct sb_warehouse_stats *st;
};

/* Statements cached at most; past it they are all finalized (column sets that churn). */
#define SQ_STMT_CACHE 512
#define DROPPED 0xff

/* A cached insert for one table and one list of fields, with each field's column type, so a
 * row whose shape was seen before needs no catalogue lookups at all. */
struct sq_stmt {
    sqlite3_stmt *st;
    size_t n;
    uint8_t types[];
};

static int sq_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_CANTOPEN:
        return -EACCES;
    default:
        return -EIO;
    }
}

static int sq_fail(struct sq_wh *w, int rc, const char *what)
{
    snprintf(w->base.errmsg, sizeof(w->base.errmsg), "sqlite: %s: %s", what,
             w->db ? sqlite3_errmsg(w->db) : sqlite3_errstr(rc));
    return sq_errno(rc) ? sq_errno(rc) : -EIO;
}

static void table_free(void *p)
{
    struct sq_table *t = p;
    sb_wh_map_clear(&t->cols, NULL);
    free(t);
}

static void stmt_free(void *p)
{
    struct sq_stmt *e = p;
    sqlite3_finalize(e->st);
    free(e);
}

/* Append "name" as a quoted identifier. Names are [a-z0-9_] by construction (sb_wh_ident);
 * quoting still doubles any '"' so that no name can ever end the identifier early. */
static int put_ident(struct sb_buf *b, const char *name)
{
    if (sb_buf_append(b, "\"", 1))
        return -ENOMEM;
    for (const char *p = name; *p; p++)
        if (sb_buf_append(b, p, 1) || (*p == '"' && sb_buf_append(b, "\"", 1)))
            return -ENOMEM;
    return sb_buf_append(b, "\"", 1);
}

static const char *sq_type_name(enum sb_wh_type t)
{
    switch (t) {
    case SB_WH_INT:
        return "INTEGER";
    case SB_WH_REAL:
        return "REAL";
    case SB_WH_BOOL:
        return "BOOLEAN";
    case SB_WH_TS:
        return "TIMESTAMP";
    default:
        return "TEXT";
    }
}

static enum sb_wh_type sq_type_of(const char *decl)
{
    if (!decl)
        return SB_WH_TEXT;
    if (!sqlite3_stricmp(decl, "INTEGER"))
        return SB_WH_INT;
    if (!sqlite3_stricmp(decl, "REAL"))
        return SB_WH_REAL;
    if (!sqlite3_stricmp(decl, "BOOLEAN"))
        return SB_WH_BOOL;
    if (!sqlite3_stricmp(decl, "TIMESTAMP"))
        return SB_WH_TS;
    return SB_WH_TEXT;
}

static int sq_exec(struct sq_wh *w, const char *sql, const char *what)
{
    int rc = sqlite3_exec(w->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_fail(w, rc, what);
}

/* The table's catalogue, read from the database the first time it is used. */
static int table_get(struct sq_wh *w, const char *name, struct sq_table **out)
{
    struct sq_table *t = sb_wh_map_get(&w->tables, name, strlen(name));
    if (t) {
        *out = t;
        return 0;
    }
    t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    sqlite3_stmt *st = NULL;
    int rc;
    if ((rc = sqlite3_prepare_v2(w->db, "SELECT name, type FROM pragma_table_info(?)", -1, &st,
                                 NULL))) {
        table_free(t);
        return sq_fail(w, rc, "reading a table's columns");
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *col = (const char *)sqlite3_column_text(st, 0);
        enum sb_wh_type ty = sq_type_of((const char *)sqlite3_column_text(st, 1));
        if (col && sb_wh_map_put(&t->cols, col, strlen(col), (void *)(uintptr_t)ty)) {
            rc = SQLITE_NOMEM;
            break;
        }
        t->ncols++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        table_free(t);
        return sq_fail(w, rc, "reading a table's columns");
    }
    if (sb_wh_map_put(&w->tables, name, strlen(name), t)) {
        table_free(t);
        return -ENOMEM;
    }
    *out = t;
    return 0;
}

/* Make sure every field of the row has its column (creating the table or adding columns) and
 * note each field's column type in w->keep (DROPPED past the column cap). */
static int ensure_columns(struct sq_wh *w, const struct sb_wh_row *row, struct sq_table *t)
{
    struct sb_wh_field *f = row->fields;
    if (t->ncols == 0) {
        /* New table: id is the primary key that makes loads idempotent. */
        sb_buf_clear(&w->sql);
        int rc = sb_buf_append_str(&w->sql, "CREATE TABLE IF NOT EXISTS ");
        rc = rc ? rc : put_ident(&w->sql, row->table);
        rc = rc ? rc : sb_buf_append_str(&w->sql, " (\"id\" TEXT PRIMARY KEY");
        rc = rc ? rc : sb_wh_map_put(&t->cols, "id", 2, (void *)(uintptr_t)SB_WH_TEXT);
        t->ncols = 1;
        /* the table's standard columns first, then this event's other fields */
        size_t total = row->nbase + row->nfields;
        for (size_t j = 1; !rc && j < total; j++) {
            const char *name = j < row->nbase ? row->base[j].name : f[j - row->nbase].name;
            enum sb_wh_type ty = j < row->nbase ? row->base[j].type : f[j - row->nbase].v.type;
            if (sb_wh_map_get(&t->cols, name, strlen(name)) || t->ncols >= w->model.opt.max_columns)
                continue;
            rc = sb_buf_append_str(&w->sql, ", ");
            rc = rc ? rc : put_ident(&w->sql, name);
            rc = rc ? rc : sb_buf_append_str(&w->sql, " ");
            rc = rc ? rc : sb_buf_append_str(&w->sql, sq_type_name(ty));
            rc = rc ? rc : sb_wh_map_put(&t->cols, name, strlen(name), (void *)(uintptr_t)ty);
            t->ncols++;
        }
        rc = rc ? rc : sb_buf_append(&w->sql, ")", 2); /* with the NUL */
        if (rc)
            return rc;
        if ((rc = sq_exec(w, (const char *)w->sql.data, "creating a table")))
            return rc;
        w->st->tables_created++;
        w->st->columns_added += t->ncols;
    }
    for (size_t i = 0; i < row->nfields; i++) {
        void *have = sb_wh_map_get(&t->cols, f[i].name, f[i].name_len);
        w->keep[i] = have ? (uint8_t)(uintptr_t)have : (uint8_t)f[i].v.type;
        if (!have) {
            if (t->ncols >= w->model.opt.max_columns) {
                w->keep[i] = DROPPED;
                continue;
            }
            sb_buf_clear(&w->sql);
            int rc = sb_buf_append_str(&w->sql, "ALTER TABLE ");
            rc = rc ? rc : put_ident(&w->sql, row->table);
            rc = rc ? rc : sb_buf_append_str(&w->sql, " ADD COLUMN ");
            rc = rc ? rc : put_ident(&w->sql, f[i].name);
            rc = rc ? rc : sb_buf_append_str(&w->sql, " ");
            rc = rc ? rc
                    : sb_buf_append(&w->sql, sq_type_name(f[i].v.type),
                                    strlen(sq_type_name(f[i].v.type)) + 1);
            if (rc)
                return rc;
            if ((rc = sq_exec(w, (const char *)w->sql.data, "adding a column")))
                return rc;
            if (sb_wh_map_put(&t->cols, f[i].name, f[i].name_len, (void *)(uintptr_t)f[i].v.type))
                return -ENOMEM;
            t->ncols++;
            w->st->columns_added++;
        }
    }
    return 0;
}

/* The signature of a row's shape: table, insert or upsert, every field name. */
static int row_sig(struct sq_wh *w, const struct sb_wh_row *row)
{
    sb_buf_clear(&w->sig);
    int rc = sb_buf_append_str(&w->sig, row->table);
    rc = rc ? rc : sb_buf_append(&w->sig, row->upsert ? "\001" : "\002", 1);
    for (size_t i = 0; !rc && i < row->nfields; i++)
        rc = sb_buf_append(&w->sig, row->fields[i].name, (size_t)row->fields[i].name_len + 1);
    return rc;
}

/* Prepare the insert for this row's shape (columns already ensured) and cache it. */
static int stmt_make(struct sq_wh *w, const struct sb_wh_row *row, struct sq_stmt **out)
{
    const struct sb_wh_field *f = row->fields;
    int rc;
    sqlite3_stmt *st = NULL;
    if (w->stmts.count >= SQ_STMT_CACHE)
        sb_wh_map_clear(&w->stmts, stmt_free);

    struct sb_buf *q = &w->sql;
    sb_buf_clear(q);
    rc = sb_buf_append_str(q, row->upsert ? "INSERT INTO " : "INSERT OR IGNORE INTO ");
    rc = rc ? rc : put_ident(q, row->table);
    rc = rc ? rc : sb_buf_append_str(q, " (");
    size_t n = 0;
    for (size_t i = 0; !rc && i < row->nfields; i++) {
        if (w->keep[i] == DROPPED)
            continue;
        rc = n++ ? sb_buf_append_str(q, ",") : 0;
        rc = rc ? rc : put_ident(q, f[i].name);
    }
    rc = rc ? rc : sb_buf_append_str(q, ") VALUES (");
    for (size_t i = 0; !rc && i < n; i++)
        rc = sb_buf_append_str(q, i ? ",?" : "?");
    rc = rc ? rc : sb_buf_append_str(q, ")");
    if (!rc && row->upsert) {
        /* users: the newest identify (by received_at) wins each trait it carries; an older one
         * only fills traits still empty, so replaying old batches never regresses a user. */
        rc = sb_buf_append_str(q, " ON CONFLICT(\"id\") DO UPDATE SET \"received_at\"=CASE WHEN "
                                  "\"users\".\"received_at\" IS NULL OR excluded.\"received_at\">"
                                  "\"users\".\"received_at\" THEN excluded.\"received_at\" ELSE "
                                  "\"users\".\"received_at\" END");
        for (size_t i = 0; !rc && i < row->nfields; i++) {
            if (w->keep[i] == DROPPED || !strcmp(f[i].name, "id") ||
                !strcmp(f[i].name, "received_at"))
                continue;
            char col[SB_WH_NAME_MAX + 8];
            snprintf(col, sizeof(col), "\"%s\"", f[i].name);
            char piece[6 * sizeof(col) + 200];
            snprintf(piece, sizeof(piece),
                     ",%s=CASE WHEN excluded.\"received_at\">=\"users\".\"received_at\" THEN "
                     "coalesce(excluded.%s,\"users\".%s) ELSE coalesce(\"users\".%s,excluded.%s) "
                     "END",
                     col, col, col, col, col);
            rc = sb_buf_append_str(q, piece);
        }
    }
    rc = rc ? rc : sb_buf_append(q, "", 1);
    if (rc)
        return rc;
    rc = sqlite3_prepare_v3(w->db, (const char *)q->data, (int)q->len, SQLITE_PREPARE_PERSISTENT,
                            &st, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(w, rc, "preparing an insert");
    struct sq_stmt *e = malloc(sizeof(*e) + row->nfields);
    if (!e || sb_wh_map_put(&w->stmts, (const char *)w->sig.data, w->sig.len, e)) {
        free(e);
        sqlite3_finalize(st);
        return -ENOMEM;
    }
    e->st = st;
    e->n = row->nfields;
    memcpy(e->types, w->keep, row->nfields);
    *out = e;
    return 0;
}

static int row_load(struct sq_wh *w, const struct sb_wh_row *row, bool *inserted)
{
    if (row->nfields > w->fcap) {
        size_t ncap = row->nfields * 2;
        void *cb = realloc(w->cbuf, ncap * sizeof(*w->cbuf));
        if (!cb)
            return -ENOMEM;
        w->cbuf = cb;
        void *kp = realloc(w->keep, ncap);
        if (!kp)
            return -ENOMEM;
        w->keep = kp;
        w->fcap = ncap;
    }
    int rc = row_sig(w, row);
    if (rc)
        return rc;
    struct sq_stmt *e = sb_wh_map_get(&w->stmts, (const char *)w->sig.data, w->sig.len);
    if (!e) {
        struct sq_table *t = NULL;
        rc = table_get(w, row->table, &t);
        if (rc || !t)
            return rc ? rc : -EIO;
        if ((rc = ensure_columns(w, row, t)) || (rc = stmt_make(w, row, &e)))
            return rc;
    }
    if (!e)
        return -EIO;
    sqlite3_stmt *st = e->st;
    int p = 1;
    for (size_t i = 0; i < row->nfields; i++) {
        if (e->types[i] == DROPPED) {
            w->st->fields_dropped++;
            continue;
        }
        if (!sb_wh_coerce(&row->fields[i].v, (enum sb_wh_type)e->types[i], w->cbuf[i]))
            w->st->fields_dropped++;
        const struct sb_wh_value *v = &row->fields[i].v;
        switch (v->type) {
        case SB_WH_NULL:
            rc = sqlite3_bind_null(st, p++);
            break;
        case SB_WH_INT:
        case SB_WH_BOOL:
            rc = sqlite3_bind_int64(st, p++, v->i);
            break;
        case SB_WH_REAL:
            rc = sqlite3_bind_double(st, p++, v->d);
            break;
        default:
            rc = sqlite3_bind_text(st, p++, v->s, (int)v->n, SQLITE_STATIC);
            break;
        }
        if (rc != SQLITE_OK) {
            sqlite3_reset(st);
            return sq_fail(w, rc, "binding a value");
        }
    }
    rc = sqlite3_step(st);
    /* The bindings still point into this event's memory after the reset; they are never read
     * again, since every parameter is bound anew before the statement's next step. */
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return sq_fail(w, rc, "inserting a row");
    *inserted = sqlite3_changes(w->db) > 0;
    return 0;
}

/* After a rollback what we believed about the schema may be wrong: forget it all. */
static void forget_schema(struct sq_wh *w)
{
    sb_wh_map_clear(&w->stmts, stmt_free);
    sb_wh_map_clear(&w->tables, table_free);
}

static int sq_load(struct sb_warehouse *base, const struct sb_warehouse_msg *ev, size_t n,
                   struct sb_warehouse_stats *st)
{
    struct sq_wh *w = (struct sq_wh *)base;
    w->st = st;
    char now[32];
    sb_wh_now(now);
    int rc = sq_exec(w, "BEGIN IMMEDIATE", "starting the batch's transaction");
    if (rc)
        return rc;
    for (size_t e = 0; e < n; e++) {
        rc = sb_wh_model_event(&w->model, ev[e].data, ev[e].len, now);
        if (rc == -ENOMEM)
            break;
        if (rc) {
            st->rejected++;
            snprintf(w->base.errmsg, sizeof(w->base.errmsg), "event %zu rejected: %s", e,
                     w->model.errmsg);
            rc = 0;
            continue;
        }
        st->fields_dropped += w->model.dropped;
        for (size_t r = 0; r < w->model.nrows && !rc; r++) {
            bool inserted = false;
            rc = row_load(w, &w->model.rows[r], &inserted);
            if (inserted)
                st->rows_inserted++;
            else
                st->rows_duplicate++;
        }
        if (rc)
            break;
        st->events++;
    }
    if (!rc)
        rc = sq_exec(w, "COMMIT", "committing the batch");
    if (rc) {
        char keep[sizeof(w->base.errmsg)];
        memcpy(keep, w->base.errmsg, sizeof(keep));
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
        forget_schema(w);
        memcpy(w->base.errmsg, keep, sizeof(keep));
        if (rc == -ENOMEM && !keep[0])
            snprintf(w->base.errmsg, sizeof(w->base.errmsg), "out of memory");
        struct sb_warehouse_stats zero = {0};
        *st = zero;
    }
    return rc;
}

static void sq_close(struct sb_warehouse *base)
{
    struct sq_wh *w = (struct sq_wh *)base;
    forget_schema(w);
    sqlite3_close_v2(w->db);
    sb_wh_model_free(&w->model);
    sb_buf_free(&w->sql);
    sb_buf_free(&w->sig);
    free(w->cbuf);
    free(w->keep);
    free(w);
}

int sb_warehouse_sqlite_open(struct sb_warehouse **out, const char *path,
                             const struct sb_warehouse_options *opt, char *errmsg,
                             size_t errmsg_len)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!path) {
        if (errmsg && errmsg_len)
            snprintf(errmsg, errmsg_len, "sqlite: no database path");
        return -EINVAL;
    }
    struct sq_wh *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->base.load = sq_load;
    w->base.close = sq_close;
    int rc = sb_wh_model_init(&w->model, opt);
    if (rc) {
        free(w);
        return rc;
    }
    int src = sqlite3_open_v2(
        path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = sq_fail(w, src, path);
        goto fail;
    }
    sqlite3_extended_result_codes(w->db, 1);
    sqlite3_busy_timeout(w->db, w->model.opt.busy_timeout_ms ? w->model.opt.busy_timeout_ms : 5000);
    /* WAL: readers (dashboards, the tests) never block the loader and a batch costs one
     * sequential write. synchronous=FULL in WAL mode syncs the log at each commit, so a load
     * that returned 0 survives a power cut; that is when the output acknowledges the batch. */
    char sql[200];
    snprintf(sql, sizeof(sql),
             "PRAGMA page_size=8192; PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA "
             "cache_size=-16384;",
             w->model.opt.relaxed_durability ? "NORMAL" : "FULL");
    if ((rc = sq_exec(w, sql, "setting up the database")))
        goto fail;
    /* A file that is not a database only shows up on the first read. */
    if ((rc = sq_exec(w, "SELECT count(*) FROM sqlite_schema", path)))
        goto fail;
    *out = &w->base;
    return 0;
fail:
    if (errmsg && errmsg_len)
        snprintf(errmsg, errmsg_len, "%s", w->base.errmsg);
    sq_close(&w->base);
    return rc;
}
