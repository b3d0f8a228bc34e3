/* sbpy_module.c: module-level functions of _segbus_ext that need no client: setup, and
 * segbus.to_msgpack() (the converter on its own, for tests and for callers who want the bytes). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "sbpy.h"
#include "sbpy_api.h"

PyObject *sbpy_setup(PyObject *decimal_type, PyObject *uuid_type, PyObject *enum_type)
{
    if (sbpy_convert_setup(decimal_type, uuid_type, enum_type) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyObject *sbpy_pack(PyObject *value, int strict)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    struct sbpy_conv cv;
    sbpy_conv_init(&cv, &buf, strict);
    PyObject *out = NULL;
    int rc = sbpy_conv_pack(&cv, "value", value);
    if (rc >= 0) {
        PyObject *bytes = rc == 0 ? PyBytes_FromStringAndSize(buf.data, (Py_ssize_t)buf.size)
                                  : (Py_INCREF(Py_None), Py_None);
        if (bytes) {
            out = Py_BuildValue("(NO)", bytes, cv.warnings ? cv.warnings : Py_None);
        }
    }
    sbpy_conv_done(&cv);
    msgpack_sbuffer_destroy(&buf);
    return out;
}

unsigned long long sbpy_dropped(void)
{
    return sbpy_dropped_total;
}
