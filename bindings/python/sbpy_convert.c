/* sbpy_convert.c: Python values -> msgpack, in C, with analytics-python's `clean` semantics:
 * what has a JSON form is packed straight through msgpack-c's packer (no JSON text in between);
 * what has none is dropped with a warning naming its field path (or refused with TypeError in
 * strict mode). Used by the SWIG module _segbus_ext for properties, traits, context and
 * integrations. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>

#include "sbpy.h"

/* Types and callables looked up once by sbpy_setup(): Decimal, UUID and Enum are Python classes,
 * so identifying their instances needs the class objects. */
static PyObject *sbpy_decimal_type, *sbpy_uuid_type, *sbpy_enum_type;
static int sbpy_datetime_ready;

/* Values dropped since import, over all clients (read by segbus.dropped_values()). Only touched
 * with the GIL held. */
uint64_t sbpy_dropped_total;

int sbpy_convert_setup(PyObject *decimal_type, PyObject *uuid_type, PyObject *enum_type)
{
    if (!sbpy_datetime_ready) {
        PyDateTime_IMPORT;
        if (!PyDateTimeAPI)
            return -1;
        sbpy_datetime_ready = 1;
    }
    Py_XINCREF(decimal_type);
    Py_XINCREF(uuid_type);
    Py_XINCREF(enum_type);
    Py_XSETREF(sbpy_decimal_type, decimal_type);
    Py_XSETREF(sbpy_uuid_type, uuid_type);
    Py_XSETREF(sbpy_enum_type, enum_type);
    return 0;
}

void sbpy_conv_init(struct sbpy_conv *cv, msgpack_sbuffer *buf, int strict)
{
    cv->buf = buf;
    cv->strict = strict;
    cv->root = NULL;
    cv->depth = 0;
    cv->warnings = NULL;
    cv->dropped = 0;
}

void sbpy_conv_done(struct sbpy_conv *cv)
{
    Py_CLEAR(cv->warnings);
}

/* "properties.products[1].price" for the value at the current depth. New reference or NULL. */
static PyObject *conv_path(struct sbpy_conv *cv)
{
    PyObject *out = PyUnicode_FromString(cv->root ? cv->root : "value");
    for (int i = 0; out && i < cv->depth; i++) {
        PyObject *part;
        if (cv->path[i].key) {
            if (PyUnicode_Check(cv->path[i].key))
                part = PyUnicode_FromFormat(".%U", cv->path[i].key);
            else
                part = PyUnicode_FromFormat(".%R", cv->path[i].key);
        } else {
            part = PyUnicode_FromFormat("[%zd]", cv->path[i].index);
        }
        if (!part) {
            Py_CLEAR(out);
            break;
        }
        PyUnicode_Append(&out, part);
        Py_DECREF(part);
    }
    return out;
}

/* A value (or a key) with no JSON form at the current path. In strict mode: TypeError, return -1.
 * Otherwise: a warning is queued (emitted after the call by the Python layer, so that a logging
 * handler that itself records events cannot re-enter a half-built buffer), the drop is counted,
 * and 1 tells the caller to leave the value out. */
static int conv_drop(struct sbpy_conv *cv, PyObject *value, const char *why)
{
    PyObject *path = conv_path(cv);
    if (!path)
        return -1;
    PyObject *text =
        PyUnicode_FromFormat("%U: %s (value of type %s)", path, why, Py_TYPE(value)->tp_name);
    Py_DECREF(path);
    if (!text)
        return -1;
    if (cv->strict) {
        PyErr_SetObject(PyExc_TypeError, text);
        Py_DECREF(text);
        return -1;
    }
    if (!cv->warnings && !(cv->warnings = PyList_New(0))) {
        Py_DECREF(text);
        return -1;
    }
    int rc = PyList_Append(cv->warnings, text);
    Py_DECREF(text);
    if (rc < 0)
        return -1;
    cv->dropped++;
    sbpy_dropped_total++;
    return 1;
}

static int pack_utf8(struct sbpy_conv *cv, const char *s, Py_ssize_t n)
{
    if (sb_w_str(cv->buf, s, (size_t)n)) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int pack_str(struct sbpy_conv *cv, PyObject *s)
{
    Py_ssize_t n;
    const char *p;
    if (PyUnicode_IS_COMPACT_ASCII(s)) { /* the common case: the bytes are the UTF-8 */
        n = PyUnicode_GET_LENGTH(s);
        p = (const char *)(((PyASCIIObject *)s) + 1);
        return pack_utf8(cv, p, n);
    }
    p = PyUnicode_AsUTF8AndSize(s, &n);
    if (!p) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -1;
        PyErr_Clear();
        return conv_drop(cv, s, "string is not valid UTF-8 (a lone surrogate)");
    }
    return pack_utf8(cv, p, n);
}

