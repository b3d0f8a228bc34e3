/* segbus.h: the public API of libsegbus, and its specification.
 *
 * libsegbus lets any number of processes record Segment-style events (track, identify, page,
 * screen, group, alias) into a lock-free ring in shared memory, from which the segbusd daemon
 * drains them. This header is the only public one; everything a caller may rely on is here.
 *
 * Conventions, for every function below unless it says otherwise:
 *   - Success is 0 (or a count); failure is a negative errno (-EAGAIN ring full, -EMSGSIZE too
 *     big, -EINVAL bad call, -EPROTO layout mismatch) or one of the SEGBUS_E* codes below.
 *     segbus_strerror() turns any of them into text.
 *   - Passing NULL to a function that closes or frees something is a no-op.
 *   - Objects are opaque; the caller owns what it creates and frees it with the matching call.
 */
#ifndef SEGBUS_SEGBUS_H
#define SEGBUS_SEGBUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SEGBUS_BUILDING) && defined(__GNUC__)
#define SEGBUS_API __attribute__((visibility("default")))
#else
#define SEGBUS_API
#endif

/* ---- version ------------------------------------------------------------------------------ */

#define SEGBUS_VERSION_MAJOR 0
#define SEGBUS_VERSION_MINOR 1
#define SEGBUS_VERSION_PATCH 0
#define SEGBUS_VERSION_STRING "0.1.0"
/* One number that grows with every release: 0xMMmmpp. */
#define SEGBUS_VERSION_NUM                                                                        \
    ((SEGBUS_VERSION_MAJOR << 16) | (SEGBUS_VERSION_MINOR << 8) | SEGBUS_VERSION_PATCH)

/* The version of the library actually loaded (may differ from the header's). Never NULL. */
SEGBUS_API const char *segbus_version(void);

/* ---- errors ------------------------------------------------------------------------------- */

/* Errors of segbus's own, beyond errno. All are returned negated, like errno values.
 * They start far above any errno so that both fit in one int. */
enum segbus_error {
    SEGBUS_EBASE = 10000,
    SEGBUS_ENOIDENTITY,  /* neither userId nor anonymousId was given */
    SEGBUS_ENOEVENT,     /* track without an event name */
    SEGBUS_ENOGROUPID,   /* group without a groupId */
    SEGBUS_ENOPREVIOUS,  /* alias without previousId */
    SEGBUS_ENOUSERID,    /* alias without userId */
    SEGBUS_EMESSAGEID,   /* messageId longer than 100 characters or empty */
    SEGBUS_EJSON,        /* a JSON text given by the caller is not valid JSON */
    SEGBUS_EUTF8,        /* a string given by the caller is not valid UTF-8 */
    SEGBUS_ETIMESTAMP,   /* a timestamp is not RFC 3339 */
    SEGBUS_ENOTOBJECT,   /* properties/traits/context/integrations must be a JSON object */
    SEGBUS_ENODAEMON,    /* no daemon is listening on the socket */
    SEGBUS_EDENIED,      /* the daemon refused the registration (uid/gid not allowed) */
    SEGBUS_ETIMEDOUT,    /* a flush did not complete within its deadline */
    SEGBUS_ECORRUPT,     /* a record or file failed its integrity check */
    SEGBUS_ELAST
};

/* Text for a return code of any segbus function (negative errno or -SEGBUS_E*).
 * Never NULL; the string is static. Thread-safe. */
SEGBUS_API const char *segbus_strerror(int err);

/* ---- ring --------------------------------------------------------------------------------- */

