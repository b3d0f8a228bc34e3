/* main.c: the `segbus` command: dispatches to the subcommand named by the first argument. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "segbus/segbus.h"

/* Every subcommand; others add theirs here (stat, tail, plan, demo, bench, ...). */
static const struct sb_cli_cmd *const sb_cli_commands[] = {
    &sb_cli_track, &sb_cli_identify, &sb_cli_page, &sb_cli_screen, &sb_cli_group,
    &sb_cli_alias, &sb_cli_plan,     &sb_cli_stat, &sb_cli_tail,   &sb_cli_demo,
};
#define N_COMMANDS (sizeof sb_cli_commands / sizeof sb_cli_commands[0])

int sb_cli_bad_flag(const char *cmd, char **argv)
{
    if (optopt)
        fprintf(stderr, "segbus %s: %s needs a value\n", cmd, argv[optind - 1]);
    else
        fprintf(stderr, "segbus %s: unknown flag %s (segbus %s --help)\n", cmd, argv[optind - 1],
                cmd);
    return SB_EXIT_USAGE;
}

int sb_cli_exit_code(int rc)
{
    if (rc >= 0)
        return SB_EXIT_OK;
    switch (-rc) {
    case EINVAL:
    case SEGBUS_ENOIDENTITY:
    case SEGBUS_ENOEVENT:
    case SEGBUS_ENOGROUPID:
    case SEGBUS_ENOPREVIOUS:
    case SEGBUS_ENOUSERID:
        return SB_EXIT_USAGE;
    case SEGBUS_EMESSAGEID:
    case SEGBUS_EJSON:
    case SEGBUS_EUTF8:
    case SEGBUS_ETIMESTAMP:
    case SEGBUS_ENOTOBJECT:
    case EMSGSIZE:
        return SB_EXIT_DATAERR;
    case SEGBUS_ENODAEMON:
    case ENOENT:
    case ECONNREFUSED:
        return SB_EXIT_UNAVAILABLE;
    case SEGBUS_EDENIED:
    case EACCES:
    case EPERM:
        return SB_EXIT_NOPERM;
    case EAGAIN:
    case SEGBUS_ETIMEDOUT:
        return SB_EXIT_TEMPFAIL;
    default:
        return SB_EXIT_FAIL;
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: segbus COMMAND [FLAGS]   (segbus COMMAND --help for its flags)\n\n"
               "Record Segment events into segbusd and inspect it.\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", sb_cli_commands[i]->name, sb_cli_commands[i]->summary);
    fprintf(f, "\nsegbus %s. The socket is --socket, else $%s, else %s.\n", segbus_version(),
            SEGBUS_SOCKET_ENV, SEGBUS_DEFAULT_SOCKET);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return SB_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return SB_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("segbus %s\n", segbus_version());
        return SB_EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], sb_cli_commands[i]->name))
            return sb_cli_commands[i]->run(argc - 1, argv + 1);
    fprintf(stderr, "segbus: unknown command \"%s\" (segbus --help lists them)\n", argv[1]);
    return SB_EXIT_USAGE;
}
