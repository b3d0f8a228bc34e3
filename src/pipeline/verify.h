/* verify.h: the first stage: is this record a valid Segment event? Also the inspector that
 * fills struct sb_event_meta from an event's msgpack bytes.
 *
 * Valid means: one msgpack map and nothing after it, at most 32 KB; string keys; `type` one of
 * the six calls; `userId` or `anonymousId` a non-empty string; `event` for track, `groupId` for
 * group, `previousId` and `userId` for alias; `messageId` a string of 1..100 bytes;
 * `properties`, `traits`, `context`, `integrations` maps when present. Everything else is
 * dropped with a reason and counted; no input crashes it (fuzz/verify.c).
 */
#ifndef SEGBUS_PIPELINE_VERIFY_H
#define SEGBUS_PIPELINE_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/stage.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Drop reasons of verify, also the return values of sb_event_inspect (as -1 - reason). */
enum sb_verify_reason {
    SB_VERIFY_MALFORMED,      /* not decodable msgpack, or bytes after the map */
    SB_VERIFY_NOT_A_MAP,      /* the top value is not a map */
    SB_VERIFY_TOO_LARGE,      /* more than 32 KB */
    SB_VERIFY_NO_TYPE,        /* no `type` */
    SB_VERIFY_BAD_TYPE,       /* `type` not one of the six */
    SB_VERIFY_NO_IDENTITY,    /* neither userId nor anonymousId */
    SB_VERIFY_NO_EVENT,       /* track without event */
    SB_VERIFY_NO_GROUP_ID,    /* group without groupId */
    SB_VERIFY_NO_PREVIOUS_ID, /* alias without previousId */
    SB_VERIFY_NO_USER_ID,     /* alias without userId */
    SB_VERIFY_NO_MESSAGE_ID,  /* no messageId */
    SB_VERIFY_BAD_MESSAGE_ID, /* messageId not a string of 1..100 bytes */
    SB_VERIFY_BAD_FIELD,      /* a known field of the wrong kind (properties not a map, ...) */
    SB_VERIFY_REASON_COUNT
};
extern const char *const sb_verify_reasons[]; /* names, NULL-terminated */

/* Check data[0..len) and fill meta's inspect fields. 0 if valid, else -1 - enum
 * sb_verify_reason. Pure function of the bytes; never reads past len. */
int sb_event_inspect(const uint8_t *data, size_t len, struct sb_event_meta *meta);

/* A quick guess at an event's messageId without decoding it: the string after the first
 * "messageId" key text in the bytes (which may sit in a nested map, or be no messageId at all).
 * Only for hints such as sb_dedup_prefetch: 1 with *id and *len set, or 0. */
int sb_event_guess_message_id(const uint8_t *data, size_t len, const uint8_t **id, size_t *id_len);

/* The verify stage. NULL on -ENOMEM. */
struct sb_stage *sb_verify_stage_new(void);

#ifdef __cplusplus
}
#endif
#endif