/* The producer side of the shared-memory ring. A producer handle registers with segbusd over
 * its UNIX socket, receives the ring (a sealed memfd) and a producer id, and then writes
 * records into the ring with no syscall and no lock: a compare-and-swap claims space, the
 * payload is copied, a second compare-and-swap commits it. A record is an opaque payload
 * (libsegbus's event layer puts one msgpack event in each) plus a caller type >= 1.
 *
 * Failure model: a process killed while writing costs only its own record (the daemon turns
 * it into padding); a daemon restart loses nothing committed (the producer hands its ring to
 * the new daemon when it re-registers); a fork()ed child re-registers on its first write;
 * with no daemon at all a producer may write into a ring of its own (options.standalone_capacity)
 * and hands it over when a daemon appears. */

/* Largest payload of one record, in bytes: Segment's 32 KB event limit. A ring's own limit is
 * min(this, capacity / 8 - 16); segbus_producer_max_payload() tells it. */
#define SEGBUS_RECORD_MAX 32768u
/* Record types: callers use 1 .. SEGBUS_RECORD_TYPE_MAX; the event layer uses 1 for a msgpack
 * event. Zero and negative types are reserved for the ring itself (padding). */
#define SEGBUS_RECORD_TYPE_EVENT 1
#define SEGBUS_RECORD_TYPE_MAX 0x7fffffff
/* Ring capacity limits (bytes of the data area; a power of two). */
#define SEGBUS_RING_MIN_CAPACITY (64u * 1024u)
#define SEGBUS_RING_MAX_CAPACITY (1u << 30)
#define SEGBUS_RING_DEFAULT_CAPACITY (8u * 1024u * 1024u)

typedef struct segbus_producer segbus_producer_t;

/* Full-ring policies are enum segbus_full_policy (SEGBUS_FULL_ERROR, SEGBUS_FULL_BLOCK,
 * SEGBUS_FULL_DROP) and SEGBUS_DROPPED, declared in the client section below; the producer
 * takes them as int. Under SEGBUS_FULL_ERROR a full ring returns -EAGAIN at once (counted as
 * SEGBUS_DROP_FULL_ERROR); under SEGBUS_FULL_BLOCK a write waits for room up to its block
 * timeout, then returns -EAGAIN (counted as SEGBUS_DROP_FULL_TIMEOUT); under SEGBUS_FULL_DROP
 * it discards the record and returns SEGBUS_DROPPED (1) (counted as SEGBUS_DROP_FULL_DROP). */

/* Why records were not delivered; the ring's control block counts each (shared by every
 * producer of the ring, visible to the daemon's metrics and `segbus stat`). */
typedef enum segbus_drop_reason {
    SEGBUS_DROP_FULL_ERROR = 0, /* ring full, the caller got -EAGAIN */
    SEGBUS_DROP_FULL_DROP,      /* ring full, discarded under SEGBUS_FULL_DROP */
    SEGBUS_DROP_FULL_TIMEOUT,   /* ring full until the block timeout expired */
    SEGBUS_DROP_STALE,          /* commit failed: the daemon had repaired the record because
                                   its writer stalled past the grace period */
    SEGBUS_DROP_REPAIRED,       /* the daemon turned a dead writer's record into padding */
    SEGBUS_DROP_CORRUPT,        /* the daemon discarded a record with an invalid header */
    SEGBUS_DROP_REASONS         /* number of reasons */
} segbus_drop_reason_t;

/* Options of segbus_producer_open(). Initialise with segbus_producer_options_init(), then set
 * the fields you need; unknown future fields keep their defaults. */
typedef struct segbus_producer_options {
    size_t size;                      /* sizeof(segbus_producer_options_t), set by _init */
    int full_policy;                  /* an enum segbus_full_policy; default SEGBUS_FULL_ERROR */
    int block_timeout_ms;             /* SEGBUS_FULL_BLOCK: longest wait per write, -1 = no
                                         limit; default 1000 */
    int connect_timeout_ms;           /* registration round trip; default 1000 */
    size_t standalone_capacity;       /* 0 (default): fail with -SEGBUS_ENODAEMON when no daemon
                                         answers. Otherwise a power of two within the ring
                                         limits: start on a ring of our own of that size and
                                         hand it to the daemon once one answers. */
} segbus_producer_options_t;

