/* text.c: checks of caller text: UTF-8 validity, RFC 3339 timestamps, and a bounds-checked
 * msgpack skipper used to merge maps. */
#include <string.h>

#include "event/event.h"

int sb_utf8_valid(const char *str, size_t n, size_t *bad)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* ASCII runs, 8 bytes at a time: the common case for ids and event names. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0)
                lo = 0xa0; /* no overlongs */
            else if (c == 0xed)
                hi = 0x9f; /* no surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f; /* <= U+10FFFF */
        } else {
            *bad = i;
            return 0;
        }
        if (i + len > n) {
            *bad = i;
            return 0;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            *bad = i;
            return 0;
        }
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) {
                *bad = i;
                return 0;
            }
        i += len;
    }
    return 1;
}

size_t sb_utf8_count(const char *str, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += ((unsigned char)str[i] & 0xc0) != 0x80;
    return count;
}

static int digits(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 1;
}

int sb_rfc3339_valid(const char *s, size_t n)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se;
    if (n < 20 || n > 64)
        return 0;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
        return 0;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return 0;
    size_t i = 19;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return 0;
    }
    if (i == n)
        return 0;
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n)
        return 1;
    if ((s[i] == '+' || s[i] == '-') && i + 6 == n) {
        int oh, om;
        return digits(s + i + 1, 2, &oh) && s[i + 3] == ':' && digits(s + i + 4, 2, &om) &&
               oh <= 23 && om <= 59;
    }
    return 0;
}

static uint32_t be(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static const uint8_t *skip_depth(const uint8_t *p, const uint8_t *end, int depth, int *deepest)
{
    if (p >= end || depth > 64)
        return NULL;
    uint8_t c = *p++;
    uint64_t n = 0; /* payload bytes to skip */
    uint64_t items = 0;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return p;
    if ((c & 0xf0) == 0x80) {
        items = (uint64_t)(c & 0x0f) * 2;
    } else if ((c & 0xf0) == 0x90) {
        items = c & 0x0f;
    } else if ((c & 0xe0) == 0xa0) {
        n = c & 0x1f;
    } else {
        int hl;
        switch (c) {
        case 0xcc:
        case 0xd0:
            n = 1;
            break;
        case 0xcd:
        case 0xd1:
            n = 2;
            break;
        case 0xca:
        case 0xce:
        case 0xd2:
            n = 4;
            break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
            n = 8;
            break;
        case 0xd4:
            n = 2;
            break;
        case 0xd5:
            n = 3;
            break;
        case 0xd6:
            n = 5;
            break;
        case 0xd7:
            n = 9;
            break;
        case 0xd8:
            n = 17;
            break;
        case 0xc4:
        case 0xd9:
        case 0xc7:
            hl = 1;
            goto sized;
        case 0xc5:
        case 0xda:
        case 0xc8:
            hl = 2;
            goto sized;
        case 0xc6:
        case 0xdb:
        case 0xc9:
            hl = 4;
            goto sized;
        case 0xdc:
        case 0xde:
            if (end - p < 2)
                return NULL;
            items = be(p, 2) * (c == 0xde ? 2u : 1u);
            p += 2;
            break;
        case 0xdd:
        case 0xdf:
            if (end - p < 4)
                return NULL;
            items = (uint64_t)be(p, 4) * (c == 0xdf ? 2u : 1u);
            p += 4;
            break;
        default:
            return NULL; /* 0xc1: never used */
        }
        goto done;
    sized:
        if (end - p < hl)
            return NULL;
        n = be(p, hl) + (c >= 0xc7 && c <= 0xc9 ? 1u : 0u); /* ext: + type byte */
        p += hl;
    }
done:
    if (((c & 0xe0) == 0x80 || c == 0xdc || c == 0xdd || c == 0xde || c == 0xdf) &&
        depth + 1 > *deepest)
        *deepest = depth + 1; /* this value is a container, at level depth + 1 */
    if ((uint64_t)(end - p) < n)
        return NULL;
    p += n;
    for (uint64_t i = 0; i < items; i++) {
        p = skip_depth(p, end, depth + 1, deepest);
        if (!p)
            return NULL;
    }
    return p;
}

const uint8_t *sb_event_skip(const uint8_t *p, const uint8_t *end)
{
    int deepest = 0;
    return skip_depth(p, end, 0, &deepest);
}

int sb_event_depth(const uint8_t *p, const uint8_t *end)
{
    int deepest = 0;
    return skip_depth(p, end, 0, &deepest) ? deepest : -1;
}
