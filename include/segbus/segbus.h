/* segbus.h: the public API of libsegbus, and its specification.
 *
 * libsegbus lets any number of processes record Segment-style events (track, identify, page,
 * screen, group, alias) into a lock-free ring in shared memory, from which the segbusd daemon
 * drains them. This header is the only public one; everything a caller may rely on is here.
 *
 * Conventions, for every function below unless it says otherwise:
 *   - Success is 0 (or a count); failure is a negative errno (-EAGAIN ring full, -EMSGSIZE too
 *     big, -EINVAL bad call, -EPROTO layout mismatch) or one of the SEGBUS_E* codes below.
 *     segbus_strerror() turns any of them into text.
 *   - Passing NULL to a function that closes or frees something is a no-op.
 *   - Objects are opaque; the caller owns what it creates and frees it with the matching call.
 */
#ifndef SEGBUS_SEGBUS_H
#define SEGBUS_SEGBUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SEGBUS_BUILDING) && defined(__GNUC__)
#define SEGBUS_API __attribute__((visibility("default")))
#else
#define SEGBUS_API
#endif

/* ---- version ------------------------------------------------------------------------------ */

#define SEGBUS_VERSION_MAJOR 0
#define SEGBUS_VERSION_MINOR 1
#define SEGBUS_VERSION_PATCH 0
#define SEGBUS_VERSION_STRING "0.1.0"
/* One number that grows with every release: 0xMMmmpp. */
#define SEGBUS_VERSION_NUM                                                                        \
    ((SEGBUS_VERSION_MAJOR << 16) | (SEGBUS_VERSION_MINOR << 8) | SEGBUS_VERSION_PATCH)

/* The version of the library actually loaded (may differ from the header's). Never NULL. */
SEGBUS_API const char *segbus_version(void);

/* ---- errors ------------------------------------------------------------------------------- */

/* Errors of segbus's own, beyond errno. All are returned negated, like errno values.
 * They start far above any errno so that both fit in one int. */
enum segbus_error {
    SEGBUS_EBASE = 10000,
    SEGBUS_ENOIDENTITY,  /* neither userId nor anonymousId was given */
    SEGBUS_ENOEVENT,     /* track without an event name */
    SEGBUS_ENOGROUPID,   /* group without a groupId */
    SEGBUS_ENOPREVIOUS,  /* alias without previousId */
    SEGBUS_ENOUSERID,    /* alias without userId */
    SEGBUS_EMESSAGEID,   /* messageId longer than 100 characters or empty */
    SEGBUS_EJSON,        /* a JSON text given by the caller is not valid JSON */
    SEGBUS_EUTF8,        /* a string given by the caller is not valid UTF-8 */
    SEGBUS_ETIMESTAMP,   /* a timestamp is not RFC 3339 */
    SEGBUS_ENOTOBJECT,   /* properties/traits/context/integrations must be a JSON object */
    SEGBUS_ENODAEMON,    /* no daemon is listening on the socket */
    SEGBUS_EDENIED,      /* the daemon refused the registration (uid/gid not allowed) */
    SEGBUS_ETIMEDOUT,    /* a flush did not complete within its deadline */
    SEGBUS_ECORRUPT,     /* a record or file failed its integrity check */
    SEGBUS_ELAST
};

/* Text for a return code of any segbus function (negative errno or -SEGBUS_E*).
 * Never NULL; the string is static. Thread-safe. */
SEGBUS_API const char *segbus_strerror(int err);

/* ---- ring --------------------------------------------------------------------------------- */



/* ---- client ------------------------------------------------------------------------------- */



/* ---- events ------------------------------------------------------------------------------- */



#ifdef __cplusplus
}
#endif
#endif /* SEGBUS_SEGBUS_H */
