/* warehouse_sqlite.c: the SQLite warehouse loader: Segment's warehouse schema in one database
 * file, one transaction per batch, schema evolution, idempotent on id, users upserted. */
#include <errno.h>
#include <pthread.h>
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
    struct sb_wh_map tables; /* name -> struct sq_table* (loaded lazily) */
    struct sb_wh_map stmts;  /* table + column list -> sqlite3_stmt* */
    struct sb_buf sql, sig;
    char (*cbuf)[40]; /* per-field scratch for coerced text */
    uint8_t *keep;    /* per-field: its column's enum sb_wh_type, or DROPPED (column cap) */
    size_t fcap;
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

/* Record a column of a table being created (sb_wh_put_new_table): 1 if it is there already. */
static int sq_add_col(void *table, const char *name, enum sb_wh_type type)
{
    struct sq_table *t = table;
    if (sb_wh_map_get(&t->cols, name, strlen(name)))
        return 1;
    if (sb_wh_map_put(&t->cols, name, strlen(name), (void *)(uintptr_t)type))
        return -ENOMEM;
    t->ncols++;
    return 0;
}

/* Make sure every field of the row has its column (creating the table or adding columns) and
 * note each field's column type in w->keep (DROPPED past the column cap). */
static int ensure_columns(struct sq_wh *w, const struct sb_wh_row *row, struct sq_table *t)
{
    struct sb_wh_field *f = row->fields;
    if (t->ncols == 0) {
        sb_buf_clear(&w->sql);
        int rc = sb_buf_append_str(&w->sql, "CREATE TABLE IF NOT EXISTS ");
        rc = rc ? rc : sb_wh_put_ident(&w->sql, row->table);
        rc = rc ? rc
                : sb_wh_put_new_table(&w->sql, row, w->base.model.opt.max_columns, sq_type_name,
                                      sq_add_col, t);
        rc = rc ? rc : sb_buf_append(&w->sql, "", 1);
        if (rc)
            return rc;
        if ((rc = sq_exec(w, (const char *)w->sql.data, "creating a table")))
            return rc;
        w->base.st->tables_created++;
        w->base.st->columns_added += t->ncols;
    }
    for (size_t i = 0; i < row->nfields; i++) {
        void *have = sb_wh_map_get(&t->cols, f[i].name, f[i].name_len);
        w->keep[i] = have ? (uint8_t)(uintptr_t)have : (uint8_t)f[i].v.type;
        if (!have) {
            if (t->ncols >= w->base.model.opt.max_columns) {
                w->keep[i] = DROPPED;
                continue;
            }
            sb_buf_clear(&w->sql);
            int rc = sb_buf_append_str(&w->sql, "ALTER TABLE ");
            rc = rc ? rc : sb_wh_put_ident(&w->sql, row->table);
            rc = rc ? rc : sb_buf_append_str(&w->sql, " ADD COLUMN ");
            rc = rc ? rc : sb_wh_put_column(&w->sql, f[i].name, sq_type_name(f[i].v.type));
            rc = rc ? rc : sb_buf_append(&w->sql, "", 1);
            if (rc)
                return rc;
            if ((rc = sq_exec(w, (const char *)w->sql.data, "adding a column")))
                return rc;
            if (sb_wh_map_put(&t->cols, f[i].name, f[i].name_len, (void *)(uintptr_t)f[i].v.type))
                return -ENOMEM;
            t->ncols++;
            w->base.st->columns_added++;
        }
    }
    return 0;
}

