/* error.c: text for every return code, errno and segbus's own. */
#include <errno.h>
#include <string.h>

#include "segbus/segbus.h"

static const char *const segbus_error_text[SEGBUS_ELAST - SEGBUS_EBASE] = {
    [0] = "unknown segbus error",
    [SEGBUS_ENOIDENTITY - SEGBUS_EBASE] = "userId or anonymousId is required",
    [SEGBUS_ENOEVENT - SEGBUS_EBASE] = "track needs an event name",
    [SEGBUS_ENOGROUPID - SEGBUS_EBASE] = "group needs a groupId",
    [SEGBUS_ENOPREVIOUS - SEGBUS_EBASE] = "alias needs a previousId",
    [SEGBUS_ENOUSERID - SEGBUS_EBASE] = "alias needs a userId",
    [SEGBUS_EMESSAGEID - SEGBUS_EBASE] = "messageId must be 1 to 100 characters",
    [SEGBUS_EJSON - SEGBUS_EBASE] = "invalid JSON text",
    [SEGBUS_EUTF8 - SEGBUS_EBASE] = "invalid UTF-8 in a string",
    [SEGBUS_ETIMESTAMP - SEGBUS_EBASE] = "timestamp is not RFC 3339",
    [SEGBUS_ENOTOBJECT - SEGBUS_EBASE] = "value must be a JSON object",
    [SEGBUS_ENODAEMON - SEGBUS_EBASE] = "no segbusd is listening on the socket",
    [SEGBUS_EDENIED - SEGBUS_EBASE] = "segbusd refused the registration (uid/gid not allowed)",
    [SEGBUS_ETIMEDOUT - SEGBUS_EBASE] = "flush did not complete before its deadline",
    [SEGBUS_ECORRUPT - SEGBUS_EBASE] = "record failed its integrity check",
};

SEGBUS_API const char *segbus_strerror(int err)
{
    int code = err < 0 ? -err : err;
    if (err == 0)
        return "success";
    if (code > SEGBUS_EBASE && code < SEGBUS_ELAST)
        return segbus_error_text[code - SEGBUS_EBASE];
    if (code == EAGAIN)
        return "ring full (EAGAIN)";
    if (code == EMSGSIZE)
        return "event too large: 32 KB per event (EMSGSIZE)";
    if (code == EPROTO)
        return "shared memory layout mismatch (EPROTO)";
    /* strerror() text for the rest of errno; it is static for valid codes in glibc. */
    if (code < SEGBUS_EBASE)
        return strerrordesc_np(code) ? strerrordesc_np(code) : "unknown error";
    return "unknown error";
}
