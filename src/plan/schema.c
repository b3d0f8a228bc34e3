/* schema.c: the draft-07 compiler (msgpack schema -> node tree) and validator (over msgpack). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "plan/schema.h"

#include <errno.h>
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "mp/mp_reader.h"
#include "plan/draft07_meta.h"
#include "segbus/segbus.h"

#define MAX_SCHEMA_DEPTH 256 /* nested schemas while compiling and while validating */

enum {
    T_NULL = 1,
    T_BOOLEAN = 2,
    T_OBJECT = 4,
    T_ARRAY = 8,
    T_NUMBER = 16,
    T_STRING = 32,
    T_INTEGER = 64,
};

/* Which keywords a node has. */
enum {
    K_TYPE = 1u << 0,
    K_ENUM = 1u << 1,
    K_CONST = 1u << 2,
    K_MULTIPLE = 1u << 3,
    K_MAXIMUM = 1u << 4,
    K_MINIMUM = 1u << 5,
    K_XMAXIMUM = 1u << 6,
    K_XMINIMUM = 1u << 7,
    K_MAXLEN = 1u << 8,
    K_MINLEN = 1u << 9,
    K_MAXITEMS = 1u << 10,
    K_MINITEMS = 1u << 11,
    K_UNIQUE = 1u << 12,
    K_MAXPROPS = 1u << 13,
    K_MINPROPS = 1u << 14,
};

struct bytes {
    const uint8_t *p;
    uint32_t n;
};

struct prop {
    struct bytes name;
    struct node *s;
};

struct patprop {
    pcre2_code *re;
    struct node *s;
};

struct dep {
    struct bytes name;
    struct node *s;      /* schema form, or NULL */
    struct bytes *names; /* array form */
    size_t n_names;
};

struct node {
    int boolean; /* 0: an object schema, 1: true, 2: false */
    uint32_t has;
    uint8_t types;
    struct node *ref;  /* $ref target (siblings ignored, as draft-07 says) */
    char *ref_uri;     /* until resolved */
    uint32_t doc, off; /* where it came from (memo key) */
    long double maximum, minimum, xmaximum, xminimum, multiple;
    uint64_t maxlen, minlen, maxitems, minitems, maxprops, minprops;
    pcre2_code *pattern;
    struct bytes enum_mp, const_mp; /* msgpack bytes of the array / the value */
    struct prop *props;
    size_t n_props;
    struct patprop *patprops;
    size_t n_patprops;
    struct node *additional_props;
    struct node *items;      /* single-schema form */
    struct node **item_list; /* array form */
    size_t n_items;
    bool items_is_list;
    struct node *additional_items;
    struct node *contains, *property_names, *not_, *if_, *then_, *else_;
    struct node **all_of, **any_of, **one_of;
    size_t n_all, n_any, n_one;
    struct bytes *required;
    size_t n_required;
    struct dep *deps;
    size_t n_deps;
    struct node *next_ref; /* list of nodes with a $ref to resolve */
};

struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct doc {
    uint8_t *bytes;
    size_t len;
};

struct idmap {
    char *uri; /* absolute, without an empty fragment */
    uint32_t doc, off;
    bool resource; /* a base URI (pointers resolve from here), else a plain-name anchor */
};

struct sb_schema {
    struct node *root;
    struct chunk *arena;
    pcre2_code **regexes;
    size_t n_regexes, cap_regexes;
    struct doc docs[2]; /* the schema, and the meta-schema when referenced */
    size_t n_docs;
    struct node **memo;
    size_t n_memo, cap_memo;
    struct idmap *ids;
    size_t n_ids, cap_ids;
    struct node *refs;
    /* compile-time only */
    char *err;
    size_t errlen;
};

/* ---- arena ---------------------------------------------------------------------------- */

