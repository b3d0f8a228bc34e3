/* cmd_event.c: `segbus track|identify|page|screen|group|alias`: one Segment call from the
 * command line (shell scripts, cron jobs, end-to-end testers), sent through segbusd. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/buf.h"
#include "event/event.h"
#include "json/json.h"
#include "segbus/segbus.h"

enum {
    O_USER = 1,
    O_ANON,
    O_EVENT,
    O_PROPS,
    O_TRAITS,
    O_GROUP,
    O_PREV,
    O_NAME,
    O_CAT,
    O_CONTEXT,
    O_INTEG,
    O_TS,
    O_MSGID,
    O_WRITEKEY,
    O_SOCKET,
    O_DRYRUN,
    O_FLUSH,
    O_QUIET,
    O_HELP,
};

#define BIT(o) (1u << (o))
#define COMMON                                                                                     \
    (BIT(O_USER) | BIT(O_ANON) | BIT(O_CONTEXT) | BIT(O_INTEG) | BIT(O_TS) | BIT(O_MSGID) |        \
     BIT(O_WRITEKEY) | BIT(O_SOCKET) | BIT(O_DRYRUN) | BIT(O_FLUSH) | BIT(O_QUIET) | BIT(O_HELP))

static const struct option sb_opts[] = {
    {"userId", required_argument, NULL, O_USER},
    {"anonymousId", required_argument, NULL, O_ANON},
    {"event", required_argument, NULL, O_EVENT},
    {"properties", required_argument, NULL, O_PROPS},
    {"traits", required_argument, NULL, O_TRAITS},
    {"groupId", required_argument, NULL, O_GROUP},
    {"previousId", required_argument, NULL, O_PREV},
    {"name", required_argument, NULL, O_NAME},
    {"category", required_argument, NULL, O_CAT},
    {"context", required_argument, NULL, O_CONTEXT},
    {"integrations", required_argument, NULL, O_INTEG},
    {"timestamp", required_argument, NULL, O_TS},
    {"messageId", required_argument, NULL, O_MSGID},
    {"writeKey", required_argument, NULL, O_WRITEKEY},
    {"socket", required_argument, NULL, O_SOCKET},
    {"dry-run", no_argument, NULL, O_DRYRUN},
    {"flush-timeout", required_argument, NULL, O_FLUSH},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static const char *const sb_opt_help[] = {
    [O_USER] = "ID        userId (userId or anonymousId is required)",
    [O_ANON] = "ID   anonymousId",
    [O_EVENT] = "NAME       event name (required)",
    [O_PROPS] = "JSON  properties, a JSON object",
    [O_TRAITS] = "JSON      traits, a JSON object",
    [O_GROUP] = "ID       groupId (required)",
    [O_PREV] = "ID    previousId (required; alias also needs --userId)",
    [O_NAME] = "NAME        page/screen name",
    [O_CAT] = "NAME    page/screen category",
    [O_CONTEXT] = "JSON     context, a JSON object (library is segbus's own)",
    [O_INTEG] = "JSON integrations, e.g. '{\"All\": true, \"Mixpanel\": false}'",
    [O_TS] = "TIME   RFC 3339 timestamp (default: now, UTC, ms)",
    [O_MSGID] = "ID     messageId, 1-100 characters (default: a new UUIDv7)",
    [O_WRITEKEY] = "KEY   write key of the source",
    [O_SOCKET] =
        "PATH    segbusd's socket (default $" SEGBUS_SOCKET_ENV ", then " SEGBUS_DEFAULT_SOCKET ")",
    [O_DRYRUN] = "          print the event as JSON instead of sending it",
    [O_FLUSH] = "MS  wait up to MS for segbusd to take the event (default 5000; 0: no wait)",
    [O_QUIET] = "            do not print the messageId",
    [O_HELP] = "             this help",
};

struct sb_evcmd {
    enum segbus_type type;
    unsigned flags; /* beyond COMMON */
    const char *what;
};

