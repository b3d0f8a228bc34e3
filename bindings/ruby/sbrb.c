/* sbrb.c: the C half of `require "segbus"`: Ruby values -> msgpack (no JSON text in between; what
 * has no JSON form is dropped with a warning naming its path, or refused in strict mode) and the
 * event calls over libsegbus, checked the way analytics-ruby's FieldParser checks them. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <ruby.h>
#include <ruby/encoding.h>
#include <ruby/thread.h>

#include "segbus/segbus.h"

#include "event/event.h" /* sb_map_set_msgpack_trusted: our converters' output */

#include "../common/sb_mp.h"
#include "../common/sb_scratch.h"
#include "sbrb.h"

static VALUE warn_proc = Qnil; /* called with an Array of warning texts after a call */
static uint64_t dropped_total;

/* ---- converter ------------------------------------------------------------------------------ */

struct conv {
    msgpack_sbuffer *buf;
    int strict;
    const char *root;
    int depth;
    struct {
        VALUE key; /* Qundef for an array index */
        long index;
    } path[SB_MP_MAX_DEPTH + 1];
    VALUE warnings; /* Array or Qnil; kept alive by being on the C stack of the caller */
    uint64_t dropped;
    char error[512]; /* strict mode's TypeError text; raised once the buffers are released */
    int failed;
};

/* Ruby calls inside the converter go through rb_protect: an exception must not longjmp past the
 * per-thread scratch (it would stay marked busy). */
struct call {
    VALUE recv;
    ID mid;
    int argc;
    VALUE argv[1];
};
static VALUE call_body(VALUE p)
{
    struct call *c = (struct call *)p;
    return rb_funcallv(c->recv, c->mid, c->argc, c->argv);
}
static VALUE safe_call(struct conv *cv, VALUE recv, const char *method, int argc, VALUE arg)
{
    struct call c = {recv, rb_intern(method), argc, {arg}};
    int state = 0;
    VALUE r = rb_protect(call_body, (VALUE)&c, &state);
    if (state) {
        rb_set_errinfo(Qnil);
        return Qundef;
    }
    return r;
}

static void conv_path(struct conv *cv, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s", cv->root);
    for (int i = 0; i < cv->depth && n < cap; i++) {
        if (cv->path[i].key == Qundef) {
            n += (size_t)snprintf(out + n, cap - n, "[%ld]", cv->path[i].index);
        } else {
            VALUE k = cv->path[i].key;
            if (SYMBOL_P(k))
                k = rb_sym2str(k);
            if (RB_TYPE_P(k, T_STRING))
                n += (size_t)snprintf(out + n, cap - n, ".%.*s", (int)RSTRING_LEN(k),
                                      RSTRING_PTR(k));
            else
                n += (size_t)snprintf(out + n, cap - n, ".<%s key>", rb_obj_classname(k));
        }
    }
}

/* No JSON form: strict mode fails the call (TypeError later); otherwise count and warn. */
static int conv_drop(struct conv *cv, VALUE v, const char *why)
{
    char path[256];
    conv_path(cv, path, sizeof path);
    char text[512];
    snprintf(text, sizeof text, "%s: %s (value of class %s)", path, why, rb_obj_classname(v));
    if (cv->strict) {
        memcpy(cv->error, text, sizeof text);
        cv->failed = 1;
        return -1;
    }
    if (NIL_P(cv->warnings))
        cv->warnings = rb_ary_new();
    rb_ary_push(cv->warnings, rb_str_new_cstr(text));
    cv->dropped++;
    dropped_total++;
    return 1;
}

static int pack_bytes(struct conv *cv, const char *p, long n)
{
    if (sb_w_str(cv->buf, p, (size_t)n))
        rb_memerror(); /* cannot leave the scratch busy: no-memory ends the process anyway */
    return 0;
}

/* A String as UTF-8: UTF-8 and US-ASCII strings as they are when valid; other encodings
 * converted; binary strings only when their bytes are valid UTF-8. */
