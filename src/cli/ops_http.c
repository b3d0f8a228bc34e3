/* ops_http.c: the operator commands' view of a running segbusd: where its metrics endpoint is
 * (--metrics, --config, $SEGBUS_METRICS or the default) and a small blocking HTTP GET of it.
 * Blocking on purpose: the CLI does one request at a time and has no loop of its own. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/ops.h"
#include "config/config.h"

int sb_ops_address(const char *metrics, const char *config_path, char *out, size_t outlen,
                   const char *cmd)
{
    if (metrics) {
        snprintf(out, outlen, "%s", metrics);
        return 0;
    }
    if (config_path) {
        struct sb_config cfg;
        struct sb_config_error err = {0};
        int rc = sb_config_load_file(&cfg, config_path, &err);
        if (rc) {
            fprintf(stderr, "segbus %s: %s: %s\n", cmd, config_path,
                    err.msg[0] ? err.msg : strerror(-rc));
            return SB_EXIT_USAGE;
        }
        if (!cfg.metrics.listen || !cfg.metrics.listen[0]) {
            fprintf(stderr, "segbus %s: %s has no metrics.listen (the endpoint is off)\n", cmd,
                    config_path);
            sb_config_free(&cfg);
            return SB_EXIT_USAGE;
        }
        snprintf(out, outlen, "%s", cfg.metrics.listen);
        sb_config_free(&cfg);
        return 0;
    }
    const char *env = getenv("SEGBUS_METRICS");
    snprintf(out, outlen, "%s", env && env[0] ? env : SB_OPS_DEFAULT_METRICS);
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Split "host:port" / "[v6]:port" into its parts; -EINVAL if it is neither. */
static int split_hostport(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon = strrchr(addr, ':');
    size_t hl;

    if (!colon || !colon[1] || strlen(colon + 1) >= portlen)
        return -EINVAL;
    hl = (size_t)(colon - addr);
    if (addr[0] == '[' && hl >= 2 && addr[hl - 1] == ']') {
        addr++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostlen)
        return -EINVAL;
    memcpy(host, addr, hl);
    host[hl] = 0;
    strcpy(port, colon + 1);
    return 0;
}

int sb_ops_get(const char *addr, const char *target, int timeout_ms, int *status,
               struct sb_buf *body, char *err, size_t errlen)
{
    char host[256], port[16];
    struct addrinfo hints = {0}, *ai = NULL;
    struct sb_buf raw = SB_BUF_INIT;
    int fd = -1, rc;
    int64_t deadline = mono_ms() + timeout_ms;

    if (split_hostport(addr, host, sizeof host, port, sizeof port)) {
        snprintf(err, errlen, "metrics address '%s' is not host:port", addr);
        return -EINVAL;
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
        snprintf(err, errlen, "metrics address '%s': %s", addr, gai_strerror(rc));
        return -EINVAL;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        rc = -errno;
        snprintf(err, errlen, "no segbusd metrics endpoint at %s (%s)", addr, strerror(errno));
        goto out;
    }
    {
        char req[1200];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host);
        if (n < 0 || (size_t)n >= sizeof req || write(fd, req, (size_t)n) != n) {
            rc = -EIO;
            snprintf(err, errlen, "%s: could not send the request", addr);
            goto out;
        }
    }
    /* Read to EOF (Connection: close), bounded in time and size (a /stats body is small). */
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t left = deadline - mono_ms();
        ssize_t got;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            rc = -ETIMEDOUT;
            snprintf(err, errlen, "%s%s: no complete answer within %d ms", addr, target,
                     timeout_ms);
            goto out;
        }
        if ((rc = sb_buf_reserve(&raw, 65536)) != 0)
            goto out;
        got = read(fd, raw.data + raw.len, 65536);
        if (got < 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: %s", addr, strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        raw.len += (size_t)got;
        if (raw.len > SB_OPS_MAX_BODY) {
            rc = -EFBIG;
            snprintf(err, errlen, "%s%s: answer larger than %d bytes", addr, target,
                     SB_OPS_MAX_BODY);
            goto out;
        }
    }
    {
        /* Status line, then headers up to the blank line; the body is the rest (the daemon
         * sends Content-Length, never chunked, on Connection: close). */
        const char *s = (const char *)raw.data, *hdr_end;
        if (raw.len < 12 || strncmp(s, "HTTP/1.", 7) != 0 ||
            !(hdr_end = memmem(s, raw.len, "\r\n\r\n", 4))) {
            rc = -EPROTO;
            snprintf(err, errlen, "%s%s: not an HTTP answer", addr, target);
            goto out;
        }
        *status = atoi(s + 9);
        hdr_end += 4;
        body->len = 0;
        if ((rc = sb_buf_append(body, hdr_end, raw.len - (size_t)(hdr_end - s))) != 0)
            goto out;
        rc = 0;
    }
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    sb_buf_free(&raw);
    return rc;
}

int sb_ops_check_args(const char *cmd, int argc, char **argv, const char *metrics,
                      const char *config)
{
    if (optind < argc) {
        fprintf(stderr, "segbus %s: unexpected argument \"%s\" (segbus %s --help)\n", cmd,
                argv[optind], cmd);
        return SB_EXIT_USAGE;
    }
    if (metrics && config) {
        fprintf(stderr, "segbus %s: give --metrics or --config, not both\n", cmd);
        return SB_EXIT_USAGE;
    }
    return 0;
}