/* Pack the str() of obj (UUIDs, integers beyond 64 bits). */
static int pack_as_text(struct sbpy_conv *cv, PyObject *obj)
{
    PyObject *s = PyObject_Str(obj);
    if (!s)
        return -1;
    int rc = pack_str(cv, s);
    Py_DECREF(s);
    return rc;
}

/* Integers: int64 or uint64 when they fit; beyond that the decimal digits as a string, so that
 * no digit is lost (a JSON number that large would be rounded to a double by most readers). */
static int pack_int(struct sbpy_conv *cv, PyObject *v)
{
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (!overflow) {
        if (x == -1 && PyErr_Occurred())
            return -1;
        return sb_w_int(cv->buf, x) ? (PyErr_NoMemory(), -1) : 0;
    }
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(v);
        if (!(u == (unsigned long long)-1 && PyErr_Occurred()))
            return sb_w_uint(cv->buf, u) ? (PyErr_NoMemory(), -1) : 0;
        PyErr_Clear();
    }
    return pack_as_text(cv, v);
}

static int pack_double(struct sbpy_conv *cv, PyObject *obj, double d)
{
    if (!isfinite(d))
        return conv_drop(cv, obj, "NaN and Infinity have no JSON form");
    return sb_w_double(cv->buf, d) ? (PyErr_NoMemory(), -1) : 0;
}

static int pack_value(struct sbpy_conv *cv, PyObject *v);

/* A dict key as JSON has it: str as is; int, float, bool, None as json.dumps writes them. Returns
 * 0 with *out (new reference, a str) or 1 when the key has no JSON form (entry dropped). */
static int dict_key(struct sbpy_conv *cv, PyObject *k, PyObject **out)
{
    if (PyUnicode_Check(k)) {
        Py_INCREF(k);
        *out = k;
        return 0;
    }
    if (k == Py_True || k == Py_False || k == Py_None) {
        *out = PyUnicode_FromString(k == Py_True ? "true" : k == Py_False ? "false" : "null");
        return *out ? 0 : -1;
    }
    if (PyLong_Check(k) || PyFloat_Check(k)) {
        *out = PyObject_Repr(k);
        return *out ? 0 : -1;
    }
    return conv_drop(cv, k, "a key must be a string");
}

static int pack_dict(struct sbpy_conv *cv, PyObject *d)
{
    Py_ssize_t n = PyDict_GET_SIZE(d), pos = 0;
    if (n > UINT32_MAX) /* cannot happen within the 32 KB event limit; keep the header honest */
        n = UINT32_MAX;
    size_t off = cv->buf->size;
    uint32_t packed = 0;
    if (sb_w_container(cv->buf, (uint32_t)n, 1)) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject *k, *v;
    while (packed < (uint32_t)n && PyDict_Next(d, &pos, &k, &v)) {
        if (PyUnicode_CheckExact(k) && PyUnicode_IS_COMPACT_ASCII(k) &&
            (PyUnicode_CheckExact(v) || PyFloat_CheckExact(v) || PyLong_CheckExact(v))) {
            /* Fast path: an ASCII str key and a scalar that runs no Python code, so nothing can
             * change d under us and no references need holding. */
            cv->path[cv->depth].key = k;
            size_t mark = cv->buf->size;
            int rc = pack_utf8(cv, (const char *)(((PyASCIIObject *)k) + 1),
                               PyUnicode_GET_LENGTH(k));
            if (rc == 0) {
                cv->depth++;
                rc = pack_value(cv, v);
                cv->depth--;
            }
            if (rc < 0)
                return -1;
            if (rc == 1)
                cv->buf->size = mark;
            else
                packed++;
            continue;
        }
        /* Hold both: converting a value may run Python code (isoformat, __str__) that mutates d. */
        Py_INCREF(k);
        Py_INCREF(v);
        cv->path[cv->depth].key = k;
        PyObject *key = NULL;
        int rc = dict_key(cv, k, &key);
        if (rc == 0) {
            size_t mark = cv->buf->size;
            rc = pack_str(cv, key);
            if (rc == 0) {
                cv->depth++;
                rc = pack_value(cv, v);
                cv->depth--;
                if (rc == 1)
                    cv->buf->size = mark; /* the value was dropped: take its key back out */
            }
            Py_DECREF(key);
        }
        Py_DECREF(k);
        Py_DECREF(v);
        if (rc < 0)
            return -1;
        if (rc == 0)
            packed++;
    }
    sb_mp_fix_header(cv->buf, off, (uint32_t)n, packed, 1);
    return 0;
}