static int pack_string(struct conv *cv, VALUE s)
{
    static int utf8_index = -1, ascii_index = -1;
    if (utf8_index < 0) {
        utf8_index = rb_utf8_encindex();
        ascii_index = rb_usascii_encindex();
    }
    int ei = ENCODING_GET(s);
    if (ei == utf8_index || ei == ascii_index) {
        int cr = ENC_CODERANGE(s); /* cached by Ruby for most strings: no scan */
        if (cr != ENC_CODERANGE_7BIT && cr != ENC_CODERANGE_VALID &&
            rb_enc_str_coderange(s) == ENC_CODERANGE_BROKEN)
            return conv_drop(cv, s, "string is not valid UTF-8");
        return pack_bytes(cv, RSTRING_PTR(s), RSTRING_LEN(s));
    }
    rb_encoding *enc = rb_enc_from_index(ei);
    if (enc == rb_ascii8bit_encoding()) {
        VALUE u = rb_enc_associate(rb_str_dup(s), rb_utf8_encoding());
        if (rb_enc_str_coderange(u) == ENC_CODERANGE_BROKEN)
            return conv_drop(cv, s, "binary string is not valid UTF-8");
        return pack_bytes(cv, RSTRING_PTR(u), RSTRING_LEN(u));
    }
    VALUE u = safe_call(cv, s, "encode", 1, rb_str_new_cstr("UTF-8"));
    if (u == Qundef || !RB_TYPE_P(u, T_STRING))
        return conv_drop(cv, s, "string cannot be converted to UTF-8");
    return pack_bytes(cv, RSTRING_PTR(u), RSTRING_LEN(u));
}

static int pack_text_of(struct conv *cv, VALUE v, VALUE text)
{
    if (text == Qundef || !RB_TYPE_P(text, T_STRING))
        return conv_drop(cv, v, "cannot be converted to text");
    return pack_string(cv, text);
}

/* Integers in int64/uint64 as numbers; beyond, their decimal digits as a string (no digit lost). */
static int pack_integer(struct conv *cv, VALUE v)
{
    if (FIXNUM_P(v)) {
        return sb_w_int(cv->buf, (int64_t)FIX2LONG(v)) ? (rb_memerror(), -1) : 0;
    }
    int neg = RBIGNUM_NEGATIVE_P(v);
    size_t bits = rb_absint_numwords(v, 1, NULL);
    if (!neg && bits <= 64) {
        return sb_w_uint(cv->buf, (uint64_t)rb_big2ull(v)) ? (rb_memerror(), -1) : 0;
    }
    if (neg && (bits <= 63 || (bits == 64 && rb_absint_singlebit_p(v)))) { /* down to -2^63 */
        return sb_w_int(cv->buf, (int64_t)rb_big2ll(v)) ? (rb_memerror(), -1) : 0;
    }
    return pack_text_of(cv, v, rb_big2str(v, 10));
}

static int pack_double(struct conv *cv, VALUE v, double d)
{
    if (!isfinite(d))
        return conv_drop(cv, v, "NaN and Infinity have no JSON form");
    return sb_w_double(cv->buf, d) ? (rb_memerror(), -1) : 0;
}

static int pack_value(struct conv *cv, VALUE v);

struct hash_walk {
    struct conv *cv;
    uint32_t packed;
    uint32_t declared;
    int rc;
};

static int hash_entry(VALUE k, VALUE v, VALUE arg)
{
    struct hash_walk *w = (struct hash_walk *)arg;
    struct conv *cv = w->cv;
    if (w->packed >= w->declared) /* the hash grew while being walked: keep the header honest */
        return ST_STOP;
    cv->path[cv->depth].key = k;
    size_t mark = cv->buf->size;
    int rc;
    switch (rb_type(k)) {
    case T_STRING:
        rc = pack_string(cv, k);
        break;
    case T_SYMBOL:
        rc = pack_string(cv, rb_sym2str(k));
        break;
    case T_FIXNUM:
    case T_BIGNUM:
    case T_FLOAT:
    case T_TRUE:
    case T_FALSE:
    case T_NIL: /* as JSON.generate writes such keys: their to_s */
        rc = pack_text_of(cv, k, safe_call(cv, k, "to_s", 0, Qnil));
        break;
    default:
        rc = conv_drop(cv, k, "a key must be a String or a Symbol");
    }
    if (rc == 0) {
        cv->depth++;
        rc = pack_value(cv, v);
        cv->depth--;
        if (rc == 1)
            cv->buf->size = mark; /* value dropped: take its key back out */
    }
    if (rc < 0) {
        w->rc = -1;
        return ST_STOP;
    }
    if (rc == 0)
        w->packed++;
    return ST_CONTINUE;
}

