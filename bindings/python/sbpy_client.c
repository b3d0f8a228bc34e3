/* sbpy_client.c: the event calls of the Python module: check the arguments the way
 * analytics-python's `require` does, convert properties/traits/context/integrations straight to
 * msgpack, hand them to segbus_send() and build analytics-python's (success, message) result. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "segbus/segbus.h"

#include "event/event.h" /* sb_map_set_msgpack_trusted: our converters' output */

#include "../common/sb_scratch.h"
#include "sbpy.h"
#include "sbpy_api.h"

#define CAPSULE_NAME "segbus.client"

struct sbpy_client {
    segbus_client_t *c;
    int strict;
    int flags;                 /* F_SEND, F_SYNC: analytics-python's send and sync_mode */
    long long sync_timeout_ms; /* sync_mode's wait for the daemon */
    uint64_t dropped;          /* values dropped by this client's calls (GIL-protected) */
};

/* Callables and interned strings set by sbpy_client_setup(). */
static PyObject *fmt_timestamp_fn; /* datetime -> RFC 3339 str, analytics-python's rules */
static PyObject *warn_fn;          /* list of warning texts -> None (logs them) */
static PyObject *k_type, *k_user, *k_anon, *k_event, *k_name, *k_category, *k_group, *k_prev,
    *k_props, *k_traits, *k_context, *k_integrations, *k_timestamp, *k_message_id, *k_library,
    *library_value, *type_names[7];

/* ---- setup ---------------------------------------------------------------------------------- */

static PyObject *intern(const char *s)
{
    return PyUnicode_InternFromString(s);
}

PyObject *sbpy_client_setup(PyObject *fmt_timestamp, PyObject *warn)
{
    if (!PyDateTimeAPI) { /* datetime.h's capsule pointer is per C file: import it here too */
        PyDateTime_IMPORT;
        if (!PyDateTimeAPI)
            return NULL;
    }
    Py_XINCREF(fmt_timestamp);
    Py_XINCREF(warn);
    Py_XSETREF(fmt_timestamp_fn, fmt_timestamp);
    Py_XSETREF(warn_fn, warn);
    if (!k_type) {
        static const char *names[7] = {NULL,     "track", "identify", "page",
                                       "screen", "group", "alias"};
        for (int i = 1; i < 7; i++)
            if (!(type_names[i] = intern(names[i])))
                return NULL;
        if (!(k_type = intern("type")) || !(k_user = intern("userId")) ||
            !(k_anon = intern("anonymousId")) || !(k_event = intern("event")) ||
            !(k_name = intern("name")) || !(k_category = intern("category")) ||
            !(k_group = intern("groupId")) || !(k_prev = intern("previousId")) ||
            !(k_props = intern("properties")) || !(k_traits = intern("traits")) ||
            !(k_context = intern("context")) || !(k_integrations = intern("integrations")) ||
            !(k_timestamp = intern("timestamp")) || !(k_message_id = intern("messageId")) ||
            !(k_library = intern("library")))
            return NULL;
        library_value = Py_BuildValue("{s:s,s:s}", "name", "segbus", "version", segbus_version());
        if (!library_value)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- client --------------------------------------------------------------------------------- */

static void capsule_close(PyObject *cap)
{
    struct sbpy_client *cl = PyCapsule_GetPointer(cap, CAPSULE_NAME);
    if (!cl)
        return;
    segbus_client_close(cl->c);
    free(cl);
}

/* OSError carrying errno for system errors, RuntimeError for segbus's own, with the detail. */
static PyObject *raise_segbus(int rc, const char *what)
{
    const char *detail = segbus_last_error();
    if (-rc < SEGBUS_EBASE) {
        errno = -rc;
        PyObject *args = Py_BuildValue("(is)", -rc, *detail ? detail : segbus_strerror(rc));
        if (args) {
            PyErr_SetObject(PyExc_OSError, args);
            Py_DECREF(args);
        }
        return NULL;
    }
    PyErr_Format(PyExc_RuntimeError, "%s: %s%s%s", what, segbus_strerror(rc), *detail ? ": " : "",
                 detail);
    return NULL;
}

static struct sbpy_client *client_of(PyObject *cap)
{
    return PyCapsule_GetPointer(cap, CAPSULE_NAME);
}

enum { F_SEND = 1, F_SYNC = 2 };

PyObject *sbpy_client_open(PyObject *socket, PyObject *write_key, int policy, long long block_ms,
                           int standalone, int strict, int flags, long long sync_timeout_ms)
{
    int connect = flags & F_SEND;
    segbus_options_t *o = segbus_options_new();
    if (!o)
        return PyErr_NoMemory();
    int rc = 0;
    if (socket != Py_None) {
        const char *p = PyUnicode_Check(socket) ? PyUnicode_AsUTF8(socket) : NULL;
        if (!p) {
            segbus_options_free(o);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "socket must be a str");
            return NULL;
        }
        rc = segbus_options_set_socket(o, p);
    }
    if (!rc && write_key != Py_None) {
        const char *p = PyUnicode_Check(write_key) ? PyUnicode_AsUTF8(write_key) : NULL;
        if (!p) {
            segbus_options_free(o);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_AssertionError,
                                "write_key must have <class 'str'>, got: a non-str");
            return NULL;
        }
        rc = segbus_options_set_write_key(o, p);
    }
    if (!rc)
        rc = segbus_options_set_full_policy(o, (enum segbus_full_policy)policy, block_ms);
    if (!rc)
        rc = segbus_options_set_standalone(o, standalone);
    struct sbpy_client *cl = NULL;
    if (!rc) {
        cl = calloc(1, sizeof *cl);
        if (!cl) {
            segbus_options_free(o);
            return PyErr_NoMemory();
        }
        cl->strict = strict;
        cl->flags = flags;
        cl->sync_timeout_ms = sync_timeout_ms;
        if (connect) {
            Py_BEGIN_ALLOW_THREADS /* registration talks to the daemon over its socket */
                rc = segbus_client_open(&cl->c, o);
            Py_END_ALLOW_THREADS
        }
    }
    segbus_options_free(o);
    if (rc) {
        free(cl);
        return raise_segbus(rc, "segbus client");
    }
    PyObject *cap = PyCapsule_New(cl, CAPSULE_NAME, capsule_close);
    if (!cap) {
        segbus_client_close(cl->c);
        free(cl);
    }
    return cap;
}

