/* main.c: the segbusd command: options, configuration, and the daemon's run. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "config/config.h"
#include "daemon/daemon.h"
#include "kafka_input/kafka_input.h"
#include "outputs/output.h"
#include "pipeline/stage.h"
#include "protocols/protocols.h"
#include "segbus/segbus.h"

#define EXIT_USAGE 2
#define EXIT_CONFIG 78 /* sysexits.h EX_CONFIG */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: segbusd --config FILE [--check-config]\n"
            "       segbusd --version | --help\n"
            "\n"
            "The segbus sidecar (and, with the HTTP input on, the hub): drains the shared\n"
            "rings of local producers, validates, deduplicates, batches, spools durably and\n"
            "delivers events to Segment, a segbus hub, files and other outputs.\n"
            "\n"
            "  -c, --config FILE    the YAML configuration (see docs/configuration.md)\n"
            "      --check-config   load and validate the configuration, then exit\n"
            "  -V, --version        print the version and exit\n"
            "  -h, --help           print this help and exit\n"
            "\n"
            "Signals: SIGTERM or SIGINT drain, flush, deliver within shutdown_timeout, exit.\n"
            "Exit status: 0 clean, 1 shutdown left work in the spool, 2 usage, 78 bad config.\n");
}

/* --check-config compiles what start-up compiles from other files and lists: each source's
 * plan, violation handling and transforms (into a pipeline that is thrown away). */
static int no_sink(void *arg, const char *output, const uint8_t *ev, size_t len)
{
    return 0;
}

static int check_protocols(const struct sb_config *cfg, char *err, size_t errlen)
{
    static const struct sb_violation_sink sink = {no_sink, NULL};
    struct sb_pipeline *p;
    int rc = sb_pipeline_new(&p);

    if (rc == 0) {
        rc = sb_protocols_add_stages_sink(p, cfg, NULL, &sink, err, errlen);
        sb_pipeline_free(p);
    }
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int check = 0, c, rc;
    struct sb_config cfg;
    struct sb_config_error cerr;
    struct sb_daemon *d;
    char err[512] = "";

    while ((c = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'V':
            printf("segbusd %s\n", SEGBUS_VERSION_STRING);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc || !path) {
        fprintf(stderr, "segbusd: %s\n",
                path ? "unexpected argument" : "--config FILE is required");
        usage(stderr);
        return EXIT_USAGE;
    }
    rc = sb_config_load_file(&cfg, path, &cerr);
    if (rc) {
        fprintf(stderr, "segbusd: %s\n", cerr.msg[0] ? cerr.msg : strerror(-rc));
        return EXIT_CONFIG;
    }
    for (size_t i = 0; i < cfg.n_outputs; i++) {
        if (!sb_output_plugin_for(cfg.outputs[i].type)) {
            fprintf(stderr, "segbusd: %s:%d: output %s: type %s is not available in this build\n",
                    path, cfg.outputs[i].line, cfg.outputs[i].name,
                    sb_output_type_name(cfg.outputs[i].type));
            sb_config_free(&cfg);
            return EXIT_CONFIG;
        }
    }
    if (!cfg.n_outputs) {
        fprintf(stderr, "segbusd: %s: no outputs configured: nothing to deliver to\n", path);
        sb_config_free(&cfg);
        return EXIT_CONFIG;
    }
    if (sb_kafka_input_check(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "segbusd: %s: %s\n", path, err);
        sb_config_free(&cfg);
        return EXIT_CONFIG;
    }
    if (check && (rc = check_protocols(&cfg, err, sizeof err)) != 0) {
        fprintf(stderr, "segbusd: %s: %s\n", path, err);
        sb_config_free(&cfg);
        return EXIT_CONFIG;
    }
    if (check) {
        printf("%s: OK (%zu source(s), %zu output(s)%s)\n", path, cfg.n_sources, cfg.n_outputs,
               cfg.kafka_input.brokers ? ", kafka input" : "");
        sb_config_free(&cfg);
        return 0;
    }
    rc = sb_daemon_new(&d, &cfg, err, sizeof err);
    if (rc) {
        sb_error("segbusd", "cannot start: %s", err[0] ? err : strerror(-rc));
        sb_config_free(&cfg);
        return 1;
    }
    rc = sb_daemon_run(d);
    sb_daemon_free(d);
    sb_config_free(&cfg);
    if (rc < 0) {
        sb_error("segbusd", "loop failed: %s", strerror(-rc));
        return 1;
    }
    return rc;
}
