/* warehouse_model.h: the warehouse model shared by the SQLite and PostgreSQL loaders: how one
 * Segment event becomes rows (table, columns, typed values), names, types and coercion. */
#ifndef SEGBUS_OUTPUTS_WAREHOUSE_MODEL_H
#define SEGBUS_OUTPUTS_WAREHOUSE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outputs/warehouse.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest identifier (PostgreSQL's NAMEDATALEN - 1); longer names are cut and get a hash. */
#define SB_WH_NAME_MAX 63
/* Most fields one event may produce; the rest are dropped (counted). */
#define SB_WH_FIELDS_MAX 4096
/* Largest accepted event; Segment's limit is 32 KB, this leaves room for hub-added context. */
#define SB_WH_EVENT_MAX (1u << 20)

/* Column types, in the order a value's natural type is tried. NONE is the SQL NULL value. */
enum sb_wh_type {
    SB_WH_NULL = 0,
    SB_WH_INT,
    SB_WH_REAL,
    SB_WH_BOOL,
    SB_WH_TEXT,
    SB_WH_TS, /* timestamp: text in canonical UTC form "YYYY-MM-DDTHH:MM:SS.mmmZ" */
};

struct sb_wh_value {
    enum sb_wh_type type;
    int64_t i;     /* INT, BOOL (0/1) */
    double d;      /* REAL */
    const char *s; /* TEXT, TS: valid UTF-8 without NUL bytes; not NUL-terminated */
    uint32_t n;
};

struct sb_wh_field {
    char name[SB_WH_NAME_MAX + 1]; /* column: [a-z0-9_], NUL-terminated */
    uint8_t name_len;
    uint8_t rank;     /* source: 0 base column, 1 context, 2 properties/traits */
    bool exact;       /* the key path spelled the column name exactly */
    const char *path; /* the key path it came from (for the collision rule) */
    uint32_t path_len;
    struct sb_wh_value v;
};

enum sb_wh_kind { SB_WH_TRACK, SB_WH_IDENTIFY, SB_WH_PAGE, SB_WH_SCREEN, SB_WH_GROUP, SB_WH_ALIAS };

/* A column every row of a table has (created with the table even when this event lacks it). */
struct sb_wh_coldef {
    const char *name;
    enum sb_wh_type type;
};

struct sb_wh_row {
    char table[SB_WH_NAME_MAX + 1];
    const struct sb_wh_coldef *base; /* base[0] is "id", the primary key */
    size_t nbase;
    bool upsert; /* the users table: merge on id instead of insert-if-new */
    struct sb_wh_field *fields;
    size_t nfields;
};

/* Scratch arena for the strings an event produces (JSON of arrays, cleaned text). */
struct sb_wh_arena {
    struct sb_wh_chunk *head;
};

/* The model's working state; reused across events so that steady state allocates nothing. */
struct sb_wh_model {
    struct sb_warehouse_options opt;
    struct sb_wh_arena arena;
    /* rows of the current event: [0] the call's table, [1] per-event table or users */
    struct sb_wh_row rows[2];
    size_t nrows;
    size_t fields_cap[2];
    uint32_t *index[2]; /* open-addressing index of rows[k] by column name */
    uint32_t index_cap[2];
    size_t dropped; /* fields dropped while modelling (collisions, reserved, binary) */
    char received_now[32];
    char id_buf[40];
    char errmsg[256];
};

int sb_wh_model_init(struct sb_wh_model *m, const struct sb_warehouse_options *opt);
void sb_wh_model_free(struct sb_wh_model *m);

/* Turn one msgpack event into m->rows[0..m->nrows). The rows point into data and into the
 * model's memory, valid until the next call. 0, or -EINVAL/-EMSGSIZE/-ENOMEM with m->errmsg
 * saying what is wrong with the event. received_at defaults to now_iso (canonical form). */
int sb_wh_model_event(struct sb_wh_model *m, const uint8_t *data, size_t len, const char *now_iso);

/* Snake-case one name into out (at most SB_WH_NAME_MAX bytes + NUL): "Order Completed" ->
 * "order_completed", "userId" -> "user_id", "HTTPServer" -> "http_server". Returns length. */
size_t sb_wh_snake(const char *s, size_t len, char *out);
/* The identifier a full name gets: cut with a hash when too long, "_" before a leading digit
 * or a PostgreSQL system column name, a hash for an empty name. out has SB_WH_NAME_MAX + 1. */
size_t sb_wh_ident(const char *snake, size_t len, char *out);
/* The table of a track event: snake_case of its name; names of the standard tables and
 * SQLite's reserved "sqlite_" prefix get a leading "_". */
size_t sb_wh_event_table(const char *event, size_t len, char *out);

/* Parse an RFC 3339 time and write its canonical UTC form (24 bytes + NUL) to out.
 * true if valid. */
