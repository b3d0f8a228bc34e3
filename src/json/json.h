/* json.h: JSON text <-> msgpack, the only two ways bytes cross between the two formats.
 * Implemented over simdjson (json_to_msgpack.cc) and by hand for the writer (msgpack_to_json). */
#ifndef SEGBUS_JSON_JSON_H
#define SEGBUS_JSON_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "common/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where and why a JSON text was refused. reason is a static string. */
struct sb_json_error {
    size_t offset;      /* byte offset of the first bad byte (best effort, never past len) */
    const char *reason; /* e.g. "unexpected character", "invalid UTF-8", "nesting too deep" */
};

/* Parse one JSON text and pack its value through pk (objects as maps, arrays as arrays,
 * integers as int/uint, other numbers as float64, strings as str). Trailing non-space bytes are
 * an error. Nesting deeper than 64 is refused. On failure nothing useful is in pk's output for
 * this value (callers pack into a scratch buffer they discard) and err says where.
 * 0, -SEGBUS_EJSON, -SEGBUS_EUTF8 or -ENOMEM. Thread-safe (per-thread parser). */
int sb_json_to_msgpack(const char *text, size_t len, msgpack_packer *pk, struct sb_json_error *err);

/* Append the JSON text of the one msgpack value at data[0..len) to out; *consumed is set to the
 * bytes it took. Strings are escaped as RFC 8259 requires (control characters, quotes,
 * backslash; invalid UTF-8 replaced by U+FFFD), doubles in the shortest form that round-trips,
 * NaN and +-Inf as null, binary as base64 text, ext as null. Map keys that are not strings are
 * written as their JSON text in a string.
 * 0, -EINVAL (truncated or malformed msgpack, nesting > 64) or -ENOMEM. */
int sb_msgpack_to_json(const uint8_t *data, size_t len, size_t *consumed, struct sb_buf *out);

#ifdef __cplusplus
}
#endif
#endif
