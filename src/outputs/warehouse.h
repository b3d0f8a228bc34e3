/* warehouse.h: the warehouse destinations (SQLite, PostgreSQL) behind one small API: open, load a
 * batch of msgpack events into Segment's warehouse schema, close. */
#ifndef SEGBUS_OUTPUTS_WAREHOUSE_H
#define SEGBUS_OUTPUTS_WAREHOUSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One event: the bytes of one msgpack map with Segment's JSON field names (type, userId,
 * anonymousId, event, name, category, properties, traits, groupId, previousId, context,
 * integrations, timestamp, sentAt, receivedAt, originalTimestamp, messageId). The loader only
 * reads the bytes during sb_warehouse_load(); the caller keeps ownership. */
struct sb_warehouse_msg {
    const uint8_t *data;
    size_t len;
};

/* Settings; zero means the default for every field, so `struct sb_warehouse_options o = {0}`
 * (or NULL) is a valid configuration. */
struct sb_warehouse_options {
    /* PostgreSQL: the schema the tables live in, created if missing. Default "public".
     * Any text is accepted: it is always quoted as an identifier. Ignored by SQLite. */
    const char *schema;
    /* Most columns one table may get; new properties past it are dropped (counted in
     * fields_dropped). Default 1000 (SQLite allows 2000, PostgreSQL 1600). */
    unsigned max_columns;
    /* Longest text value in bytes; longer values are cut at a UTF-8 boundary (Segment cuts at
     * 512 characters). Default 0: no limit. */
    unsigned max_text_bytes;
    /* SQLite: how long a load waits for another writer's lock. Default 5000 ms. */
    int busy_timeout_ms;
    /* SQLite: 1 = synchronous=NORMAL (a power cut may lose the last loads, which were already
     * acknowledged); default 0 = synchronous=FULL, every load is durable when it returns. */
    int relaxed_durability;
    /* PostgreSQL: seconds to wait when (re)connecting. Default 10. */
    int connect_timeout_s;
};

/* What one sb_warehouse_load() did. */
struct sb_warehouse_stats {
    size_t events;         /* events stored (new or already there) */
    size_t rejected;       /* events refused: not a map, bad msgpack, unknown type, track
                            * without event; the last reason is in sb_warehouse_errmsg() */
    size_t rows_inserted;  /* rows added over all tables (users upserts count once) */
    size_t rows_duplicate; /* rows skipped because their id was already loaded */
    size_t columns_added;  /* columns created by schema evolution (and new tables' columns) */
    size_t tables_created;
    size_t fields_dropped; /* values not stored: name collision, reserved column, column cap,
                            * value not convertible to the column's type, binary/ext values */
};

struct sb_warehouse;

/* Open (creating if needed) the SQLite database at path (":memory:" works) in WAL mode.
 * On success *out is the handle; on failure *out is NULL, the error is returned and, when errmsg
 * is not NULL, a message naming the cause is written there (errmsg_len bytes at most).
 * 0, -ENOMEM, -EIO, -EACCES, -EROFS, -ENOSPC, -EBUSY (locked by another writer). */
int sb_warehouse_sqlite_open(struct sb_warehouse **out, const char *path,
                             const struct sb_warehouse_options *opt, char *errmsg,
                             size_t errmsg_len);

/* Connect to PostgreSQL with a libpq connection string ("host=127.0.0.1 port=5432 dbname=x" or
 * a postgresql:// URI). The schema is created if missing. Errors as for SQLite, plus
 * -ECONNREFUSED when the server cannot be reached. */
int sb_warehouse_pg_open(struct sb_warehouse **out, const char *conninfo,
                         const struct sb_warehouse_options *opt, char *errmsg, size_t errmsg_len);

/* Load a batch: every event lands in its tables in one transaction, or nothing does (then the
 * whole batch can simply be sent again: loads are idempotent on messageId, a reloaded event
 * never adds a row). Events that cannot be loaded at all (see stats.rejected) are skipped
 * without failing the batch, so one bad event never blocks the others.
 * Returns 0 when the transaction committed (stats filled if not NULL), or -errno with
 * sb_warehouse_errmsg() saying why: -EIO (database error), -EBUSY (locked), -ENOSPC,
 * -ENOMEM, -ENOTCONN (PostgreSQL connection lost and not re-established; the next load
 * reconnects), -EINVAL (NULL handle, or events NULL with n > 0).
 * Not thread-safe: one thread uses a handle at a time. */
int sb_warehouse_load(struct sb_warehouse *w, const struct sb_warehouse_msg *events, size_t n,
                      struct sb_warehouse_stats *stats);

/* The message of the last error or rejected event of this handle ("" if none). Valid until the
 * next call on the handle. */
const char *sb_warehouse_errmsg(const struct sb_warehouse *w);

/* Close the database connection and free the handle. NULL is a no-op. */
void sb_warehouse_close(struct sb_warehouse *w);

#ifdef __cplusplus
}
#endif
#endif
