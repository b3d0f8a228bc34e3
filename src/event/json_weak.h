/* json_weak.h: TEMPORARY until src/json lands in main: a weak reference to the converter so the
 * event module links without it (the JSON-text paths then fail with -ENOSYS). */
#ifndef SEGBUS_EVENT_JSON_WEAK_H
#define SEGBUS_EVENT_JSON_WEAK_H
#include "json/json.h"
#pragma weak sb_json_to_msgpack
#define SB_JSON_AVAILABLE() (sb_json_to_msgpack != NULL)
#endif
