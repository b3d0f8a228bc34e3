/* route.c: per-destination routing: sources, allow/deny, integrations (see route.h). */
#include "outputs/route.h"

#include <string.h>

#include "mp/mp_reader.h"

static bool listed(const struct sb_str_list *l, const char *call, const struct sb_event_meta *m)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *n = l->items[i];
        if (!strcmp(n, call))
            return true;
        if (m->call == SB_CALL_TRACK && m->event && strlen(n) == m->event_len &&
            !memcmp(n, m->event, m->event_len))
            return true;
    }
    return false;
}

/* The value of a map entry as a switch: false switches off, anything else on. */
static bool value_on(struct sb_mp_reader *r)
{
    struct sb_mp_item it;
    return !(sb_mp_peek(r, &it) == 0 && it.type == SB_MP_BOOL && !it.v.b);
}

bool sb_route_integration_enabled(const uint8_t *integ, size_t integ_len, const char *name,
                                  size_t len)
{
    struct sb_mp_reader r, all;
    struct sb_mp_item it;
    bool have_all = false;

    if (!integ || !integ_len)
        return true;
    sb_mp_reader_init(&r, integ, integ_len);
    if (sb_mp_next(&r, &it) != 0 || it.type != SB_MP_MAP)
        return true;
    /* One pass: the destination's own key wins wherever it is; "All" is kept for the end. */
    for (uint32_t i = 0; i < it.v.count; i++) {
        struct sb_mp_item k;
        if (sb_mp_next(&r, &k) != 0)
            return true; /* malformed (verify let it through): as if absent */
        if (k.type == SB_MP_STR && k.v.str.len == len && !memcmp(k.v.str.ptr, name, len))
            return value_on(&r);
        if (k.type == SB_MP_STR && k.v.str.len == 3 && !memcmp(k.v.str.ptr, "All", 3)) {
            all = r;
            have_all = true;
        }
        if (sb_mp_skip(&r) != 0)
            return true;
    }
    return !have_all || value_on(&all);
}

enum sb_route_verdict sb_route_check(const struct sb_output_config *c,
                                     const struct sb_event_meta *meta, const char *source_name)
{
    const char *call = sb_call_name(meta->call);
    const char *name = c->integration ? c->integration : c->name;

    if (c->sources.n) {
        bool found = false;
        for (size_t i = 0; source_name && i < c->sources.n && !found; i++)
            found = !strcmp(c->sources.items[i], source_name);
        if (!found)
            return SB_ROUTE_SOURCE;
    }
    if (listed(&c->deny, call, meta))
        return SB_ROUTE_DENIED;
    if (c->allow.n && !listed(&c->allow, call, meta))
        return SB_ROUTE_NOT_ALLOWED;
    if (name && !sb_route_integration_enabled(meta->integrations, meta->integrations_len, name,
                                              strlen(name)))
        return SB_ROUTE_INTEGRATIONS;
    return SB_ROUTE_TAKE;
}