PyObject *sbpy_client_close(PyObject *cap)
{
    struct sbpy_client *cl = client_of(cap);
    if (!cl)
        return NULL;
    segbus_client_close(cl->c);
    cl->c = NULL;
    Py_RETURN_NONE;
}

PyObject *sbpy_flush(PyObject *cap, long long timeout_ms)
{
    struct sbpy_client *cl = client_of(cap);
    if (!cl)
        return NULL;
    int rc = -SEGBUS_ENODAEMON;
    if (cl->c) {
        Py_BEGIN_ALLOW_THREADS /* a flush waits for the daemon: let other threads run */
            rc = segbus_flush(cl->c, timeout_ms);
        Py_END_ALLOW_THREADS
    }
    return PyLong_FromLong(rc);
}

PyObject *sbpy_stats(PyObject *cap)
{
    struct sbpy_client *cl = client_of(cap);
    if (!cl)
        return NULL;
    struct segbus_client_stats st = {0};
    if (cl->c)
        (void)segbus_client_get_stats(cl->c, &st);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K}", "sent", (unsigned long long)st.sent, "full",
                         (unsigned long long)st.full, "dropped", (unsigned long long)st.dropped,
                         "invalid", (unsigned long long)st.invalid, "dropped_values",
                         (unsigned long long)cl->dropped);
}

/* ---- argument checks (analytics-python's `require`) ----------------------------------------- */

/* AssertionError "NAME must have TYPE, got: VALUE", word for word analytics-python's. */
static int require_fail(const char *name, const char *types, PyObject *got)
{
    PyErr_Format(PyExc_AssertionError, "%s must have %s, got: %R", name, types, got);
    return -1;
}

#define ID_TYPES "(<class 'numbers.Number'>, <class 'str'>)"

/* An id (userId, anonymousId, groupId, previousId, messageId) as analytics-python's stringify_id
 * makes it: str as is, numbers through str(). *out is a new reference to a str, or NULL when the
 * value is None/empty. any: messageId accepts any object (str() of it). */