/* Space claimed for one record, filled by segbus_producer_claim(). The caller writes at most
 * `len` bytes at `data`, then commits or aborts. The other fields are private. */
typedef struct segbus_claim {
    void *data;   /* where the payload goes (inside the shared ring) */
    size_t len;   /* bytes claimed */
    uint64_t pos; /* private: position of the record */
    void *ring;   /* private: which ring */
    int32_t type; /* private */
    uint32_t gen; /* private */
} segbus_claim_t;

/* Counters of a producer handle and of its ring. */
typedef struct segbus_producer_stats {
    uint32_t producer_id;       /* id the daemon gave (0 while standalone) */
    int registered;             /* 1 when registered with a daemon, 0 when standalone */
    uint64_t capacity;          /* bytes of the current ring's data area */
    uint64_t written;           /* records this handle committed */
    uint64_t written_bytes;     /* payload bytes this handle committed */
    uint64_t reregistrations;   /* registrations after the first (fork, daemon restart) */
    uint64_t dropped[SEGBUS_DROP_REASONS]; /* by this handle, by reason */
    uint64_t ring_dropped[SEGBUS_DROP_REASONS]; /* by every producer of the current ring */
} segbus_producer_stats_t;

/* Fill `opts` with the defaults. Never fails. */
SEGBUS_API void segbus_producer_options_init(segbus_producer_options_t *opts);

/* Register with the segbusd listening on the UNIX socket `socket_path` and map its ring.
 * `opts` may be NULL for the defaults. On success *out owns the handle: free it with
 * segbus_producer_close().
 * Errors: -EINVAL (NULL out or path, path too long, bad option), -SEGBUS_ENODAEMON (nothing
 * listens there and no standalone ring was asked for), -SEGBUS_EDENIED (the daemon refused
 * our uid/gid), -EPROTO (the daemon's reply or ring does not match this library's layout),
 * -SEGBUS_ETIMEDOUT (no reply within connect_timeout_ms), -ENOMEM, or another -errno of
 * socket(2)/connect(2)/mmap(2)/memfd_create(2). */
SEGBUS_API int segbus_producer_open(segbus_producer_t **out, const char *socket_path,
                                    const segbus_producer_options_t *opts);

/* Claim room for a record of exactly `len` payload bytes and type `type` (1 ..
 * SEGBUS_RECORD_TYPE_MAX). On success fill claim->data and then call segbus_producer_commit()
 * or segbus_producer_abort() soon: the daemon reads records in order, so an open claim holds
 * back every later record (a claim left open for longer than the daemon's grace is turned
 * into padding and its commit then fails with -ESTALE).
 * Errors: -EINVAL (NULL, bad type), -EMSGSIZE (len > segbus_producer_max_payload()),
 * -EAGAIN (ring full, SEGBUS_FULL_ERROR or SEGBUS_FULL_DROP: nothing was claimed),
 * -EAGAIN also under SEGBUS_FULL_BLOCK once the block timeout has passed.
 * Thread safety: any number of threads may claim/commit on one handle concurrently. */
SEGBUS_API int segbus_producer_claim(segbus_producer_t *p, size_t len, int32_t type,
                                     segbus_claim_t *claim);

/* Publish a claimed record with its first `len` payload bytes (len <= claim->len; the rest of
 * the claimed room becomes padding). Wakes the daemon if it sleeps (a syscall only then).
 * Errors: -EINVAL (NULL, len too big, claim already finished), -ESTALE (the daemon repaired
 * the record because the claim stayed open past its grace; the record is lost and counted as
 * SEGBUS_DROP_STALE). */
SEGBUS_API int segbus_producer_commit(segbus_producer_t *p, segbus_claim_t *claim, size_t len);

