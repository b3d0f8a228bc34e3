/* sbpy.h: internals of the Python module _segbus_ext shared by its C files and the SWIG
 * interface (segbus.i): the value converter and the event calls. */
#ifndef SEGBUS_BINDINGS_SBPY_H
#define SEGBUS_BINDINGS_SBPY_H

#include <Python.h>
#include <stdint.h>

#include <msgpack.h>

#include "../common/sb_mp.h"

/* One conversion of a Python value into cv->buf (appended). */
struct sbpy_conv {
    msgpack_sbuffer *buf;
    int strict;       /* refuse (TypeError) instead of dropping */
    const char *root; /* field name the path starts with, e.g. "properties" */
    int depth;
    struct {
        PyObject *key; /* borrowed for the duration of the walk; NULL for a list index */
        Py_ssize_t index;
    } path[SB_MP_MAX_DEPTH + 1];
    PyObject *warnings; /* list of str, one per dropped value, or NULL */
    uint64_t dropped;
};

extern uint64_t sbpy_dropped_total;

int sbpy_convert_setup(PyObject *decimal_type, PyObject *uuid_type, PyObject *enum_type);
void sbpy_conv_init(struct sbpy_conv *cv, msgpack_sbuffer *buf, int strict);
void sbpy_conv_done(struct sbpy_conv *cv);
/* Append value's msgpack to cv->buf. 0 packed, 1 value dropped (nothing appended; only when not
 * strict), -1 with a Python exception set (TypeError in strict mode, MemoryError...). */
int sbpy_conv_pack(struct sbpy_conv *cv, const char *root, PyObject *value);

#endif
