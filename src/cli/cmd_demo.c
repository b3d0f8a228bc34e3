/* cmd_demo.c: `segbus demo`: runs the whole system on loopback (examples/demo/run.py, which
 * starts segbusd as sidecar and hub and the example producers) with this build's binaries. */
#include <errno.h>
#include <stdbool.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

/* The demo's driver is a Python script: it juggles processes, /metrics and SQL, which is a
 * page of Python and several of C. It is found next to the build tree this binary is in
 * (<source>/build/<preset>/src/cli/segbus), or at $SEGBUS_DEMO_RUNNER. */
static int find_runner(char *runner, size_t rlen, char *build, size_t blen)
{
    const char *env = getenv("SEGBUS_DEMO_RUNNER");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    build[0] = '\0';
    if (n > 0) {
        exe[n] = '\0';
        char *dir = exe;
        for (int up = 0; up < 3; up++) /* segbus -> cli -> src -> <build> */
            dir = dirname(dir);
        if ((size_t)snprintf(build, blen, "%s", dir) >= blen)
            build[0] = '\0';
        char *root = dirname(dirname(dir)); /* <build> -> build -> <source> */
        if (!env && (size_t)snprintf(runner, rlen, "%s/examples/demo/run.py", root) < rlen &&
            access(runner, R_OK) == 0)
            return 0;
    }
    if (env && (size_t)snprintf(runner, rlen, "%s", env) < rlen && access(runner, R_OK) == 0)
        return 0;
    fprintf(stderr, "segbus demo: cannot find examples/demo/run.py next to this build "
                    "(set SEGBUS_DEMO_RUNNER to its path)\n");
    return -1;
}

static int run_demo(int argc, char **argv)
{
    char runner[PATH_MAX], build[PATH_MAX];
    if (find_runner(runner, sizeof runner, build, sizeof build) < 0)
        return SB_EXIT_UNAVAILABLE;
    bool has_build = false;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--build") || !strncmp(argv[i], "--build=", 8))
            has_build = true;
    char **args = calloc((size_t)argc + 5, sizeof *args);
    if (!args) {
        fprintf(stderr, "segbus demo: out of memory\n");
        return SB_EXIT_SOFTWARE;
    }
    int k = 0;
    static char python[] = "/usr/bin/python3"; /* Debian's: the bindings are built for it */
    args[k++] = python;
    args[k++] = runner;
    if (!has_build && build[0] && !getenv("SEGBUS_BUILD_DIR")) {
        static char build_flag[] = "--build";
        args[k++] = build_flag;
        args[k++] = build;
    }
    for (int i = 1; i < argc; i++)
        args[k++] = argv[i];
    args[k] = NULL;
    execv(args[0], args);
    fprintf(stderr, "segbus demo: cannot run %s: %s\n", args[0], strerror(errno));
    free(args);
    return SB_EXIT_UNAVAILABLE;
}

const struct sb_cli_cmd sb_cli_demo = {
    "demo", "run segbusd (sidecar + hub) and example producers on loopback; --follow, --help",
    run_demo};