static const struct sb_evcmd sb_evcmds[] = {
    [SEGBUS_TRACK] = {SEGBUS_TRACK, BIT(O_EVENT) | BIT(O_PROPS), "record an action"},
    [SEGBUS_IDENTIFY] = {SEGBUS_IDENTIFY, BIT(O_TRAITS), "tie a user to their traits"},
    [SEGBUS_PAGE] = {SEGBUS_PAGE, BIT(O_NAME) | BIT(O_CAT) | BIT(O_PROPS), "record a page view"},
    [SEGBUS_SCREEN] = {SEGBUS_SCREEN, BIT(O_NAME) | BIT(O_CAT) | BIT(O_PROPS),
                       "record a mobile screen view"},
    [SEGBUS_GROUP] = {SEGBUS_GROUP, BIT(O_GROUP) | BIT(O_TRAITS),
                      "tie a user to a group (company, account)"},
    [SEGBUS_ALIAS] = {SEGBUS_ALIAS, BIT(O_PREV), "merge a previous id into a userId"},
};

static void help(const struct sb_evcmd *c, FILE *f)
{
    const char *name = segbus_type_name(c->type);
    fprintf(f, "usage: segbus %s [FLAGS]\n\n%s: %s (Segment's %s call).\n\nflags:\n", name, name,
            c->what, name);
    for (const struct option *o = sb_opts; o->name; o++)
        if ((c->flags | COMMON) & BIT(o->val))
            fprintf(f, "  --%s %s\n", o->name, sb_opt_help[o->val]);
    fprintf(f, "\nPrints the messageId on success. Exit codes: 0 sent; 2 bad command line or a\n"
               "required flag missing; 65 invalid data (JSON, UTF-8, timestamp, 32 KB limit);\n"
               "69 no segbusd; 75 ring full or not taken in time (--flush-timeout); 77 refused.\n");
}

