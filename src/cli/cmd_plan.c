/* cmd_plan.c: `segbus plan check|lint`: tracking plans offline (a CI gate for instrumentation). */
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "json/json.h"
#include "mp/mp_reader.h"
#include "plan/plan.h"
#include "protocols/protocols.h"

static int buf_write(void *data, const char *buf, size_t len)
{
    return sb_buf_append(data, buf, len) ? -1 : 0;
}

static int slurp(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct sb_buf b = SB_BUF_INIT;
    char chunk[65536];
    size_t n;

    if (!f)
        return -errno;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (sb_buf_append(&b, chunk, n)) {
            fclose(f);
            sb_buf_free(&b);
            return -ENOMEM;
        }
    fclose(f);
    if (sb_buf_append(&b, "", 1)) { /* NUL: the text is printed in errors */
        sb_buf_free(&b);
        return -ENOMEM;
    }
    *data = (char *)b.data;
    *len = b.len - 1;
    return 0;
}

static int load_plan(const char *path, struct sb_plan **plan)
{
    char *json, err[512];
    size_t len;
    int rc = slurp(path, &json, &len);

    if (rc) {
        fprintf(stderr, "segbus plan: %s: %s\n", path, strerror(-rc));
        return SB_EXIT_UNAVAILABLE;
    }
    rc = sb_plan_load_json(json, len, plan, err, sizeof err);
    free(json);
    if (rc) {
        fprintf(stderr, "segbus plan: %s: %s\n", path, err);
        return SB_EXIT_DATAERR;
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: segbus plan lint PLAN\n"
            "       segbus plan check [--fail-on any|blocked|never] [--unplanned-events "
            "allow|block]\n"
            "                         [--unplanned-properties allow|omit] [--invalid "
            "allow|omit|block] PLAN EVENTS.ndjson\n"
            "check exits 1 when an event has a violation (--fail-on any, the default) or would\n"
            "be blocked under the given handling (--fail-on blocked); 65 on unreadable input.\n");
    return SB_EXIT_USAGE;
}

/* One (event, type, field) tally line of the summary. */
struct tally {
    char *key;
    unsigned long n;
};

static int tally_add(struct tally **t, size_t *n, const char *key)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*t)[i].key, key)) {
            (*t)[i].n++;
            return 0;
        }
    struct tally *nt = realloc(*t, (*n + 1) * sizeof **t);
    if (!nt)
        return -ENOMEM;
    *t = nt;
    if (!(nt[*n].key = strdup(key)))
        return -ENOMEM;
    nt[(*n)++].n = 1;
    return 0;
}

static int cmp_tally(const void *a, const void *b)
{
    return strcmp(((const struct tally *)a)->key, ((const struct tally *)b)->key);
}

static int parse_mode(const char *v, const char *allowed, enum sb_pmode *m)
{
    static const char *const names[] = {"allow", "omit", "block"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(v, names[i]) && strstr(allowed, names[i])) {
            *m = (enum sb_pmode)i;
            return 0;
        }
    fprintf(stderr, "segbus plan check: '%s' is not one of %s\n", v, allowed);
    return -1;
}

