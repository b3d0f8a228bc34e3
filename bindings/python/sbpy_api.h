/* sbpy_api.h: the C functions that the SWIG interface (segbus.i) exposes as _segbus_ext.*; each
 * returns a new reference, or NULL with a Python exception set. */
#ifndef SEGBUS_BINDINGS_SBPY_API_H
#define SEGBUS_BINDINGS_SBPY_API_H

#include <Python.h>

/* Remember the classes whose instances the converter recognises (decimal.Decimal, uuid.UUID,
 * enum.Enum). Called once by segbus/__init__.py. */
PyObject *sbpy_setup(PyObject *decimal_type, PyObject *uuid_type, PyObject *enum_type);
/* (bytes or None, [warning, ...] or None): value converted to msgpack as an event field would be.
 */
PyObject *sbpy_pack(PyObject *value, int strict);
/* Values dropped as unserialisable since import, over all clients. */
unsigned long long sbpy_dropped(void);

#ifdef SBB_HAVE_CLIENT
/* Remember the helpers the event calls use: fmt_timestamp(datetime) -> str (analytics-python's
 * timezone guess and millisecond isoformat), warn(list of str) (logs dropped values). */
PyObject *sbpy_client_setup(PyObject *fmt_timestamp, PyObject *warn);
/* A capsule holding a segbus client; raises OSError/RuntimeError with the detail. policy is
 * enum segbus_full_policy; strict refuses unserialisable values with TypeError; flags: 1 = send
 * (without it the client only checks and encodes: no ring, no daemon needed), 2 = sync_mode
 * (each call waits up to sync_timeout_ms for the daemon to take its event). */
PyObject *sbpy_client_open(PyObject *socket, PyObject *write_key, int policy, long long block_ms,
                           int standalone, int strict, int flags, long long sync_timeout_ms);
PyObject *sbpy_client_close(PyObject *client);
/* segbus_flush() with the GIL released: its return code (0, -SEGBUS_ETIMEDOUT, ...). */
PyObject *sbpy_flush(PyObject *client, long long timeout_ms);
/* The client's counters as a dict. */
PyObject *sbpy_stats(PyObject *client);
/* One event call (type is enum segbus_type). The call-specific arguments: a = event (track), name
 * (page, screen), group_id (group), previous_id (alias); b = category (page, screen); body =
 * properties or traits. Returns analytics-python's (success, message); AssertionError for a missing
 * or wrongly typed argument, RuntimeError for an event over 32 KB, TypeError for an unserialisable
 * value in strict mode; None when the client is closed (after shutdown(): the caller opens a new
 * one and calls again). */
PyObject *sbpy_send(PyObject *client, int type, PyObject *user_id, PyObject *anonymous_id,
                    PyObject *a, PyObject *b, PyObject *body, PyObject *context,
                    PyObject *timestamp, PyObject *integrations, PyObject *message_id);
/* {"track": fn, ...}: the six module-level calls as C functions with analytics-python's
 * signatures, using dict["default_client"] (made by make_default() when None) and handing
 * results that are not a success to fallback(result, type, user_id, anonymous_id, a, b, body,
 * context, timestamp, integrations, message_id). */
PyObject *sbpy_module_functions(PyObject *dict, PyObject *make_default, PyObject *fallback);
#endif

#endif