static int pack_hash(struct conv *cv, VALUE h)
{
    long n = RHASH_SIZE(h);
    size_t off = cv->buf->size;
    if (sb_w_container(cv->buf, (uint32_t)n, 1))
        rb_memerror();
    struct hash_walk w = {cv, 0, (uint32_t)n, 0};
    rb_hash_foreach(h, hash_entry, (VALUE)&w);
    if (w.rc < 0)
        return -1;
    sb_mp_fix_header(cv->buf, off, (uint32_t)n, w.packed, 1);
    return 0;
}

static int pack_array(struct conv *cv, VALUE a)
{
    long n = RARRAY_LEN(a);
    size_t off = cv->buf->size;
    uint32_t packed = 0;
    if (sb_w_container(cv->buf, (uint32_t)n, 0))
        rb_memerror();
    for (long i = 0; i < n && i < RARRAY_LEN(a); i++) {
        cv->path[cv->depth].key = Qundef;
        cv->path[cv->depth].index = i;
        cv->depth++;
        int rc = pack_value(cv, RARRAY_AREF(a, i));
        cv->depth--;
        if (rc < 0)
            return -1;
        if (rc == 0)
            packed++;
    }
    sb_mp_fix_header(cv->buf, off, (uint32_t)n, packed, 0);
    return 0;
}

static VALUE class_named(const char *name)
{
    ID id = rb_intern(name);
    return rb_const_defined(rb_cObject, id) ? rb_const_get(rb_cObject, id) : Qnil;
}

static int pack_object(struct conv *cv, VALUE v)
{
    if (rb_obj_is_kind_of(v, rb_cTime)) /* analytics-ruby's iso8601 with milliseconds */
        return pack_text_of(
            cv, v, safe_call(cv, v, "strftime", 1, rb_str_new_cstr("%Y-%m-%dT%H:%M:%S.%L%:z")));
    VALUE date = class_named("Date");
    if (!NIL_P(date) && rb_obj_is_kind_of(v, date)) /* Date and DateTime */
        return pack_text_of(cv, v, safe_call(cv, v, "iso8601", 0, Qnil));
    if (rb_obj_is_kind_of(v, rb_cNumeric)) { /* BigDecimal, Rational: as a float */
        VALUE f = safe_call(cv, v, "to_f", 0, Qnil);
        if (f != Qundef && RB_FLOAT_TYPE_P(f))
            return pack_double(cv, v, RFLOAT_VALUE(f));
    }
    return conv_drop(cv, v, "no JSON form");
}

/* 0 packed, 1 dropped, -1 failed (strict: cv->error). */
static int pack_value(struct conv *cv, VALUE v)
{
    switch (rb_type(v)) {
    case T_STRING:
        return pack_string(cv, v);
    case T_SYMBOL:
        return pack_string(cv, rb_sym2str(v));
    case T_FIXNUM:
    case T_BIGNUM:
        return pack_integer(cv, v);
    case T_FLOAT:
        return pack_double(cv, v, RFLOAT_VALUE(v));
    case T_TRUE:
    case T_FALSE:
        return sb_w_bool(cv->buf, v == Qtrue) ? (rb_memerror(), -1) : 0;
    case T_NIL:
        return sb_w_nil(cv->buf) ? (rb_memerror(), -1) : 0;
    case T_HASH:
        if (cv->depth >= SB_MP_MAX_DEPTH)
            return conv_drop(cv, v, "nested deeper than 32 levels (or a reference cycle)");
        return pack_hash(cv, v);
    case T_ARRAY:
        if (cv->depth >= SB_MP_MAX_DEPTH)
            return conv_drop(cv, v, "nested deeper than 32 levels (or a reference cycle)");
        return pack_array(cv, v);
    default:
        return pack_object(cv, v);
    }
}