/* list, tuple (PySequence_Fast) and set/frozenset (iteration), like clean's _clean_list. */
static int pack_seq(struct sbpy_conv *cv, PyObject *seq)
{
    PyObject *fast = PySequence_Fast(seq, "not a sequence");
    if (!fast)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > UINT32_MAX)
        n = UINT32_MAX;
    size_t off = cv->buf->size;
    uint32_t packed = 0;
    int rc = sb_w_container(cv->buf, (uint32_t)n, 0) ? (PyErr_NoMemory(), -1) : 0;
    for (Py_ssize_t i = 0; rc >= 0 && i < n && i < PySequence_Fast_GET_SIZE(fast); i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        Py_INCREF(item);
        cv->path[cv->depth].key = NULL;
        cv->path[cv->depth].index = i;
        cv->depth++;
        rc = pack_value(cv, item);
        cv->depth--;
        Py_DECREF(item);
        if (rc == 0)
            packed++;
    }
    Py_DECREF(fast);
    if (rc < 0)
        return -1;
    sb_mp_fix_header(cv->buf, off, (uint32_t)n, packed, 0);
    return 0;
}

/* Pack the str result of calling obj.method() (isoformat). */
static int pack_method_text(struct sbpy_conv *cv, PyObject *obj, const char *method)
{
    PyObject *s = PyObject_CallMethod(obj, method, NULL);
    if (!s)
        return -1;
    int rc = PyUnicode_Check(s) ? pack_str(cv, s) : conv_drop(cv, obj, "isoformat() gave no str");
    Py_DECREF(s);
    return rc;
}

/* The rarer types, after the exact built-in ones failed to match. */
static int pack_other(struct sbpy_conv *cv, PyObject *v)
{
    if (PyUnicode_Check(v))
        return pack_str(cv, v);
    if (PyLong_Check(v)) /* int subclasses, IntEnum and IntFlag included, as json.dumps does */
        return pack_int(cv, v);
    if (PyFloat_Check(v))
        return pack_double(cv, v, PyFloat_AS_DOUBLE(v));
    if (PyDict_Check(v))
        return pack_dict(cv, v);
    if (PyList_Check(v) || PyTuple_Check(v) || PyAnySet_Check(v))
        return pack_seq(cv, v);
    if (PyDateTime_Check(v) || PyDate_Check(v))
        return pack_method_text(cv, v, "isoformat");
    if (sbpy_decimal_type && PyObject_TypeCheck(v, (PyTypeObject *)sbpy_decimal_type)) {
        double d = PyFloat_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred())
            return -1;
        return pack_double(cv, v, d);
    }
    if (sbpy_uuid_type && PyObject_TypeCheck(v, (PyTypeObject *)sbpy_uuid_type))
        return pack_as_text(cv, v);
    if (sbpy_enum_type && PyObject_TypeCheck(v, (PyTypeObject *)sbpy_enum_type)) {
        PyObject *inner = PyObject_GetAttrString(v, "value");
        if (!inner)
            return -1;
        int rc = pack_value(cv, inner);
        Py_DECREF(inner);
        return rc;
    }
    if (PyBytes_Check(v) || PyByteArray_Check(v)) { /* clean() decodes bytes as UTF-8 */
        PyObject *s = PyUnicode_FromEncodedObject(v, "utf-8", "strict");
        if (!s) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                return -1;
            PyErr_Clear();
            return conv_drop(cv, v, "bytes are not valid UTF-8");
        }
        int rc = pack_str(cv, s);
        Py_DECREF(s);
        return rc;
    }
    if (PyIndex_Check(v)) { /* numpy integers and other int-likes */
        PyObject *i = PyNumber_Index(v);
        if (!i)
            return -1;
        int rc = pack_int(cv, i);
        Py_DECREF(i);
        return rc;
    }
    return conv_drop(cv, v, "no JSON form");
}

/* 0 packed, 1 dropped (nothing packed), -1 exception set. */
static int pack_value(struct sbpy_conv *cv, PyObject *v)
{
    if (PyUnicode_CheckExact(v))
        return pack_str(cv, v);
    if (v == Py_None)
        return sb_w_nil(cv->buf) ? (PyErr_NoMemory(), -1) : 0;
    if (v == Py_True || v == Py_False)
        return sb_w_bool(cv->buf, v == Py_True) ? (PyErr_NoMemory(), -1) : 0;
    if (PyLong_CheckExact(v))
        return pack_int(cv, v);
    if (PyFloat_CheckExact(v))
        return pack_double(cv, v, PyFloat_AS_DOUBLE(v));
    if (cv->depth >= SB_MP_MAX_DEPTH)
        return conv_drop(cv, v, "nested deeper than 32 levels (or a reference cycle)");
    if (PyDict_CheckExact(v))
        return pack_dict(cv, v);
    if (PyList_CheckExact(v) || PyTuple_CheckExact(v))
        return pack_seq(cv, v);
    return pack_other(cv, v);
}

int sbpy_conv_pack(struct sbpy_conv *cv, const char *root, PyObject *value)
{
    cv->root = root;
    cv->depth = 0;
    return pack_value(cv, value);
}