/* Give up a claim: the room becomes padding, nothing is delivered. Errors as commit. */
SEGBUS_API int segbus_producer_abort(segbus_producer_t *p, segbus_claim_t *claim);

/* Claim, copy `len` bytes from `data` and commit, in one call. Returns 0 when written,
 * SEGBUS_DROPPED under SEGBUS_FULL_DROP when the ring was full, or the errors of claim and
 * commit. Thread-safe. */
SEGBUS_API int segbus_producer_write(segbus_producer_t *p, int32_t type, const void *data,
                                     size_t len);

/* Wait until the daemon has taken (and, when it spools, made durable) every record this
 * handle committed before the call. timeout_ms: -1 waits without limit, 0 checks once.
 * A standalone producer first tries to hand its ring to a daemon. Returns 0, or
 * -SEGBUS_ETIMEDOUT (not all taken in time), -SEGBUS_ENODAEMON (standalone and still no
 * daemon to take the records), -EINVAL. Thread-safe. */
SEGBUS_API int segbus_producer_flush(segbus_producer_t *p, int timeout_ms);

/* Change the full-ring policy of this handle (block_timeout_ms as in the options).
 * Errors: -EINVAL. Takes effect for writes that start after it returns. */
SEGBUS_API int segbus_producer_set_full_policy(segbus_producer_t *p, int policy,
                                               int block_timeout_ms);

/* Largest payload one record may have on this handle's ring. */
SEGBUS_API size_t segbus_producer_max_payload(const segbus_producer_t *p);

/* Copy the counters into *st. Errors: -EINVAL. Thread-safe (counters are read one by one). */
SEGBUS_API int segbus_producer_get_stats(const segbus_producer_t *p, segbus_producer_stats_t *st);

/* Text name of a drop reason ("full_error", "full_drop", ...), for logs and metrics. */
SEGBUS_API const char *segbus_drop_reason_name(segbus_drop_reason_t reason);

/* Unregister and unmap. Does not flush (call segbus_producer_flush() first if you need it),
 * but if the daemon went away it tries once to hand the ring to a new daemon so that
 * committed records are not lost. No claim may be open and no other thread may use `p`.
 * NULL is a no-op. */
SEGBUS_API void segbus_producer_close(segbus_producer_t *p);

/* ---- client ------------------------------------------------------------------------------- */

/* A client: one application's connection to segbus. It owns a producer handle on the daemon's
 * ring (registered over the daemon's UNIX socket), the per-client settings below, and counters.
 *
 * Thread safety: one client may be used by any number of threads at once for the event calls,
 * segbus_flush() and segbus_client_get_stats(); open and close must not race with other calls on
 * the same client. Options objects and segbus_map_t builders are not thread-safe.
 *
 * fork(): a client survives fork(); in the child the first call re-registers with the daemon
 * and gets its own producer id, fresh random state for messageIds and fresh scratch memory.
 * Events committed by the parent before the fork belong to the parent (segbus_flush() in the
 * child waits only for the child's own). */
typedef struct segbus_client segbus_client_t;
typedef struct segbus_options segbus_options_t;

/* Where the daemon's socket is when neither segbus_options_set_socket() nor the environment
 * variable SEGBUS_SOCKET names one. */
#define SEGBUS_DEFAULT_SOCKET "/run/segbus/segbus.sock"
#define SEGBUS_SOCKET_ENV "SEGBUS_SOCKET"

/* What an event call does when the ring has no room for the event. */
enum segbus_full_policy {
    SEGBUS_FULL_ERROR = 0, /* return -EAGAIN at once (counted in stats.full); the default */
    SEGBUS_FULL_BLOCK = 1, /* wait for room up to the block deadline, then return -EAGAIN */
    SEGBUS_FULL_DROP = 2   /* drop the event, count it in stats.dropped, return SEGBUS_DROPPED */
};

/* Positive return of an event call under SEGBUS_FULL_DROP when the event was dropped. */
#define SEGBUS_DROPPED 1

