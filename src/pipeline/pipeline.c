/* pipeline.c: runs an event through the stages in order, counting per stage and reason. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/stage.h"
#include "pipeline/verify.h"

struct sb_pipeline {
    struct sb_stage **stages;
    size_t n;
    /* Two buffers so that a stage can read the previous replacement while writing its own. */
    struct sb_buf bufs[2];
    unsigned cur;
};

int sb_pipeline_new(struct sb_pipeline **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

static void stage_destroy(struct sb_stage *s)
{
    uint64_t *dropped = s->dropped;

    if (s->destroy)
        s->destroy(s);
    free(dropped);
}

int sb_pipeline_add(struct sb_pipeline *p, struct sb_stage *stage)
{
    struct sb_stage **stages;
    unsigned n = 0;

    if (stage->reasons)
        while (stage->reasons[n])
            n++;
    stage->n_reasons = n;
    stage->dropped = calloc(n + 2, sizeof *stage->dropped);
    stages = realloc(p->stages, (p->n + 1) * sizeof *stages);
    if (!stage->dropped || !stages) {
        if (stages)
            p->stages = stages;
        stage_destroy(stage);
        return -ENOMEM;
    }
    p->stages = stages;
    p->stages[p->n++] = stage;
    return 0;
}

int sb_pipeline_run(struct sb_pipeline *p, const uint8_t *data, size_t len,
                    struct sb_event_meta *meta, const uint8_t **out, size_t *out_len)
{
    struct sb_stage_event ev = {.data = data, .len = len, .meta = meta};

    for (size_t i = 0; i < p->n; i++) {
        struct sb_stage *s = p->stages[i];
        int rc;

        ev.scratch = &p->bufs[p->cur ^ 1];
        ev.reason = 0;
        ev.inspected = false;
        rc = s->process(s, &ev);
        if (rc == SB_STAGE_PASS) {
            s->passed++;
            continue;
        }
        if (rc == SB_STAGE_REPLACE) {
            /* Later stages rely on the metadata matching the bytes: re-derive it, and refuse a
             * replacement that is no longer a valid event. */
            if (!ev.inspected && sb_event_inspect(ev.scratch->data, ev.scratch->len, meta) != 0) {
                s->dropped[s->n_reasons + 1]++;
                return SB_STAGE_DROP;
            }
            s->replaced++;
            p->cur ^= 1;
            ev.data = ev.scratch->data;
            ev.len = ev.scratch->len;
            continue;
        }
        if (rc == SB_STAGE_DROP && ev.reason < s->n_reasons)
            s->dropped[ev.reason]++;
        else
            s->dropped[s->n_reasons]++; /* internal error, or a reason out of range */
        return SB_STAGE_DROP;
    }
    *out = ev.data;
    *out_len = ev.len;
    return SB_STAGE_PASS;
}

size_t sb_pipeline_stages(const struct sb_pipeline *p, struct sb_stage *const **stages)
{
    *stages = p->stages;
    return p->n;
}

void sb_pipeline_free(struct sb_pipeline *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        stage_destroy(p->stages[i]);
    free(p->stages);
    sb_buf_free(&p->bufs[0]);
    sb_buf_free(&p->bufs[1]);
    free(p);
}
