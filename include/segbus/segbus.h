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

/* What a write does when the ring has no room for the record. */
typedef enum segbus_full_policy {
    SEGBUS_FULL_ERROR = 0, /* return -EAGAIN at once (counted as SEGBUS_DROP_FULL_ERROR) */
    SEGBUS_FULL_BLOCK = 1, /* wait for room up to the block timeout, then -SEGBUS_ETIMEDOUT
                              (counted as SEGBUS_DROP_FULL_TIMEOUT) */
    SEGBUS_FULL_DROP = 2,  /* discard the record and return SEGBUS_DROPPED (counted as
                              SEGBUS_DROP_FULL_DROP) */
} segbus_full_policy_t;

/* Positive return of a write under SEGBUS_FULL_DROP: the record was discarded and counted. */
#define SEGBUS_DROPPED 1

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
    segbus_full_policy_t full_policy; /* default SEGBUS_FULL_ERROR */
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
 * -SEGBUS_ETIMEDOUT (ring full past the block timeout under SEGBUS_FULL_BLOCK).
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
SEGBUS_API int segbus_producer_set_full_policy(segbus_producer_t *p, segbus_full_policy_t policy,
                                               int block_timeout_ms);

/* Largest payload one record may have on this handle's ring. */
SEGBUS_API size_t segbus_producer_max_payload(const segbus_producer_t *p);

/* Copy the counters into *st. Errors: -EINVAL. Thread-safe (counters are read one by one). */
SEGBUS_API int segbus_producer_stats(const segbus_producer_t *p, segbus_producer_stats_t *st);

/* Text name of a drop reason ("full_error", "full_drop", ...), for logs and metrics. */
SEGBUS_API const char *segbus_drop_reason_name(segbus_drop_reason_t reason);

/* Unregister and unmap. Does not flush (call segbus_producer_flush() first if you need it),
 * but if the daemon went away it tries once to hand the ring to a new daemon so that
 * committed records are not lost. No claim may be open and no other thread may use `p`.
 * NULL is a no-op. */
SEGBUS_API void segbus_producer_close(segbus_producer_t *p);

/* ---- client ------------------------------------------------------------------------------- */



/* ---- events ------------------------------------------------------------------------------- */



#ifdef __cplusplus
}
#endif
#endif /* SEGBUS_SEGBUS_H */