static int run_event(enum segbus_type type, int argc, char **argv)
{
    const struct sb_evcmd *c = &sb_evcmds[type];
    const char *name = segbus_type_name(type);
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    const char *write_key = NULL, *socket = NULL;
    int dry = 0, quiet = 0;
    long flush_ms = 5000;
    opterr = 0;
    optind = 1;
    int o;
    while ((o = getopt_long_only(argc, argv, "", sb_opts, NULL)) != -1) {
        if (o == '?' || o == ':')
            return sb_cli_bad_flag(name, argv);
        if (!((c->flags | COMMON) & BIT(o))) {
            fprintf(stderr, "segbus %s: --%s is not a flag of %s (segbus %s --help)\n", name,
                    sb_opts[o - 1].name, name, name);
            return SB_EXIT_USAGE;
        }
        switch (o) {
        case O_USER:
            m.user_id = optarg;
            break;
        case O_ANON:
            m.anonymous_id = optarg;
            break;
        case O_EVENT:
            m.event = optarg;
            break;
        case O_PROPS:
            m.properties_json = optarg;
            break;
        case O_TRAITS:
            m.traits_json = optarg;
            break;
        case O_GROUP:
            m.group_id = optarg;
            break;
        case O_PREV:
            m.previous_id = optarg;
            break;
        case O_NAME:
            m.name = optarg;
            break;
        case O_CAT:
            m.category = optarg;
            break;
        case O_CONTEXT:
            m.context_json = optarg;
            break;
        case O_INTEG:
            m.integrations_json = optarg;
            break;
        case O_TS:
            m.timestamp = optarg;
            break;
        case O_MSGID:
            m.message_id = optarg;
            break;
        case O_WRITEKEY:
            write_key = optarg;
            break;
        case O_SOCKET:
            socket = optarg;
            break;
        case O_DRYRUN:
            dry = 1;
            break;
        case O_QUIET:
            quiet = 1;
            break;
        case O_FLUSH: {
            char *end;
            errno = 0;
            flush_ms = strtol(optarg, &end, 10);
            if (errno || *end || flush_ms < 0) {
                fprintf(stderr, "segbus %s: --flush-timeout wants milliseconds >= 0, not \"%s\"\n",
                        name, optarg);
                return SB_EXIT_USAGE;
            }
            break;
        }
        case O_HELP:
            help(c, stdout);
            return SB_EXIT_OK;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "segbus %s: unexpected argument \"%s\" (values go after a flag)\n", name,
                argv[optind]);
        return SB_EXIT_USAGE;
    }

    segbus_sent_t sent;
    int rc;
    if (dry) {
        struct sb_event_cfg cfg = {0};
        uint8_t *storage = NULL;
        if (sb_event_cfg_context(&cfg, NULL, 0, &storage) < 0)
            return SB_EXIT_SOFTWARE;
        if (write_key) {
            size_t bad;
            if (!sb_utf8_valid(write_key, strlen(write_key), &bad)) {
                fprintf(stderr, "segbus %s: writeKey: invalid UTF-8 at byte %zu\n", name, bad);
                free(storage);
                return SB_EXIT_DATAERR;
            }
            cfg.write_key = write_key;
            cfg.write_key_len = strlen(write_key);
        }
        const uint8_t *ev;
        size_t len, used;
        rc = sb_event_encode(&cfg, type, &m, &ev, &len, &sent);
        if (rc == 0) {
            struct sb_buf out = SB_BUF_INIT;
            rc = sb_msgpack_to_json(ev, len, &used, &out);
            if (rc == 0) {
                fwrite(out.data, 1, out.len, stdout);
                fputc('\n', stdout);
            }
            sb_buf_free(&out);
        }
        free(storage);
        if (rc < 0) {
            fprintf(stderr, "segbus %s: %s\n", name,
                    segbus_last_error()[0] ? segbus_last_error() : segbus_strerror(rc));
            return sb_cli_exit_code(rc);
        }
        return SB_EXIT_OK;
    }

    /* Validate before connecting, so bad data is reported as such even with no daemon. */
    const uint8_t *ev;
    size_t len;
    rc = sb_event_encode(NULL, type, &m, &ev, &len, NULL);
    if (rc < 0) {
        fprintf(stderr, "segbus %s: %s\n", name, segbus_last_error());
        return sb_cli_exit_code(rc);
    }
    segbus_options_t *opts = segbus_options_new();
    if (!opts)
        return SB_EXIT_SOFTWARE;
    /* A short-lived process cannot keep a ring of its own alive for a daemon to adopt. */
    segbus_options_set_standalone(opts, 0);
    segbus_options_set_full_policy(opts, SEGBUS_FULL_BLOCK, 2000);
    if ((socket && (rc = segbus_options_set_socket(opts, socket)) < 0) ||
        (write_key && (rc = segbus_options_set_write_key(opts, write_key)) < 0)) {
        fprintf(stderr, "segbus %s: %s\n", name, segbus_last_error());
        segbus_options_free(opts);
        return sb_cli_exit_code(rc);
    }
    segbus_client_t *cl = NULL;
    rc = segbus_client_open(&cl, opts);
    segbus_options_free(opts);
    if (rc < 0) {
        fprintf(stderr, "segbus %s: cannot reach segbusd at %s: %s\n", name,
                socket ? socket : segbus_client_socket(NULL),
                segbus_last_error()[0] ? segbus_last_error() : segbus_strerror(rc));
        return sb_cli_exit_code(rc);
    }
    rc = segbus_send(cl, type, &m, &sent);
    if (rc != 0) {
        fprintf(stderr, "segbus %s: %s\n", name,
                segbus_last_error()[0] ? segbus_last_error() : segbus_strerror(rc));
        segbus_client_close(cl);
        return sb_cli_exit_code(rc < 0 ? rc : -EAGAIN);
    }
    if (flush_ms > 0) {
        rc = segbus_flush(cl, flush_ms);
        if (rc < 0) {
            fprintf(stderr, "segbus %s: event %s written but %s\n", name, sent.message_id,
                    segbus_last_error()[0] ? segbus_last_error() : segbus_strerror(rc));
            segbus_client_close(cl);
            return sb_cli_exit_code(rc);
        }
    }
    if (!quiet)
        printf("%s\n", sent.message_id);
    segbus_client_close(cl);
    return SB_EXIT_OK;
}

#define SB_EVENT_CMD(var, type, summary)                                                           \
    static int run_##var(int argc, char **argv)                                                    \
    {                                                                                              \
        return run_event(type, argc, argv);                                                        \
    }                                                                                              \
    const struct sb_cli_cmd sb_cli_##var = {#var, summary, run_##var};

SB_EVENT_CMD(track, SEGBUS_TRACK, "record an action: --event NAME [--properties JSON]")
SB_EVENT_CMD(identify, SEGBUS_IDENTIFY, "tie a user to traits: --userId ID [--traits JSON]")
SB_EVENT_CMD(page, SEGBUS_PAGE, "record a page view: [--name] [--category] [--properties JSON]")
SB_EVENT_CMD(screen, SEGBUS_SCREEN, "record a screen view: [--name] [--properties JSON]")
SB_EVENT_CMD(group, SEGBUS_GROUP, "tie a user to a group: --groupId ID [--traits JSON]")
SB_EVENT_CMD(alias, SEGBUS_ALIAS, "merge identities: --previousId ID --userId ID")
