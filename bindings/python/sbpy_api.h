/* sbpy_api.h: the C functions that the SWIG interface (segbus.i) exposes as _segbus_ext.*; each
 * returns a new reference, or NULL with a Python exception set. */
#ifndef SEGBUS_BINDINGS_SBPY_API_H
#define SEGBUS_BINDINGS_SBPY_API_H

#include <Python.h>

/* Remember the classes whose instances the converter recognises (decimal.Decimal, uuid.UUID,
 * enum.Enum). Called once by segbus/__init__.py. */
PyObject *sbpy_setup(PyObject *decimal_type, PyObject *uuid_type, PyObject *enum_type);
/* (bytes or None, [warning, ...] or None): value converted to msgpack as an event field would be. */
PyObject *sbpy_pack(PyObject *value, int strict);
/* Values dropped as unserialisable since import, over all clients. */
unsigned long long sbpy_dropped(void);

#endif
