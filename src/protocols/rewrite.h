/* rewrite.h: one-pass msgpack map rewriting by path (drop, replace, hash, keep-only, insert),
 * used by omit (plan stage) and by transforms. Reads with the cursor, writes with msgpack-c. */
#ifndef SEGBUS_PROTOCOLS_REWRITE_H
#define SEGBUS_PROTOCOLS_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

enum sb_rw_op {
    SB_RW_DROP,  /* remove the value (and its key) */
    SB_RW_SET,   /* replace it with value[0..value_len) (msgpack), inserting it if absent */
    SB_RW_HASH,  /* replace it with hex SHA-256(salt || bytes) (strings: their bytes; others: JSON)
                  */
    SB_RW_KEEP,  /* in the parent map, keep only keys named by KEEP rules */
    SB_RW_TITLE, /* a string: Title Case each space-separated word (ASCII) */
};

/* One path segment: a map key, or (for exact-index rules) an array index in decimal. */
struct sb_rw_seg {
    char *s;
    size_t len;
};

struct sb_rw_rule {
    enum sb_rw_op op;
    struct sb_rw_seg *segs;
    size_t n;
    bool arrays_by_index; /* false: arrays are transparent (rule applies to every element) */
    const uint8_t *value; /* SET */
    size_t value_len;
    const uint8_t *salt; /* HASH */
    size_t salt_len;
};

/* Parse a path: "/a/b~1c" is an RFC 6901 pointer, anything else is dot-separated ("a.b c").
 * Allocates segs. 0, -EINVAL (empty path) or -ENOMEM. */
int sb_rw_path_parse(const char *path, struct sb_rw_seg **segs, size_t *n);
void sb_rw_segs_free(struct sb_rw_seg *segs, size_t n);

/* Rewrite the msgpack map in[0..len) applying rules, appending the result to out. Rules that
 * match nothing change nothing. 1 if anything changed, 0 if not (out then holds a copy),
 * -EINVAL if in is not a map of well-formed msgpack (nested at most 64 deep), -ENOMEM. */
int sb_rw_apply(const uint8_t *in, size_t len, const struct sb_rw_rule *rules, size_t n_rules,
                struct sb_buf *out);

/* Where the root map's values went in the output: for each of keys[0..n), off[i] is the
 * value's offset from the start of what the rewrite appended and len[i] its size, or off[i] =
 * SIZE_MAX when the key is not in the output (at most 16 keys). Lets a caller find fields of the
 * new event (the pipeline's metadata) without walking it again. */
struct sb_rw_top {
    const char *const *keys;
    size_t n;
    size_t *off, *len;
};

/* sb_rw_apply, also filling *top (when non-NULL and the result is 0 or 1). Note that the root
 * map is rewritten even when no rule reaches below it (unlike nested maps, copied raw). */
int sb_rw_apply_top(const uint8_t *in, size_t len, const struct sb_rw_rule *rules, size_t n_rules,
                    struct sb_buf *out, struct sb_rw_top *top);

/* Title Case as the seed's middleware: split on ' ', first byte upper, rest lower (ASCII). */
void sb_rw_title_case(char *s, size_t len);

#ifdef __cplusplus
}
#endif
#endif
