/* rewrite.c: one-pass msgpack rewriting by path; see rewrite.h. No DOM: the cursor walks the
 * input once per map (plus a counting pre-pass, since msgpack headers carry counts) and only
 * the containers on a rule's path are re-encoded; everything else is copied as raw bytes. */
#include "protocols/rewrite.h"

#include <errno.h>
#include <msgpack.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "mp/mp_reader.h"

#define RW_MAX_ACTIVE                                                                              \
    128                 /* rules alive at one level: bounded so the per-level state is on stack    \
                         */
#define RW_MAX_DEPTH 64 /* nesting walked while rules are alive (transparent arrays) */

struct active {
    const struct sb_rw_rule *r;
    size_t d; /* segments consumed: r->segs[d] is matched against this level's keys */
};

struct ctx {
    msgpack_packer pk;
    struct sb_buf *out;
    size_t base; /* where this rewrite's output starts in out */
    struct sb_rw_top *top;
    size_t top_len[16]; /* strlen of top->keys (up to 16 are looked for) */
    bool changed;
};

static int buf_write(void *data, const char *buf, size_t len)
{
    return sb_buf_append(data, buf, len) ? -1 : 0;
}

void sb_rw_segs_free(struct sb_rw_seg *segs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(segs[i].s);
    free(segs);
}

int sb_rw_path_parse(const char *path, struct sb_rw_seg **segs_out, size_t *n_out)
{
    bool ptr = path[0] == '/';
    const char *p = ptr ? path + 1 : path;
    char sep = ptr ? '/' : '.';
    size_t n = 1;
    struct sb_rw_seg *segs;

    if (!path[0])
        return -EINVAL;
    for (const char *q = p; *q; q++)
        n += *q == sep;
    if (!(segs = calloc(n, sizeof *segs)))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *e = strchr(p, sep);
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *s = malloc(len + 1);
        size_t o = 0;
        if (!s) {
            sb_rw_segs_free(segs, i);
            return -ENOMEM;
        }
        for (size_t k = 0; k < len; k++) {
            /* RFC 6901: ~1 is '/', ~0 is '~' (order matters: ~01 is "~1") */
            if (ptr && p[k] == '~' && k + 1 < len && (p[k + 1] == '0' || p[k + 1] == '1')) {
                s[o++] = p[k + 1] == '1' ? '/' : '~';
                k++;
            } else {
                s[o++] = p[k];
            }
        }
        s[o] = 0;
        segs[i] = (struct sb_rw_seg){s, o};
        p += len + 1;
    }
    *segs_out = segs;
    *n_out = n;
    return 0;
}

void sb_rw_title_case(char *s, size_t len)
{
    bool first = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ') {
            first = true;
            continue;
        }
        if (c < 0x80)
            s[i] = (char)(first ? (c >= 'a' && c <= 'z' ? c - 32 : c)
                                : (c >= 'A' && c <= 'Z' ? c + 32 : c));
        first = false;
    }
}

/* Called for every rule at every key on a rule's path: most differ in length or first byte,
 * which saves the libc call. */
static inline bool seg_is_key(const struct sb_rw_seg *g, const uint8_t *k, uint32_t klen)
{
    return g->len == klen && (!klen || ((uint8_t)g->s[0] == k[0] && !memcmp(g->s, k, klen)));
}

static bool seg_is_index(const struct sb_rw_seg *g, uint32_t i)
{
    char buf[16];
    int n = snprintf(buf, sizeof buf, "%u", i);
    return (size_t)n == g->len && !memcmp(buf, g->s, g->len);
}

static int copy_raw(struct ctx *c, struct sb_mp_reader *r)
{
    const uint8_t *p0 = r->p;
    int rc = sb_mp_skip(r);
    if (rc)
        return rc;
    return sb_buf_append(c->out, p0, (size_t)(r->p - p0));
}

static int pack_str(struct ctx *c, const void *s, size_t len)
{
    if (msgpack_pack_str(&c->pk, len) || msgpack_pack_str_body(&c->pk, s, len))
        return -ENOMEM;
    return 0;
}

