/* plan.h: Segment tracking plans (Protocols) compiled into per-event rules and checked on
 * msgpack events. Handling of violations (allow/omit/block) belongs to the caller. */
#ifndef SEGBUS_PLAN_PLAN_H
#define SEGBUS_PLAN_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plan/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Segment's rule types (Public API names). COMMON applies to every event. */
enum sb_rule_type {
    SB_RULE_TRACK,
    SB_RULE_IDENTIFY,
    SB_RULE_GROUP,
    SB_RULE_PAGE,
    SB_RULE_SCREEN,
    SB_RULE_COMMON,
};

struct sb_plan;

/* Load a plan from JSON in any of Segment's shapes:
 *  - Config API: {"rules": {"events": [{"name", "rules", "version"}], "global",
 *    "identify_traits", "group_traits"}} (also without the "rules" wrapper, as in the seed);
 *  - Public API: [{"key", "type": "TRACK"|"IDENTIFY"|"GROUP"|"PAGE"|"SCREEN"|"COMMON",
 *    "version", "jsonSchema"}] (also inside {"rules": [...]} or {"data": {"rules": [...]}}).
 * An event's "rules" are a JSON Schema of the whole event; the seed's shorthand, where
 * rules.properties/context/traits are the schemas of those objects, is recognised and wrapped.
 * identify_traits/group_traits are schemas of the traits object unless they constrain
 * "traits" themselves. Every schema is compiled once. Errors: -EINVAL (err names the rule and
 * the place in its schema), -SEGBUS_EJSON/-SEGBUS_EUTF8 (err gives the byte offset), -ENOMEM.
 * The plan is immutable: check from any number of threads. */
int sb_plan_load_json(const char *json, size_t len, struct sb_plan **out, char *err, size_t errlen);
void sb_plan_free(struct sb_plan *plan);
size_t sb_plan_rule_count(const struct sb_plan *plan);

/* Which rule an event was checked against. */
struct sb_plan_match {
    bool planned;     /* a rule for this event exists (always true for non-track types
                         without rules: nothing to check, nothing unplanned) */
    const char *rule; /* the rule's key/name ("" for identify/group), NULL if none */
    int64_t version;  /* the rule's version (0 if none) */
    enum sb_rule_type type;
};

/* Check one event (a msgpack map with Segment's field names). Picks the rule by "type" and,
 * for track, "event" (page/screen by "name" when the plan has named rules);
 * context.protocols.event_version pins a version, else the lowest version is used. A track
 * event with no rule (or no rule of the pinned version) gets one SB_VIOLATION_UNPLANNED_EVENT
 * (path "event"). COMMON rules apply to every event. Violations are appended to out (which may
 * be NULL: then only the count matters and checking stops at the first).
 * Returns the number of violations (0: clean), -EINVAL if the event is not a well-formed
 * msgpack map, -ELOOP or -ENOMEM as sb_schema_validate. */
int sb_plan_check(const struct sb_plan *plan, const uint8_t *event, size_t len,
                  struct sb_violations *out, struct sb_plan_match *match);

/* sb_plan_check for an event whose shape is known: ev[0..len) already passed
 * sb_mp_check(ev, len, <= 256) (the pipeline's verify does that for every event a stage sees)
 * and its call type and name were read from it: t is the sb_rule_type of "type" (TRACK..SCREEN,
 * -1 for alias or an unknown type), name[0..nlen) the track "event" or page/screen "name" (NULL
 * if absent). Saves the check and the lookups that sb_plan_check does. */
int sb_plan_check_event(const struct sb_plan *plan, const uint8_t *ev, size_t len, int t,
                        const char *name, size_t nlen, struct sb_violations *out,
                        struct sb_plan_match *match);

#ifdef __cplusplus
}
#endif
#endif