static int id_text(const char *name, PyObject *v, int any, PyObject **out)
{
    *out = NULL;
    if (v == Py_None)
        return 0;
    if (PyUnicode_Check(v)) {
        if (PyUnicode_GET_LENGTH(v) == 0)
            return 0;
        Py_INCREF(v);
        *out = v;
        return 0;
    }
    if (!any && !(PyLong_Check(v) || PyFloat_Check(v) || PyNumber_Check(v)))
        return require_fail(name, ID_TYPES, v);
    if (!any && !PyObject_IsTrue(v) && !PyErr_Occurred())
        return 0; /* `user_id or anonymous_id`: a zero id counts as missing, as in Python */
    *out = PyObject_Str(v);
    return *out ? 0 : -1;
}

/* properties/traits/context/integrations: `x or {}`, then it must be a dict. *out borrowed. */
static int dict_arg(const char *name, PyObject *v, PyObject **out)
{
    int truth = PyObject_IsTrue(v);
    if (truth < 0)
        return -1;
    if (!truth) {
        *out = NULL;
        return 0;
    }
    if (!PyDict_Check(v))
        return require_fail(name, "<class 'dict'>", v);
    *out = v;
    return 0;
}

/* A str argument (event, name, category); *s the UTF-8 or NULL for None. */
static int str_arg(const char *name, PyObject *v, int required, const char **s)
{
    *s = NULL;
    if (v == Py_None || (!required && PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) == 0)) {
        if (required)
            return require_fail(name, "<class 'str'>", v);
        return 0;
    }
    if (!PyUnicode_Check(v)) {
        if (!required && !PyObject_IsTrue(v) && !PyErr_Occurred())
            return 0; /* analytics-python checks name/category only `if name:` */
        return require_fail(name, "<class 'str'>", v);
    }
    *s = PyUnicode_AsUTF8(v);
    if (!*s) {
        PyErr_Clear();
        PyErr_Format(PyExc_AssertionError, "%s must be valid UTF-8 text, got: %R", name, v);
        return -1;
    }
    return 0;
}

/* Convert a dict argument into builder m. 0, or -1 with an exception. */
static int convert_into(struct sbpy_conv *cv, const char *root, PyObject *dict, segbus_map_t *m)
{
    size_t start = cv->buf->size;
    int rc = sbpy_conv_pack(cv, root, dict);
    if (rc < 0)
        return -1;
    /* the root is a dict, so it is never dropped (rc == 1 only happens for non-containers) */
    rc = sb_map_set_msgpack_trusted(m, cv->buf->data + start, cv->buf->size - start);
    if (rc < 0) {
        if (rc == -EMSGSIZE)
            PyErr_Format(PyExc_RuntimeError, "Message exceeds 32kb limit (%s alone is %zu bytes)",
                         root, cv->buf->size - start);
        else
            raise_segbus(rc, root);
        return -1;
    }
    return 0;
}

