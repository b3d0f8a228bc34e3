/* log.c: the daemon's log lines on stderr, one write(2) per line so lines never interleave. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static enum sb_log_level sb_log_threshold = SB_LOG_INFO;

void sb_log_set_level(enum sb_log_level level)
{
    sb_log_threshold = level;
}

enum sb_log_level sb_log_get_level(void)
{
    return sb_log_threshold;
}

void sb_log(enum sb_log_level level, const char *module, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info ", "warn ", "error"};
    char line[2048];
    struct timespec now;
    struct tm tm;
    size_t used;
    int n;
    va_list ap;

    if (level < sb_log_threshold)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    used = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line + used, sizeof line - used, ".%03ldZ %s %s: ", now.tv_nsec / 1000000L,
                 names[level], module);
    used += n > 0 ? (size_t)n : 0;
    va_start(ap, fmt);
    n = vsnprintf(line + used, sizeof line - used - 1, fmt, ap);
    va_end(ap);
    used = (n < 0 || (size_t)n >= sizeof line - used - 1) ? sizeof line - 2 : used + (size_t)n;
    line[used++] = '\n';
    if (write(STDERR_FILENO, line, used) < 0) {
        /* Nothing sensible to do when stderr is gone. */
    }
}