/* New options with every default: socket from SEGBUS_SOCKET or SEGBUS_DEFAULT_SOCKET, policy
 * SEGBUS_FULL_ERROR, no write key, no default context, own-ring fallback allowed.
 * NULL when out of memory. The caller frees it with segbus_options_free() (the client copies
 * what it needs at open, so options may be freed right after segbus_client_open()). */
SEGBUS_API segbus_options_t *segbus_options_new(void);
SEGBUS_API void segbus_options_free(segbus_options_t *opts);

/* The daemon's UNIX socket path (copied). Overrides SEGBUS_SOCKET. NULL restores the default.
 * 0, -EINVAL (path longer than a sockaddr_un holds), -ENOMEM. */
SEGBUS_API int segbus_options_set_socket(segbus_options_t *opts, const char *path);

/* The write key of the source this client's events belong to (copied); it travels in each
 * event as "writeKey" and the daemon takes it out before anything leaves the machine.
 * NULL clears it. 0, -SEGBUS_EUTF8, -EINVAL (longer than 256 bytes), -ENOMEM. */
SEGBUS_API int segbus_options_set_write_key(segbus_options_t *opts, const char *write_key);

/* Full-ring policy; block_ms is the longest an event call waits under SEGBUS_FULL_BLOCK
 * (ignored otherwise; 0 means do not wait). 0 or -EINVAL (unknown policy, block_ms < 0). */
SEGBUS_API int segbus_options_set_full_policy(segbus_options_t *opts,
                                              enum segbus_full_policy policy, int64_t block_ms);

/* A default context merged into every event's context: keys the call gives win over these,
 * and "library" is always segbus's own. Given as a JSON object text (len bytes; len
 * SIZE_MAX means NUL-terminated) or as a finished builder (copied). NULL clears it.
 * 0, -SEGBUS_EJSON / -SEGBUS_EUTF8 / -SEGBUS_ENOTOBJECT (detail in segbus_last_error()),
 * -EINVAL (builder with open containers or a previous error), -EMSGSIZE (over 16 KB), -ENOMEM. */
SEGBUS_API int segbus_options_set_context_json(segbus_options_t *opts, const char *json,
                                               size_t len);
typedef struct segbus_map segbus_map_t;
SEGBUS_API int segbus_options_set_context(segbus_options_t *opts, const segbus_map_t *context);

/* Whether the client may start on a ring of its own when no daemon is listening (a daemon
 * adopts that ring when it starts and the client registers). Default 1. With 0, open fails
 * with -SEGBUS_ENODAEMON when no daemon answers. 0 or -EINVAL. */
SEGBUS_API int segbus_options_set_standalone(segbus_options_t *opts, int allow);

/* Open a client with opts (NULL: all defaults) and store it in *out.
 * 0, -SEGBUS_ENODAEMON (no daemon and standalone not allowed), -SEGBUS_EDENIED (the daemon
 * refused this uid/gid), -EPROTO (the daemon speaks another ring layout), -ENOMEM, or another
 * -errno from socket/mmap; segbus_last_error() says which path and why. The caller owns the
 * client and closes it with segbus_client_close(). */
SEGBUS_API int segbus_client_open(segbus_client_t **out, const segbus_options_t *opts);

/* Close the client: no new events; what was committed stays in the ring for the daemon (call
 * segbus_flush() first to wait for it). NULL is a no-op. */
SEGBUS_API void segbus_client_close(segbus_client_t *client);

/* Wait until every event this client committed before the call has been taken by the daemon
 * (durable once the daemon spools it: it fsyncs before it acknowledges). timeout_ms < 0 waits
 * without bound, including for a daemon to appear and adopt a standalone ring: pass a deadline
 * at process exit. 0 only checks. 0 when all were taken, -SEGBUS_ETIMEDOUT when the deadline
 * passed first (some events still in the ring: they are not lost, the daemon takes them later),
 * -SEGBUS_ENODAEMON when the deadline passed with no daemon draining this client's ring
 * (standalone, not adopted yet). Thread-safe. */