static void conv_init(struct conv *cv, msgpack_sbuffer *buf, int strict)
{
    /* Field by field: the path and error buffers (most of the struct) are written before read. */
    cv->root = NULL;
    cv->depth = 0;
    cv->dropped = 0;
    cv->failed = 0;
    cv->error[0] = 0;
    cv->buf = buf;
    cv->strict = strict;
    cv->warnings = Qnil;
}

static int conv_pack(struct conv *cv, const char *root, VALUE v)
{
    cv->root = root;
    cv->depth = 0;
    return pack_value(cv, v);
}

VALUE sbrb_setup(VALUE warn)
{
    if (NIL_P(warn_proc))
        rb_gc_register_address(&warn_proc);
    warn_proc = warn;
    return Qnil;
}

VALUE sbrb_pack(VALUE value, int strict)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    struct conv cv;
    conv_init(&cv, &buf, strict);
    int rc = conv_pack(&cv, "value", value);
    VALUE bytes = rc == 0 ? rb_str_new(buf.data, (long)buf.size) : Qnil;
    msgpack_sbuffer_destroy(&buf);
    if (rc < 0)
        rb_raise(rb_eTypeError, "%s", cv.error);
    return rb_ary_new_from_args(2, bytes, cv.warnings);
}

VALUE sbrb_dropped(void)
{
    return ULL2NUM(dropped_total);
}

#ifdef SBB_HAVE_CLIENT
/* After the call, with nothing busy: hand the warnings to Segbus's logger. */
static void conv_report(struct conv *cv)
{
    if (!NIL_P(cv->warnings) && !NIL_P(warn_proc))
        rb_funcall(warn_proc, rb_intern("call"), 1, cv->warnings);
}

/* ---- client --------------------------------------------------------------------------------- */

struct sbrb_client {
    segbus_client_t *c;
    int strict;
    uint64_t dropped;
};

static void client_free(void *p)
{
    struct sbrb_client *cl = p;
    segbus_client_close(cl->c);
    free(cl);
}
static size_t client_size(const void *p)
{
    return sizeof(struct sbrb_client);
}
static const rb_data_type_t client_type = {.wrap_struct_name = "Segbus::NativeClient",
                                           .function = {.dfree = client_free, .dsize = client_size},
                                           .flags = RUBY_TYPED_FREE_IMMEDIATELY};

static struct sbrb_client *client_of(VALUE v)
{
    return rb_check_typeddata(v, &client_type);
}

static void raise_segbus(int rc, const char *what)
{
    const char *detail = segbus_last_error();
    if (-rc < SEGBUS_EBASE)
        rb_syserr_fail(-rc, *detail ? detail : what);
    rb_raise(rb_eRuntimeError, "%s: %s%s%s", what, segbus_strerror(rc), *detail ? ": " : "",
             detail);
}

static const char *opt_cstr(VALUE v, const char *name)
{
    if (NIL_P(v))
        return NULL;
    if (!RB_TYPE_P(v, T_STRING))
        rb_raise(rb_eArgError, "%s must be a String", name);
    return StringValueCStr(v);
}

struct open_args {
    segbus_client_t **out;
    const segbus_options_t *o;
    int rc;
};
static void *open_nogvl(void *p)
{
    struct open_args *a = p;
    a->rc = segbus_client_open(a->out, a->o);
    return NULL;
}

