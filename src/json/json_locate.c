/* json_locate.c: finds the offset and reason of the first error in a JSON text (failure path). */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "json/json_internal.h"
#include "segbus/segbus.h"

size_t sb_utf8_seq(const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    uint8_t b = p[0];
    if (b < 0x80)
        return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (b >= 0xc2 && b <= 0xdf)
        len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
        len = 3;
        if (b == 0xe0)
            lo = 0xa0; /* overlong */
        else if (b == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4;
        if (b == 0xf0)
            lo = 0x90; /* overlong */
        else if (b == 0xf4)
            hi = 0x8f; /* > U+10FFFF */
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

struct loc {
    const uint8_t *s;
    size_t len, i;
    struct sb_json_error *err;
};

static int fail(struct loc *l, size_t at, const char *why)
{
    l->err->offset = at > l->len ? l->len : at;
    l->err->reason = why;
    return strcmp(why, "invalid UTF-8") == 0 ? -SEGBUS_EUTF8 : -SEGBUS_EJSON;
}

static void ws(struct loc *l)
{
    while (l->i < l->len) {
        uint8_t c = l->s[l->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        l->i++;
    }
}

/* An unexpected byte at l->i (or the end). */
static int unexpected(struct loc *l)
{
    if (l->i >= l->len)
        return fail(l, l->len, "unexpected end of input");
    if (l->s[l->i] >= 0x80 && !sb_utf8_seq(l->s + l->i, l->len - l->i))
        return fail(l, l->i, "invalid UTF-8");
    return fail(l, l->i, "unexpected character");
}

static int hex4(const uint8_t *p, size_t n, unsigned *v)
{
    if (n < 4)
        return -1;
    *v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = p[k];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

static int string(struct loc *l)
{
    size_t start = l->i++; /* the opening quote */
    while (l->i < l->len) {
        uint8_t c = l->s[l->i];
        if (c == '"') {
            l->i++;
            return 0;
        }
        if (c < 0x20)
            return fail(l, l->i, "control character in string");
        if (c >= 0x80) {
            size_t n = sb_utf8_seq(l->s + l->i, l->len - l->i);
            if (!n)
                return fail(l, l->i, "invalid UTF-8");
            l->i += n;
            continue;
        }
        if (c != '\\') {
            l->i++;
            continue;
        }
        size_t esc = l->i;
        if (l->i + 1 >= l->len)
            return fail(l, l->len, "unterminated string");
        c = l->s[l->i + 1];
        if (strchr("\"\\/bfnrt", c) && c) {
            l->i += 2;
            continue;
        }
        if (c != 'u')
            return fail(l, esc, "invalid escape in string");
        unsigned v;
        if (hex4(l->s + l->i + 2, l->len - l->i - 2, &v) < 0)
            return fail(l, esc, "invalid \\u escape in string");
        l->i += 6;
        if (v >= 0xdc00 && v <= 0xdfff)
            return fail(l, esc, "lone surrogate in \\u escape");
        if (v >= 0xd800 && v <= 0xdbff) {
            unsigned w;
            if (l->i + 1 >= l->len || l->s[l->i] != '\\' || l->s[l->i + 1] != 'u' ||
                hex4(l->s + l->i + 2, l->len - l->i - 2, &w) < 0 || w < 0xdc00 || w > 0xdfff)
                return fail(l, esc, "lone surrogate in \\u escape");
            l->i += 6;
        }
    }
    (void)start;
    return fail(l, l->len, "unterminated string");
}

static locale_t c_locale(void)
{
    /* strtod must not follow the application's LC_NUMERIC; made once, never freed. */
    static locale_t loc;
    locale_t cur = __atomic_load_n(&loc, __ATOMIC_ACQUIRE);
    if (!cur) {
        locale_t fresh = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        locale_t expected = (locale_t)0;
        if (fresh && !__atomic_compare_exchange_n(&loc, &expected, fresh, false, __ATOMIC_ACQ_REL,
                                                  __ATOMIC_ACQUIRE)) {
            freelocale(fresh);
            fresh = expected;
        }
        cur = fresh;
    }
    return cur;
}

static bool digit(const struct loc *l, size_t i)
{
    return i < l->len && l->s[i] >= '0' && l->s[i] <= '9';
}

static int number(struct loc *l)
{
    size_t start = l->i, i = l->i;
    bool neg = false, integral = true;
    if (l->s[i] == '-') {
        neg = true;
        i++;
    }
    if (!digit(l, i))
        return fail(l, i, "invalid number");
    if (l->s[i] == '0') {
        i++;
        if (digit(l, i))
            return fail(l, i, "invalid number (leading zero)");
    } else
        while (digit(l, i))
            i++;
    if (i < l->len && l->s[i] == '.') {
        integral = false;
        i++;
        if (!digit(l, i))
            return fail(l, i, "invalid number (digit expected after '.')");
        while (digit(l, i))
            i++;
    }
    if (i < l->len && (l->s[i] == 'e' || l->s[i] == 'E')) {
        integral = false;
        i++;
        if (i < l->len && (l->s[i] == '+' || l->s[i] == '-'))
            i++;
        if (!digit(l, i))
            return fail(l, i, "invalid number (digit expected in exponent)");
        while (digit(l, i))
            i++;
    }
    l->i = i;
    size_t n = i - start;
    const char *tok = (const char *)l->s + start;
    if (integral) {
        /* Integers must fit int64 (negative) or uint64: compare digit strings. */
        const char *d = tok + neg;
        size_t nd = n - neg;
        const char *lim = neg ? "9223372036854775808" : "18446744073709551615";
        size_t nl = strlen(lim);
        if (nd > nl || (nd == nl && memcmp(d, lim, nl) > 0))
            return fail(l, start, "number out of range");
        return 0;
    }
    char small[128];
    char *copy = n < sizeof small ? small : malloc(n + 1);
    if (!copy)
        return fail(l, start, "out of memory");
    memcpy(copy, tok, n);
    copy[n] = 0;
    locale_t loc = c_locale();
    double v = loc ? strtod_l(copy, NULL, loc) : strtod(copy, NULL);
    if (copy != small)
        free(copy);
    if (isinf(v))
        return fail(l, start, "number out of range");
    return 0;
}

static int literal(struct loc *l, const char *word)
{
    size_t n = strlen(word);
    for (size_t k = 0; k < n; k++)
        if (l->i + k >= l->len || l->s[l->i + k] != (uint8_t)word[k]) {
            l->i += k;
            return unexpected(l);
        }
    l->i += n;
    return 0;
}

/* An iterative parser: stack[] holds '[' or '{' per open container. */
int sb_json_locate(const char *text, size_t len, struct sb_json_error *err)
{
    struct sb_json_error dummy;
    struct loc l = {(const uint8_t *)text, len, 0, err ? err : &dummy};
    char stack[SB_JSON_MAX_DEPTH];
    int depth = 0, rc;

    ws(&l);
    if (l.i >= len)
        return fail(&l, l.i, len ? "no JSON value (only white space)" : "empty input");
value:
    ws(&l);
    if (l.i >= len)
        return unexpected(&l);
    switch (l.s[l.i]) {
    case '{':
    case '[':
        if (depth >= SB_JSON_MAX_DEPTH)
            return fail(&l, l.i, "nesting too deep");
        stack[depth++] = (char)l.s[l.i];
        l.i++;
        ws(&l);
        if (l.i < len && l.s[l.i] == (stack[depth - 1] == '[' ? ']' : '}')) {
            l.i++;
            depth--;
            goto after;
        }
        if (stack[depth - 1] == '{')
            goto key;
        goto value;
    case '"':
        if ((rc = string(&l)) < 0)
            return rc;
        goto after;
    case 't':
        if ((rc = literal(&l, "true")) < 0)
            return rc;
        goto after;
    case 'f':
        if ((rc = literal(&l, "false")) < 0)
            return rc;
        goto after;
    case 'n':
        if ((rc = literal(&l, "null")) < 0)
            return rc;
        goto after;
    default:
        if (l.s[l.i] == '-' || (l.s[l.i] >= '0' && l.s[l.i] <= '9')) {
            if ((rc = number(&l)) < 0)
                return rc;
            goto after;
        }
        return unexpected(&l);
    }
key:
    ws(&l);
    if (l.i >= len || l.s[l.i] != '"') {
        if (l.i < len && l.s[l.i] < 0x80)
            return fail(&l, l.i, "object key (a string) expected");
        return unexpected(&l);
    }
    if ((rc = string(&l)) < 0)
        return rc;
    ws(&l);
    if (l.i >= len || l.s[l.i] != ':') {
        if (l.i < len && l.s[l.i] < 0x80)
            return fail(&l, l.i, "':' expected after object key");
        return unexpected(&l);
    }
    l.i++;
    goto value;
after:
    ws(&l);
    if (depth == 0) {
        if (l.i < len) {
            if (l.s[l.i] < 0x80)
                return fail(&l, l.i, "trailing characters after the JSON value");
            return unexpected(&l);
        }
        return 0;
    }
    if (l.i >= len)
        return unexpected(&l);
    {
        uint8_t c = l.s[l.i];
        char close = stack[depth - 1] == '[' ? ']' : '}';
        if (c == ',') {
            l.i++;
            if (stack[depth - 1] == '{')
                goto key;
            goto value;
        }
        if (c == close) {
            l.i++;
            depth--;
            goto after;
        }
        if (c < 0x80)
            return fail(&l, l.i,
                        close == ']' ? "',' or ']' expected in array"
                                     : "',' or '}' expected in object");
        return unexpected(&l);
    }
}
