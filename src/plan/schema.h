/* schema.h: JSON Schema draft-07 compiled once, validated on msgpack bytes (no DOM). */
#ifndef SEGBUS_PLAN_SCHEMA_H
#define SEGBUS_PLAN_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Segment's violation types. */
enum sb_violation_kind {
    SB_VIOLATION_REQUIRED,           /* a required property is missing */
    SB_VIOLATION_TYPE,               /* invalid type */
    SB_VIOLATION_VALUE,              /* value not permitted: enum, const, pattern, range, length,
                                        counts, uniqueness, combinators (allOf/anyOf/oneOf/not) */
    SB_VIOLATION_UNPLANNED_PROPERTY, /* a property additionalProperties: false does not allow */
    SB_VIOLATION_UNPLANNED_EVENT,    /* no rule in the plan for this event (plan level) */
};

/* One violation. path is the instance path in Segment's dotted form
 * ("properties.products.1.price", "" for the whole value); pointer is the same place as an
 * RFC 6901 JSON Pointer ("/properties/products/1/price"), unambiguous when names contain dots,
 * for an 'omit' mode that drops the property. For REQUIRED both name the missing property. For
 * UNPLANNED_PROPERTY they name the property to drop. keyword is the schema keyword that failed
 * (static string); reason is a sentence for logs. */
struct sb_violation {
    enum sb_violation_kind kind;
    const char *keyword;
    char *path;
    char *pointer;
    char *reason;
};

/* A growable list of violations; init with {0}. Collection stops after `limit` entries when
 * limit is non-zero (truncated is set then). */
struct sb_violations {
    struct sb_violation *items;
    size_t count, cap;
    size_t limit;
    bool truncated;
};

void sb_violations_clear(struct sb_violations *v); /* forget the entries, keep the memory */
void sb_violations_free(struct sb_violations *v);
const char *sb_violation_kind_name(enum sb_violation_kind kind); /* "Required", "Type", ... */

struct sb_schema;

/* Compile a schema from JSON text or from msgpack bytes (as sb_json_to_msgpack makes). On error
 * returns -EINVAL (or -SEGBUS_EJSON/-SEGBUS_EUTF8 for bad JSON, -ENOMEM) and writes a message
 * naming the place (a JSON Pointer into the schema, or the JSON byte offset) into err[errlen].
 * $ref may point anywhere in the document, to $id-named schemas and anchors, and to the draft-07
 * meta-schema; other remote references are an error. format is an annotation only.
 * The result is immutable: validate from any number of threads. */
int sb_schema_compile_json(const char *json, size_t len, struct sb_schema **out, char *err,
                           size_t errlen);
int sb_schema_compile_mp(const uint8_t *mp, size_t len, struct sb_schema **out, char *err,
                         size_t errlen);
void sb_schema_free(struct sb_schema *schema);

/* Validate the msgpack value at inst[0..len) (exactly one value). Returns 1 if valid, 0 if not
 * (then, if out is non-NULL, the violations are appended to it), -EINVAL if inst is not one
 * well-formed msgpack value, -ELOOP if validation recursed deeper than 256 schemas (a $ref
 * cycle that consumes no input, or absurd nesting), -ENOMEM. With out == NULL it stops at the
 * first failure (fastest). */
int sb_schema_validate(const struct sb_schema *schema, const uint8_t *inst, size_t len,
                       struct sb_violations *out);

/* sb_schema_validate for bytes the caller already passed through sb_mp_check(inst, len, 256)
 * (the plan checks an event once for all its rules). */
int sb_schema_validate_checked(const struct sb_schema *schema, const uint8_t *inst, size_t len,
                               struct sb_violations *out);

/* Check that a JSON text is a valid draft-07 schema (against the meta-schema) and compiles.
 * 0 or an error as for sb_schema_compile_json, with the first problem in err. */
int sb_schema_lint_json(const char *json, size_t len, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