VALUE sbrb_client_open(VALUE socket, VALUE write_key, int policy, long long block_ms,
                       int standalone, int strict, int connect)
{
    const char *sock = opt_cstr(socket, "socket"), *key = opt_cstr(write_key, "write_key");
    segbus_options_t *o = segbus_options_new();
    if (!o)
        rb_memerror();
    int rc = 0;
    if (sock)
        rc = segbus_options_set_socket(o, sock);
    if (!rc && key)
        rc = segbus_options_set_write_key(o, key);
    if (!rc)
        rc = segbus_options_set_full_policy(o, (enum segbus_full_policy)policy, block_ms);
    if (!rc)
        rc = segbus_options_set_standalone(o, standalone);
    struct sbrb_client *cl = calloc(1, sizeof *cl);
    if (!cl) {
        segbus_options_free(o);
        rb_memerror();
    }
    cl->strict = strict;
    if (!rc && connect) {
        struct open_args a = {&cl->c, o, 0};
        rb_thread_call_without_gvl(open_nogvl, &a, RUBY_UBF_IO, NULL);
        rc = a.rc;
    }
    segbus_options_free(o);
    if (rc) {
        free(cl);
        raise_segbus(rc, "segbus client");
    }
    return TypedData_Wrap_Struct(rb_cObject, &client_type, cl);
}

VALUE sbrb_client_close(VALUE client)
{
    struct sbrb_client *cl = client_of(client);
    segbus_client_close(cl->c);
    cl->c = NULL;
    return Qnil;
}

struct flush_args {
    segbus_client_t *c;
    int64_t timeout;
    int rc;
};
static void *flush_nogvl(void *p)
{
    struct flush_args *a = p;
    a->rc = segbus_flush(a->c, a->timeout);
    return NULL;
}

VALUE sbrb_flush(VALUE client, long long timeout_ms)
{
    struct sbrb_client *cl = client_of(client);
    if (!cl->c)
        return INT2NUM(-SEGBUS_ENODAEMON);
    struct flush_args a = {cl->c, timeout_ms, 0};
    rb_thread_call_without_gvl(flush_nogvl, &a, RUBY_UBF_IO, NULL);
    return INT2NUM(a.rc);
}

VALUE sbrb_stats(VALUE client)
{
    struct sbrb_client *cl = client_of(client);
    struct segbus_client_stats st = {0};
    if (cl->c)
        (void)segbus_client_get_stats(cl->c, &st);
    VALUE h = rb_hash_new();
    rb_hash_aset(h, ID2SYM(rb_intern("sent")), ULL2NUM(st.sent));
    rb_hash_aset(h, ID2SYM(rb_intern("full")), ULL2NUM(st.full));
    rb_hash_aset(h, ID2SYM(rb_intern("dropped")), ULL2NUM(st.dropped));
    rb_hash_aset(h, ID2SYM(rb_intern("invalid")), ULL2NUM(st.invalid));
    rb_hash_aset(h, ID2SYM(rb_intern("dropped_values")), ULL2NUM(cl->dropped));
    return h;
}

/* ---- the event call ------------------------------------------------------------------------- */

/* An id: String as is (must not be empty), Symbol and Integer through to_s; nil -> NULL. */
static VALUE id_value(VALUE v, const char *name)
{
    if (NIL_P(v))
        return Qnil;
    if (SYMBOL_P(v))
        v = rb_sym2str(v);
    else if (RB_INTEGER_TYPE_P(v))
        v = rb_funcall(v, rb_intern("to_s"), 0);
    if (!RB_TYPE_P(v, T_STRING))
        rb_raise(rb_eArgError, "%s must be a String", name);
    return RSTRING_LEN(v) ? v : Qnil;
}

static const char *cstr_or_null(VALUE v)
{
    if (NIL_P(v))
        return NULL;
    if (memchr(RSTRING_PTR(v), 0, (size_t)RSTRING_LEN(v)))
        rb_raise(rb_eArgError, "string contains a NUL byte");
    return StringValueCStr(v);
}

static void check_hash(VALUE v, const char *name)
{
    if (!NIL_P(v) && !RB_TYPE_P(v, T_HASH))
        rb_raise(rb_eArgError, "%s must be a Hash", name);
}

/* Errors found while the scratch is busy are raised after it is released. */
struct pending {
    VALUE exc_class;
    char text[600];
    int rc; /* segbus error to raise through raise_segbus, when exc_class is Qnil */
};