SEGBUS_API int segbus_flush(segbus_client_t *client, int64_t timeout_ms);

/* Counters of one client since it was opened (a forked child starts from the parent's counts
 * at the fork). */
struct segbus_client_stats {
    uint64_t sent;    /* events committed to the ring */
    uint64_t full;    /* calls that found the ring full (error or block timeout) */
    uint64_t dropped; /* events dropped under SEGBUS_FULL_DROP */
    uint64_t invalid; /* calls refused because the event broke a rule (nothing written) */
};
/* Fill *stats. Thread-safe (each counter is read atomically; together they are a near-
 * consistent snapshot). 0 or -EINVAL. */
SEGBUS_API int segbus_client_get_stats(const segbus_client_t *client,
                                       struct segbus_client_stats *stats);

/* The socket path the client used (or would use, with opts), e.g. for messages. Never NULL;
 * owned by the client/options. */
SEGBUS_API const char *segbus_client_socket(const segbus_client_t *client);

/* Detail of the last error of a segbus call on this thread, e.g.
 * "properties: invalid JSON at byte 17: unexpected character" or
 * "traits.company.name: invalid UTF-8 at byte 3". Empty string when the last call succeeded
 * or set no detail. Never NULL; valid until this thread's next segbus call. */
SEGBUS_API const char *segbus_last_error(void);

/* ---- events ------------------------------------------------------------------------------- */

/* The six calls of the Segment Spec. An event is encoded once, as a msgpack map whose keys are
 * Segment's JSON field names, and copied into the ring; the daemon forwards it as is:
 *   type         "track" | "identify" | "page" | "screen" | "group" | "alias"
 *   userId, anonymousId, event, name, category, groupId, previousId   (strings, when given)
 *   properties   (track, page, screen; a map, when given)
 *   traits       (identify, group; a map, when given)
 *   context      always; a map with "library": {"name": "segbus", "version": "<x.y.z>"}
 *                merged over the client's default context and the call's context
 *   integrations (a map, when given)
 *   timestamp    RFC 3339 string: the caller's as given, or now in UTC with milliseconds,
 *                e.g. "2026-11-28T14:13:30.123Z"
 *   messageId    the caller's, or a UUIDv7 in lowercase 8-4-4-4-12 hex form
 *   writeKey     when the client has one
 * Fields a call does not use (e.g. event on identify) are refused with -EINVAL, so a typo in
 * a struct initialiser is not silently lost. */
enum segbus_type {
    SEGBUS_TRACK = 1,
    SEGBUS_IDENTIFY,
    SEGBUS_PAGE,
    SEGBUS_SCREEN,
    SEGBUS_GROUP,
    SEGBUS_ALIAS
};
/* "track", "identify", ...; NULL for an unknown type. */
SEGBUS_API const char *segbus_type_name(enum segbus_type type);

/* Limits, as Segment's. */
#define SEGBUS_MAX_EVENT_BYTES 32768 /* one encoded event, all fields; over it: -EMSGSIZE */
#define SEGBUS_MAX_MESSAGE_ID 100    /* characters (Unicode code points) of a messageId */

/* A builder of a map value (properties, traits, context, integrations) written straight as
 * msgpack, with nesting: the root is a map; segbus_map_begin_map/array open a nested container
 * inside the innermost open one and segbus_map_end closes it. In a map every add takes a key;
 * in an array the key must be NULL. Strings are copied and checked for UTF-8.
 * Errors stick: the first one is kept (with its path, e.g. "products[1].name: invalid UTF-8 at
 * byte 3"), later adds do nothing, and an event call given the builder fails with that error.
 * Each add returns 0 or that error: -SEGBUS_EUTF8, -SEGBUS_EJSON (add_json), -EINVAL (key
 * NULL in a map or non-NULL in an array, end with nothing open, more than 30 levels below the
 * root: an event is at most 32 deep, as msgpack-c's default unpacker takes),
 * -EMSGSIZE (over 32 KB), -ENOMEM. Not thread-safe: one thread at a time per builder; a
 * finished builder may be read by several event calls at once. Reusable after
 * segbus_map_reset() (keeps its memory; the usual way on a hot path). */
