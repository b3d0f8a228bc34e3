/* cmd_tail.c: `segbus tail`: live events from a running segbusd with what happened to them (passed
 * or dropped by which stage and why; per output: batched, spooled, retrying, delivered,
 * dead_lettered, filtered), read by
 * long-polling its GET /tail (src/daemon/tail.h). Filters run in the daemon. No cap on how many. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/ops.h"

#define TAIL_WAIT_MS 5000 /* each long-poll; the HTTP timeout is a little longer */

/* Append "&key=value" with value percent-encoded. */
static void add_param(char *q, size_t qlen, const char *key, const char *val)
{
    size_t n = strlen(q);
    n += (size_t)snprintf(q + n, qlen > n ? qlen - n : 0, "&%s=", key);
    for (const unsigned char *p = (const unsigned char *)val; *p && n + 4 < qlen; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~')
            q[n++] = (char)*p;
        else
            n += (size_t)snprintf(q + n, qlen - n, "%%%02X", *p);
    }
    q[n < qlen ? n : qlen - 1] = 0;
}

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void print_event(json_t *e)
{
    char when[32];
    json_int_t ms = json_integer_value(json_object_get(e, "time_ms"));
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    const char *type = str(e, "type"), *ev = str(e, "event"), *user = str(e, "userId");
    json_t *msg = json_object_get(e, "message"), *outs = json_object_get(e, "outputs"), *v;
    const char *k, *mid = str(msg, "messageId"), *anon = str(msg, "anonymousId");

    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%H:%M:%S", &tm);
    printf("%s.%03d  %-8s %-24s", when, (int)(ms % 1000), type ? type : "?",
           ev ? ev : (str(msg, "name") ? str(msg, "name") : "-"));
    if (user)
        printf(" userId=%s", user);
    else if (anon)
        printf(" anonymousId=%s", anon);
    const char *status = str(e, "status") ? str(e, "status") : "";
    if (!strcmp(status, "blocked")) {
        printf("  BLOCKED by the tracking plan");
    } else if (!strcmp(status, "dropped")) {
        printf("  DROPPED by %s: %s", str(e, "stage") ? str(e, "stage") : "?",
               str(e, "reason") ? str(e, "reason") : "?");
    } else {
        printf(" ");
        json_object_foreach(outs, k, v)
            printf(" %s=%s", k, json_is_string(v) ? json_string_value(v) : "?");
    }
    if (mid)
        printf("  messageId=%s", mid);
    putchar('\n');
    /* tracking-plan violations, one line each: type, field and why */
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(e, "violations"), i, x) {
        const char *vt = str(x, "type"), *field = str(x, "field"), *why = str(x, "reason");
        printf("    %s %s: %s\n", vt ? vt : "?", field && field[0] ? field : "(event)",
               why ? why : "");
    }
}

static void help(FILE *f)
{
    fprintf(f,
            "usage: segbus tail [--metrics HOST:PORT | --config FILE] [--type T] [--event E]\n"
            "                   [--userId U] [--settled] [--last N] [--count N] [--json]\n\n"
            "Live events through a running segbusd with their delivery status: passed, passed\n"
            "with tracking-plan violations, blocked by the plan or dropped (stage, reason), and\n"
            "per output batched, spooled, retrying, delivered, dead_lettered or filtered\n"
            "(sources, allow/deny lists, integrations); violations are listed below their event\n"
            "(type, field, reason).\n\n"
            "flags:\n"
            "  --metrics HOST:PORT  the daemon's metrics.listen (else --config's, else\n"
            "                       $SEGBUS_METRICS, else %s)\n"
            "  --config FILE        read metrics.listen from segbusd's config\n"
            "  --type T             only track, identify, page, screen, group or alias events\n"
            "  --event E            only track events named E\n"
            "  --userId U           only events of that userId\n"
            "  --settled            show each event once every output is done with it\n"
            "  --last N             start with the last N events the daemon recorded\n"
            "  --count N            stop after N events\n"
            "  --json               one JSON object per event (NDJSON)\n\n"
            "segbusd records events only while someone tails (and for 15 s after), in a ring\n"
            "of the latest %d; a line says how many were missed when output falls behind.\n"
            "Exit codes: 0 ok (--count reached); 2 bad command line; 69 no daemon; 1 error.\n",
            SB_OPS_DEFAULT_METRICS, 4096);
}