/* msgpack (as sent) -> Python, for the returned message when values were dropped. */
static PyObject *from_msgpack(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        Py_RETURN_NONE;
    case MSGPACK_OBJECT_BOOLEAN:
        return PyBool_FromLong(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return PyLong_FromUnsignedLongLong(o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return PyLong_FromLongLong(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return PyFloat_FromDouble(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return PyUnicode_DecodeUTF8(o->via.str.ptr, o->via.str.size, "replace");
    case MSGPACK_OBJECT_ARRAY: {
        PyObject *l = PyList_New(o->via.array.size);
        for (uint32_t i = 0; l && i < o->via.array.size; i++) {
            PyObject *x = from_msgpack(&o->via.array.ptr[i]);
            if (!x)
                Py_CLEAR(l);
            else
                PyList_SET_ITEM(l, i, x);
        }
        return l;
    }
    case MSGPACK_OBJECT_MAP: {
        PyObject *d = PyDict_New();
        for (uint32_t i = 0; d && i < o->via.map.size; i++) {
            PyObject *k = from_msgpack(&o->via.map.ptr[i].key);
            PyObject *v = k ? from_msgpack(&o->via.map.ptr[i].val) : NULL;
            if (!v || PyDict_SetItem(d, k, v) < 0)
                Py_CLEAR(d);
            Py_XDECREF(k);
            Py_XDECREF(v);
        }
        return d;
    }
    default:
        Py_RETURN_NONE;
    }
}

/* The value as sent: dict itself when nothing was dropped from it, else a decoded copy. */
static PyObject *as_sent(PyObject *dict, const char *data, size_t len, int had_drops)
{
    if (!dict)
        return PyDict_New();
    if (!had_drops) {
        Py_INCREF(dict);
        return dict;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    PyObject *out = NULL;
    if (msgpack_unpack_next(&u, data, len, NULL) == MSGPACK_UNPACK_SUCCESS)
        out = from_msgpack(&u.data);
    else
        PyErr_SetString(PyExc_SystemError, "segbus: cannot decode its own msgpack");
    msgpack_unpacked_destroy(&u);
    return out;
}

static int set_item(PyObject *d, PyObject *k, PyObject *v_new)
{
    if (!v_new)
        return -1;
    int rc = PyDict_SetItem(d, k, v_new);
    Py_DECREF(v_new);
    return rc;
}

/* A str from text segbus made itself (a UUIDv7, an RFC 3339 time): ASCII, so no UTF-8 decoding. */
static PyObject *ascii_text(const char *s)
{
    size_t n = strlen(s);
    PyObject *o = PyUnicode_New((Py_ssize_t)n, 127);
    if (o)
        memcpy(PyUnicode_DATA(o), s, n);
    return o;
}

static PyObject *text_or_none(PyObject *s)
{
    if (!s)
        Py_RETURN_NONE;
    Py_INCREF(s);
    return s;
}

static PyObject *str_or_none(const char *s)
{
    if (!s)
        Py_RETURN_NONE;
    return PyUnicode_FromString(s);
}

/* ---- the event call ------------------------------------------------------------------------- */

PyObject *sbpy_send(PyObject *cap, int type, PyObject *user_id, PyObject *anonymous_id, PyObject *a,
                    PyObject *b, PyObject *body, PyObject *context, PyObject *timestamp,
                    PyObject *integrations, PyObject *message_id)
{
    struct sbpy_client *cl = client_of(cap);
    if (!cl)
        return NULL;
    int flags = cl->flags;
    if ((flags & F_SEND) && !cl->c)
        Py_RETURN_NONE; /* closed (shutdown() or send=False): the Python layer opens it again */
    if (type < SEGBUS_TRACK || type > SEGBUS_ALIAS) {
        PyErr_SetString(PyExc_ValueError, "unknown event type");
        return NULL;
    }
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    PyObject *uid = NULL, *aid = NULL, *mid = NULL, *gid = NULL, *pid = NULL, *ts = NULL;
    PyObject *body_d = NULL, *ctx_d = NULL, *int_d = NULL, *result = NULL, *msg = NULL;
    int temp = 0;
    struct sb_scratch *s = NULL;
    struct sbpy_conv cv;
    int conv_ready = 0;
    size_t body_off = 0, body_len = 0, ctx_off = 0, ctx_len = 0, int_off = 0, int_len = 0;
    uint64_t body_drops = 0, ctx_drops = 0, int_drops = 0;

    /* ids */
    if (type == SEGBUS_ALIAS) {
        if (id_text("previous_id", a, 0, &pid) < 0 || id_text("user_id", user_id, 0, &uid) < 0)
            goto out;
        if (!pid) {
            require_fail("previous_id", ID_TYPES, a);
            goto out;
        }
        if (!uid) {
            require_fail("user_id", ID_TYPES, user_id);
            goto out;
        }
    } else {
        if (id_text("user_id", user_id, 0, &uid) < 0 ||
            id_text("anonymous_id", anonymous_id, 0, &aid) < 0)
            goto out;
        if (!uid && !aid) {
            require_fail("user_id or anonymous_id", ID_TYPES, Py_None);
            goto out;
        }
    }
    if (id_text("message_id", message_id, 1, &mid) < 0)
        goto out;
    m.user_id = uid ? PyUnicode_AsUTF8(uid) : NULL;
    m.anonymous_id = aid ? PyUnicode_AsUTF8(aid) : NULL;
    m.message_id = mid ? PyUnicode_AsUTF8(mid) : NULL;
    m.previous_id = pid ? PyUnicode_AsUTF8(pid) : NULL;
    if ((uid && !m.user_id) || (aid && !m.anonymous_id) || (mid && !m.message_id) ||
        (pid && !m.previous_id)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_AssertionError, "ids must be valid UTF-8 text");
        goto out;
    }

    /* each call's own fields */
    const char *body_name = "properties";
    switch (type) {
    case SEGBUS_TRACK:
        if (str_arg("event", a, 1, &m.event) < 0)
            goto out;
        break;
    case SEGBUS_PAGE:
    case SEGBUS_SCREEN:
        if (str_arg("name", a, 0, &m.name) < 0 || str_arg("category", b, 0, &m.category) < 0)
            goto out;
        break;
    case SEGBUS_GROUP:
        if (id_text("group_id", a, 0, &gid) < 0)
            goto out;
        if (!gid) {
            require_fail("group_id", ID_TYPES, a);
            goto out;
        }
        if (!(m.group_id = PyUnicode_AsUTF8(gid)))
            goto out;
        /* fall through */
    case SEGBUS_IDENTIFY:
        body_name = "traits";
        break;
    default:
        break;
    }
    if (type != SEGBUS_ALIAS && dict_arg(body_name, body, &body_d) < 0)
        goto out;
    if (dict_arg("context", context, &ctx_d) < 0 ||
        dict_arg("integrations", integrations, &int_d) < 0)
        goto out;

    /* timestamp: a datetime as analytics-python formats it, or RFC 3339 text */
    if (timestamp != Py_None) {
        if (PyDateTime_Check(timestamp)) {
            if (!(ts = PyObject_CallOneArg(fmt_timestamp_fn, timestamp)))
                goto out;
        } else if (PyUnicode_Check(timestamp)) {
            Py_INCREF(timestamp);
            ts = timestamp;
        } else {
            require_fail("timestamp", "<class 'datetime.datetime'>", timestamp);
            goto out;
        }
        if (!(m.timestamp = PyUnicode_AsUTF8(ts)))
            goto out;
    }

    /* the maps, straight to msgpack */
    if (!(s = sb_scratch_get(&temp))) {
        PyErr_NoMemory();
        goto out;
    }
    s->busy = 1;
    s->buf.size = 0;
    sbpy_conv_init(&cv, &s->buf, cl->strict);
    conv_ready = 1;
    if (body_d) {
        body_off = s->buf.size;
        if (convert_into(&cv, body_name, body_d, s->maps[0]) < 0)
            goto out;
        body_len = s->buf.size - body_off;
        body_drops = cv.dropped;
        if (type == SEGBUS_IDENTIFY || type == SEGBUS_GROUP)
            m.traits = s->maps[0];
        else
            m.properties = s->maps[0];
    }
    if (ctx_d) {
        ctx_off = s->buf.size;
        if (convert_into(&cv, "context", ctx_d, s->maps[1]) < 0)
            goto out;
        ctx_len = s->buf.size - ctx_off;
        ctx_drops = cv.dropped - body_drops;
        m.context = s->maps[1];
    }
    if (int_d) {
        int_off = s->buf.size;
        if (convert_into(&cv, "integrations", int_d, s->maps[2]) < 0)
            goto out;
        int_len = s->buf.size - int_off;
        int_drops = cv.dropped - body_drops - ctx_drops;
        m.integrations = s->maps[2];
    }

    /* encode and commit (or only encode, for send=False) */
    segbus_sent_t sent;
    int rc;
    if (flags & F_SEND) {
        rc = segbus_send(cl->c, (enum segbus_type)type, &m, &sent);
    } else {
        size_t len;
        void *tmp = malloc(SEGBUS_MAX_EVENT_BYTES); /* send=False is for tests: not a hot path */
        if (!tmp) {
            PyErr_NoMemory();
            goto out;
        }
        rc = segbus_encode(cl->c, (enum segbus_type)type, &m, tmp, SEGBUS_MAX_EVENT_BYTES, &len,
                           &sent);
        free(tmp);
    }
    int success = rc == 0;
    switch (rc) {
    case 0:
    case SEGBUS_DROPPED:
    case -EAGAIN:
        break;
    case -EMSGSIZE:
        PyErr_Format(PyExc_RuntimeError, "Message exceeds 32kb limit (%d bytes): %s",
                     SEGBUS_MAX_EVENT_BYTES, segbus_last_error());
        goto out;
    case -SEGBUS_ENOEVENT:
        require_fail("event", "<class 'str'> (non-empty)", a);
        goto out;
    case -SEGBUS_EMESSAGEID:
        PyErr_Format(PyExc_AssertionError, "message_id must be 1 to %d characters, got: %R",
                     SEGBUS_MAX_MESSAGE_ID, mid ? mid : Py_None);
        goto out;
    case -SEGBUS_ETIMESTAMP:
        PyErr_Format(PyExc_AssertionError,
                     "timestamp must have <class 'datetime.datetime'> or RFC 3339 text, got: %R",
                     timestamp);
        goto out;
    case -ENOMEM:
        PyErr_NoMemory();
        goto out;
    default:
        if (rc < 0 && rc > -SEGBUS_EBASE && rc != -EINVAL) {
            success = 0; /* the ring cannot take it now (closed, no daemon): like a full queue */
            break;
        }
        PyErr_Format(PyExc_ValueError, "segbus: %s: %s", segbus_strerror(rc), segbus_last_error());
        goto out;
    }
    if (success && (flags & F_SEND) && (flags & F_SYNC)) {
        int frc;
        Py_BEGIN_ALLOW_THREADS /* waiting for the daemon to take the event */
            frc = segbus_flush(cl->c, cl->sync_timeout_ms);
        Py_END_ALLOW_THREADS success = frc == 0;
    }

    /* the message as sent, in analytics-python's shape */
    if (!(msg = _PyDict_NewPresized(11))) /* sized once: no resize while it is filled */
        goto out;
    PyObject *ctx_sent =
        ctx_d ? as_sent(ctx_d, s->buf.data + ctx_off, ctx_len, ctx_drops != 0) : PyDict_New();
    if (ctx_sent && ctx_d && ctx_drops == 0) { /* a copy: the caller's dict is not touched */
        PyObject *copy = PyDict_Copy(ctx_sent);
        Py_DECREF(ctx_sent);
        ctx_sent = copy;
    }
    /* A fresh library dict per message: a caller that edits one message must not edit all. */
    if (!ctx_sent || set_item(ctx_sent, k_library, PyDict_Copy(library_value)) < 0) {
        Py_XDECREF(ctx_sent);
        goto out;
    }
    if (set_item(msg, k_integrations,
                 as_sent(int_d, s->buf.data + int_off, int_len, int_drops != 0)) < 0 ||
        set_item(msg, k_anon, text_or_none(aid)) < 0)
        goto out;
    if (type != SEGBUS_ALIAS) {
        PyObject *bk = (type == SEGBUS_IDENTIFY || type == SEGBUS_GROUP) ? k_traits : k_props;
        if (set_item(msg, bk, as_sent(body_d, s->buf.data + body_off, body_len, body_drops != 0)) <
            0)
            goto out;
    }
    if (set_item(msg, k_timestamp,
                 ts ? PyUnicode_FromString(sent.timestamp) : ascii_text(sent.timestamp)) < 0 ||
        set_item(msg, k_context, ctx_sent) < 0 || set_item(msg, k_user, text_or_none(uid)) < 0)
        goto out;
    Py_INCREF(type_names[type]);
    if (set_item(msg, k_type, type_names[type]) < 0)
        goto out;
    switch (type) {
    case SEGBUS_TRACK:
        Py_INCREF(a);
        if (set_item(msg, k_event, a) < 0)
            goto out;
        break;
    case SEGBUS_PAGE:
    case SEGBUS_SCREEN:
        if (set_item(msg, k_name, str_or_none(m.name)) < 0 ||
            set_item(msg, k_category, str_or_none(m.category)) < 0)
            goto out;
        break;
    case SEGBUS_GROUP:
        if (set_item(msg, k_group, text_or_none(gid)) < 0)
            goto out;
        break;
    case SEGBUS_ALIAS:
        if (set_item(msg, k_prev, text_or_none(pid)) < 0)
            goto out;
        break;
    default:
        break;
    }
    if (set_item(msg, k_message_id,
                 mid ? PyUnicode_FromString(sent.message_id) : ascii_text(sent.message_id)) < 0)
        goto out;
    result = PyTuple_Pack(2, success ? Py_True : Py_False, msg);

out:
    if (conv_ready) {
        cl->dropped += cv.dropped;
        if (cv.warnings && result && warn_fn) {
            PyObject *r = PyObject_CallOneArg(warn_fn, cv.warnings);
            if (!r)
                Py_CLEAR(result);
            Py_XDECREF(r);
        }
        sbpy_conv_done(&cv);
    }
    if (s) {
        s->busy = 0;
        if (temp)
            sb_scratch_free(s);
    }
    Py_XDECREF(msg);
    Py_XDECREF(uid);
    Py_XDECREF(aid);
    Py_XDECREF(mid);
    Py_XDECREF(gid);
    Py_XDECREF(pid);
    Py_XDECREF(ts);
    return result;
}

/* ---- module-level calls without a Python frame ----------------------------------------------
 * segbus.track(...) and the other five module functions are the hot path of analytics-python
 * code. They are C functions (METH_FASTCALL | METH_KEYWORDS) with analytics-python's signatures
 * that find the module's default_client (made by segbus._client() on first use, exactly as the
 * Python version did) and call sbpy_send() directly: a Python wrapper frame and SWIG's argument
 * tuple were a sixth of the call. Failures and a closed client go back to the Python client's
 * _retry_or_report, so behaviour is the Client methods' own. */

enum { S_UID, S_AID, S_A, S_B, S_BODY, S_CTX, S_TS, S_INT, S_MID, S_COUNT };

struct sig {
    const char *name;
    int n;
    const char *params[9];
    int slots[9];
};

static const struct sig sigs[7] = {
    {0},
    {"track",
     8,
     {"user_id", "event", "properties", "context", "timestamp", "anonymous_id", "integrations",
      "message_id"},
     {S_UID, S_A, S_BODY, S_CTX, S_TS, S_AID, S_INT, S_MID}},
    {"identify",
     7,
     {"user_id", "traits", "context", "timestamp", "anonymous_id", "integrations", "message_id"},
     {S_UID, S_BODY, S_CTX, S_TS, S_AID, S_INT, S_MID}},
    {"page",
     9,
     {"user_id", "category", "name", "properties", "context", "timestamp", "anonymous_id",
      "integrations", "message_id"},
     {S_UID, S_B, S_A, S_BODY, S_CTX, S_TS, S_AID, S_INT, S_MID}},
    {"screen",
     9,
     {"user_id", "category", "name", "properties", "context", "timestamp", "anonymous_id",
      "integrations", "message_id"},
     {S_UID, S_B, S_A, S_BODY, S_CTX, S_TS, S_AID, S_INT, S_MID}},
    {"group",
     8,
     {"user_id", "group_id", "traits", "context", "timestamp", "anonymous_id", "integrations",
      "message_id"},
     {S_UID, S_A, S_BODY, S_CTX, S_TS, S_AID, S_INT, S_MID}},
    {"alias",
     6,
     {"previous_id", "user_id", "context", "timestamp", "integrations", "message_id"},
     {S_A, S_UID, S_CTX, S_TS, S_INT, S_MID}},
};

static PyObject *param_names[7][9]; /* interned */
static PyObject *module_dict, *make_default_fn, *fallback_fn, *k_default_client, *k_h;

static PyObject *fast_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    long type = PyLong_AsLong(self);
    const struct sig *sg = &sigs[type];
    PyObject *slot[S_COUNT];
    for (int i = 0; i < S_COUNT; i++)
        slot[i] = Py_None;
    if (nargs > sg->n)
        return PyErr_Format(PyExc_TypeError,
                            "%s() takes at most %d positional arguments (%zd given)", sg->name,
                            sg->n, nargs);
    for (Py_ssize_t i = 0; i < nargs; i++)
        slot[sg->slots[i]] = args[i];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *kw = PyTuple_GET_ITEM(kwnames, k);
        int j = 0;
        while (j < sg->n && param_names[type][j] != kw) /* keywords are interned: pointers */
            j++;
        if (j == sg->n) /* not interned (built at run time): compare the text */
            for (j = 0; j < sg->n && PyUnicode_Compare(param_names[type][j], kw) != 0; j++)
                ;
        if (j == sg->n)
            return PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R",
                                sg->name, kw);
        if (j < nargs)
            return PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
                                sg->name, sg->params[j]);
        slot[sg->slots[j]] = args[nargs + k];
    }
    PyObject *client = PyDict_GetItemWithError(module_dict, k_default_client);
    if (client && client != Py_None)
        Py_INCREF(client);
    else if (PyErr_Occurred() || !(client = PyObject_CallNoArgs(make_default_fn)))
        return NULL;
    PyObject *h = PyObject_GetAttr(client, k_h);
    Py_DECREF(client);
    if (!h)
        return NULL;
    PyObject *r = sbpy_send(h, (int)type, slot[S_UID], slot[S_AID], slot[S_A], slot[S_B],
                            slot[S_BODY], slot[S_CTX], slot[S_TS], slot[S_INT], slot[S_MID]);
    Py_DECREF(h);
    if (!r || (PyTuple_Check(r) && PyTuple_GET_ITEM(r, 0) == Py_True))
        return r;
    /* not taken, or the client was closed: the Python client logs, calls on_error, reopens */
    PyObject *out = PyObject_CallFunction(fallback_fn, "OlOOOOOOOOO", r, type, slot[S_UID],
                                          slot[S_AID], slot[S_A], slot[S_B], slot[S_BODY],
                                          slot[S_CTX], slot[S_TS], slot[S_INT], slot[S_MID]);
    Py_DECREF(r);
    return out;
}