SEGBUS_API segbus_map_t *segbus_map_new(void); /* NULL when out of memory */
SEGBUS_API void segbus_map_free(segbus_map_t *map);
SEGBUS_API void segbus_map_reset(segbus_map_t *map);
SEGBUS_API int segbus_map_add_str(segbus_map_t *map, const char *key, const char *value);
SEGBUS_API int segbus_map_add_strn(segbus_map_t *map, const char *key, const char *value,
                                   size_t len);
SEGBUS_API int segbus_map_add_int(segbus_map_t *map, const char *key, int64_t value);
SEGBUS_API int segbus_map_add_uint(segbus_map_t *map, const char *key, uint64_t value);
SEGBUS_API int segbus_map_add_double(segbus_map_t *map, const char *key, double value);
SEGBUS_API int segbus_map_add_bool(segbus_map_t *map, const char *key, int value);
SEGBUS_API int segbus_map_add_null(segbus_map_t *map, const char *key);
/* Any JSON value given as text (len bytes; SIZE_MAX: NUL-terminated), converted to msgpack. */
SEGBUS_API int segbus_map_add_json(segbus_map_t *map, const char *key, const char *json,
                                   size_t len);
SEGBUS_API int segbus_map_begin_map(segbus_map_t *map, const char *key);
SEGBUS_API int segbus_map_begin_array(segbus_map_t *map, const char *key);
SEGBUS_API int segbus_map_end(segbus_map_t *map);
/* The builder's sticky error (0 if none); its detail text is in *detail (static or owned by
 * the builder) when detail is not NULL. */
SEGBUS_API int segbus_map_error(const segbus_map_t *map, const char **detail);
/* Replace the builder's contents with a map already encoded as msgpack (data[0..len), exactly
 * one map value), e.g. by a language binding's converter. It is checked as the builder checks
 * what it is given: string keys, valid UTF-8, no bin/ext (they have no JSON form), nesting at
 * most 30 below the root, at most 32 KB; then copied. 0, or the sticky error it also keeps:
 * -SEGBUS_ENOTOBJECT (not a map), -SEGBUS_EUTF8, -EINVAL (malformed, trailing bytes, a non-string
 * key, bin/ext, too deep; the detail gives the byte offset), -EMSGSIZE, -ENOMEM. */
SEGBUS_API int segbus_map_set_msgpack(segbus_map_t *map, const void *data, size_t len);

/* The fields of one call. Zero-initialise (SEGBUS_MESSAGE_INIT or = {0}) and set what you
 * have; strings are NUL-terminated UTF-8 and are only read during the call. For properties,
 * traits, context and integrations give either the JSON object text (*_json) or a builder,
 * not both (-EINVAL). */
typedef struct segbus_message {
    const char *user_id;         /* userId; user_id or anonymous_id is required */
    const char *anonymous_id;    /* anonymousId */
    const char *message_id;      /* messageId, 1..100 characters; NULL: a new UUIDv7 */
    const char *timestamp;       /* RFC 3339 (e.g. 2026-11-28T14:13:30.123Z or +01:00 offset) */
    int64_t timestamp_ms;        /* Unix time in ms, used when timestamp is NULL; 0: now */
    const char *event;           /* track: required, non-empty */
    const char *name;            /* page, screen */
    const char *category;        /* page, screen */
    const char *group_id;        /* group: required */
    const char *previous_id;     /* alias: required (and user_id) */
    const char *properties_json; /* track, page, screen */
    const segbus_map_t *properties;
    const char *traits_json; /* identify, group */
    const segbus_map_t *traits;
    const char *context_json;
    const segbus_map_t *context;
    const char *integrations_json;
    const segbus_map_t *integrations;
} segbus_message_t;
#ifdef __cplusplus
#define SEGBUS_MESSAGE_INIT                                                                        \
    {                                                                                              \
    }