static volatile sig_atomic_t stop_flag;
static void on_sigint(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int run_tail(int argc, char **argv)
{
    enum {
        O_METRICS = 1,
        O_CONFIG,
        O_TYPE,
        O_EVENT,
        O_USER,
        O_SETTLED,
        O_LAST,
        O_COUNT,
        O_JSON,
        O_HELP
    };
    static const struct option opts[] = {
        {"metrics", required_argument, NULL, O_METRICS},
        {"config", required_argument, NULL, O_CONFIG},
        {"type", required_argument, NULL, O_TYPE},
        {"event", required_argument, NULL, O_EVENT},
        {"userId", required_argument, NULL, O_USER},
        {"settled", no_argument, NULL, O_SETTLED},
        {"last", required_argument, NULL, O_LAST},
        {"count", required_argument, NULL, O_COUNT},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    static const char *const types[] = {"track", "identify", "page", "screen", "group", "alias"};
    const char *metrics = NULL, *config = NULL;
    char filters[1024] = "", addr[300], *end;
    long last = 0, count = 0, shown = 0;
    bool json = false, settled = false;
    int o, rc;

    opterr = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_METRICS:
            metrics = optarg;
            break;
        case O_CONFIG:
            config = optarg;
            break;
        case O_TYPE: {
            bool ok = false;
            for (size_t i = 0; i < 6; i++)
                ok |= !strcmp(optarg, types[i]);
            if (!ok) {
                fprintf(stderr,
                        "segbus tail: --type wants track, identify, page, screen, group "
                        "or alias, not \"%s\"\n",
                        optarg);
                return SB_EXIT_USAGE;
            }
            add_param(filters, sizeof filters, "type", optarg);
            break;
        }
        case O_EVENT:
            add_param(filters, sizeof filters, "event", optarg);
            break;
        case O_USER:
            add_param(filters, sizeof filters, "userId", optarg);
            break;
        case O_SETTLED:
            settled = true;
            break;
        case O_LAST:
        case O_COUNT: {
            long v = strtol(optarg, &end, 10);
            if (*end || v < (o == O_LAST ? 0 : 1) || v > (o == O_LAST ? 4096 : 1000000000L)) {
                fprintf(stderr, "segbus tail: --%s wants a number %s, not \"%s\"\n",
                        o == O_LAST ? "last" : "count", o == O_LAST ? "0..4096" : ">= 1", optarg);
                return SB_EXIT_USAGE;
            }
            *(o == O_LAST ? &last : &count) = v;
            break;
        }
        case O_JSON:
            json = true;
            break;
        case O_HELP:
            help(stdout);
            return SB_EXIT_OK;
        default:
            return sb_cli_bad_flag("tail", argv);
        }
    }
    if ((rc = sb_ops_check_args("tail", argc, argv, metrics, config)) != 0)
        return rc;
    if ((rc = sb_ops_address(metrics, config, addr, sizeof addr, "tail")) != 0)
        return rc;
    signal(SIGINT, on_sigint);
    signal(SIGPIPE, SIG_DFL);

    struct sb_buf body = SB_BUF_INIT;
    unsigned long long next = 0;
    rc = SB_EXIT_OK;
    while (!stop_flag) {
        char target[1400], err[300];
        int status = 0, r;
        json_error_t je;
        json_t *root, *evs, *e;
        size_t i;

        if (next)
            snprintf(target, sizeof target, "/tail?after=%llu&wait_ms=%d%s%s", next, TAIL_WAIT_MS,
                     settled ? "&settled=1" : "", filters);
        else
            snprintf(target, sizeof target, "/tail?last=%ld&wait_ms=%d%s%s", last, TAIL_WAIT_MS,
                     settled ? "&settled=1" : "", filters);
        r = sb_ops_get(addr, target, TAIL_WAIT_MS + 5000, &status, &body, err, sizeof err);
        if (r == -EINTR || stop_flag)
            break;
        if (r) {
            fprintf(stderr, "segbus tail: %s\n", err);
            rc = r == -ECONNREFUSED || r == -ETIMEDOUT ? SB_EXIT_UNAVAILABLE : SB_EXIT_FAIL;
            break;
        }
        if (status != 200) {
            fprintf(stderr, "segbus tail: %s%s answered %d: %.*s", addr, "/tail", status,
                    (int)(body.len > 300 ? 300 : body.len), (const char *)body.data);
            rc = status == 404 ? SB_EXIT_UNAVAILABLE : SB_EXIT_FAIL;
            break;
        }
        root = json_loadb((const char *)body.data, body.len, 0, &je);
        evs = json_object_get(root, "events");
        if (!root || !json_is_array(evs) || !json_is_integer(json_object_get(root, "next"))) {
            fprintf(stderr, "segbus tail: %s/tail answered something unexpected\n", addr);
            json_decref(root);
            rc = SB_EXIT_FAIL;
            break;
        }
        json_int_t missed = json_integer_value(json_object_get(root, "missed"));
        if (missed > 0 && next)
            fprintf(stderr, "segbus tail: %lld event(s) missed (the daemon keeps the last 4096)\n",
                    (long long)missed);
        next = (unsigned long long)json_integer_value(json_object_get(root, "next"));
        json_array_foreach(evs, i, e)
        {
            if (json) {
                json_dumpf(e, stdout, JSON_COMPACT);
                putchar('\n');
            } else {
                print_event(e);
            }
            if (count && ++shown >= count)
                break;
        }
        fflush(stdout);
        json_decref(root);
        if (count && shown >= count)
            break;
    }
    sb_buf_free(&body);
    return rc;
}

const struct sb_cli_cmd sb_cli_tail = {"tail", "live events and their delivery status", run_tail};