/* The signature of a row's shape: table, insert or upsert, every field name. */
static int row_sig(struct sq_wh *w, const struct sb_wh_row *row)
{
    sb_buf_clear(&w->sig);
    size_t need = SB_WH_NAME_MAX + 2;
    for (size_t i = 0; i < row->nfields; i++)
        need += (size_t)row->fields[i].name_len + 1;
    if (sb_buf_reserve(&w->sig, need))
        return -ENOMEM;
    /* one reservation, then plain copies: this runs for every row */
    uint8_t *o = w->sig.data;
    size_t tl = strlen(row->table);
    memcpy(o, row->table, tl);
    o += tl;
    *o++ = row->upsert ? 1 : 2;
    for (size_t i = 0; i < row->nfields; i++) {
        memcpy(o, row->fields[i].name, (size_t)row->fields[i].name_len + 1);
        o += row->fields[i].name_len + 1;
    }
    w->sig.len = (size_t)(o - w->sig.data);
    return 0;
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
    rc = rc ? rc : sb_wh_put_ident(q, row->table);
    rc = rc ? rc : sb_buf_append_str(q, " (");
    size_t n = 0;
    for (size_t i = 0; !rc && i < row->nfields; i++) {
        if (w->keep[i] == DROPPED)
            continue;
        rc = n++ ? sb_buf_append_str(q, ",") : 0;
        rc = rc ? rc : sb_wh_put_ident(q, f[i].name);
    }
    rc = rc ? rc : sb_buf_append_str(q, ") VALUES (");
    for (size_t i = 0; !rc && i < n; i++)
        rc = sb_buf_append_str(q, i ? ",?" : "?");
    rc = rc ? rc : sb_buf_append_str(q, ")");
    if (!rc && row->upsert) {
        rc = sb_wh_put_users_update(q, "\"users\"");
        for (size_t i = 0; !rc && i < row->nfields; i++)
            if (w->keep[i] != DROPPED)
                rc = sb_wh_put_users_column(q, "\"users\"", f[i].name);
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

static int sq_row(struct sb_warehouse *base, const struct sb_wh_row *row)
{
    struct sq_wh *w = (struct sq_wh *)base;
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
            w->base.st->fields_dropped++;
            continue;
        }
        if (!sb_wh_coerce(&row->fields[i].v, (enum sb_wh_type)e->types[i], w->cbuf[i]))
            w->base.st->fields_dropped++;
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
    if (sqlite3_changes(w->db) > 0)
        w->base.st->rows_inserted++;
    else
        w->base.st->rows_duplicate++;
    return 0;
}

/* After a rollback what we believed about the schema may be wrong: forget it all. */
static void forget_schema(struct sq_wh *w)
{
    sb_wh_map_clear(&w->stmts, stmt_free);
    sb_wh_map_clear(&w->tables, table_free);
}

static int sq_begin(struct sb_warehouse *base)
{
    return sq_exec((struct sq_wh *)base, "BEGIN IMMEDIATE", "starting the batch's transaction");
}

static int sq_commit(struct sb_warehouse *base)
{
    return sq_exec((struct sq_wh *)base, "COMMIT", "committing the batch");
}

static int sq_rollback(struct sb_warehouse *base, int rc)
{
    struct sq_wh *w = (struct sq_wh *)base;
    sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
    forget_schema(w);
    return rc;
}

static void sq_close(struct sb_warehouse *base)
{
    struct sq_wh *w = (struct sq_wh *)base;
    forget_schema(w);
    sqlite3_close_v2(w->db);
    sb_buf_free(&w->sql);
    sb_buf_free(&w->sig);
    free(w->cbuf);
    free(w->keep);
}

static const struct sb_wh_ops sq_ops = {sq_begin, sq_row, sq_commit, sq_rollback, sq_close};

/* SQLite counts every allocation under a global mutex for sqlite3_memory_used(), which nothing
 * here reads; off, a load takes no lock per malloc. Only possible before SQLite's first use in
 * the process: if another part initialised it already, the call fails and nothing changes. */
static void sq_global_setup(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int sb_warehouse_sqlite_open(struct sb_warehouse **out, const char *path,
                             const struct sb_warehouse_options *opt, char *errmsg,
                             size_t errmsg_len)
{
    int rc = sb_wh_open_args(out, path, "sqlite: no database path", errmsg, errmsg_len);
    if (rc)
        return rc;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sq_global_setup);
    struct sq_wh *w = sb_wh_handle_new(sizeof(*w), &sq_ops, opt);
    if (!w)
        return -ENOMEM;
    int src = sqlite3_open_v2(
        path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = sq_fail(w, src, path);
        goto fail;
    }
    sqlite3_extended_result_codes(w->db, 1);
    sqlite3_busy_timeout(
        w->db, w->base.model.opt.busy_timeout_ms ? w->base.model.opt.busy_timeout_ms : 5000);
    /* WAL: readers (dashboards, the tests) never block the loader and a batch costs one
     * sequential write. synchronous=FULL in WAL mode syncs the log at each commit, so a load
     * that returned 0 survives a power cut; that is when the output acknowledges the batch. */
    char sql[200];
    snprintf(sql, sizeof(sql),
             "PRAGMA page_size=8192; PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA "
             "cache_size=-16384;",
             w->base.model.opt.relaxed_durability ? "NORMAL" : "FULL");
    if ((rc = sq_exec(w, sql, "setting up the database")))
        goto fail;
    /* A file that is not a database only shows up on the first read. */
    if ((rc = sq_exec(w, "SELECT count(*) FROM sqlite_schema", path)))
        goto fail;
    *out = &w->base;
    return 0;
fail:
    return sb_wh_open_failed(&w->base, rc, errmsg, errmsg_len);
}