bool sb_wh_timestamp(const char *s, size_t len, char out[32]);

/* Convert v to a column of type t. TEXT columns take any value as text (numbers written out,
 * booleans as true/false); numeric columns take numbers and numeric text; BOOL takes booleans,
 * 0/1 and "true"/"false". A value that does not fit becomes NULL (returns false). Text made
 * here lives in buf (at least 40 bytes). */
bool sb_wh_coerce(struct sb_wh_value *v, enum sb_wh_type t, char *buf);

/* Milliseconds since 1970 of a canonical timestamp (as sb_wh_timestamp writes). */
int64_t sb_wh_canon_ms(const char *canon);

/* Now as canonical UTC text. */
void sb_wh_now(char out[32]);

/* A string-keyed hash map (keys copied) used for table and column catalogues and statement
 * caches. Values are pointers owned by the caller. */
struct sb_wh_map {
    struct sb_wh_map_slot *slots;
    size_t cap, count;
};
void *sb_wh_map_get(const struct sb_wh_map *map, const char *key, size_t len);
int sb_wh_map_put(struct sb_wh_map *map, const char *key, size_t len, void *value);
/* Call fn(value, arg) on every value. */
void sb_wh_map_each(const struct sb_wh_map *map, void (*fn)(void *value, void *arg), void *arg);
/* Call fn on every value, then empty the map. */
void sb_wh_map_clear(struct sb_wh_map *map, void (*fn)(void *value));

/* ---- what every loader shares: the batch loop, the handle, SQL text ---- */

struct sb_warehouse;
struct sb_buf;

/* A loader's part of a batch; sb_warehouse_load() runs the loop around it (models each event,
 * counts rejected events, restores the error message of a failure, zeroes the stats). */
struct sb_wh_ops {
    int (*begin)(struct sb_warehouse *w);                          /* start the transaction */
    int (*row)(struct sb_warehouse *w, const struct sb_wh_row *r); /* one row of an event */
    int (*commit)(struct sb_warehouse *w);                         /* load what is left, commit */
    /* undo the failed batch (rc its error) and forget what may be wrong about the schema;
     * returns the error to report */
    int (*rollback)(struct sb_warehouse *w, int rc);
    void (*close)(struct sb_warehouse *w); /* free the loader's own part */
};

/* The head every loader's handle starts with. */
struct sb_warehouse {
    const struct sb_wh_ops *ops;
    struct sb_wh_model model;
    struct sb_warehouse_stats *st; /* the stats of the load running */
    char errmsg[512];
};

/* A loader's handle of size bytes (its struct starts with struct sb_warehouse), zeroed, with
 * the model set up from opt. NULL when out of memory. Freed by sb_warehouse_close(). */
void *sb_wh_handle_new(size_t size, const struct sb_wh_ops *ops,
                       const struct sb_warehouse_options *opt);
/* The start of an open: *out = NULL; -EINVAL (with why in errmsg) if out or arg is NULL. */
int sb_wh_open_args(struct sb_warehouse **out, const void *arg, const char *why, char *errmsg,
                    size_t errmsg_len);
/* The end of a failed open: the handle's message to errmsg, the handle closed; returns rc. */
int sb_wh_open_failed(struct sb_warehouse *w, int rc, char *errmsg, size_t errmsg_len);

/* Append name as a quoted SQL identifier ("a""b" for a"b). 0 or -ENOMEM. */
int sb_wh_put_ident(struct sb_buf *b, const char *name);
/* Append `"name" type` (a column definition). 0 or -ENOMEM. */
int sb_wh_put_column(struct sb_buf *b, const char *name, const char *type);
/* Append the users upsert: ON CONFLICT ("id") DO UPDATE SET "received_at" = the newer one, with
 * target the name the statement gives the users table ("t" or "users", quoted). */
int sb_wh_put_users_update(struct sb_buf *b, const char *target);
/* Append the assignment of one users column (nothing for id and received_at): the newest
 * identify (by received_at) wins each trait it carries, an older one only fills traits still
 * empty, so replaying old batches never regresses a user. 0 or -ENOMEM. */
int sb_wh_put_users_column(struct sb_buf *b, const char *target, const char *name);
/* Append the column list of a new table for row: ("id" <text> PRIMARY KEY, "col" <type>, ...)
 * with the table's standard columns, then the row's fields, each name once, at most max
 * columns. add(table, name, type) records each column in the loader's catalogue: 0 added, 1
 * already there (skipped), or -ENOMEM. 0 or -ENOMEM. */
int sb_wh_put_new_table(struct sb_buf *b, const struct sb_wh_row *row, unsigned max,
                        const char *(*type_name)(enum sb_wh_type),
                        int (*add)(void *table, const char *name, enum sb_wh_type type),
                        void *table);

#ifdef __cplusplus
}
#endif
#endif
