/* retry.h: the retry policy of HTTP outputs (Segment, hub, webhook), as pure logic.
 *
 * It follows Segment's 2026 SDKs (research/segment.md 1.4): 2xx and 3xx are success; 408, 410,
 * 429, 460 and 5xx except 501, 505 and 511 are retried, as are network errors (status <= 0);
 * every other status (400 above all) is never retried: the batch goes to the dead-letter file.
 * Delay: Retry-After (delta seconds or an HTTP date) when the response has one, capped at
 * 300 s; otherwise exponential backoff from 0.5 s doubling to a 60 s cap, with +-10% jitter.
 * Retries send "X-Retry-Count: n" (n = 1 on the first retry). A batch that has failed for longer
 * than the output's max_retry_duration is given up (dead-lettered) too.
 */
#ifndef SEGBUS_PIPELINE_RETRY_H
#define SEGBUS_PIPELINE_RETRY_H

#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SB_RETRY_BASE_NS 500000000ull         /* 0.5 s */
#define SB_RETRY_CAP_NS 60000000000ull        /* 60 s */
#define SB_RETRY_AFTER_CAP_NS 300000000000ull /* 300 s */
#define SB_RETRY_JITTER_PERCENT 10

enum sb_http_outcome {
    SB_HTTP_SUCCESS,     /* delivered: advance the cursor */
    SB_HTTP_RETRY,       /* try again after sb_retry_next()'s delay */
    SB_HTTP_DEAD_LETTER, /* never retried: write to the dead-letter file, advance */
};

/* What to do with a response status; status <= 0 means no response (a network error). */
enum sb_http_outcome sb_retry_classify(int status);

/* Parse a Retry-After value (delta-seconds or an IMF-fixdate / RFC 850 / asctime HTTP date,
 * relative to now_unix). 0 with *delay_ns set (capped at 300 s, 0 for a past date), or -EINVAL
 * if it is neither. */
int sb_retry_after_parse(const char *value, time_t now_unix, uint64_t *delay_ns);

/* The retry state of one batch. Zero-initialise it when the batch is first sent. */
struct sb_retry {
    uint32_t retries;          /* retries made so far: the X-Retry-Count of the next send */
    uint32_t backoffs;         /* retries that used the exponential backoff */
    uint64_t first_failure_ns; /* monotonic; 0 = no failure yet */
};

/* The exponential part: base * 2^attempt capped, then jittered by rnd (any 64-bit random). */
uint64_t sb_retry_backoff_ns(uint32_t attempt, uint64_t rnd);

/* After a failed send at now_ns (status as for classify; retry_after the header's value or
 * NULL): SB_HTTP_RETRY with *delay_ns to wait, or SB_HTTP_DEAD_LETTER (the status is not
 * retryable, or the batch has failed for max_duration_ns or longer; 0 = no limit), or
 * SB_HTTP_SUCCESS for a success status (state untouched). rnd: a fresh random number. */
enum sb_http_outcome sb_retry_next(struct sb_retry *st, int status, const char *retry_after,
                                   uint64_t now_ns, time_t now_unix, uint64_t max_duration_ns,
                                   uint64_t rnd, uint64_t *delay_ns);

#ifdef __cplusplus
}
#endif
#endif
