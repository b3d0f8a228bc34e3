/* ids.c: per-thread state of the producer side: the ChaCha20 CSPRNG behind messageIds, UUIDv7,
 * RFC 3339 timestamps from the vDSO clock, scratch buffers and the last-error text. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "event/event.h"
#include "event/mpw.h"

/* Bumped in every child after fork(): a thread whose state carries an older generation re-seeds
 * its generator, so parent and child (and two children) never share a keystream and never
 * produce the same messageId. Relaxed is enough: only the forking thread exists in the child
 * when the handler runs, and it is the one that later reads the value. */
static atomic_uint sb_fork_gen = 1;
static pthread_once_t sb_once = PTHREAD_ONCE_INIT;
static pthread_key_t sb_key;

struct sb_tls {
    unsigned gen;       /* sb_fork_gen when seeded; 0: never seeded */
    unsigned ks_used;   /* 32-bit words of ks already handed out */
    uint32_t in[16];    /* ChaCha20 input: constants, key, 64-bit block counter, nonce */
    uint32_t ks[16];    /* current keystream block */
    uint64_t last_v7;   /* last 60-bit (unix_ms << 12 | rand_a) handed out, for monotonicity */
    int64_t ts_sec;     /* second that ts_prefix holds, or INT64_MIN */
    char ts_prefix[24]; /* "YYYY-MM-DDTHH:MM:SS." */
    uint8_t *scratch;   /* two buffers of SB_SCRATCH_BYTES + MPW_SLACK each */
    char err[320];
};

static __thread struct sb_tls sb_t = {.ts_sec = INT64_MIN};

static void sb_after_fork_child(void)
{
    atomic_fetch_add_explicit(&sb_fork_gen, 1, memory_order_relaxed);
}

static void sb_thread_exit(void *p)
{
    free(p);
}

static void sb_init_once(void)
{
    pthread_atfork(NULL, NULL, sb_after_fork_child);
    pthread_key_create(&sb_key, sb_thread_exit);
}

#define ROTL32(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define QR(a, b, c, d)                                                                             \
    do {                                                                                           \
        a += b;                                                                                    \
        d ^= a;                                                                                    \
        d = ROTL32(d, 16);                                                                         \
        c += d;                                                                                    \
        b ^= c;                                                                                    \
        b = ROTL32(b, 12);                                                                         \
        a += b;                                                                                    \
        d ^= a;                                                                                    \
        d = ROTL32(d, 8);                                                                          \
        c += d;                                                                                    \
        b ^= c;                                                                                    \
        b = ROTL32(b, 7);                                                                          \
    } while (0)

void sb_chacha20_block(const uint32_t in[16], uint32_t out[16])
{
    uint32_t x[16];
    memcpy(x, in, sizeof x);
    for (int i = 0; i < 10; i++) {
        QR(x[0], x[4], x[8], x[12]);
        QR(x[1], x[5], x[9], x[13]);
        QR(x[2], x[6], x[10], x[14]);
        QR(x[3], x[7], x[11], x[15]);
        QR(x[0], x[5], x[10], x[15]);
        QR(x[1], x[6], x[11], x[12]);
        QR(x[2], x[7], x[8], x[13]);
        QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; i++)
        out[i] = x[i] + in[i];
}

static void sb_seed(struct sb_tls *t, unsigned gen)
{
    pthread_once(&sb_once, sb_init_once);
    uint32_t key[8];
    size_t got = 0;
    while (got < sizeof key) {
        ssize_t n = getrandom((char *)key + got, sizeof key - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* getrandom cannot fail on Linux >= 3.17 with a valid buffer; if it ever does,
             * mix the clock and addresses so ids stay unique, if not unpredictable. */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            for (size_t i = 0; i < 8; i++)
                key[i] ^= (uint32_t)ts.tv_nsec * 2654435761u + (uint32_t)(uintptr_t)t + (uint32_t)i;
            break;
        }
        got += (size_t)n;
    }
    /* "expand 32-byte k" */
    t->in[0] = 0x61707865;
    t->in[1] = 0x3320646e;
    t->in[2] = 0x79622d32;
    t->in[3] = 0x6b206574;
    memcpy(&t->in[4], key, sizeof key);
    t->in[12] = t->in[13] = t->in[14] = t->in[15] = 0;
    memset(key, 0, sizeof key);
    t->ks_used = 16;
    t->gen = gen;
}

uint64_t sb_random_u64(void)
{
    struct sb_tls *t = &sb_t;
    unsigned gen = atomic_load_explicit(&sb_fork_gen, memory_order_relaxed);
    if (__builtin_expect(t->gen != gen, 0))
        sb_seed(t, gen);
    if (t->ks_used > 14) {
        sb_chacha20_block(t->in, t->ks);
        if (++t->in[12] == 0)
            t->in[13]++;
        t->ks_used = 0;
    }
    uint64_t v = (uint64_t)t->ks[t->ks_used] << 32 | t->ks[t->ks_used + 1];
    /* Erase what was handed out, so a later memory disclosure cannot replay past ids. */
    t->ks[t->ks_used] = t->ks[t->ks_used + 1] = 0;
    t->ks_used += 2;
    return v;
}