static int check(int argc, char **argv)
{
    struct sb_plan_opts o = {.unplanned_events = SB_PMODE_BLOCK,
                             .unplanned_properties = SB_PMODE_OMIT,
                             .invalid = SB_PMODE_BLOCK};
    const char *fail_on = "any", *pos[2];
    int npos = 0, rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] == '-' && i + 1 >= argc)
            return usage();
        if (!strcmp(a, "--fail-on")) {
            fail_on = argv[++i];
            if (strcmp(fail_on, "any") && strcmp(fail_on, "blocked") && strcmp(fail_on, "never"))
                return usage();
        } else if (!strcmp(a, "--unplanned-events")) {
            if (parse_mode(argv[++i], "allow|block", &o.unplanned_events))
                return SB_EXIT_USAGE;
        } else if (!strcmp(a, "--unplanned-properties")) {
            if (parse_mode(argv[++i], "allow|omit", &o.unplanned_properties))
                return SB_EXIT_USAGE;
        } else if (!strcmp(a, "--invalid")) {
            if (parse_mode(argv[++i], "allow|omit|block", &o.invalid))
                return SB_EXIT_USAGE;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "segbus plan check: unknown flag %s\n", a);
            return usage();
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            return usage();
        }
    }
    if (npos != 2)
        return usage();

    struct sb_plan *plan;
    if ((rc = load_plan(pos[0], &plan)))
        return rc;
    FILE *f = strcmp(pos[1], "-") ? fopen(pos[1], "r") : stdin;
    if (!f) {
        fprintf(stderr, "segbus plan check: %s: %s\n", pos[1], strerror(errno));
        sb_plan_free(plan);
        return SB_EXIT_UNAVAILABLE;
    }
    struct sb_buf mp = SB_BUF_INIT, out = SB_BUF_INIT;
    struct sb_violations v = {0};
    struct tally *t = NULL;
    size_t nt = 0;
    char *line = NULL, key[1024];
    size_t cap = 0;
    ssize_t n;
    unsigned long lineno = 0, checked = 0, clean = 0, with_v = 0, blocked = 0, bad = 0;

    while ((n = getline(&line, &cap, f)) >= 0) {
        msgpack_packer pk;
        struct sb_json_error je;
        struct sb_plan_match m;
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n == 0)
            continue;
        sb_buf_clear(&mp);
        msgpack_packer_init(&pk, &mp, buf_write);
        if (sb_json_to_msgpack(line, (size_t)n, &pk, &je)) {
            printf("%s:%lu: not JSON: %s at byte %zu\n", pos[1], lineno, je.reason, je.offset);
            bad++;
            continue;
        }
        rc = sb_plan_handle(plan, &o, mp.data, mp.len, &v, &m, &out);
        if (rc < 0) {
            printf("%s:%lu: not an event: %s\n", pos[1], lineno, strerror(-rc));
            bad++;
            continue;
        }
        checked++;
        if (rc == SB_PLAN_CLEAN) {
            clean++;
            continue;
        }
        with_v++;
        blocked += rc == SB_PLAN_BLOCKED;
        const char *name = m.rule ? m.rule : "";
        struct sb_mp_reader r;
        const char *en;
        size_t el;
        char ename[256] = "";
        if ((sb_mp_lookup(mp.data, mp.len, "event", &r) == 1 ||
             sb_mp_lookup(mp.data, mp.len, "type", &r) == 1) &&
            !sb_mp_read_str(&r, &en, &el))
            snprintf(ename, sizeof ename, "%.*s", (int)(el < 200 ? el : 200), en);
        if (!ename[0])
            snprintf(ename, sizeof ename, "%s", name);
        printf("%s:%lu: %s: %s\n", pos[1], lineno, ename,
               rc == SB_PLAN_BLOCKED   ? "BLOCKED"
               : rc == SB_PLAN_OMITTED ? "omitted"
                                       : "allowed");
        for (size_t i = 0; i < v.count; i++) {
            const struct sb_violation *x = &v.items[i];
            printf("    %s %s: %s\n", sb_violation_kind_name(x->kind),
                   x->path[0] ? x->path : "(event)", x->reason);
            snprintf(key, sizeof key, "%s\t%s\t%s", ename, sb_violation_kind_name(x->kind),
                     x->path);
            if (tally_add(&t, &nt, key)) {
                fprintf(stderr, "segbus plan check: out of memory\n");
                return SB_EXIT_SOFTWARE;
            }
        }
    }
    if (f != stdin)
        fclose(f);
    if (nt) /* qsort(NULL, 0, ...) is undefined behaviour */
        qsort(t, nt, sizeof *t, cmp_tally);
    printf("\nviolations by event, type and field:\n");
    for (size_t i = 0; i < nt; i++) {
        char *a = t[i].key, *b = strchr(a, '\t'), *c = strchr(b + 1, '\t');
        *b = *c = 0;
        printf("  %6lu  %s | %s | %s\n", t[i].n, a, b + 1, c[1] ? c + 1 : "(event)");
        free(t[i].key);
    }
    printf("%lu events checked: %lu clean, %lu with violations, %lu would be blocked, %lu "
           "unreadable\n",
           checked, clean, with_v, blocked, bad);
    free(t);
    free(line);
    sb_buf_free(&mp);
    sb_buf_free(&out);
    sb_violations_free(&v);
    sb_plan_free(plan);
    if (bad)
        return SB_EXIT_DATAERR;
    if (!strcmp(fail_on, "any") && with_v)
        return SB_EXIT_FAIL;
    if (!strcmp(fail_on, "blocked") && blocked)
        return SB_EXIT_FAIL;
    return SB_EXIT_OK;
}

static int lint(int argc, char **argv)
{
    struct sb_plan *plan;
    int rc;

    if (argc != 2)
        return usage();
    if ((rc = load_plan(argv[1], &plan)))
        return rc;
    printf("%s: ok, %zu rules\n", argv[1], sb_plan_rule_count(plan));
    sb_plan_free(plan);
    return SB_EXIT_OK;
}

static int run(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "check"))
        return check(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "lint"))
        return lint(argc - 1, argv + 1);
    return usage();
}

const struct sb_cli_cmd sb_cli_plan = {
    .name = "plan",
    .summary = "check events against a tracking plan offline, or lint a plan",
    .run = run,
};
