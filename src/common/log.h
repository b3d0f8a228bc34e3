/* log.h: the daemon's log lines: level, time, module, message, to stderr. */
#ifndef SEGBUS_COMMON_LOG_H
#define SEGBUS_COMMON_LOG_H

enum sb_log_level { SB_LOG_DEBUG, SB_LOG_INFO, SB_LOG_WARN, SB_LOG_ERROR };

/* Lines below this level are not printed. Default SB_LOG_INFO. Not thread-safe to change. */
void sb_log_set_level(enum sb_log_level level);
enum sb_log_level sb_log_get_level(void);

/* Print one line "2026-11-28T14:07:32.123Z warn  spool: message". Never logs secrets: callers
 * must not pass write keys (use sb_log_redact() for anything that may hold one). */
void sb_log(enum sb_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sb_debug(module, ...) sb_log(SB_LOG_DEBUG, module, __VA_ARGS__)
#define sb_info(module, ...) sb_log(SB_LOG_INFO, module, __VA_ARGS__)
#define sb_warn(module, ...) sb_log(SB_LOG_WARN, module, __VA_ARGS__)
#define sb_error(module, ...) sb_log(SB_LOG_ERROR, module, __VA_ARGS__)

#endif
