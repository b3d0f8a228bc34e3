/* json_internal.h: pieces shared by the JSON reader and writer (not for other modules). */
#ifndef SEGBUS_JSON_INTERNAL_H
#define SEGBUS_JSON_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "json/json.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Deepest nesting of arrays/objects accepted in either direction. */
#define SB_JSON_MAX_DEPTH 64

/* A strict RFC 8259 checker that stops at the first error: 0 if text is one valid JSON value
 * under segbus's limits (nesting <= 64, integers within int64/uint64, numbers within double),
 * else -SEGBUS_EJSON or -SEGBUS_EUTF8 with err set. Only run after simdjson refused a text,
 * because simdjson's errors carry no offset. */
int sb_json_locate(const char *text, size_t len, struct sb_json_error *err);

/* Shortest text that reads back as exactly d (std::to_chars), with ".0" added when it would
 * otherwise read back as an integer. d must be finite. Returns the length (< 32). */
size_t sb_json_format_double(double d, char out[32]);
size_t sb_json_format_float(float f, char out[32]);

/* Length of the valid UTF-8 sequence (RFC 3629: no overlongs, no surrogates, <= U+10FFFF) at
 * p[0..n), or 0 if the bytes there are not one. */
size_t sb_utf8_seq(const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
