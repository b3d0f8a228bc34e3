/* protocols.c: building the per-source plan and transform stages from the configuration. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/protocols.h"

static int read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    if (!f)
        return -errno;
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);
            if (!nb) {
                free(buf);
                fclose(f);
                return -ENOMEM;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return -EIO;
    }
    *data = buf;
    *len = n;
    return 0;
}

int sb_protocols_add_stages(struct sb_pipeline *p, const struct sb_config *cfg,
                            struct sb_metrics *m, char *err, size_t errlen)
{
    return sb_protocols_add_stages_sink(p, cfg, m, NULL, err, errlen);
}

/* Does forward_to name a configured output? */
static bool output_exists(const struct sb_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_outputs; i++)
        if (cfg->outputs[i].name && !strcmp(cfg->outputs[i].name, name))
            return true;
    return false;
}

int sb_protocols_add_stages_sink(struct sb_pipeline *p, const struct sb_config *cfg,
                                 struct sb_metrics *m, const struct sb_violation_sink *sink,
                                 char *err, size_t errlen)
{
    char e[512];
    int rc;

    for (size_t i = 0; i < cfg->n_sources; i++) {
        const struct sb_source_config *src = &cfg->sources[i];
        if (src->plan_file && src->plan_file[0]) {
            struct sb_plan_opts o;
            struct sb_plan *plan;
            struct sb_stage *s;
            char *json = NULL;
            size_t len = 0;
            if ((rc = read_file(src->plan_file, &json, &len))) {
                snprintf(err, errlen, "source %s: plan %s: %s", src->name, src->plan_file,
                         strerror(-rc));
                return rc;
            }
            rc = sb_plan_load_json(json, len, &plan, e, sizeof e);
            free(json);
            if (rc) {
                snprintf(err, errlen, "source %s: plan %s: %s", src->name, src->plan_file, e);
                return rc;
            }
            if ((rc = sb_plan_opts_parse(&src->violations, &o, e, sizeof e))) {
                sb_plan_free(plan);
                snprintf(err, errlen, "source %s: %s", src->name, e);
                return rc;
            }
            if (!o.log_path) {
                size_t n = strlen(cfg->spool.dir) + strlen(src->name) + 32;
                if (!(o.log_path = malloc(n))) {
                    sb_plan_free(plan);
                    return -ENOMEM;
                }
                snprintf(o.log_path, n, "%s/%s.violations.ndjson", cfg->spool.dir, src->name);
            }
            if (o.forward_to && (!sink || !output_exists(cfg, o.forward_to))) {
                snprintf(err, errlen, "source %s: violations.forward_to: '%s' is not an output%s",
                         src->name, o.forward_to, sink ? "" : " (no output here takes them)");
                sb_plan_opts_free(&o);
                sb_plan_free(plan);
                return -EINVAL;
            }
            s = sb_plan_stage_new(plan, &o, src->name, (int)i, m);
            sb_plan_opts_free(&o);
            if (!s)
                return -ENOMEM;
            sb_plan_stage_set_sink(s, sink);
            if (sb_pipeline_add(p, s))
                return -ENOMEM;
        }
        if (src->transforms.n) {
            struct sb_transform *t;
            struct sb_stage *s;
            if ((rc = sb_transform_new(&src->transforms, &t, e, sizeof e))) {
                snprintf(err, errlen, "source %s: %s", src->name, e);
                return rc;
            }
            if (!(s = sb_transform_stage_new(t, (int)i)) || sb_pipeline_add(p, s))
                return -ENOMEM;
        }
    }
    return 0;
}