static PyMethodDef fast_defs[7];

PyObject *sbpy_module_functions(PyObject *dict, PyObject *make_default, PyObject *fallback)
{
    Py_INCREF(dict);
    Py_INCREF(make_default);
    Py_INCREF(fallback);
    Py_XSETREF(module_dict, dict);
    Py_XSETREF(make_default_fn, make_default);
    Py_XSETREF(fallback_fn, fallback);
    if (!k_default_client &&
        (!(k_default_client = intern("default_client")) || !(k_h = intern("_h"))))
        return NULL;
    PyObject *out = PyDict_New();
    for (int t = SEGBUS_TRACK; out && t <= SEGBUS_ALIAS; t++) {
        const struct sig *sg = &sigs[t];
        for (int j = 0; j < sg->n; j++)
            if (!param_names[t][j] && !(param_names[t][j] = intern(sg->params[j])))
                goto fail;
        static char docs[7][512];
        int n = snprintf(docs[t], sizeof docs[t], "%s($module, /, ", sg->name);
        for (int j = 0; j < sg->n; j++)
            n += snprintf(docs[t] + n, sizeof docs[t] - (size_t)n, "%s%s=None", j ? ", " : "",
                          sg->params[j]);
        snprintf(docs[t] + n, sizeof docs[t] - (size_t)n,
                 ")\n--\n\nRecord a %s event with the default client; returns (success, message "
                 "as sent), as analytics-python's %s() does.",
                 sg->name, sg->name);
        fast_defs[t].ml_name = sg->name;
        fast_defs[t].ml_meth = (PyCFunction)(void (*)(void))fast_event;
        fast_defs[t].ml_flags = METH_FASTCALL | METH_KEYWORDS;
        fast_defs[t].ml_doc = docs[t];
        PyObject *self = PyLong_FromLong(t);
        PyObject *fn = self ? PyCFunction_NewEx(&fast_defs[t], self, NULL) : NULL;
        Py_XDECREF(self);
        if (!fn || PyDict_SetItemString(out, sg->name, fn) < 0) {
            Py_XDECREF(fn);
            goto fail;
        }
        Py_DECREF(fn);
    }
    return out;
fail:
    Py_XDECREF(out);
    return NULL;
}