static int convert_into(struct conv *cv, const char *root, VALUE h, segbus_map_t *m,
                        struct pending *err)
{
    size_t start = cv->buf->size;
    if (conv_pack(cv, root, h) < 0) {
        err->exc_class = rb_eTypeError;
        snprintf(err->text, sizeof err->text, "%s", cv->error);
        return -1;
    }
    int rc = sb_map_set_msgpack_trusted(m, cv->buf->data + start, cv->buf->size - start);
    if (rc == -EMSGSIZE) {
        err->exc_class = rb_eArgError;
        snprintf(err->text, sizeof err->text, "Message exceeds 32kb limit (%s alone is %zu bytes)",
                 root, cv->buf->size - start);
        return -1;
    }
    if (rc < 0) {
        err->rc = rc;
        return -1;
    }
    return 0;
}

VALUE sbrb_send(VALUE client, int type, int send, VALUE user_id, VALUE anonymous_id, VALUE a,
                VALUE b, VALUE body, VALUE context, VALUE timestamp, VALUE integrations,
                VALUE message_id)
{
    struct sbrb_client *cl = client_of(client);
    if (send && !cl->c)
        return Qnil; /* closed: the Ruby layer opens a new client and calls again */
    if (type < SEGBUS_TRACK || type > SEGBUS_ALIAS)
        rb_raise(rb_eArgError, "unknown event type %d", type);

    /* analytics-ruby's FieldParser checks, before anything is converted */
    VALUE uid = id_value(user_id, "user_id"), aid = id_value(anonymous_id, "anonymous_id");
    VALUE mid = id_value(message_id, "message_id"), av = Qnil, bv = Qnil;
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    const char *body_name = "properties";
    switch (type) {
    case SEGBUS_TRACK:
        if (NIL_P(a) || (RB_TYPE_P(a, T_STRING) && RSTRING_LEN(a) == 0))
            rb_raise(rb_eArgError, "event must be given");
        av = SYMBOL_P(a) ? rb_sym2str(a) : a;
        if (!RB_TYPE_P(av, T_STRING))
            rb_raise(rb_eArgError, "event must be a String");
        break;
    case SEGBUS_PAGE:
    case SEGBUS_SCREEN:
        if (!NIL_P(a) && !RB_TYPE_P(a, T_STRING))
            rb_raise(rb_eArgError, "name must be a String");
        if (!NIL_P(b) && !RB_TYPE_P(b, T_STRING))
            rb_raise(rb_eArgError, "category must be a String");
        av = a;
        bv = b;
        break;
    case SEGBUS_GROUP:
        av = id_value(a, "group_id");
        if (NIL_P(av))
            rb_raise(rb_eArgError, "group_id must be given");
        body_name = "traits";
        break;
    case SEGBUS_IDENTIFY:
        body_name = "traits";
        break;
    case SEGBUS_ALIAS:
        av = id_value(a, "previous_id");
        if (NIL_P(av))
            rb_raise(rb_eArgError, "previous_id must be given");
        if (NIL_P(uid))
            rb_raise(rb_eArgError, "user_id must be given");
        break;
    }
    if (type != SEGBUS_ALIAS && NIL_P(uid) && NIL_P(aid))
        rb_raise(rb_eArgError, "Must supply either user_id or anonymous_id");
    if (type != SEGBUS_ALIAS)
        check_hash(body, body_name);
    check_hash(context, "context");
    check_hash(integrations, "integrations");
    VALUE ts = Qnil;
    if (!NIL_P(timestamp)) {
        if (rb_obj_is_kind_of(timestamp, rb_cTime))
            ts = rb_funcall(timestamp, rb_intern("strftime"), 1,
                            rb_str_new_cstr("%Y-%m-%dT%H:%M:%S.%L%:z"));
        else if (RB_TYPE_P(timestamp, T_STRING))
            ts = timestamp;
        else
            rb_raise(rb_eArgError, "Timestamp must be a Time");
    }
    m.user_id = cstr_or_null(uid);
    m.anonymous_id = cstr_or_null(aid);
    m.message_id = cstr_or_null(mid);
    m.timestamp = cstr_or_null(ts);
    switch (type) {
    case SEGBUS_TRACK:
        m.event = cstr_or_null(av);
        break;
    case SEGBUS_PAGE:
    case SEGBUS_SCREEN:
        m.name = cstr_or_null(av);
        m.category = cstr_or_null(bv);
        break;
    case SEGBUS_GROUP:
        m.group_id = cstr_or_null(av);
        break;
    case SEGBUS_ALIAS:
        m.previous_id = cstr_or_null(av);
        break;
    }

    /* convert and send; no Ruby exception may fly while the scratch is busy */
    int temp = 0;
    struct sb_scratch *s = sb_scratch_get(&temp);
    if (!s)
        rb_memerror();
    s->busy = 1;
    s->buf.size = 0;
    struct conv cv;
    conv_init(&cv, &s->buf, cl->strict);
    struct pending err = {Qnil, "", 0};
    int rc = 0;
    if (type != SEGBUS_ALIAS && !NIL_P(body) && RHASH_SIZE(body) > 0) {
        rc = convert_into(&cv, body_name, body, s->maps[0], &err);
        if (type == SEGBUS_IDENTIFY || type == SEGBUS_GROUP)
            m.traits = s->maps[0];
        else
            m.properties = s->maps[0];
    }
    if (!rc && !NIL_P(context) && RHASH_SIZE(context) > 0) {
        rc = convert_into(&cv, "context", context, s->maps[1], &err);
        m.context = s->maps[1];
    }
    if (!rc && !NIL_P(integrations) && RHASH_SIZE(integrations) > 0) {
        rc = convert_into(&cv, "integrations", integrations, s->maps[2], &err);
        m.integrations = s->maps[2];
    }
    segbus_sent_t sent;
    int src = 0;
    if (!rc) {
        if (send) {
            src = segbus_send(cl->c, (enum segbus_type)type, &m, &sent);
        } else {
            size_t len;
            void *tmp = malloc(SEGBUS_MAX_EVENT_BYTES);
            src = tmp ? segbus_encode(cl->c, (enum segbus_type)type, &m, tmp,
                                      SEGBUS_MAX_EVENT_BYTES, &len, &sent)
                      : -ENOMEM;
            free(tmp);
        }
    }
    cl->dropped += cv.dropped;
    s->busy = 0;
    if (temp)
        sb_scratch_free(s);
    volatile VALUE keep = body; /* the hashes stay reachable until here */
    (void)keep;
    RB_GC_GUARD(context);
    RB_GC_GUARD(integrations);

    if (rc) {
        if (NIL_P(err.exc_class))
            raise_segbus(err.rc, "segbus");
        rb_raise(err.exc_class, "%s", err.text);
    }
    conv_report(&cv);
    switch (src) {
    case 0:
        break;
    case SEGBUS_DROPPED:
    case -EAGAIN:
        return rb_ary_new_from_args(2, Qfalse, rb_str_new_cstr("ring full"));
    case -EMSGSIZE:
        rb_raise(rb_eArgError, "Message exceeds 32kb limit (%d bytes): %s", SEGBUS_MAX_EVENT_BYTES,
                 segbus_last_error());
    case -SEGBUS_ENOEVENT:
        rb_raise(rb_eArgError, "event must be given");
    case -SEGBUS_EMESSAGEID:
        rb_raise(rb_eArgError, "message_id must be 1 to %d characters", SEGBUS_MAX_MESSAGE_ID);
    case -SEGBUS_ETIMESTAMP:
        rb_raise(rb_eArgError, "Timestamp must be a Time (or RFC 3339 text): %s",
                 segbus_last_error());
    case -ENOMEM:
        rb_memerror();
    default:
        if (src < 0 && src > -SEGBUS_EBASE && src != -EINVAL)
            return rb_ary_new_from_args(2, Qfalse, rb_str_new_cstr(segbus_strerror(src)));
        rb_raise(rb_eArgError, "segbus: %s: %s", segbus_strerror(src), segbus_last_error());
    }
    return Qtrue;
}
#endif /* SBB_HAVE_CLIENT */
