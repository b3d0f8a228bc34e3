/* fuzz/transform.c: arbitrary msgpack through the transform stage's rule engine with a fixed
 * rule set (drop, hash, allow, set, rename, Title Case, odd names); must never crash and a
 * changed result must be one well-formed msgpack value. A valid event also goes through the stage
 * with a rule set that keeps events valid: the metadata the stage derives from its rewrite must
 * be what sb_event_inspect says of the new bytes. */
#include <stdlib.h>
#include <string.h>

#include "mp/mp_reader.h"
#include "pipeline/verify.h"
#include "protocols/protocols.h"

static struct sb_transform *rules(void)
{
    static char *p[][2] = {
        {"0.type", "track"},
        {"0.drop.0", "properties.email"},
        {"0.drop.1", "/properties/"},
        {"0.drop.2", "properties.products.secret"},
        {"1.salt", "pepper"},
        {"1.hash.0", "userId"},
        {"1.hash.1", "context.traits.Full Name"},
        {"2.allow.0", "traits.a"},
        {"2.allow.1", "traits.b.c"},
        {"3.set.context.app.name", "x"},
        {"3.set.context.app.v", "[1,{\"a\":null}]"},
        {"3.remove.0", "context.ip"},
        {"4.event", "a"},
        {"4.rename", "B"},
        {"5.normalize", "title_case"},
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

/* Rules that cannot make a verified event invalid: the stage inspects its own output. */
static struct sb_stage *valid_stage(void)
{
    static char *p[][2] = {
        {"0.type", "track"},           {"0.drop.0", "properties.email"},
        {"0.drop.1", "context.ip"},    {"1.salt", "s"},
        {"1.hash.0", "userId"},        {"1.hash.1", "properties.products.sku"},
        {"2.normalize", "title_case"}, {"3.set.context.library.name", "segbus"},
        {"4.allow.0", "traits.a"},     {"5.drop.0", "sentAt"},
    };
    static struct sb_kv kv[sizeof p / sizeof p[0]];
    struct sb_kv_list l = {kv, sizeof p / sizeof p[0]};
    struct sb_transform *t;
    char err[256];
    for (size_t i = 0; i < l.n; i++)
        kv[i] = (struct sb_kv){p[i][0], p[i][1], (int)i + 1};
    if (sb_transform_new(&l, &t, err, sizeof err))
        abort();
    return sb_transform_stage_new(t, 0);
}

/* The same place in the new bytes (not merely equal text: a pointer into the old input would
 * dangle once the pipeline reuses it). */
static bool same(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
    return al == bl && a == b;
}

static void check_stage(const uint8_t *data, size_t size)
{
    static struct sb_stage *st;
    struct sb_event_meta m = {.source = 0}, want = {0};
    struct sb_buf scratch = SB_BUF_INIT;
    if (!st)
        st = valid_stage();
    if (sb_event_inspect(data, size, &m) != 0)
        return;
    struct sb_stage_event ev = {data, size, &m, &scratch, 0, false};
    int rc = st->process(st, &ev);
    if (rc == SB_STAGE_REPLACE) {
        if (!ev.inspected)
            abort(); /* these rules keep events valid: the stage must have inspected */
        want.source = 0;
        if (sb_event_inspect(scratch.data, scratch.len, &want) != 0 || want.call != m.call ||
            !same(want.message_id, want.message_id_len, m.message_id, m.message_id_len) ||
            !same(want.event, want.event_len, m.event, m.event_len) ||
            !same(want.user_id, want.user_id_len, m.user_id, m.user_id_len) ||
            !same(want.integrations, want.integrations_len, m.integrations, m.integrations_len))
            abort();
    }
    sb_buf_free(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sb_transform *t;
    struct sb_buf out = SB_BUF_INIT;
    if (!t)
        t = rules();
    check_stage(data, size);
    if (size > 32768)
        return 0; /* events are at most 32 KB */
    int rc = sb_transform_apply(t, data, size, &out);
    if (rc == 1 && sb_mp_check(out.data, out.len, 300) != 0)
        abort();
    sb_buf_free(&out);
    return 0;
}
