/* retry.c: which HTTP statuses are retried, Retry-After parsing, backoff with jitter. */
#include "pipeline/retry.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

enum sb_http_outcome sb_retry_classify(int status)
{
    if (status <= 0)
        return SB_HTTP_RETRY; /* connection refused, reset, timeout, TLS failure */
    if (status >= 200 && status < 400)
        return SB_HTTP_SUCCESS;
    switch (status) {
    case 408: /* request timeout */
    case 410: /* gone: Segment uses it transiently */
    case 429: /* rate limited */
    case 460: /* Segment's own "transient, retry" */
        return SB_HTTP_RETRY;
    case 501: /* not implemented */
    case 505: /* HTTP version not supported */
    case 511: /* network authentication required: no OAuth here */
        return SB_HTTP_DEAD_LETTER;
    default:
        break;
    }
    if (status >= 500 && status < 600)
        return SB_HTTP_RETRY;
    return SB_HTTP_DEAD_LETTER; /* 400 and every other 4xx / odd status: retrying cannot help */
}

static uint64_t cap_after(uint64_t seconds)
{
    return seconds >= SB_RETRY_AFTER_CAP_NS / 1000000000ull ? SB_RETRY_AFTER_CAP_NS
                                                            : seconds * 1000000000ull;
}

int sb_retry_after_parse(const char *value, time_t now_unix, uint64_t *delay_ns)
{
    static const char *const fmts[] = {
        "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate, the one senders must use */
        "%A, %d-%b-%y %H:%M:%S GMT", /* obsolete RFC 850 */
        "%a %b %d %H:%M:%S %Y",      /* obsolete asctime */
    };
    const char *p = value;
    struct tm tm;

    if (!value)
        return -EINVAL;
    while (*p == ' ' || *p == '\t')
        p++;
    if (isdigit((unsigned char)*p)) {
        uint64_t s = 0;
        for (; isdigit((unsigned char)*p); p++)
            s = s > 1000000 ? s : s * 10 + (uint64_t)(*p - '0'); /* saturate: capped anyway */
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p)
            return -EINVAL;
        *delay_ns = cap_after(s);
        return 0;
    }
    for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
        const char *end;
        memset(&tm, 0, sizeof tm);
        end = strptime(p, fmts[i], &tm);
        if (!end)
            continue;
        while (*end == ' ' || *end == '\t')
            end++;
        if (*end)
            continue;
        {
            time_t at = timegm(&tm);
            *delay_ns = at <= now_unix ? 0 : cap_after((uint64_t)(at - now_unix));
        }
        return 0;
    }
    return -EINVAL;
}

uint64_t sb_retry_backoff_ns(uint32_t attempt, uint64_t rnd)
{
    uint64_t base = attempt >= 7 ? SB_RETRY_CAP_NS : SB_RETRY_BASE_NS << attempt;
    uint64_t span, jittered;

    if (base > SB_RETRY_CAP_NS)
        base = SB_RETRY_CAP_NS;
    /* Uniform in [base - 10%, base + 10%], then capped, so that daemons that failed together do
     * not retry together. */
    span = base / 100 * SB_RETRY_JITTER_PERCENT;
    jittered = base - span + (span ? rnd % (2 * span + 1) : 0);
    return jittered > SB_RETRY_CAP_NS ? SB_RETRY_CAP_NS : jittered;
}

enum sb_http_outcome sb_retry_next(struct sb_retry *st, int status, const char *retry_after,
                                   uint64_t now_ns, time_t now_unix, uint64_t max_duration_ns,
                                   uint64_t rnd, uint64_t *delay_ns)
{
    enum sb_http_outcome o = sb_retry_classify(status);
    uint64_t after;

    if (o != SB_HTTP_RETRY)
        return o;
    if (!st->first_failure_ns)
        st->first_failure_ns = now_ns ? now_ns : 1;
    else if (max_duration_ns && now_ns - st->first_failure_ns >= max_duration_ns)
        return SB_HTTP_DEAD_LETTER;
    st->retries++;
    if (status > 0 && retry_after && sb_retry_after_parse(retry_after, now_unix, &after) == 0) {
        *delay_ns = after; /* the server knows best; does not grow the backoff */
        return SB_HTTP_RETRY;
    }
    *delay_ns = sb_retry_backoff_ns(st->backoffs++, rnd);
    return SB_HTTP_RETRY;
}
