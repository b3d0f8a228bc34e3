/* cli.h: the `segbus` command's subcommand table. A subcommand lives in its own file
 * (src/cli/cmd_<name>.c) and defines one `const struct sb_cli_cmd`; adding one is that file plus
 * one line in the table in main.c (and the file in src/cli/CMakeLists.txt). */
#ifndef SEGBUS_CLI_CLI_H
#define SEGBUS_CLI_CLI_H

/* Exit codes (sysexits.h values, so scripts can tell what went wrong). */
enum {
    SB_EXIT_OK = 0,
    SB_EXIT_FAIL = 1,         /* generic failure */
    SB_EXIT_USAGE = 2,        /* bad command line: unknown flag, missing value/required flag */
    SB_EXIT_DATAERR = 65,     /* the data given is invalid (JSON, UTF-8, timestamp, size) */
    SB_EXIT_UNAVAILABLE = 69, /* no segbusd on the socket */
    SB_EXIT_SOFTWARE = 70,    /* internal error */
    SB_EXIT_TEMPFAIL = 75,    /* try again: ring full, flush deadline passed */
    SB_EXIT_NOPERM = 77,      /* segbusd refused this uid/gid */
};

struct sb_cli_cmd {
    const char *name;
    const char *summary; /* one line for `segbus --help` */
    /* argv[0] is the subcommand's name; returns the process exit code. */
    int (*run)(int argc, char **argv);
};

/* The exit code for a libsegbus return code. */
int sb_cli_exit_code(int rc);

/* After getopt_long returned '?' or ':' (with opterr = 0): says on stderr which flag of
 * `segbus cmd` lacks its value or is unknown; returns SB_EXIT_USAGE. */
int sb_cli_bad_flag(const char *cmd, char **argv);

extern const struct sb_cli_cmd sb_cli_track, sb_cli_identify, sb_cli_page, sb_cli_screen,
    sb_cli_group, sb_cli_alias;
/* Operator commands (cmd_stat.c, cmd_tail.c). */
extern const struct sb_cli_cmd sb_cli_stat, sb_cli_tail;
extern const struct sb_cli_cmd sb_cli_plan; /* cmd_plan.c */
extern const struct sb_cli_cmd sb_cli_demo; /* cmd_demo.c */

#endif
