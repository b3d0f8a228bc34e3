/* route.h: which destination takes which event: the output's `sources`, its event allow/deny
 * lists, then the event's `integrations` object read as Segment reads it:
 *
 *   - a key equal to the destination's integration name (the output's `integration`, else its
 *     `name`; case-sensitive, as Segment's destination names) decides: false excludes it, any
 *     other value (true, or an object of destination settings) includes it;
 *   - else "All" decides: false excludes, anything else includes;
 *   - no integrations object (or one that is not a map): included.
 *
 * allow/deny hold call types (track, identify, page, screen, group, alias) and track event
 * names; deny wins; an empty allow list allows everything. */
#ifndef SEGBUS_OUTPUTS_ROUTE_H
#define SEGBUS_OUTPUTS_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "pipeline/stage.h"

#ifdef __cplusplus
extern "C" {
#endif

enum sb_route_verdict {
    SB_ROUTE_TAKE,         /* deliver it */
    SB_ROUTE_SOURCE,       /* from a source that does not feed this output */
    SB_ROUTE_DENIED,       /* on the deny list */
    SB_ROUTE_NOT_ALLOWED,  /* not on a non-empty allow list */
    SB_ROUTE_INTEGRATIONS, /* switched off by the event's integrations object */
};

/* The verdict for one event (meta as sb_event_inspect filled it) from the named source (NULL:
 * none, e.g. a ring without ring.source). */
enum sb_route_verdict sb_route_check(const struct sb_output_config *c,
                                     const struct sb_event_meta *meta, const char *source_name);

/* Segment's reading of an integrations map (msgpack bytes; NULL or not a map: enabled) for the
 * destination called name[0..len). */
bool sb_route_integration_enabled(const uint8_t *integ, size_t integ_len, const char *name,
                                  size_t len);

#ifdef __cplusplus
}
#endif
#endif