void sb_clock_now(int64_t *sec, uint32_t *nsec)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* vDSO: no syscall */
    *sec = ts.tv_sec;
    *nsec = (uint32_t)ts.tv_nsec;
}

static const char sb_hex[] = "0123456789abcdef";

void sb_uuid7(int64_t sec, uint32_t nsec, char out[37], uint8_t raw[16])
{
    struct sb_tls *t = &sb_t;
    uint64_t ms = (uint64_t)sec * 1000u + nsec / 1000000u;
    /* RFC 9562 6.2 method 3: rand_a holds the sub-millisecond fraction (12 bits, ~244 ns), and
     * per thread the 60-bit prefix only grows (a clock step back or two ids in one tick take
     * the last + 1), so a thread's ids sort in call order. */
    uint64_t frac = ((uint64_t)(nsec % 1000000u) << 12) / 1000000u;
    uint64_t v = (ms & 0xffffffffffffull) << 12 | frac;
    if (v <= t->last_v7)
        v = t->last_v7 + 1;
    t->last_v7 = v;
    uint64_t r = sb_random_u64();
    uint8_t b[16];
    uint64_t hi = (v >> 12) << 16 | 0x7000 | (v & 0xfff); /* 48 ms | ver 7 | 12 rand_a */
    uint64_t lo = (r & 0x3fffffffffffffffull) | 0x8000000000000000ull; /* variant 10 */
    mpw_be64(b, hi);
    mpw_be64(b + 8, lo);
    if (raw)
        memcpy(raw, b, 16);
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = sb_hex[b[i] >> 4];
        *o++ = sb_hex[b[i] & 15];
    }
    *o = 0;
}

void sb_timestamp_format(int64_t sec, uint32_t msec, char out[25])
{
    struct sb_tls *t = &sb_t;
    if (sec != t->ts_sec) {
        struct tm tm;
        time_t tt = (time_t)sec;
        int y = 0, fields[5] = {1, 1, 0, 0, 0};
        if (gmtime_r(&tt, &tm) && tm.tm_year + 1900 >= 0 && tm.tm_year + 1900 <= 9999) {
            y = tm.tm_year + 1900;
            fields[0] = tm.tm_mon + 1;
            fields[1] = tm.tm_mday;
            fields[2] = tm.tm_hour;
            fields[3] = tm.tm_min;
            fields[4] = tm.tm_sec;
        }
        char *o = t->ts_prefix;
        o[0] = (char)('0' + y / 1000);
        o[1] = (char)('0' + y / 100 % 10);
        o[2] = (char)('0' + y / 10 % 10);
        o[3] = (char)('0' + y % 10);
        static const char seps[5] = {'-', 'T', ':', ':', '.'};
        o[4] = '-';
        for (int i = 0; i < 5; i++) {
            o[5 + 3 * i] = (char)('0' + fields[i] / 10);
            o[6 + 3 * i] = (char)('0' + fields[i] % 10);
            o[7 + 3 * i] = seps[i];
        }
        t->ts_sec = sec;
    }
    memcpy(out, t->ts_prefix, 20);
    out[20] = (char)('0' + msec / 100);
    out[21] = (char)('0' + msec / 10 % 10);
    out[22] = (char)('0' + msec % 10);
    out[23] = 'Z';
    out[24] = 0;
}

static uint8_t *sb_scratch(size_t which)
{
    struct sb_tls *t = &sb_t;
    if (__builtin_expect(!t->scratch, 0)) {
        pthread_once(&sb_once, sb_init_once);
        t->scratch = malloc(2 * SB_SCRATCH_ALLOC);
        if (!t->scratch)
            return NULL;
        /* Freed by the key's destructor when the thread exits. */
        pthread_setspecific(sb_key, t->scratch);
    }
    return t->scratch + which * SB_SCRATCH_ALLOC;
}

uint8_t *sb_scratch_event(void)
{
    return sb_scratch(0);
}

uint8_t *sb_scratch_temp(void)
{
    return sb_scratch(1);
}

void sb_err_clear(void)
{
    sb_t.err[0] = 0;
}

__attribute__((format(printf, 1, 0))) static void sb_err_vset(const char *fmt, va_list ap)
{
    vsnprintf(sb_t.err, sizeof sb_t.err, fmt, ap);
}

void sb_err_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_err_vset(fmt, ap);
    va_end(ap);
}

int sb_err(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_err_vset(fmt, ap);
    va_end(ap);
    return err;
}

SEGBUS_API const char *segbus_last_error(void)
{
    return sb_t.err;
}
