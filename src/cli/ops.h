/* ops.h: shared by the operator subcommands (`segbus stat`, `segbus tail`): finding a running
 * segbusd's metrics endpoint and reading from it. */
#ifndef SEGBUS_CLI_OPS_H
#define SEGBUS_CLI_OPS_H

#include <stddef.h>

#include "cli/cli.h"
#include "common/buf.h"

#define SB_OPS_DEFAULT_METRICS "127.0.0.1:9464" /* metrics.listen's default */
#define SB_OPS_MAX_BODY (16 << 20)              /* refuse anything larger from the endpoint */

/* The endpoint: --metrics ADDR, else --config FILE's metrics.listen, else $SEGBUS_METRICS, else
 * the default. 0, or an exit code after printing why (bad config, endpoint off). */
int sb_ops_address(const char *metrics, const char *config_path, char *out, size_t outlen,
                   const char *cmd);

/* The checks stat and tail share once their flags are read: no arguments left over, not both
 * --metrics and --config. 0, or SB_EXIT_USAGE after saying why. */
int sb_ops_check_args(const char *cmd, int argc, char **argv, const char *metrics,
                      const char *config);

/* GET target from addr ("host:port"); *status and the body (replaced). 0 or -errno with err
 * saying what went wrong (refused, timed out, not HTTP). */
int sb_ops_get(const char *addr, const char *target, int timeout_ms, int *status,
               struct sb_buf *body, char *err, size_t errlen);

#endif
