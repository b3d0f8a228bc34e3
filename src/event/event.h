/* event.h: the event module's internals: encoding one Segment event, ids, clock, UTF-8, the
 * per-thread scratch memory and last-error text that the client and the CLI share. */
#ifndef SEGBUS_EVENT_EVENT_H
#define SEGBUS_EVENT_EVENT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "segbus/segbus.h"

/* What a client adds to every event, prepared once at open. */
struct sb_event_cfg {
    /* The default context's top-level entries (msgpack key/value pairs, no map header, without
     * any "library" entry) and their count; NULL/0 when none. */
    const uint8_t *ctx_entries;
    size_t ctx_entries_len;
    uint32_t ctx_count;
    /* "context" key + the whole map value with library and the defaults: written as is when the
     * call gives no context of its own (the common case, one memcpy). */
    const uint8_t *ctx_full;
    size_t ctx_full_len;
    const char *write_key; /* NULL when none */
    size_t write_key_len;
};

/* Prepare cfg's context pieces from the default context's msgpack map value (or NULL) into
 * *storage (malloc'ed; the caller frees it after cfg is no longer used). 0 or -ENOMEM/-EINVAL. */
int sb_event_cfg_context(struct sb_event_cfg *cfg, const uint8_t *ctx_map, size_t len,
                         uint8_t **storage);

/* Validate msg for type and encode it into the calling thread's scratch buffer.
 * On success *out points at the event (valid until this thread's next encode) and *len is its
 * size (<= SEGBUS_MAX_EVENT_BYTES). Errors as segbus_send's, with the detail set.
 * cfg may be NULL (no defaults). sent may be NULL. */
int sb_event_encode(const struct sb_event_cfg *cfg, enum segbus_type type,
                    const segbus_message_t *msg, const uint8_t **out, size_t *len,
                    segbus_sent_t *sent);

/* Convert one JSON object text to a msgpack map written at w (for options and the builder).
 * field names the value in error details. 0 or -SEGBUS_EJSON/-SEGBUS_EUTF8/-SEGBUS_ENOTOBJECT/
 * -EMSGSIZE/-ENOMEM with the detail set. Appends to buf. */
struct sb_buf;
int sb_event_json_object(const char *field, const char *json, size_t len, struct sb_buf *buf);

/* UTF-8: 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF), else 0 with
 * *bad the offset of the first byte of the first bad sequence. */
int sb_utf8_valid(const char *s, size_t n, size_t *bad);
/* Number of code points in valid UTF-8. */
size_t sb_utf8_count(const char *s, size_t n);

/* RFC 3339 date-time check (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)). 1 valid, 0 not. */
int sb_rfc3339_valid(const char *s, size_t n);

/* Now, from the vDSO clock (no syscall). */
void sb_clock_now(int64_t *sec, uint32_t *nsec);
/* Format an instant as "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 chars + NUL) into out[25].
 * Per-thread cache of the seconds part. */
void sb_timestamp_format(int64_t sec, uint32_t msec, char out[25]);
/* A UUIDv7 for the instant (ms precision in the first 48 bits, sub-ms fraction in rand_a,
 * kept strictly increasing per thread, 62 random bits from the per-thread ChaCha20) as
 * lowercase 8-4-4-4-12 text into out[37]; the 16 bytes into raw when not NULL. */
void sb_uuid7(int64_t sec, uint32_t nsec, char out[37], uint8_t raw[16]);
/* 64 bits from the per-thread CSPRNG (ChaCha20 keyed from getrandom(), re-keyed after fork). */
uint64_t sb_random_u64(void);
/* The ChaCha20 block function (RFC 8439 2.3) exposed for its test vector. */
void sb_chacha20_block(const uint32_t in[16], uint32_t out[16]);

/* Per-thread scratch: SB_SCRATCH_BYTES usable bytes plus slack (SB_SCRATCH_ALLOC in all), allocated
 * on the thread's first call, freed at thread exit. NULL when out of memory. Two independent
 * buffers. */
#define SB_SCRATCH_BYTES (SEGBUS_MAX_EVENT_BYTES)
#define SB_SCRATCH_ALLOC (SB_SCRATCH_BYTES + 1024)
uint8_t *sb_scratch_event(void);
uint8_t *sb_scratch_temp(void);

/* Last-error detail of this thread (segbus_last_error()). */
void sb_err_clear(void);
__attribute__((format(printf, 1, 2))) void sb_err_set(const char *fmt, ...);
/* Set the detail and return err (for "return sb_err(-EINVAL, ...)"). */
__attribute__((format(printf, 2, 3))) int sb_err(int err, const char *fmt, ...);

/* Skip one msgpack value in [p, end); the next position or NULL if malformed/truncated or
 * nested deeper than 64. */
const uint8_t *sb_event_skip(const uint8_t *p, const uint8_t *end);
/* Containers nested in the one value at p (0 for a scalar, 1 for [] or {}), or -1 if malformed
 * or deeper than 64. */
int sb_event_depth(const uint8_t *p, const uint8_t *end);

/* An event is at most this many containers deep (its own map included), so that msgpack-c's
 * default unpacker (MSGPACK_EMBED_STACK_SIZE 32) and the daemon's JSON writer take every event a
 * producer accepts: a properties/traits/context/integrations map may hold 30 levels below it. */
#define SB_EVENT_MAX_DEPTH 32
#define SB_PAYLOAD_MAX_DEPTH (SB_EVENT_MAX_DEPTH - 1)

/* Internal view of a builder, for the encoder. */
struct sb_map_view {
    const uint8_t *entries; /* root map entries, no header */
    size_t len;
    uint32_t count;
    int err;            /* sticky error, or -EINVAL if containers are still open */
    const char *detail; /* the sticky error's detail */
};
void sb_map_get_view(const segbus_map_t *map, struct sb_map_view *view);

/* segbus_map_set_msgpack without the per-item check, for the Python and Ruby bindings' own
 * converters only: their output is well-formed by construction (str keys, UTF-8 from the
 * language's own strings, no bin/ext, depth <= 32; their tests compare it byte for byte with
 * the msgpack packages' packers) and the check was a tenth of a Python track(). Checks the root
 * map header and the 32 KB limit. 0, -SEGBUS_ENOTOBJECT, -EMSGSIZE, -ENOMEM, -EINVAL. */
int sb_map_set_msgpack_trusted(segbus_map_t *map, const void *data, size_t len);

#endif