#else
#define SEGBUS_MESSAGE_INIT                                                                        \
    {                                                                                              \
        0                                                                                          \
    }
#endif

/* What an event call wrote (optional out-parameter of segbus_send and segbus_encode). */
typedef struct segbus_sent {
    const char *message_id; /* the caller's message_id, or generated_id */
    char generated_id[40];  /* the UUIDv7 when one was made, else "" */
    char timestamp[40];     /* the timestamp written (the caller's text if it fits, or now) */
    size_t bytes;           /* size of the encoded event */
} segbus_sent_t;

/* Record one event of the given type through the client: validate, encode, copy into the ring.
 * On any error nothing is written. Returns 0, SEGBUS_DROPPED (policy drop, ring full), or:
 *   -SEGBUS_ENOIDENTITY, -SEGBUS_ENOEVENT, -SEGBUS_ENOGROUPID, -SEGBUS_ENOPREVIOUS,
 *   -SEGBUS_ENOUSERID  a required field is missing or empty;
 *   -SEGBUS_EMESSAGEID messageId empty or over 100 characters;
 *   -SEGBUS_ETIMESTAMP timestamp not RFC 3339;
 *   -SEGBUS_EUTF8      a string is not valid UTF-8 (detail: field and byte);
 *   -SEGBUS_EJSON      a *_json text is not valid JSON (detail: field, byte, reason);
 *   -SEGBUS_ENOTOBJECT a *_json text is valid JSON but not an object;
 *   -EMSGSIZE          the encoded event is over 32 KB;
 *   -EINVAL            NULL client/message, unknown type, a field this type does not take,
 *                      both *_json and builder given, a builder with open containers;
 *   -EAGAIN            ring full (policy error, or block deadline passed);
 *   -SEGBUS_ENODAEMON  the standalone ring cannot take events (e.g. closed);
 *   -ENOMEM.
 * segbus_last_error() has the detail of any failure. sent (may be NULL) receives the messageId
 * and timestamp used. Thread-safe; no syscall on the fast path (no lock, no allocation after a
 * thread's first call). */
SEGBUS_API int segbus_send(segbus_client_t *client, enum segbus_type type,
                           const segbus_message_t *msg, segbus_sent_t *sent);
SEGBUS_API int segbus_track(segbus_client_t *client, const segbus_message_t *msg);
SEGBUS_API int segbus_identify(segbus_client_t *client, const segbus_message_t *msg);
SEGBUS_API int segbus_page(segbus_client_t *client, const segbus_message_t *msg);
SEGBUS_API int segbus_screen(segbus_client_t *client, const segbus_message_t *msg);
SEGBUS_API int segbus_group(segbus_client_t *client, const segbus_message_t *msg);
SEGBUS_API int segbus_alias(segbus_client_t *client, const segbus_message_t *msg);

/* Validate and encode one event exactly as segbus_send would, into buf[0..cap) instead of the
 * ring (e.g. to show or test what would be sent). client may be NULL (no write key, no default
 * context). *len receives the size. Same errors as segbus_send (no -EAGAIN), plus -ENOSPC
 * when cap is too small (*len then says how much is needed). Thread-safe. */
SEGBUS_API int segbus_encode(const segbus_client_t *client, enum segbus_type type,
                             const segbus_message_t *msg, void *buf, size_t cap, size_t *len,
                             segbus_sent_t *sent);

#ifdef __cplusplus
}
#endif
#endif /* SEGBUS_SEGBUS_H */