static void *arena_alloc(struct sb_schema *s, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct chunk *c = s->arena;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->next = s->arena;
        c->used = 0;
        c->cap = cap;
        s->arena = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

static char *arena_strndup(struct sb_schema *s, const char *p, size_t n)
{
    char *d = arena_alloc(s, n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = 0;
    }
    return d;
}

__attribute__((format(printf, 3, 4))) static int errf(struct sb_schema *s, int rc, const char *fmt,
                                                      ...)
{
    if (s->err && s->errlen && !s->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->err, s->errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- URIs (RFC 3986 section 5, enough for $id and $ref) ----------------------------------- */

static bool has_scheme(const char *u)
{
    const char *p = u;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return false;
    while (*p && *p != ':' && *p != '/' && *p != '?' && *p != '#')
        p++;
    return *p == ':';
}

/* Remove "." and ".." segments from a path in place. */
static void remove_dots(char *path)
{
    char *out = path, *in = path;
    while (*in) {
        if (!strncmp(in, "../", 3))
            in += 3;
        else if (!strncmp(in, "./", 2))
            in += 2;
        else if (!strncmp(in, "/./", 3))
            in += 2;
        else if (!strcmp(in, "/."))
            in[1] = 0;
        else if (!strncmp(in, "/../", 4) || !strcmp(in, "/..")) {
            in += 3;
            if (!*in)
                *--in = '/';
            while (out > path && *--out != '/')
                ;
        } else if (!strcmp(in, ".") || !strcmp(in, ".."))
            *in = 0;
        else {
            do
                *out++ = *in++;
            while (*in && *in != '/');
        }
    }
    *out = 0;
}

/* Resolve ref against base; the result is malloc'd. */
static char *uri_resolve(const char *base, const char *ref)
{
    size_t bl = strlen(base), rl = strlen(ref);
    char *out = malloc(bl + rl + 4);
    if (!out)
        return NULL;
    if (has_scheme(ref) || !*base) {
        strcpy(out, ref);
        return out;
    }
    size_t nofrag = strcspn(base, "#");
    if (ref[0] == '#' || !ref[0]) {
        memcpy(out, base, nofrag);
        strcpy(out + nofrag, ref);
        return out;
    }
    /* scheme ":" ["//" authority] path ["?" query] */
    size_t scheme_end = has_scheme(base) ? (size_t)(strchr(base, ':') - base) + 1 : 0;
    size_t auth_end = scheme_end;
    bool has_auth = !strncmp(base + scheme_end, "//", 2);
    if (has_auth) {
        auth_end = scheme_end + 2;
        while (auth_end < nofrag && base[auth_end] != '/' && base[auth_end] != '?')
            auth_end++;
    }
    if (ref[0] == '/' && ref[1] == '/') {
        memcpy(out, base, scheme_end);
        strcpy(out + scheme_end, ref);
        return out;
    }
    size_t path_end = auth_end;
    while (path_end < nofrag && base[path_end] != '?')
        path_end++;
    if (ref[0] == '?') {
        memcpy(out, base, path_end);
        strcpy(out + path_end, ref);
        return out;
    }
    memcpy(out, base, auth_end);
    char *path = out + auth_end;
    if (ref[0] == '/') {
        strcpy(path, ref);
    } else if (has_auth && path_end == auth_end) {
        path[0] = '/';
        strcpy(path + 1, ref);
    } else {
        size_t last = path_end;
        while (last > auth_end && base[last - 1] != '/')
            last--;
        memcpy(path, base + auth_end, last - auth_end);
        strcpy(path + (last - auth_end), ref);
    }
    /* Dot segments only in the path part, not in the query or fragment. */
    size_t pl = strcspn(path, "?#");
    char saved = path[pl];
    char *tail = saved ? strdup(path + pl) : NULL;
    path[pl] = 0;
    remove_dots(path);
    if (tail) {
        strcat(path, tail);
        free(tail);
    }
    return out;
}

/* Drop an empty trailing fragment ("...#"). */
static void uri_trim(char *u)
{
    size_t n = strlen(u);
    if (n && u[n - 1] == '#')
        u[n - 1] = 0;
}

/* ---- msgpack helpers ----------------------------------------------------------------------- */

/* Extent of the value at p (within end). 0 if malformed (cannot happen after sb_mp_check). */
static size_t value_len(const uint8_t *p, const uint8_t *end)
{
    struct sb_mp_reader r;
    sb_mp_reader_init(&r, p, (size_t)(end - p));
    return sb_mp_skip(&r) < 0 ? 0 : sb_mp_reader_offset(&r);
}

static bool is_number(const struct sb_mp_item *it)
{
    return it->type == SB_MP_UINT || it->type == SB_MP_INT || it->type == SB_MP_FLOAT32 ||
           it->type == SB_MP_FLOAT64;
}

/* long double holds every int64, uint64 and double exactly (x86-64's 64-bit mantissa). */
static long double num_value(const struct sb_mp_item *it)
{
    switch (it->type) {
    case SB_MP_UINT:
        return (long double)it->v.u;
    case SB_MP_INT:
        return (long double)it->v.i;
    default:
        return (long double)it->v.f;
    }
}

/* Deep equality of two msgpack values (JSON semantics: 1 == 1.0, maps unordered). */
static bool mp_equal(struct sb_mp_reader *a, struct sb_mp_reader *b, int depth)
{
    struct sb_mp_item x, y;
    if (depth > MAX_SCHEMA_DEPTH || sb_mp_next(a, &x) < 0 || sb_mp_next(b, &y) < 0)
        return false;
    if (is_number(&x) && is_number(&y)) {
        long double u = num_value(&x), v = num_value(&y);
        return u == v;
    }
    if (x.type != y.type)
        return false;
    switch (x.type) {
    case SB_MP_NIL:
        return true;
    case SB_MP_BOOL:
        return x.v.b == y.v.b;
    case SB_MP_STR:
    case SB_MP_BIN:
        return x.v.str.len == y.v.str.len && !memcmp(x.v.str.ptr, y.v.str.ptr, x.v.str.len);
    case SB_MP_EXT:
        return x.v.ext.type == y.v.ext.type && x.v.ext.len == y.v.ext.len &&
               !memcmp(x.v.ext.ptr, y.v.ext.ptr, x.v.ext.len);
    case SB_MP_ARRAY:
        if (x.v.count != y.v.count)
            return false;
        for (uint32_t i = 0; i < x.v.count; i++)
            if (!mp_equal(a, b, depth + 1))
                return false;
        return true;
    case SB_MP_MAP: {
        if (x.v.count != y.v.count)
            return false;
        /* For each key of a, find the same key in b (keys are unique in JSON). */
        struct sb_mp_reader bstart = *b;
        for (uint32_t i = 0; i < x.v.count; i++) {
            struct sb_mp_reader key = *a;
            if (sb_mp_skip(a) < 0)
                return false;
            struct sb_mp_reader bb = bstart;
            bool found = false;
            for (uint32_t j = 0; j < y.v.count && !found; j++) {
                struct sb_mp_reader k1 = key, k2 = bb;
                if (mp_equal(&k1, &k2, depth + 1)) {
                    bb = k2;
                    if (!mp_equal(a, &bb, depth + 1))
                        return false;
                    found = true;
                } else {
                    if (sb_mp_skip(&bb) < 0 || sb_mp_skip(&bb) < 0)
                        return false;
                }
            }
            if (!found)
                return false;
        }
        /* move b past its map */
        for (uint32_t j = 0; j < 2 * y.v.count; j++)
            if (sb_mp_skip(b) < 0)
                return false;
        return true;
    }
    default:
        return false;
    }
}

/* Equal names: most candidates differ in the first byte, which saves the libc call. */
static inline bool same_name(const uint8_t *a, const uint8_t *b, size_t n)
{
    return !n || (a[0] == b[0] && !memcmp(a + 1, b + 1, n - 1));
}

static bool bytes_equal(struct bytes a, struct bytes b)
{
    struct sb_mp_reader x, y;
    sb_mp_reader_init(&x, a.p, a.n);
    sb_mp_reader_init(&y, b.p, b.n);
    return mp_equal(&x, &y, 0);
}

/* ---- compiling ------------------------------------------------------------------------------ */

struct cpath { /* where in the schema we are, for error messages */
    const struct cpath *up;
    const char *seg;
    size_t n;
};

static void cpath_str(const struct cpath *p, char *out, size_t cap)
{
    const struct cpath *segs[64];
    int n = 0;
    for (; p && n < 64; p = p->up)
        if (p->seg)
            segs[n++] = p;
    size_t len = 0;
    out[0] = 0;
    for (int i = n - 1; i >= 0 && len + 2 < cap; i--) {
        out[len++] = '/';
        for (size_t k = 0; k < segs[i]->n && len + 3 < cap; k++) {
            char c = segs[i]->seg[k];
            if (c == '~' || c == '/') {
                out[len++] = '~';
                out[len++] = c == '~' ? '0' : '1';
            } else
                out[len++] = c;
        }
        out[len] = 0;
    }
    if (!len)
        snprintf(out, cap, "(root)");
}

static int bad(struct sb_schema *s, const struct cpath *p, const char *what)
{
    char where[256];
    cpath_str(p, where, sizeof where);
    return errf(s, -EINVAL, "schema %s: %s", where, what);
}

static int compile_at(struct sb_schema *s, uint32_t doc, uint32_t off, const char *base,
                      const struct cpath *path, int depth, struct node **out);

static int add_id(struct sb_schema *s, char *uri, uint32_t doc, uint32_t off, bool resource)
{
    for (size_t i = 0; i < s->n_ids; i++)
        if (!strcmp(s->ids[i].uri, uri))
            return 0; /* first wins */
    if (s->n_ids == s->cap_ids) {
        size_t cap = s->cap_ids ? 2 * s->cap_ids : 16;
        struct idmap *n = realloc(s->ids, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        s->ids = n;
        s->cap_ids = cap;
    }
    s->ids[s->n_ids++] = (struct idmap){uri, doc, off, resource};
    return 0;
}

static int track_regex(struct sb_schema *s, pcre2_code *re)
{
    if (s->n_regexes == s->cap_regexes) {
        size_t cap = s->cap_regexes ? 2 * s->cap_regexes : 8;
        pcre2_code **n = realloc(s->regexes, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        s->regexes = n;
        s->cap_regexes = cap;
    }
    s->regexes[s->n_regexes++] = re;
    return 0;
}

/* Unicode General_Category long names (and gc=/General_Category= forms) that ECMA accepts in
 * \p{...} and PCRE2 10.42 does not: their short names. */
static const char *gc_short(const uint8_t *name, size_t n)
{
    static const char *const map[][2] = {
        {"Letter", "L"},
        {"Cased_Letter", "LC"},
        {"Uppercase_Letter", "Lu"},
        {"Lowercase_Letter", "Ll"},
        {"Titlecase_Letter", "Lt"},
        {"Modifier_Letter", "Lm"},
        {"Other_Letter", "Lo"},
        {"Mark", "M"},
        {"Combining_Mark", "M"},
        {"Nonspacing_Mark", "Mn"},
        {"Spacing_Mark", "Mc"},
        {"Enclosing_Mark", "Me"},
        {"Number", "N"},
        {"Decimal_Number", "Nd"},
        {"digit", "Nd"},
        {"Letter_Number", "Nl"},
        {"Other_Number", "No"},
        {"Punctuation", "P"},
        {"punct", "P"},
        {"Connector_Punctuation", "Pc"},
        {"Dash_Punctuation", "Pd"},
        {"Open_Punctuation", "Ps"},
        {"Close_Punctuation", "Pe"},
        {"Initial_Punctuation", "Pi"},
        {"Final_Punctuation", "Pf"},
        {"Other_Punctuation", "Po"},
        {"Symbol", "S"},
        {"Math_Symbol", "Sm"},
        {"Currency_Symbol", "Sc"},
        {"Modifier_Symbol", "Sk"},
        {"Other_Symbol", "So"},
        {"Separator", "Z"},
        {"Space_Separator", "Zs"},
        {"Line_Separator", "Zl"},
        {"Paragraph_Separator", "Zp"},
        {"Other", "C"},
        {"Control", "Cc"},
        {"cntrl", "Cc"},
        {"Format", "Cf"},
        {"Surrogate", "Cs"},
        {"Private_Use", "Co"},
        {"Unassigned", "Cn"},
    };
    if (n > 3 && !memcmp(name, "gc=", 3)) {
        name += 3;
        n -= 3;
    } else if (n > 17 && !memcmp(name, "General_Category=", 17)) {
        name += 17;
        n -= 17;
    }
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strlen(map[i][0]) == n && !memcmp(map[i][0], name, n))
            return map[i][1];
    return NULL;
}

/* ECMA-262 classes in PCRE2 terms: with PCRE2_UCP \s is Unicode white space as in ECMA, but \d
 * and \w would become Unicode too where ECMA keeps them ASCII; so spell those out. Inside a
 * class the negated ones become explicit code point ranges. Returns a malloc'd pattern. */
static char *ecma_translate(const uint8_t *src, size_t n, size_t *out_len)
{
    static const char *out_d = "[0-9]", *out_nd = "[^0-9]", *out_w = "[A-Za-z0-9_]",
                      *out_nw = "[^A-Za-z0-9_]";
    static const char *in_d = "0-9", *in_nd = "\\x{0}-\\x{2f}\\x{3a}-\\x{10ffff}",
                      *in_w = "A-Za-z0-9_",
                      *in_nw =
                          "\\x{0}-\\x{2f}\\x{3a}-\\x{40}\\x{5b}-\\x{5e}\\x{60}\\x{7b}-\\x{10ffff}";
    char *out = malloc(n * 40 + 1); /* the longest replacement is < 40 bytes per 2 input bytes */
    if (!out)
        return NULL;
    size_t o = 0;
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = src[i];
        if (ch == '\\' && i + 1 < n) {
            const char *rep = NULL;
            switch (src[i + 1]) {
            case 'd':
                rep = in_class ? in_d : out_d;
                break;
            case 'D':
                rep = in_class ? in_nd : out_nd;
                break;
            case 'w':
                rep = in_class ? in_w : out_w;
                break;
            case 'W':
                rep = in_class ? in_nw : out_nw;
                break;
            case 's': /* ECMA counts U+FEFF as white space; Unicode does not */
                rep = in_class ? "\\s\\x{feff}" : "[\\s\\x{feff}]";
                break;
            case 'S':
                rep = in_class ? NULL : "[^\\s\\x{feff}]";
                break;
            case 'p':
            case 'P': {
                const uint8_t *close =
                    i + 2 < n && src[i + 2] == '{' ? memchr(src + i + 3, '}', n - i - 3) : NULL;
                const char *gc =
                    close ? gc_short(src + i + 3, (size_t)(close - src - i - 3)) : NULL;
                if (gc) {
                    o += (size_t)sprintf(out + o, "\\%c{%s}", src[i + 1], gc);
                    i = (size_t)(close - src);
                    continue;
                }
                break;
            }
            }
            if (rep) {
                size_t rl = strlen(rep);
                memcpy(out + o, rep, rl);
                o += rl;
            } else {
                out[o++] = (char)ch;
                out[o++] = (char)src[i + 1];
            }
            i++;
            continue;
        }
        if (ch == '[' && !in_class) {
            in_class = true;
            out[o++] = (char)ch;
            /* "[]" and "[^]" : a ']' right after the opening is literal in PCRE2 but closes
             * the class in ECMA; ECMA patterns in schemas do not use that form. */
            continue;
        }
        if (ch == ']' && in_class)
            in_class = false;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    *out_len = o;
    return out;
}

/* ECMA-262-ish: UTF and UCP mode, '$' only at the very end, search (not anchored). */
static int compile_regex(struct sb_schema *s, const struct cpath *p, const uint8_t *src, size_t n,
                         pcre2_code **out)
{
    int ec;
    PCRE2_SIZE eo;
    size_t tn;
    char *t = ecma_translate(src, n, &tn);
    if (!t)
        return -ENOMEM;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)t, tn, PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY,
                                   &ec, &eo, NULL);
    free(t);
    if (!re) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(ec, msg, sizeof msg);
        char what[200];
        snprintf(what, sizeof what, "bad regular expression: %s", (const char *)msg);
        return bad(s, p, what);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* best effort: the interpreter still works */
    if (track_regex(s, re) < 0) {
        pcre2_code_free(re);
        return -ENOMEM;
    }
    *out = re;
    return 0;
}

static int get_num(struct sb_schema *s, const struct cpath *p, struct sb_mp_reader *r,
                   long double *v)
{
    struct sb_mp_item it;
    if (sb_mp_next(r, &it) < 0)
        return -EINVAL;
    if (!is_number(&it))
        return bad(s, p, "must be a number");
    *v = num_value(&it);
    return 0;
}

static int get_count(struct sb_schema *s, const struct cpath *p, struct sb_mp_reader *r,
                     uint64_t *v)
{
    struct sb_mp_item it;
    if (sb_mp_next(r, &it) < 0)
        return -EINVAL;
    if (it.type == SB_MP_UINT)
        *v = it.v.u;
    else if ((it.type == SB_MP_FLOAT64 || it.type == SB_MP_FLOAT32) && it.v.f >= 0 &&
             it.v.f == floor(it.v.f))
        *v = it.v.f >= 1.8e19 ? UINT64_MAX : (uint64_t)it.v.f;
    else
        return bad(s, p, "must be a non-negative integer");
    return 0;
}

static int type_bit(const uint8_t *p, size_t n)
{
    static const char *names[] = {"null",   "boolean", "object", "array",
                                  "number", "string",  "integer"};
    for (int i = 0; i < 7; i++)
        if (strlen(names[i]) == n && !memcmp(names[i], p, n))
            return 1 << i;
    return 0;
}

/* Compile an array of schemas (allOf/anyOf/oneOf/items). */
static int compile_list(struct sb_schema *s, uint32_t doc, struct sb_mp_reader *r, const char *base,
                        const struct cpath *p, int depth, struct node ***out, size_t *n,
                        bool nonempty)
{
    struct sb_mp_item it;
    if (sb_mp_next(r, &it) < 0)
        return -EINVAL;
    if (it.type != SB_MP_ARRAY || (nonempty && it.v.count == 0))
        return bad(s, p, nonempty ? "must be a non-empty array of schemas" : "must be an array");
    *n = it.v.count;
    *out = arena_alloc(s, (it.v.count + 1) * sizeof **out);
    if (!*out)
        return -ENOMEM;
    for (uint32_t i = 0; i < it.v.count; i++) {
        char idx[16];
        int len = snprintf(idx, sizeof idx, "%u", i);
        char *seg = arena_strndup(s, idx, (size_t)len);
        struct cpath sub = {p, seg, (size_t)len};
        int rc = compile_at(s, doc, (uint32_t)(r->p - s->docs[doc].bytes), base, &sub, depth + 1,
                            &(*out)[i]);
        if (rc < 0)
            return rc;
        if (sb_mp_skip(r) < 0)
            return -EINVAL;
    }
    return 0;
}

/* Compile the map of name -> schema (properties, patternProperties, definitions). */
static int compile_map(struct sb_schema *s, uint32_t doc, struct sb_mp_reader *r, const char *base,
                       const struct cpath *p, int depth, struct prop **out, size_t *n)
{
    struct sb_mp_item it;
    if (sb_mp_next(r, &it) < 0)
        return -EINVAL;
    if (it.type != SB_MP_MAP)
        return bad(s, p, "must be an object");
    *n = it.v.count;
    *out = arena_alloc(s, (it.v.count + 1) * sizeof **out);
    if (!*out)
        return -ENOMEM;
    for (uint32_t i = 0; i < it.v.count; i++) {
        struct sb_mp_item k;
        if (sb_mp_next(r, &k) < 0)
            return -EINVAL;
        if (k.type != SB_MP_STR)
            return bad(s, p, "keys must be strings");
        (*out)[i].name = (struct bytes){k.v.str.ptr, k.v.str.len};
        struct cpath sub = {p, (const char *)k.v.str.ptr, k.v.str.len};
        int rc = compile_at(s, doc, (uint32_t)(r->p - s->docs[doc].bytes), base, &sub, depth + 1,
                            &(*out)[i].s);
        if (rc < 0)
            return rc;
        if (sb_mp_skip(r) < 0)
            return -EINVAL;
    }
    return 0;
}

static int string_list(struct sb_schema *s, struct sb_mp_reader *r, const struct cpath *p,
                       struct bytes **out, size_t *n)
{
    struct sb_mp_item it;
    if (sb_mp_next(r, &it) < 0)
        return -EINVAL;
    if (it.type != SB_MP_ARRAY)
        return bad(s, p, "must be an array of strings");
    *n = it.v.count;
    *out = arena_alloc(s, (it.v.count + 1) * sizeof **out);
    if (!*out)
        return -ENOMEM;
    for (uint32_t i = 0; i < it.v.count; i++) {
        struct sb_mp_item e;
        if (sb_mp_next(r, &e) < 0)
            return -EINVAL;
        if (e.type != SB_MP_STR)
            return bad(s, p, "must be an array of strings");
        (*out)[i] = (struct bytes){e.v.str.ptr, e.v.str.len};
    }
    return 0;
}

static bool key_is(const struct sb_mp_item *k, const char *name)
{
    size_t n = strlen(name);
    return k->v.str.len == n && !memcmp(k->v.str.ptr, name, n);
}

static int compile_at(struct sb_schema *s, uint32_t doc, uint32_t off, const char *base,
                      const struct cpath *path, int depth, struct node **out)
{
    for (size_t i = 0; i < s->n_memo; i++)
        if (s->memo[i]->doc == doc && s->memo[i]->off == off) {
            *out = s->memo[i];
            return 0;
        }
    if (depth > MAX_SCHEMA_DEPTH)
        return bad(s, path, "schemas nested too deep");
    struct node *n = arena_alloc(s, sizeof *n);
    if (!n)
        return -ENOMEM;
    n->doc = doc;
    n->off = off;
    if (s->n_memo == s->cap_memo) {
        size_t cap = s->cap_memo ? 2 * s->cap_memo : 64;
        struct node **m = realloc(s->memo, cap * sizeof *m);
        if (!m)
            return -ENOMEM;
        s->memo = m;
        s->cap_memo = cap;
    }
    s->memo[s->n_memo++] = n;
    *out = n;

    const struct doc *d = &s->docs[doc];
    struct sb_mp_reader r;
    struct sb_mp_item it;
    sb_mp_reader_init(&r, d->bytes + off, d->len - off);
    if (sb_mp_next(&r, &it) < 0)
        return -EINVAL;
    if (it.type == SB_MP_BOOL) {
        n->boolean = it.v.b ? 1 : 2;
        return 0;
    }
    if (it.type != SB_MP_MAP)
        return bad(s, path, "a schema must be an object or a boolean");
    uint32_t pairs = it.v.count;
    struct sb_mp_reader body = r;
    int rc;

    /* $ref first: draft-07 ignores every sibling (even $id). */
    struct sb_mp_reader look = body;
    if ((rc = sb_mp_map_find(&look, pairs, "$ref", 4)) < 0)
        return -EINVAL;
    if (rc == 1) {
        const char *ref;
        size_t rl;
        if (sb_mp_read_str(&look, &ref, &rl) < 0)
            return bad(s, path, "$ref must be a string");
        char *tmp = strndup(ref, rl);
        char *abs = tmp ? uri_resolve(base, tmp) : NULL;
        free(tmp);
        if (!abs)
            return -ENOMEM;
        n->ref_uri = arena_strndup(s, abs, strlen(abs));
        free(abs);
        if (!n->ref_uri)
            return -ENOMEM;
        n->next_ref = s->refs;
        s->refs = n;
        return 0;
    }

    /* $id changes the base for this schema and what is under it. */
    char *mybase = NULL;
    look = body;
    if ((rc = sb_mp_map_find(&look, pairs, "$id", 3)) < 0)
        return -EINVAL;
    if (rc == 1) {
        const char *id;
        size_t il;
        if (sb_mp_read_str(&look, &id, &il) < 0)
            return bad(s, path, "$id must be a string");
        char *tmp = strndup(id, il);
        char *abs = tmp ? uri_resolve(base, tmp) : NULL;
        free(tmp);
        if (!abs)
            return -ENOMEM;
        uri_trim(abs);
        char *keep = arena_strndup(s, abs, strlen(abs));
        free(abs);
        if (!keep)
            return -ENOMEM;
        bool anchor = strchr(keep, '#') != NULL;
        if ((rc = add_id(s, keep, doc, off, !anchor)) < 0)
            return rc;
        if (!anchor)
            mybase = keep;
    }
    if (mybase)
        base = mybase;

    for (uint32_t i = 0; i < pairs; i++) {
        struct sb_mp_item k;
        if (sb_mp_next(&r, &k) < 0)
            return -EINVAL;
        if (k.type != SB_MP_STR) {
            if (sb_mp_skip(&r) < 0)
                return -EINVAL;
            continue;
        }
        struct cpath kp = {path, (const char *)k.v.str.ptr, k.v.str.len};
        uint32_t voff = (uint32_t)(r.p - d->bytes);
        struct sb_mp_reader v = r;
        struct sb_mp_item vi;
        if (sb_mp_peek(&v, &vi) < 0)
            return -EINVAL;
        rc = 0;
        if (key_is(&k, "type")) {
            n->has |= K_TYPE;
            if (vi.type == SB_MP_STR) {
                int b = type_bit(vi.v.str.ptr, vi.v.str.len);
                if (!b)
                    return bad(s, &kp, "unknown type name");
                n->types |= (uint8_t)b;
            } else if (vi.type == SB_MP_ARRAY) {
                sb_mp_next(&v, &vi);
                for (uint32_t j = 0; j < vi.v.count; j++) {
                    struct sb_mp_item e;
                    if (sb_mp_next(&v, &e) < 0)
                        return -EINVAL;
                    int b = e.type == SB_MP_STR ? type_bit(e.v.str.ptr, e.v.str.len) : 0;
                    if (!b)
                        return bad(s, &kp, "unknown type name");
                    n->types |= (uint8_t)b;
                }
            } else
                return bad(s, &kp, "must be a string or an array of strings");
        } else if (key_is(&k, "enum")) {
            if (vi.type != SB_MP_ARRAY)
                return bad(s, &kp, "must be an array");
            n->has |= K_ENUM;
            n->enum_mp = (struct bytes){r.p, (uint32_t)value_len(r.p, d->bytes + d->len)};
        } else if (key_is(&k, "const")) {
            n->has |= K_CONST;
            n->const_mp = (struct bytes){r.p, (uint32_t)value_len(r.p, d->bytes + d->len)};
        } else if (key_is(&k, "multipleOf")) {
            n->has |= K_MULTIPLE;
            rc = get_num(s, &kp, &v, &n->multiple);
            if (!rc && !(n->multiple > 0))
                return bad(s, &kp, "must be greater than 0");
        } else if (key_is(&k, "maximum")) {
            n->has |= K_MAXIMUM;
            rc = get_num(s, &kp, &v, &n->maximum);
        } else if (key_is(&k, "minimum")) {
            n->has |= K_MINIMUM;
            rc = get_num(s, &kp, &v, &n->minimum);
        } else if (key_is(&k, "exclusiveMaximum")) {
            n->has |= K_XMAXIMUM;
            rc = get_num(s, &kp, &v, &n->xmaximum);
        } else if (key_is(&k, "exclusiveMinimum")) {
            n->has |= K_XMINIMUM;
            rc = get_num(s, &kp, &v, &n->xminimum);
        } else if (key_is(&k, "maxLength")) {
            n->has |= K_MAXLEN;
            rc = get_count(s, &kp, &v, &n->maxlen);
        } else if (key_is(&k, "minLength")) {
            n->has |= K_MINLEN;
            rc = get_count(s, &kp, &v, &n->minlen);
        } else if (key_is(&k, "maxItems")) {
            n->has |= K_MAXITEMS;
            rc = get_count(s, &kp, &v, &n->maxitems);
        } else if (key_is(&k, "minItems")) {
            n->has |= K_MINITEMS;
            rc = get_count(s, &kp, &v, &n->minitems);
        } else if (key_is(&k, "maxProperties")) {
            n->has |= K_MAXPROPS;
            rc = get_count(s, &kp, &v, &n->maxprops);
        } else if (key_is(&k, "minProperties")) {
            n->has |= K_MINPROPS;
            rc = get_count(s, &kp, &v, &n->minprops);
        } else if (key_is(&k, "uniqueItems")) {
            if (vi.type != SB_MP_BOOL)
                return bad(s, &kp, "must be a boolean");
            if (vi.v.b)
                n->has |= K_UNIQUE;
        } else if (key_is(&k, "pattern")) {
            if (vi.type != SB_MP_STR)
                return bad(s, &kp, "must be a string");
            rc = compile_regex(s, &kp, vi.v.str.ptr, vi.v.str.len, &n->pattern);
        } else if (key_is(&k, "required")) {
            rc = string_list(s, &v, &kp, &n->required, &n->n_required);
        } else if (key_is(&k, "properties")) {
            rc = compile_map(s, doc, &v, base, &kp, depth, &n->props, &n->n_props);
        } else if (key_is(&k, "patternProperties")) {
            struct prop *pp;
            size_t np;
            rc = compile_map(s, doc, &v, base, &kp, depth, &pp, &np);
            if (!rc) {
                n->patprops = arena_alloc(s, (np + 1) * sizeof *n->patprops);
                if (!n->patprops)
                    return -ENOMEM;
                n->n_patprops = np;
                for (size_t j = 0; j < np && !rc; j++) {
                    struct cpath pk = {&kp, (const char *)pp[j].name.p, pp[j].name.n};
                    n->patprops[j].s = pp[j].s;
                    rc = compile_regex(s, &pk, pp[j].name.p, pp[j].name.n, &n->patprops[j].re);
                }
            }
        } else if (key_is(&k, "definitions")) {
            struct prop *defs;
            size_t nd;
            rc = compile_map(s, doc, &v, base, &kp, depth, &defs, &nd);
        } else if (key_is(&k, "additionalProperties")) {
            rc = compile_at(s, doc, voff, base, &kp, depth + 1, &n->additional_props);
        } else if (key_is(&k, "additionalItems")) {
            rc = compile_at(s, doc, voff, base, &kp, depth + 1, &n->additional_items);
        } else if (key_is(&k, "items")) {
            if (vi.type == SB_MP_ARRAY) {
                n->items_is_list = true;
                rc = compile_list(s, doc, &v, base, &kp, depth, &n->item_list, &n->n_items, false);
            } else
                rc = compile_at(s, doc, voff, base, &kp, depth + 1, &n->items);
        } else if (key_is(&k, "contains")) {
            rc = compile_at(s, doc, voff, base, &kp, depth + 1, &n->contains);
        } else if (key_is(&k, "propertyNames")) {
            rc = compile_at(s, doc, voff, base, &kp, depth + 1, &n->property_names);
        } else if (key_is(&k, "not")) {
            rc = compile_at(s, doc, voff, base, &kp, depth + 1, &n->not_);
        } else if (key_is(&k, "if")) {
            rc = compile_at(s, doc, voff, base, &kp, depth + 1, &n->if_);
        } else if (key_is(&k, "then")) {
            rc = compile_at(s, doc, voff, base, &kp, depth + 1, &n->then_);
        } else if (key_is(&k, "else")) {
            rc = compile_at(s, doc, voff, base, &kp, depth + 1, &n->else_);
        } else if (key_is(&k, "allOf")) {
            rc = compile_list(s, doc, &v, base, &kp, depth, &n->all_of, &n->n_all, true);
        } else if (key_is(&k, "anyOf")) {
            rc = compile_list(s, doc, &v, base, &kp, depth, &n->any_of, &n->n_any, true);
        } else if (key_is(&k, "oneOf")) {
            rc = compile_list(s, doc, &v, base, &kp, depth, &n->one_of, &n->n_one, true);
        } else if (key_is(&k, "dependencies")) {
            struct sb_mp_item m;
            sb_mp_next(&v, &m);
            if (m.type != SB_MP_MAP)
                return bad(s, &kp, "must be an object");
            n->deps = arena_alloc(s, (m.v.count + 1) * sizeof *n->deps);
            if (!n->deps)
                return -ENOMEM;
            n->n_deps = m.v.count;
            for (uint32_t j = 0; j < m.v.count && !rc; j++) {
                struct sb_mp_item dk, dv;
                if (sb_mp_next(&v, &dk) < 0 || sb_mp_peek(&v, &dv) < 0)
                    return -EINVAL;
                if (dk.type != SB_MP_STR)
                    return bad(s, &kp, "keys must be strings");
                struct dep *dp = &n->deps[j];
                dp->name = (struct bytes){dk.v.str.ptr, dk.v.str.len};
                struct cpath dpp = {&kp, (const char *)dk.v.str.ptr, dk.v.str.len};
                if (dv.type == SB_MP_ARRAY) {
                    rc = string_list(s, &v, &dpp, &dp->names, &dp->n_names);
                } else {
                    rc = compile_at(s, doc, (uint32_t)(v.p - d->bytes), base, &dpp, depth + 1,
                                    &dp->s);
                    if (!rc && sb_mp_skip(&v) < 0)
                        return -EINVAL;
                }
            }
        }
        if (rc < 0)
            return rc;
        if (sb_mp_skip(&r) < 0)
            return -EINVAL;
    }
    return 0;
}

/* JSON Pointer (already %-decoded) from the value at doc/off: the offset of the target. */
static int walk_pointer(struct sb_schema *s, uint32_t doc, uint32_t off, const char *ptr,
                        uint32_t *target)
{
    const struct doc *d = &s->docs[doc];
    const uint8_t *p = d->bytes + off;
    while (*ptr) {
        if (*ptr != '/')
            return -ENOENT;
        ptr++;
        size_t seglen = strcspn(ptr, "/");
        char *seg = malloc(seglen + 1);
        if (!seg)
            return -ENOMEM;
        size_t o = 0;
        for (size_t i = 0; i < seglen; i++) {
            if (ptr[i] == '~' && i + 1 < seglen && (ptr[i + 1] == '0' || ptr[i + 1] == '1')) {
                seg[o++] = ptr[i + 1] == '0' ? '~' : '/';
                i++;
            } else
                seg[o++] = ptr[i];
        }
        seg[o] = 0;
        ptr += seglen;
        struct sb_mp_reader r;
        struct sb_mp_item it;
        sb_mp_reader_init(&r, p, (size_t)(d->bytes + d->len - p));
        int rc = -ENOENT;
        if (sb_mp_next(&r, &it) == 0) {
            if (it.type == SB_MP_MAP) {
                rc = sb_mp_map_find(&r, it.v.count, seg, o) == 1 ? 0 : -ENOENT;
            } else if (it.type == SB_MP_ARRAY && o > 0 && o < 10 &&
                       strspn(seg, "0123456789") == o && (o == 1 || seg[0] != '0')) {
                unsigned long idx = strtoul(seg, NULL, 10);
                rc = idx < it.v.count ? 0 : -ENOENT;
                for (unsigned long j = 0; j < idx && rc == 0; j++)
                    if (sb_mp_skip(&r) < 0)
                        rc = -EINVAL;
            }
        }
        free(seg);
        if (rc < 0)
            return rc;
        p = r.p;
    }
    *target = (uint32_t)(p - d->bytes);
    return 0;
}

static int pct_decode(const char *in, char *out)
{
    size_t o = 0;
    for (size_t i = 0; in[i]; i++) {
        if (in[i] == '%' && in[i + 1] && in[i + 2]) {
            char hex[3] = {in[i + 1], in[i + 2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end)
                return -EINVAL;
            out[o++] = (char)v;
            i += 2;
        } else
            out[o++] = in[i];
    }
    out[o] = 0;
    return 0;
}

static int load_meta(struct sb_schema *s);

static int resolve_refs(struct sb_schema *s)
{
    while (s->refs) {
        struct node *n = s->refs;
        s->refs = n->next_ref;
        const char *uri = n->ref_uri;
        /* 1. An exact $id (a resource or a plain-name anchor). */
        char *trimmed = strdup(uri);
        if (!trimmed)
            return -ENOMEM;
        uri_trim(trimmed);
        struct idmap *hit = NULL;
        for (size_t i = 0; i < s->n_ids && !hit; i++)
            if (!strcmp(s->ids[i].uri, trimmed))
                hit = &s->ids[i];
        if (!hit && !strncmp(trimmed, SB_DRAFT07_META_URI, strlen(SB_DRAFT07_META_URI)) &&
            (trimmed[strlen(SB_DRAFT07_META_URI)] == 0 ||
             trimmed[strlen(SB_DRAFT07_META_URI)] == '#') &&
            s->n_docs == 1) {
            int rc = load_meta(s);
            if (rc < 0) {
                free(trimmed);
                return rc;
            }
            for (size_t i = 0; i < s->n_ids && !hit; i++)
                if (!strcmp(s->ids[i].uri, trimmed))
                    hit = &s->ids[i];
        }
        int rc = 0;
        if (hit) {
            rc = compile_at(s, hit->doc, hit->off, hit->uri, NULL, 0, &n->ref);
        } else {
            /* 2. A JSON Pointer fragment within a resource. */
            char *hash = strchr(trimmed, '#');
            const char *frag = hash ? hash + 1 : "";
            if (hash)
                *hash = 0;
            struct idmap *res = NULL;
            for (size_t i = 0; i < s->n_ids && !res; i++)
                if (s->ids[i].resource && !strcmp(s->ids[i].uri, trimmed))
                    res = &s->ids[i];
            char *dec = malloc(strlen(frag) + 1);
            if (!dec) {
                free(trimmed);
                return -ENOMEM;
            }
            uint32_t target;
            if (!res || (frag[0] && frag[0] != '/') || pct_decode(frag, dec) < 0 ||
                walk_pointer(s, res->doc, res->off, dec, &target) < 0)
                rc = errf(s, -EINVAL, "schema: cannot resolve $ref \"%s\"%s", uri,
                          res ? "" : " (remote references are not supported)");
            else
                rc = compile_at(s, res->doc, target, res->uri, NULL, 0, &n->ref);
            free(dec);
        }
        free(trimmed);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int load_doc(struct sb_schema *s, const uint8_t *mp, size_t len, const char *base)
{
    if (sb_mp_check(mp, len, 200) < 0)
        return errf(s, -EINVAL, "schema: not one well-formed msgpack value (or nested too deep)");
    if (len > UINT32_MAX)
        return errf(s, -EINVAL, "schema: too large");
    uint32_t doc = (uint32_t)s->n_docs;
    s->docs[doc].bytes = malloc(len ? len : 1);
    if (!s->docs[doc].bytes)
        return -ENOMEM;
    memcpy(s->docs[doc].bytes, mp, len);
    s->docs[doc].len = len;
    s->n_docs++;
    /* The document itself is a resource at its retrieval base (empty for ours). */
    char *b = arena_strndup(s, base, strlen(base));
    if (!b)
        return -ENOMEM;
    int rc = add_id(s, b, doc, 0, true);
    if (rc < 0)
        return rc;
    struct node *root;
    rc = compile_at(s, doc, 0, base, NULL, 0, &root);
    if (rc < 0)
        return rc;
    if (doc == 0)
        s->root = root;
    return 0;
}

static int json_to_mp(const char *json, size_t len, msgpack_sbuffer *sb, char *err, size_t errlen)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    struct sb_json_error je;
    int rc = sb_json_to_msgpack(json, len, &pk, &je);
    if (rc < 0 && err && errlen)
        snprintf(err, errlen, "schema JSON at byte %zu: %s", je.offset,
                 je.reason ? je.reason : "error");
    return rc;
}

static int load_meta(struct sb_schema *s)
{
    msgpack_sbuffer sb;
    int rc = json_to_mp(sb_draft07_meta, sizeof sb_draft07_meta - 1, &sb, NULL, 0);
    if (rc == 0)
        rc = load_doc(s, (const uint8_t *)sb.data, sb.size, SB_DRAFT07_META_URI);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

int sb_schema_compile_mp(const uint8_t *mp, size_t len, struct sb_schema **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    struct sb_schema *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->err = err;
    s->errlen = err ? errlen : 0;
    int rc = load_doc(s, mp, len, "");
    if (rc == 0)
        rc = resolve_refs(s);
    s->err = NULL;
    free(s->memo); /* only needed while compiling */
    s->memo = NULL;
    s->n_memo = s->cap_memo = 0;
    if (rc < 0) {
        if (rc == -EINVAL && err && errlen && !err[0])
            snprintf(err, errlen, "schema: malformed");
        sb_schema_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int sb_schema_compile_json(const char *json, size_t len, struct sb_schema **out, char *err,
                           size_t errlen)
{
    msgpack_sbuffer sb;
    *out = NULL;
    int rc = json_to_mp(json, len, &sb, err, errlen);
    if (rc == 0)
        rc = sb_schema_compile_mp((const uint8_t *)sb.data, sb.size, out, err, errlen);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

void sb_schema_free(struct sb_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_regexes; i++)
        pcre2_code_free(s->regexes[i]);
    free(s->regexes);
    for (size_t i = 0; i < s->n_docs; i++)
        free(s->docs[i].bytes);
    free(s->memo);
    free(s->ids);
    while (s->arena) {
        struct chunk *c = s->arena;
        s->arena = c->next;
        free(c);
    }
    free(s);
}

/* ---- validating ----------------------------------------------------------------------------- */

struct seg {
    const uint8_t *key; /* NULL: an array index */
    uint32_t len;
    uint32_t index;
};

struct vctx {
    struct sb_violations *out; /* NULL: stop at the first failure */
    struct seg path[MAX_SCHEMA_DEPTH + 2];
    int depth; /* path segments in use */
    int calls; /* nested validate() calls */
    int err;   /* -ENOMEM / -ELOOP / -EINVAL once something broke */
    pcre2_match_data *md;
};

void sb_violations_clear(struct sb_violations *v)
{
    for (size_t i = 0; i < v->count; i++) {
        free(v->items[i].path);
        free(v->items[i].pointer);
        free(v->items[i].reason);
    }
    v->count = 0;
    v->truncated = false;
}

void sb_violations_free(struct sb_violations *v)
{
    if (!v)
        return;
    sb_violations_clear(v);
    free(v->items);
    v->items = NULL;
    v->cap = 0;
}

const char *sb_violation_kind_name(enum sb_violation_kind kind)
{
    switch (kind) {
    case SB_VIOLATION_REQUIRED:
        return "Required";
    case SB_VIOLATION_TYPE:
        return "Type";
    case SB_VIOLATION_VALUE:
        return "Value";
    case SB_VIOLATION_UNPLANNED_PROPERTY:
        return "Unplanned property";
    case SB_VIOLATION_UNPLANNED_EVENT:
        return "Unplanned event";
    }
    return "Unknown";
}

static void append(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (!*buf)
        return;
    if (*len + n + 1 > *cap) {
        size_t c = (*len + n + 1) * 2;
        char *b = realloc(*buf, c);
        if (!b) {
            free(*buf);
            *buf = NULL;
            return;
        }
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = 0;
}

/* Dotted path and JSON Pointer for the current path plus an optional extra key. */
static void render_path(const struct vctx *c, const uint8_t *extra, size_t extra_len, char **dotted,
                        char **pointer)
{
    size_t dl = 0, dc = 64, pl = 0, pc = 64;
    *dotted = malloc(dc);
    *pointer = malloc(pc);
    if (*dotted)
        (*dotted)[0] = 0;
    if (*pointer)
        (*pointer)[0] = 0;
    for (int i = 0; i <= c->depth; i++) {
        const uint8_t *k;
        size_t kl;
        char idx[16];
        if (i == c->depth) {
            if (!extra)
                break;
            k = extra;
            kl = extra_len;
        } else if (c->path[i].key) {
            k = c->path[i].key;
            kl = c->path[i].len;
        } else {
            kl = (size_t)snprintf(idx, sizeof idx, "%u", c->path[i].index);
            k = (const uint8_t *)idx;
        }
        if (dl)
            append(dotted, &dl, &dc, ".", 1);
        append(dotted, &dl, &dc, k, kl);
        append(pointer, &pl, &pc, "/", 1);
        for (size_t j = 0; j < kl; j++) {
            if (k[j] == '~')
                append(pointer, &pl, &pc, "~0", 2);
            else if (k[j] == '/')
                append(pointer, &pl, &pc, "~1", 2);
            else
                append(pointer, &pl, &pc, k + j, 1);
        }
    }
}

/* Record a failure (or just report it when nobody collects). Returns 0: "invalid". */
__attribute__((format(printf, 6, 7))) static int fail(struct vctx *c, enum sb_violation_kind kind,
                                                      const char *keyword, const uint8_t *extra,
                                                      size_t extra_len, const char *fmt, ...)
{
    struct sb_violations *v = c->out;
    if (!v)
        return 0;
    if (v->limit && v->count >= v->limit) {
        v->truncated = true;
        return 0;
    }
    if (v->count == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 8;
        struct sb_violation *n = realloc(v->items, cap * sizeof *n);
        if (!n) {
            c->err = -ENOMEM;
            return 0;
        }
        v->items = n;
        v->cap = cap;
    }
    struct sb_violation *x = &v->items[v->count];
    x->kind = kind;
    x->keyword = keyword;
    render_path(c, extra, extra_len, &x->path, &x->pointer);
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    x->reason = strdup(reason);
    if (!x->path || !x->pointer || !x->reason) {
        free(x->path);
        free(x->pointer);
        free(x->reason);
        c->err = -ENOMEM;
        return 0;
    }
    v->count++;
    return 0;
}

static const char *type_name(const struct sb_mp_item *it)
{
    switch (it->type) {
    case SB_MP_NIL:
        return "null";
    case SB_MP_BOOL:
        return "boolean";
    case SB_MP_UINT:
    case SB_MP_INT:
        return "integer";
    case SB_MP_FLOAT32:
    case SB_MP_FLOAT64:
        return "number";
    case SB_MP_STR:
        return "string";
    case SB_MP_ARRAY:
        return "array";
    case SB_MP_MAP:
        return "object";
    default:
        return "binary";
    }
}

static uint8_t type_bits(const struct sb_mp_item *it)
{
    switch (it->type) {
    case SB_MP_NIL:
        return T_NULL;
    case SB_MP_BOOL:
        return T_BOOLEAN;
    case SB_MP_UINT:
    case SB_MP_INT:
        return T_NUMBER | T_INTEGER;
    case SB_MP_FLOAT32:
    case SB_MP_FLOAT64:
        return (uint8_t)(T_NUMBER |
                         (isfinite(it->v.f) && it->v.f == floor(it->v.f) ? T_INTEGER : 0));
    case SB_MP_STR:
        return T_STRING;
    case SB_MP_ARRAY:
        return T_ARRAY;
    case SB_MP_MAP:
        return T_OBJECT;
    default:
        return 0;
    }
}

static void types_text(uint8_t t, char *out, size_t cap)
{
    static const char *names[] = {"null",   "boolean", "object", "array",
                                  "number", "string",  "integer"};
    size_t n = 0;
    out[0] = 0;
    for (int i = 0; i < 7; i++)
        if (t & (1 << i))
            n +=
                (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s", n ? " or " : "", names[i]);
}

static bool regex_search(struct vctx *c, pcre2_code *re, const uint8_t *s, size_t n)
{
    if (!c->md) {
        c->md = pcre2_match_data_create(1, NULL);
        if (!c->md) {
            c->err = -ENOMEM;
            return false;
        }
    }
    /* Invalid UTF-8 in the value (PCRE2 checks it) or a match limit hit: no match. */
    return pcre2_match(re, s, n, 0, 0, c->md, NULL) >= 0;
}

static size_t code_points(const uint8_t *s, size_t n)
{
    size_t cp = 0;
    for (size_t i = 0; i < n; i++)
        cp += (s[i] & 0xc0) != 0x80;
    return cp;
}

static bool is_multiple(long double x, long double m)
{
    /* Integers (every int64/uint64 is exact in long double): exact remainder. */
    if (x == floorl(x) && m == floorl(m) && fabsl(x) < 0x1p64L)
        return fmodl(x, m) == 0;
    /* Otherwise in double, as JSON numbers are, with a tolerance of a few ulps of the quotient
     * (0.0075 / 0.0001 is 74.99999999999999). An overflowing quotient is not a multiple. */
    double q = (double)x / (double)m;
    if (!isfinite(q)) {
        /* An integer too big to divide is still a multiple of any m that divides 1 (0.5). */
        double inv = 1.0 / (double)m;
        return x == floorl(x) && isfinite(inv) && inv == round(inv);
    }
    double tol = fabs(q) * 4 * 2.220446049250313e-16;
    return fabs(q - round(q)) <= (tol > 1e-9 ? tol : 1e-9);
}

static int validate(struct vctx *c, const struct node *s, const uint8_t *v, size_t vlen);

/* Validate without recording (anyOf, oneOf, not, if, contains): true if valid. */
static bool quietly(struct vctx *c, const struct node *s, const uint8_t *v, size_t vlen)
{
    struct sb_violations *saved = c->out;
    c->out = NULL;
    int rc = validate(c, s, v, vlen);
    c->out = saved;
    return rc > 0;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ok = 0;                                                                                \
            if (!c->out || c->err)                                                                 \
                return 0;                                                                          \
        }                                                                                          \
    } while (0)

static int push(struct vctx *c, const uint8_t *key, uint32_t len, uint32_t index)
{
    if (c->depth >= MAX_SCHEMA_DEPTH) {
        c->err = -ELOOP;
        return -1;
    }
    c->path[c->depth++] = (struct seg){key, len, index};
    return 0;
}

/* One property of an object being validated. */
struct entry {
    const uint8_t *kp, *vp, *name; /* key item, value item, name (str payload or key bytes) */
    uint32_t klen, vlen, nlen;
    bool str;
};

#define INDEX_MAX 32   /* objects up to this many properties are indexed in one pass */
#define INDEX_DEPTH 16 /* ... when nested no deeper than this (bounds the stack) */

static int next_entry(struct sb_mp_reader *r, struct entry *e)
{
    struct sb_mp_item k;
    e->kp = r->p;
    if (sb_mp_peek(r, &k) < 0)
        return -EINVAL;
    /* a key may itself be a container (msgpack allows it): skip it whole, not just its header */
    if (k.type == SB_MP_STR)
        r->p = k.v.str.ptr + k.v.str.len;
    else if (sb_mp_skip(r) < 0)
        return -EINVAL;
    e->klen = (uint32_t)(r->p - e->kp);
    e->vp = r->p;
    if (sb_mp_skip(r) < 0)
        return -EINVAL;
    e->vlen = (uint32_t)(r->p - e->vp);
    e->str = k.type == SB_MP_STR;
    e->name = e->str ? k.v.str.ptr : e->kp;
    e->nlen = e->str ? k.v.str.len : e->klen;
    return 0;
}

/* Is str property `name` present? From the index when there is one, else by scanning. */
static int present(const struct entry *idx, uint32_t n_idx, const struct sb_mp_reader *body,
                   uint32_t count, struct bytes name)
{
    if (idx) {
        for (uint32_t i = 0; i < n_idx; i++)
            if (idx[i].str && idx[i].nlen == name.n && same_name(idx[i].name, name.p, name.n))
                return 1;
        return 0;
    }
    struct sb_mp_reader f = *body;
    return sb_mp_map_find(&f, count, (const char *)name.p, name.n);
}

static int validate_object(struct vctx *c, const struct node *s, const uint8_t *v, size_t vlen,
                           const struct sb_mp_item *it)
{
    int ok = 1;
    struct sb_mp_reader r;
    sb_mp_reader_init(&r, v, vlen);
    struct sb_mp_item hdr;
    sb_mp_next(&r, &hdr);
    const struct sb_mp_reader body = r;
    uint32_t count = it->v.count;

    if (s->has & K_MAXPROPS)
        CHECK(count <= s->maxprops || fail(c, SB_VIOLATION_VALUE, "maxProperties", NULL, 0,
                                           "has %u properties, more than the %llu allowed", count,
                                           (unsigned long long)s->maxprops));
    if (s->has & K_MINPROPS)
        CHECK(count >= s->minprops || fail(c, SB_VIOLATION_VALUE, "minProperties", NULL, 0,
                                           "has %u properties, fewer than the %llu required", count,
                                           (unsigned long long)s->minprops));
    bool per_prop = s->n_props || s->n_patprops || s->additional_props || s->property_names;
    if (!per_prop && !s->n_required && !s->n_deps)
        return ok;
    /* Index the properties once instead of scanning the map per required name. */
    struct entry index[INDEX_MAX];
    const struct entry *idx = NULL;
    if (count <= INDEX_MAX && c->depth < INDEX_DEPTH) {
        for (uint32_t i = 0; i < count; i++)
            if (next_entry(&r, &index[i]) < 0)
                return c->err = -EINVAL, 0;
        idx = index;
    }
    for (size_t i = 0; i < s->n_required; i++) {
        int rc = present(idx, count, &body, count, s->required[i]);
        if (rc < 0)
            return c->err = -EINVAL, 0;
        CHECK(rc == 1 || fail(c, SB_VIOLATION_REQUIRED, "required", s->required[i].p,
                              s->required[i].n, "required property '%.*s' is missing",
                              (int)s->required[i].n, (const char *)s->required[i].p));
    }
    for (size_t i = 0; i < s->n_deps; i++) {
        const struct dep *d = &s->deps[i];
        int rc = present(idx, count, &body, count, d->name);
        if (rc < 0)
            return c->err = -EINVAL, 0;
        if (rc != 1)
            continue;
        if (d->s) {
            CHECK(validate(c, d->s, v, vlen) > 0);
        } else {
            for (size_t j = 0; j < d->n_names; j++) {
                rc = present(idx, count, &body, count, d->names[j]);
                if (rc < 0)
                    return c->err = -EINVAL, 0;
                CHECK(rc == 1 ||
                      fail(c, SB_VIOLATION_REQUIRED, "dependencies", d->names[j].p, d->names[j].n,
                           "property '%.*s' is required when '%.*s' is present", (int)d->names[j].n,
                           (const char *)d->names[j].p, (int)d->name.n, (const char *)d->name.p));
            }
        }
    }
    if (!per_prop)
        return ok;
    r = body;
    for (uint32_t i = 0; i < count; i++) {
        struct entry e;
        if (idx)
            e = idx[i];
        else if (next_entry(&r, &e) < 0)
            return c->err = -EINVAL, 0;
        const uint8_t *name = e.name;
        uint32_t nlen = e.nlen;
        if (push(c, name, nlen, 0) < 0)
            return 0;
        if (s->property_names && e.str)
            CHECK(quietly(c, s->property_names, e.kp, e.klen) ||
                  fail(c, SB_VIOLATION_VALUE, "propertyNames", NULL, 0,
                       "property name '%.*s' is not allowed", (int)nlen, (const char *)name));
        bool matched = false;
        if (e.str) {
            for (size_t j = 0; j < s->n_props; j++)
                if (s->props[j].name.n == nlen && same_name(s->props[j].name.p, name, nlen)) {
                    matched = true;
                    CHECK(validate(c, s->props[j].s, e.vp, e.vlen) > 0);
                }
            for (size_t j = 0; j < s->n_patprops; j++)
                if (regex_search(c, s->patprops[j].re, name, nlen)) {
                    matched = true;
                    CHECK(validate(c, s->patprops[j].s, e.vp, e.vlen) > 0);
                }
        }
        if (!matched && s->additional_props) {
            if (s->additional_props->boolean == 2) {
                c->depth--;
                CHECK(fail(c, SB_VIOLATION_UNPLANNED_PROPERTY, "additionalProperties", name, nlen,
                           "property '%.*s' is not in the plan", (int)nlen, (const char *)name));
                c->depth++;
            } else
                CHECK(validate(c, s->additional_props, e.vp, e.vlen) > 0);
        }
        c->depth--;
    }
    return ok;
}

/* A hash that equal values (in the sense of mp_equal) share: numbers by value (1 == 1.0), maps
 * independent of key order. */
static uint64_t mix(uint64_t h, uint64_t x)
{
    h ^= x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 27);
}

static uint64_t hash_bytes(uint64_t tag, const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ tag;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return mix(h, n);
}

static uint64_t hash_value(struct sb_mp_reader *r, int depth)
{
    struct sb_mp_item it;
    if (depth > MAX_SCHEMA_DEPTH || sb_mp_next(r, &it) < 0)
        return 0;
    if (is_number(&it)) {
        long double x = num_value(&it);
        if (x == floorl(x) && fabsl(x) < 0x1p64L) /* integral: 1 and 1.0 alike, -0 as 0 */
            return mix(x < 0 ? 2 : 1, (uint64_t)fabsl(x));
        double d = (double)x;
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        return mix(3, bits);
    }
    switch (it.type) {
    case SB_MP_NIL:
        return 4;
    case SB_MP_BOOL:
        return 5 + it.v.b;
    case SB_MP_STR:
        return hash_bytes(7, it.v.str.ptr, it.v.str.len);
    case SB_MP_BIN:
        return hash_bytes(8, it.v.str.ptr, it.v.str.len);
    case SB_MP_EXT:
        return hash_bytes(9 + (uint8_t)it.v.ext.type, it.v.ext.ptr, it.v.ext.len);
    case SB_MP_ARRAY: {
        uint64_t h = mix(300, it.v.count);
        for (uint32_t i = 0; i < it.v.count; i++)
            h = mix(h, hash_value(r, depth + 1));
        return h;
    }
    case SB_MP_MAP: {
        uint64_t sum = 0; /* a sum: the order of pairs does not matter */
        for (uint32_t i = 0; i < it.v.count; i++) {
            uint64_t k = hash_value(r, depth + 1);
            sum += mix(k, hash_value(r, depth + 1));
        }
        return mix(301, sum ^ it.v.count);
    }
    default:
        return 0;
    }
}

struct hashed {
    uint64_t hash;
    const uint8_t *p;
    uint32_t n, index;
};

static int cmp_hashed(const void *a, const void *b)
{
    const struct hashed *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Two equal items of the array at v? 1 with their indexes (*a < *b), 0, or -ENOMEM. Small
 * arrays pairwise; larger ones by sorting hashes, so that a 32 KB array of tiny items costs
 * n log n, not n^2. */
static int find_duplicate(const uint8_t *v, size_t vlen, uint32_t count, uint32_t *a, uint32_t *b)
{
    struct sb_mp_reader r;
    struct sb_mp_item hdr;
    sb_mp_reader_init(&r, v, vlen);
    sb_mp_next(&r, &hdr);
    struct hashed small[16];
    struct hashed *items = count <= 16 ? small : malloc(count * sizeof *items);
    if (!items)
        return -ENOMEM;
    for (uint32_t i = 0; i < count; i++) {
        struct sb_mp_reader h = r;
        items[i].p = r.p;
        items[i].hash = count <= 16 ? 0 : hash_value(&h, 0);
        items[i].index = i;
        sb_mp_skip(&r);
        items[i].n = (uint32_t)(r.p - items[i].p);
    }
    int found = 0;
    if (count <= 16) {
        for (uint32_t j = 1; j < count && !found; j++)
            for (uint32_t i = 0; i < j && !found; i++)
                if (bytes_equal((struct bytes){items[i].p, items[i].n},
                                (struct bytes){items[j].p, items[j].n})) {
                    *a = i;
                    *b = j;
                    found = 1;
                }
    } else {
        qsort(items, count, sizeof *items, cmp_hashed);
        for (uint32_t i = 0; i + 1 < count && !found; i++)
            for (uint32_t j = i + 1; j < count && items[j].hash == items[i].hash && !found; j++)
                if (bytes_equal((struct bytes){items[i].p, items[i].n},
                                (struct bytes){items[j].p, items[j].n})) {
                    *a = items[i].index < items[j].index ? items[i].index : items[j].index;
                    *b = items[i].index < items[j].index ? items[j].index : items[i].index;
                    found = 1;
                }
        free(items);
    }
    return found;
}

static int validate_array(struct vctx *c, const struct node *s, const uint8_t *v, size_t vlen,
                          const struct sb_mp_item *it)
{
    int ok = 1;
    uint32_t count = it->v.count;
    if (s->has & K_MAXITEMS)
        CHECK(count <= s->maxitems || fail(c, SB_VIOLATION_VALUE, "maxItems", NULL, 0,
                                           "has %u items, more than the %llu allowed", count,
                                           (unsigned long long)s->maxitems));
    if (s->has & K_MINITEMS)
        CHECK(count >= s->minitems || fail(c, SB_VIOLATION_VALUE, "minItems", NULL, 0,
                                           "has %u items, fewer than the %llu required", count,
                                           (unsigned long long)s->minitems));
    if ((s->has & K_UNIQUE) && count > 1) {
        uint32_t a, b;
        int rc = find_duplicate(v, vlen, count, &a, &b);
        if (rc < 0)
            return c->err = rc, 0;
        CHECK(rc == 0 || fail(c, SB_VIOLATION_VALUE, "uniqueItems", NULL, 0,
                              "item %u equals item %u: items must be unique", b, a));
    }
    bool per_item = s->items || s->items_is_list || s->contains;
    if (!per_item)
        return ok;
    struct sb_mp_reader r;
    sb_mp_reader_init(&r, v, vlen);
    struct sb_mp_item hdr;
    sb_mp_next(&r, &hdr);
    bool found = false;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *ip = r.p;
        if (sb_mp_skip(&r) < 0)
            return c->err = -EINVAL, 0;
        size_t il = (size_t)(r.p - ip);
        if (push(c, NULL, 0, i) < 0)
            return 0;
        const struct node *sub = NULL;
        if (s->items_is_list)
            sub = i < s->n_items ? s->item_list[i] : s->additional_items;
        else
            sub = s->items;
        if (sub)
            CHECK(validate(c, sub, ip, il) > 0);
        if (s->contains && !found)
            found = quietly(c, s->contains, ip, il);
        c->depth--;
    }
    if (s->contains)
        CHECK(found || fail(c, SB_VIOLATION_VALUE, "contains", NULL, 0,
                            "no item matches the 'contains' schema"));
    return ok;
}

static int validate(struct vctx *c, const struct node *s, const uint8_t *v, size_t vlen)
{
    if (c->err)
        return 0;
    for (int hops = 0; s->ref; hops++) { /* a $ref node has nothing else */
        if (hops > MAX_SCHEMA_DEPTH) {
            c->err = -ELOOP; /* $ref to $ref ... in a cycle */
            return 0;
        }
        s = s->ref;
    }
    if (s->boolean == 1)
        return 1;
    if (s->boolean == 2)
        return fail(c, SB_VIOLATION_VALUE, "false", NULL, 0, "no value is allowed here");
    if (++c->calls > MAX_SCHEMA_DEPTH) {
        c->calls--;
        c->err = -ELOOP;
        return 0;
    }
    int ok = 1;
    int saved_depth = c->depth; /* early exits in quiet mode leave segments pushed */
    struct sb_mp_item it;
    struct sb_mp_reader r;
    sb_mp_reader_init(&r, v, vlen);
    if (sb_mp_next(&r, &it) < 0) {
        c->err = -EINVAL;
        c->calls--;
        return 0;
    }
    uint8_t bits = type_bits(&it);
#undef CHECK
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ok = 0;                                                                                \
            if (!c->out || c->err)                                                                 \
                goto done;                                                                         \
        }                                                                                          \
    } while (0)
    if ((s->has & K_TYPE) && !(bits & s->types)) {
        char want[80];
        types_text(s->types, want, sizeof want);
        CHECK(fail(c, SB_VIOLATION_TYPE, "type", NULL, 0, "must be %s, not %s", want,
                   type_name(&it)));
    }
    if (s->has & K_CONST)
        CHECK(bytes_equal(s->const_mp, (struct bytes){v, (uint32_t)vlen}) ||
              fail(c, SB_VIOLATION_VALUE, "const", NULL, 0, "must be the constant value"));
    if (s->has & K_ENUM) {
        struct sb_mp_reader e;
        struct sb_mp_item eh;
        sb_mp_reader_init(&e, s->enum_mp.p, s->enum_mp.n);
        sb_mp_next(&e, &eh);
        bool any = false;
        for (uint32_t i = 0; i < eh.v.count && !any; i++) {
            const uint8_t *ep = e.p;
            sb_mp_skip(&e);
            any = bytes_equal((struct bytes){ep, (uint32_t)(e.p - ep)},
                              (struct bytes){v, (uint32_t)vlen});
        }
        CHECK(any ||
              fail(c, SB_VIOLATION_VALUE, "enum", NULL, 0, "is not one of the permitted values"));
    }
    if (bits & T_NUMBER) {
        long double x = num_value(&it);
        if (s->has & K_MAXIMUM)
            CHECK(x <= s->maximum ||
                  fail(c, SB_VIOLATION_VALUE, "maximum", NULL, 0, "must be <= %Lg", s->maximum));
        if (s->has & K_MINIMUM)
            CHECK(x >= s->minimum ||
                  fail(c, SB_VIOLATION_VALUE, "minimum", NULL, 0, "must be >= %Lg", s->minimum));
        if (s->has & K_XMAXIMUM)
            CHECK(x < s->xmaximum || fail(c, SB_VIOLATION_VALUE, "exclusiveMaximum", NULL, 0,
                                          "must be < %Lg", s->xmaximum));
        if (s->has & K_XMINIMUM)
            CHECK(x > s->xminimum || fail(c, SB_VIOLATION_VALUE, "exclusiveMinimum", NULL, 0,
                                          "must be > %Lg", s->xminimum));
        if (s->has & K_MULTIPLE)
            CHECK(is_multiple(x, s->multiple) || fail(c, SB_VIOLATION_VALUE, "multipleOf", NULL, 0,
                                                      "must be a multiple of %Lg", s->multiple));
    }
    if (it.type == SB_MP_STR) {
        if (s->has & (K_MAXLEN | K_MINLEN)) {
            size_t cp = code_points(it.v.str.ptr, it.v.str.len);
            if (s->has & K_MAXLEN)
                CHECK(cp <= s->maxlen || fail(c, SB_VIOLATION_VALUE, "maxLength", NULL, 0,
                                              "is %zu characters long, more than %llu", cp,
                                              (unsigned long long)s->maxlen));
            if (s->has & K_MINLEN)
                CHECK(cp >= s->minlen || fail(c, SB_VIOLATION_VALUE, "minLength", NULL, 0,
                                              "is %zu characters long, fewer than %llu", cp,
                                              (unsigned long long)s->minlen));
        }
        if (s->pattern)
            CHECK(regex_search(c, s->pattern, it.v.str.ptr, it.v.str.len) ||
                  fail(c, SB_VIOLATION_VALUE, "pattern", NULL, 0,
                       "does not match the permitted pattern"));
    }
    if (it.type == SB_MP_MAP)
        CHECK(validate_object(c, s, v, vlen, &it));
    if (it.type == SB_MP_ARRAY)
        CHECK(validate_array(c, s, v, vlen, &it));
    for (size_t i = 0; i < s->n_all; i++)
        CHECK(validate(c, s->all_of[i], v, vlen) > 0);
    if (s->n_any) {
        bool any = false;
        for (size_t i = 0; i < s->n_any && !any; i++)
            any = quietly(c, s->any_of[i], v, vlen);
        CHECK(any || fail(c, SB_VIOLATION_VALUE, "anyOf", NULL, 0,
                          "does not match any of the allowed schemas"));
    }
    if (s->n_one) {
        size_t matches = 0;
        for (size_t i = 0; i < s->n_one && matches < 2; i++)
            matches += quietly(c, s->one_of[i], v, vlen);
        CHECK(matches == 1 || fail(c, SB_VIOLATION_VALUE, "oneOf", NULL, 0,
                                   matches ? "matches more than one of the schemas"
                                           : "does not match any of the schemas"));
    }
    if (s->not_)
        CHECK(!quietly(c, s->not_, v, vlen) ||
              fail(c, SB_VIOLATION_VALUE, "not", NULL, 0, "matches a schema it must not"));
    if (s->if_ && (s->then_ || s->else_)) {
        const struct node *branch = quietly(c, s->if_, v, vlen) ? s->then_ : s->else_;
        if (branch)
            CHECK(validate(c, branch, v, vlen) > 0);
    }
done:
    c->depth = saved_depth;
    c->calls--;
    return ok && !c->err;
}

int sb_schema_validate(const struct sb_schema *schema, const uint8_t *inst, size_t len,
                       struct sb_violations *out)
{
    if (!schema || (!inst && len))
        return -EINVAL;
    if (sb_mp_check(inst, len, MAX_SCHEMA_DEPTH) < 0)
        return -EINVAL;
    return sb_schema_validate_checked(schema, inst, len, out);
}

int sb_schema_validate_checked(const struct sb_schema *schema, const uint8_t *inst, size_t len,
                               struct sb_violations *out)
{
    struct vctx ctx; /* ~6 KB: the path stack; callers run on ordinary thread stacks */
    struct vctx *c = &ctx;
    c->depth = c->calls = c->err = 0;
    c->md = NULL;
    c->out = out;
    size_t before = out ? out->count : 0;
    int ok = validate(c, schema->root, inst, len);
    int rc = c->err ? c->err : ok ? 1 : 0;
    if (rc < 0 && out) {
        /* Drop partial results: the caller gets an error, not half a list. */
        while (out->count > before) {
            struct sb_violation *x = &out->items[--out->count];
            free(x->path);
            free(x->pointer);
            free(x->reason);
        }
    }
    if (c->md)
        pcre2_match_data_free(c->md);
    return rc;
}

int sb_schema_lint_json(const char *json, size_t len, char *err, size_t errlen)
{
    static const char meta_ref[] = "{\"$ref\":\"http://json-schema.org/draft-07/schema#\"}";
    struct sb_schema *meta, *s;
    msgpack_sbuffer sb;
    int rc = json_to_mp(json, len, &sb, err, errlen);
    if (rc < 0) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    rc = sb_schema_compile_json(meta_ref, sizeof meta_ref - 1, &meta, err, errlen);
    if (rc == 0) {
        struct sb_violations v = {0};
        v.limit = 1;
        rc = sb_schema_validate(meta, (const uint8_t *)sb.data, sb.size, &v);
        if (rc == 0 && err && errlen)
            snprintf(err, errlen, "schema %s%s: %s", v.count ? v.items[0].pointer : "",
                     v.count && v.items[0].pointer[0] ? "" : "(root)",
                     v.count ? v.items[0].reason : "invalid");
        rc = rc == 1 ? 0 : rc == 0 ? -EINVAL : rc;
        sb_violations_free(&v);
        sb_schema_free(meta);
    }
    if (rc == 0) {
        rc = sb_schema_compile_mp((const uint8_t *)sb.data, sb.size, &s, err, errlen);
        sb_schema_free(s);
    }
    msgpack_sbuffer_destroy(&sb);
    return rc;
}