static int do_hash(struct ctx *c, const struct sb_rw_rule *rule, struct sb_mp_reader *r)
{
    static _Thread_local EVP_MD_CTX *md;
    struct sb_mp_item it;
    const uint8_t *p0 = r->p, *data;
    size_t dlen;
    struct sb_buf json = SB_BUF_INIT;
    unsigned char dig[32];
    char hex[64];
    int rc = sb_mp_peek(r, &it);

    if (rc)
        return rc;
    if ((rc = sb_mp_skip(r)))
        return rc;
    if (it.type == SB_MP_STR || it.type == SB_MP_BIN) {
        data = it.v.str.ptr;
        dlen = it.v.str.len;
    } else if (it.type == SB_MP_NIL) {
        /* null carries no personal data: keep it, so "absent" stays distinguishable */
        return sb_buf_append(c->out, p0, (size_t)(r->p - p0));
    } else {
        size_t used;
        if ((rc = sb_msgpack_to_json(p0, (size_t)(r->p - p0), &used, &json))) {
            sb_buf_free(&json);
            return rc < 0 ? rc : -EINVAL;
        }
        data = json.data;
        dlen = json.len;
    }
    if (!md && !(md = EVP_MD_CTX_new()))
        rc = -ENOMEM;
    else if (!EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
             !EVP_DigestUpdate(md, rule->salt, rule->salt_len) ||
             !EVP_DigestUpdate(md, data, dlen) || !EVP_DigestFinal_ex(md, dig, NULL))
        rc = -ENOMEM;
    sb_buf_free(&json);
    if (rc)
        return rc;
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = "0123456789abcdef"[dig[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[dig[i] & 15];
    }
    c->changed = true;
    return pack_str(c, hex, sizeof hex);
}

static int do_title(struct ctx *c, struct sb_mp_reader *r)
{
    struct sb_mp_item it;
    char small[256], *s;
    int rc = sb_mp_peek(r, &it);

    if (rc)
        return rc;
    if (it.type != SB_MP_STR)
        return copy_raw(c, r);
    sb_mp_next(r, &it);
    s = it.v.str.len <= sizeof small ? small : malloc(it.v.str.len);
    if (!s)
        return -ENOMEM;
    memcpy(s, it.v.str.ptr, it.v.str.len);
    sb_rw_title_case(s, it.v.str.len);
    c->changed |= memcmp(s, it.v.str.ptr, it.v.str.len) != 0;
    rc = pack_str(c, s, it.v.str.len);
    if (s != small)
        free(s);
    return rc;
}

static int rw_value(struct ctx *c, struct sb_mp_reader *r, const struct active *act, size_t nact,
                    int depth);

/* The value for a key that rules matched: the first rule ending here decides, else recurse. */
static int emit_matched(struct ctx *c, struct sb_mp_reader *r, const struct active *sub,
                        size_t nsub, int depth)
{
    for (size_t i = 0; i < nsub; i++) {
        const struct sb_rw_rule *rule = sub[i].r;
        if (sub[i].d != rule->n)
            continue;
        switch (rule->op) {
        case SB_RW_SET: {
            int rc = sb_mp_skip(r);
            if (rc)
                return rc;
            c->changed = true;
            return sb_buf_append(c->out, rule->value, rule->value_len);
        }
        case SB_RW_HASH:
            return do_hash(c, rule, r);
        case SB_RW_TITLE:
            return do_title(c, r);
        default:
            break; /* DROP was handled by the caller; KEEP keeps the value as it is */
        }
    }
    return rw_value(c, r, sub, nsub, depth + 1);
}

static const uint8_t empty_map[1] = {0x80};

/* Record where a root key's value went (offsets relative to the root map's body until the root
 * header is final). */
static void note_top(struct ctx *c, const struct sb_mp_item *k, size_t vstart, size_t body)
{
    struct sb_rw_top *t = c->top;
    if (!t || k->type != SB_MP_STR)
        return;
    for (size_t i = 0; i < t->n; i++)
        if (c->top_len[i] == k->v.str.len && !memcmp(t->keys[i], k->v.str.ptr, k->v.str.len)) {
            t->off[i] = vstart - body;
            t->len[i] = c->out->len - vstart;
        }
}

/* One pass per map: the header is written as a map32 placeholder and shrunk to the smallest
 * form once the count is known (a memmove of what was written is cheaper than a second walk
 * of the input to count, and keeps the output canonical). */
static int rw_map(struct ctx *c, struct sb_mp_reader *r, uint32_t pairs, const struct active *act,
                  size_t nact, int depth)
{
    bool keep_mode = false, seen[RW_MAX_ACTIVE] = {0};
    struct active sub[RW_MAX_ACTIVE];
    uint32_t written = 0;
    struct sb_mp_item k;
    size_t hdr_at = c->out->len, body = hdr_at + 5, shift;
    bool root = depth == 0;
    int rc;

    for (size_t i = 0; i < nact; i++)
        keep_mode |= act[i].r->op == SB_RW_KEEP && act[i].d + 1 == act[i].r->n;
    if (sb_buf_append(c->out, "\xdf\0\0\0\0", 5))
        return -ENOMEM;
    if (root && c->top)
        for (size_t i = 0; i < c->top->n; i++)
            c->top->off[i] = SIZE_MAX;
    for (uint32_t p = 0; p < pairs; p++) {
        bool drop = false, keep = !keep_mode;
        size_t nsub = 0, vstart;
        const uint8_t *k0 = r->p, *kend;
        if ((rc = sb_mp_peek(r, &k)))
            return rc;
        if (k.type == SB_MP_STR) {
            sb_mp_next(r, &k);
            for (size_t i = 0; i < nact; i++) {
                const struct sb_rw_rule *rule = act[i].r;
                if (!seg_is_key(&rule->segs[act[i].d], k.v.str.ptr, k.v.str.len))
                    continue;
                seen[i] = true;
                drop |= rule->op == SB_RW_DROP && act[i].d + 1 == rule->n;
                keep |= rule->op == SB_RW_KEEP;
                sub[nsub++] = (struct active){rule, act[i].d + 1};
            }
        } else if ((rc = sb_mp_skip(r))) {
            return rc;
        }
        kend = r->p;
        if (!keep || drop) {
            if ((rc = sb_mp_skip(r)))
                return rc;
            c->changed = true;
            continue;
        }
        written++;
        if (!nsub) { /* key and value in one copy */
            if ((rc = sb_mp_skip(r)))
                return rc;
            vstart = c->out->len + (size_t)(kend - k0);
            if ((rc = sb_buf_append(c->out, k0, (size_t)(r->p - k0))))
                return rc;
        } else {
            if ((rc = sb_buf_append(c->out, k0, (size_t)(kend - k0))))
                return rc;
            vstart = c->out->len;
            if ((rc = emit_matched(c, r, sub, nsub, depth)))
                return rc;
        }
        if (root)
            note_top(c, &k, vstart, body);
    }
    /* SET rules whose key is absent insert it: one key per distinct first segment */
    for (size_t i = 0; i < nact; i++) {
        const struct sb_rw_seg *g = &act[i].r->segs[act[i].d];
        size_t nsub = 0;
        struct sb_mp_reader er;
        bool dup = false;
        if (seen[i] || act[i].r->op != SB_RW_SET)
            continue;
        for (size_t j = 0; j < i && !dup; j++)
            dup = !seen[j] && act[j].r->op == SB_RW_SET && act[j].r->segs[act[j].d].len == g->len &&
                  !memcmp(act[j].r->segs[act[j].d].s, g->s, g->len);
        if (dup)
            continue;
        for (size_t j = i; j < nact; j++)
            if (!seen[j] && act[j].r->op == SB_RW_SET && act[j].r->segs[act[j].d].len == g->len &&
                !memcmp(act[j].r->segs[act[j].d].s, g->s, g->len))
                sub[nsub++] = (struct active){act[j].r, act[j].d + 1};
        if ((rc = pack_str(c, g->s, g->len)))
            return rc;
        size_t vstart = c->out->len;
        sb_mp_reader_init(&er, empty_map, sizeof empty_map);
        if ((rc = emit_matched(c, &er, sub, nsub, depth)))
            return rc;
        written++;
        c->changed = true;
        if (root) {
            struct sb_mp_item gk = {.type = SB_MP_STR};
            gk.v.str.ptr = (const uint8_t *)g->s;
            gk.v.str.len = (uint32_t)g->len;
            note_top(c, &gk, vstart, body);
        }
    }
    uint8_t *h = (uint8_t *)c->out->data + hdr_at;
    if (written <= 15) {
        h[0] = (uint8_t)(0x80 | written);
        shift = 4;
    } else if (written <= 0xffff) {
        h[0] = 0xde;
        h[1] = (uint8_t)(written >> 8);
        h[2] = (uint8_t)written;
        shift = 2;
    } else {
        h[1] = (uint8_t)(written >> 24);
        h[2] = (uint8_t)(written >> 16);
        h[3] = (uint8_t)(written >> 8);
        h[4] = (uint8_t)written;
        shift = 0;
    }
    if (shift) {
        memmove(h + 5 - shift, h + 5, c->out->len - body);
        c->out->len -= shift;
    }
    if (root && c->top)
        for (size_t i = 0; i < c->top->n; i++)
            if (c->top->off[i] != SIZE_MAX)
                c->top->off[i] += body - shift - c->base;
    return 0;
}

static int rw_array(struct ctx *c, struct sb_mp_reader *r, uint32_t count, const struct active *act,
                    size_t nact, int depth)
{
    struct active sub[RW_MAX_ACTIVE];
    uint32_t dropped = 0;
    int rc;

    for (uint32_t e = 0; e < count; e++)
        for (size_t i = 0; i < nact; i++)
            if (act[i].r->arrays_by_index && act[i].r->op == SB_RW_DROP &&
                act[i].d + 1 == act[i].r->n && seg_is_index(&act[i].r->segs[act[i].d], e)) {
                dropped++;
                break;
            }
    if (dropped)
        c->changed = true;
    if (msgpack_pack_array(&c->pk, count - dropped))
        return -ENOMEM;
    for (uint32_t e = 0; e < count; e++) {
        size_t nsub = 0;
        bool drop = false, ends = false;
        for (size_t i = 0; i < nact; i++) {
            const struct sb_rw_rule *rule = act[i].r;
            if (!rule->arrays_by_index) {
                sub[nsub++] = act[i]; /* transparent: same segment applies inside the element */
            } else if (seg_is_index(&rule->segs[act[i].d], e)) {
                drop |= rule->op == SB_RW_DROP && act[i].d + 1 == rule->n;
                ends |= act[i].d + 1 == rule->n;
                sub[nsub++] = (struct active){rule, act[i].d + 1};
            }
        }
        if (drop) {
            if ((rc = sb_mp_skip(r)))
                return rc;
            continue;
        }
        if (!nsub)
            rc = copy_raw(c, r);
        else if (ends)
            rc = emit_matched(c, r, sub, nsub, depth);
        else
            rc = rw_value(c, r, sub, nsub, depth + 1);
        if (rc)
            return rc;
    }
    return 0;
}

static int rw_value(struct ctx *c, struct sb_mp_reader *r, const struct active *act, size_t nact,
                    int depth)
{
    struct sb_mp_item it;
    struct active live[RW_MAX_ACTIVE];
    size_t nlive = 0;
    int rc;

    for (size_t i = 0; i < nact; i++)
        if (act[i].d < act[i].r->n)
            live[nlive++] = act[i];
    if (!nlive)
        return copy_raw(c, r);
    if (depth > RW_MAX_DEPTH)
        return -EINVAL;
    if ((rc = sb_mp_peek(r, &it)))
        return rc;
    if (it.type == SB_MP_MAP) {
        sb_mp_next(r, &it);
        return rw_map(c, r, it.v.count, live, nlive, depth);
    }
    if (it.type == SB_MP_ARRAY) {
        sb_mp_next(r, &it);
        return rw_array(c, r, it.v.count, live, nlive, depth);
    }
    return copy_raw(c, r); /* a path into a scalar leads nowhere */
}

int sb_rw_apply(const uint8_t *in, size_t len, const struct sb_rw_rule *rules, size_t n_rules,
                struct sb_buf *out)
{
    return sb_rw_apply_top(in, len, rules, n_rules, out, NULL);
}

int sb_rw_apply_top(const uint8_t *in, size_t len, const struct sb_rw_rule *rules, size_t n_rules,
                    struct sb_buf *out, struct sb_rw_top *top)
{
    struct ctx c = {.out = out, .base = out->len, .top = top};
    struct active act[RW_MAX_ACTIVE];
    struct sb_mp_reader r;
    struct sb_mp_item it;
    size_t start = out->len;
    int rc;

    if (n_rules > RW_MAX_ACTIVE || (top && top->n > 16))
        return -E2BIG;
    for (size_t i = 0; top && i < top->n; i++)
        c.top_len[i] = strlen(top->keys[i]);
    sb_mp_reader_init(&r, in, len);
    if (sb_mp_peek(&r, &it) || it.type != SB_MP_MAP)
        return -EINVAL;
    msgpack_packer_init(&c.pk, out, buf_write);
    for (size_t i = 0; i < n_rules; i++)
        act[i] = (struct active){&rules[i], 0};
    if (top) { /* the root map is walked even without rules: top wants its offsets */
        sb_mp_next(&r, &it);
        rc = rw_map(&c, &r, it.v.count, act, n_rules, 0);
    } else {
        rc = rw_value(&c, &r, act, n_rules, 0);
    }
    if (!rc && sb_mp_reader_left(&r))
        rc = -EINVAL;
    if (rc) {
        out->len = start;
        return rc == -1 ? -ENOMEM : rc;
    }
    return c.changed;
}
