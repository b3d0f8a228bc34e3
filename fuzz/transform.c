/* fuzz/transform.c: arbitrary msgpack through the transform stage's rule engine with a fixed
 * rule set (drop, hash, allow, set, rename, Title Case, odd names); must never crash and a
 * changed result must be one well-formed msgpack value. */
#include <stdlib.h>
#include <string.h>

#include "mp/mp_reader.h"
#include "protocols/protocols.h"

static struct sb_transform *rules(void)
{
    static char *p[][2] = {
        {"0.type", "track"},           {"0.drop.0", "properties.email"},
        {"0.drop.1", "/properties/"},  {"0.drop.2", "properties.products.secret"},
        {"1.salt", "pepper"},          {"1.hash.0", "userId"},
        {"1.hash.1", "context.traits.Full Name"},
        {"2.allow.0", "traits.a"},     {"2.allow.1", "traits.b.c"},
        {"3.set.context.app.name", "x"}, {"3.set.context.app.v", "[1,{\"a\":null}]"},
        {"3.remove.0", "context.ip"},  {"4.event", "a"},
        {"4.rename", "B"},             {"5.normalize", "title_case"},
    };
    static struct sb_kv kv[sizeof p / sizeof p[0]];
    struct sb_kv_list l = {kv, sizeof p / sizeof p[0]};
    struct sb_transform *t;
    char err[256];
    for (size_t i = 0; i < l.n; i++)
        kv[i] = (struct sb_kv){p[i][0], p[i][1], (int)i + 1};
    if (sb_transform_new(&l, &t, err, sizeof err))
        abort();
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sb_transform *t;
    struct sb_buf out = SB_BUF_INIT;
    if (!t)
        t = rules();
    if (size > 32768)
        return 0; /* events are at most 32 KB */
    int rc = sb_transform_apply(t, data, size, &out);
    if (rc == 1 && sb_mp_check(out.data, out.len, 300) != 0)
        abort();
    sb_buf_free(&out);
    return 0;
}
