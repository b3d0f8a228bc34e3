/* ring_bench.c: the ring benchmark: enqueue cost, multi-process throughput, and the same
 * records through the usual alternatives (UNIX datagram socket, pipe, process-shared
 * mutex+condvar queue, DPDK rte_ring). Prints one JSON object per line. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef SEGBUS_BENCH_DPDK
#include <rte_ring.h>
#endif

#include "ring/ring.h"
#include "ring/shm.h"

#define BATCH 32

static int64_t now(void)
{
    return sb_ring_now_ns();
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

struct dist {
    double median, p99;
};

static struct dist summarize(int64_t *v, size_t n)
{
    struct dist d;
    qsort(v, n, sizeof *v, cmp64);
    d.median = v[n / 2] / (double)BATCH;
    d.p99 = v[n * 99 / 100] / (double)BATCH;
    return d;
}

static void row(const char *cas, const char *unit, double value, const char *goal, int met)
{
    printf("{\"suite\": \"ring\", \"case\": \"%s\", \"unit\": \"%s\", \"value\": %.2f", cas, unit,
           value);
    if (goal)
        printf(", \"goal\": \"%s\", \"met\": %s", goal, met ? "true" : "false");
    printf("}\n");
    fflush(stdout);
}

static void peer_row(const char *cas, const char *unit, double value, const char *peer,
                     double peer_value, double ratio, const char *goal, int met)
{
    printf("{\"suite\": \"ring\", \"case\": \"%s\", \"unit\": \"%s\", \"value\": %.2f, "
           "\"peer\": \"%s\", \"peer_value\": %.2f, \"ratio\": %.2f",
           cas, unit, value, peer, peer_value, ratio);
    if (goal)
        printf(", \"goal\": \"%s\", \"met\": %s", goal, met ? "true" : "false");
    printf("}\n");
    fflush(stdout);
}

static void drain_all(struct sb_ring_reader *rd)
{
    while (sb_ring_read(rd, 0) > 0)
        sb_ring_reader_release(rd);
    sb_ring_reader_release(rd);
}

/* Uncontended enqueue cost: claim + copy + commit, timed in batches of BATCH records, the
 * reader draining (untimed) whenever the ring is full. */
static struct dist enqueue_cost(size_t size, size_t rounds)
{
    struct sb_shm shm;
    struct sb_ring_reader rd;
    struct sb_ring_reader_opts o;
    uint8_t *rec = malloc(size);
    int64_t *t = malloc(rounds * sizeof *t);
    size_t got = 0;

    memset(rec, 0xab, size);
    if (sb_shm_create(&shm, 1 << 20) != 0)
        exit(1);
    sb_ring_reader_opts_init(&o);
    o.batch_bytes = 4 << 20;
    o.batch_records = 1 << 16;
    sb_ring_reader_init(&rd, &shm.ring, &o, getpid(), 0);
    /* warm-up: a few laps so that every page is mapped and the code is hot */
    for (size_t i = 0; i < (8u << 20) / size; i++)
        if (sb_ring_write(&shm.ring, 1, 1, rec, size) == -EAGAIN)
            drain_all(&rd);
    while (got < rounds) {
        int64_t t0, t1;
        int full = 0;
        t0 = now();
        for (int i = 0; i < BATCH; i++)
            if (sb_ring_write(&shm.ring, 1, 1, rec, size) < 0)
                full = 1;
        t1 = now();
        if (full) {
            drain_all(&rd);
            continue; /* a batch that hit a full ring is not a valid sample */
        }
        t[got++] = t1 - t0;
    }
    sb_ring_reader_free(&rd);
    sb_shm_close(&shm);
    free(rec);
    struct dist d = summarize(t, rounds);
    free(t);
    return d;
}

#ifdef SEGBUS_BENCH_DPDK
/* rte_ring MP enqueue of a pointer to a preallocated slot the record was copied into. The
 * free slots are handed out in FIFO order, as a consumer that frees slots in the order it
 * read them would, so the producer cycles through the same 1 MiB the segbus ring uses. */
static struct dist rte_cost(size_t size, size_t rounds)
{
    const unsigned n = 4096, nslots = (1u << 20) / 256;
    struct rte_ring *r = aligned_alloc(128, (rte_ring_get_memsize(n) + 127) & ~(ssize_t)127);
    uint8_t *slots = aligned_alloc(64, (size_t)nslots * size);
    void **fifo = malloc(nslots * sizeof(void *));
    uint8_t *rec = malloc(size);
    int64_t *t = malloc(rounds * sizeof *t);
    uint64_t take = 0, give = 0;
    void *out[BATCH];

    memset(rec, 0xab, size);
    memset(slots, 0, (size_t)nslots * size);
    if (rte_ring_init(r, "bench", n, 0) != 0) /* multi-producer, multi-consumer defaults */
        exit(2);
    for (unsigned i = 0; i < nslots; i++)
        fifo[give++ % nslots] = slots + (size_t)i * size;
    for (size_t got = 0; got < rounds + 1000; got++) {
        int64_t t0 = now(), t1;
        for (int i = 0; i < BATCH; i++) {
            void *s = fifo[take++ % nslots];
            memcpy(s, rec, size);
            if (rte_ring_mp_enqueue(r, s) != 0)
                exit(3);
        }
        t1 = now();
        /* untimed: the consumer takes the pointers and frees the slots in order */
        unsigned k = rte_ring_sc_dequeue_burst(r, out, BATCH, NULL);
        for (unsigned i = 0; i < k; i++)
            fifo[give++ % nslots] = out[i];
        if (got >= 1000)
            t[got - 1000] = t1 - t0;
    }
    struct dist d = summarize(t, rounds);
    free(t);
    free(rec);
    free(fifo);
    free(slots);
    free(r);
    return d;
}
#endif

/* ---- one producer, a reader process on the other core: ns per record ----
 * The producer sends bursts of BURST records (timed) and then waits, untimed, until the
 * reader has taken them all, so that every mechanism is measured with room available and a
 * reader that is awake or just going to sleep - the cost an application pays per event -
 * rather than the reader's speed. */
#define BURST 200

/* Producer on CPU 0, reader on CPU 1, for every mechanism alike: otherwise the scheduler may
 * put the woken reader on the producer's CPU, where it preempts the producer mid-burst. */
static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
    sched_setaffinity(0, sizeof set, &set);
}

static uint64_t *consumed_counter(void)
{
    pin(0);
    uint64_t *c = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    *c = 0;
    return c;
}

static void took(uint64_t *c, uint64_t n)
{
    __atomic_fetch_add(c, n, __ATOMIC_RELEASE);
}

static void wait_taken(uint64_t *c, uint64_t n)
{
    while (__atomic_load_n(c, __ATOMIC_ACQUIRE) < n)
        sched_yield();
}

/* Per-burst samples; the median burst is reported so that a burst in which the scheduler
 * ran something else (the VM has 2 cores) does not dominate. */
static int64_t *samples;
static size_t nsamples;

static void sample(int64_t ns)
{
    samples[nsamples++] = ns;
}

static double burst_median(void)
{
    qsort(samples, nsamples, sizeof *samples, cmp64);
    return (double)samples[nsamples / 2] / BURST;
}

static double ring_live(size_t size, size_t count)
{
    nsamples = 0;
    struct sb_shm shm;
    uint8_t *rec = malloc(size);
    uint64_t *taken = consumed_counter();
    pid_t pid;

    memset(rec, 0xcd, size);
    if (sb_shm_create(&shm, SEGBUS_RING_DEFAULT_CAPACITY) != 0)
        exit(1);
    pid = fork();
    if (pid == 0) {
        pin(1);
        struct sb_ring_reader rd;
        size_t got = 0;
        sb_ring_reader_init(&rd, &shm.ring, NULL, getpid(), 0);
        while (got < count) {
            int n = sb_ring_read(&rd, 0);
            got += n;
            sb_ring_reader_release(&rd);
            took(taken, (uint64_t)n);
            if (n == 0) {
                sb_ring_reader_wait(&rd, 50000, 10 * 1000000);
            } else if (n < 64) {
                /* Batch like a daemon woken by the futex: after a small read give the producer
                 * a moment rather than polling the header it is about to write (every look
                 * takes that cache line away from it). */
                for (int i = 0; i < 100; i++)
                    __builtin_ia32_pause();
            }
        }
        _exit(0);
    }
    for (size_t done = 0; done < count; done += BURST) {
        int64_t t0 = now();
        for (size_t i = 0; i < BURST; i++) {
            int rc;
            while ((rc = sb_ring_write(&shm.ring, 1, 1, rec, size)) == -EAGAIN)
                sched_yield();
            if (rc == 1)
                sb_ring_wake(&shm.ring);
        }
        sample(now() - t0);
        wait_taken(taken, done + BURST);
    }
    waitpid(pid, NULL, 0);
    sb_shm_close(&shm);
    free(rec);
    return burst_median();
}

static double unix_dgram(size_t size, size_t count)
{
    nsamples = 0;
    int sv[2];
    uint8_t *rec = malloc(size);
    uint64_t *taken = consumed_counter();
    pid_t pid;

    memset(rec, 0xcd, size);
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) != 0)
        exit(1);
    pid = fork();
    if (pid == 0) {
        pin(1);
        uint8_t buf[65536];
        close(sv[0]);
        for (size_t got = 0; got < count; got++) {
            if (recv(sv[1], buf, sizeof buf, 0) < 0)
                _exit(1);
            took(taken, 1);
        }
        _exit(0);
    }
    close(sv[1]);
    for (size_t done = 0; done < count; done += BURST) {
        int64_t t0 = now();
        for (size_t i = 0; i < BURST; i++)
            if (send(sv[0], rec, size, 0) != (ssize_t)size)
                exit(1);
        sample(now() - t0);
        wait_taken(taken, done + BURST);
    }
    waitpid(pid, NULL, 0);
    close(sv[0]);
    free(rec);
    return burst_median();
}

static double pipe_peer(size_t size, size_t count)
{
    nsamples = 0;
    int fd[2];
    uint8_t *rec = malloc(size);
    uint64_t *taken = consumed_counter();
    pid_t pid;

    memset(rec, 0xcd, size);
    if (pipe(fd) != 0)
        exit(1);
    pid = fork();
    if (pid == 0) {
        pin(1);
        uint8_t buf[65536];
        size_t want = size * count, got = 0;
        close(fd[1]);
        while (got < want) {
            ssize_t n = read(fd[0], buf, sizeof buf);
            if (n <= 0)
                _exit(1);
            took(taken, (got + (size_t)n) / size - got / size);
            got += (size_t)n;
        }
        _exit(0);
    }
    close(fd[0]);
    for (size_t done = 0; done < count; done += BURST) {
        int64_t t0 = now();
        for (size_t i = 0; i < BURST; i++)
            if (write(fd[1], rec, size) != (ssize_t)size)
                exit(1);
        sample(now() - t0);
        wait_taken(taken, done + BURST);
    }
    waitpid(pid, NULL, 0);
    close(fd[1]);
    free(rec);
    return burst_median();
}

#define QSLOTS 1024
struct shmq {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    uint64_t head, tail;
    uint8_t slots[QSLOTS][4096];
};

static double mutex_queue(size_t size, size_t count)
{
    nsamples = 0;
    struct shmq *q =
        mmap(NULL, sizeof *q, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t ma;
    pthread_condattr_t ca;
    uint8_t *rec = malloc(size);
    uint64_t *taken = consumed_counter();
    pid_t pid;

    memset(rec, 0xcd, size);
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&q->mu, &ma);
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_cond_init(&q->not_empty, &ca);
    pthread_cond_init(&q->not_full, &ca);
    q->head = q->tail = 0;
    pid = fork();
    if (pid == 0) {
        pin(1);
        static uint8_t buf[4096];
        for (size_t got = 0; got < count;) {
            pthread_mutex_lock(&q->mu);
            while (q->head == q->tail)
                pthread_cond_wait(&q->not_empty, &q->mu);
            uint64_t n = 0;
            while (q->head != q->tail) {
                memcpy(buf, q->slots[q->head % QSLOTS], size);
                q->head++;
                n++;
            }
            got += n;
            pthread_cond_signal(&q->not_full);
            pthread_mutex_unlock(&q->mu);
            took(taken, n);
        }
        _exit(0);
    }
    for (size_t done = 0; done < count; done += BURST) {
        int64_t t0 = now();
        for (size_t i = 0; i < BURST; i++) {
            pthread_mutex_lock(&q->mu);
            while (q->tail - q->head == QSLOTS)
                pthread_cond_wait(&q->not_full, &q->mu);
            memcpy(q->slots[q->tail % QSLOTS], rec, size);
            q->tail++;
            pthread_cond_signal(&q->not_empty);
            pthread_mutex_unlock(&q->mu);
        }
        sample(now() - t0);
        wait_taken(taken, done + BURST);
    }
    waitpid(pid, NULL, 0);
    munmap(q, sizeof *q);
    free(rec);
    return burst_median();
}

/* ---- throughput: N producer processes and the reader ---- */

static double throughput(int nprod, size_t size, double seconds)
{
    struct sb_shm shm;
    struct sb_ring_reader rd;
    volatile int *stop =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t kids[16];
    uint64_t got = 0;
    int64_t t0, t1;

    if (sb_shm_create(&shm, SEGBUS_RING_DEFAULT_CAPACITY) != 0)
        exit(1);
    sb_ring_reader_init(&rd, &shm.ring, NULL, getpid(), 0);
    *stop = 0;
    for (int p = 0; p < nprod; p++) {
        kids[p] = fork();
        if (kids[p] == 0) {
            uint8_t *rec = malloc(size);
            memset(rec, p, size);
            while (!*stop) {
                for (int i = 0; i < 64; i++) {
                    int rc = sb_ring_write(&shm.ring, (uint32_t)p + 1, 1, rec, size);
                    if (rc == 1)
                        sb_ring_wake(&shm.ring);
                    else if (rc == -EAGAIN)
                        sched_yield(); /* never spin on a full ring: let the reader run */
                }
            }
            _exit(0);
        }
    }
    /* let the producers start, then count what the reader takes in the window */
    usleep(100000);
    drain_all(&rd);
    t0 = now();
    t1 = t0;
    while (t1 - t0 < (int64_t)(seconds * 1e9)) {
        int n = sb_ring_read(&rd, 0);
        got += (uint64_t)n;
        sb_ring_reader_release(&rd);
        if (n == 0) {
            sb_ring_reader_wait(&rd, 20000, 1000000);
        } else if (n < 64) {
            for (int i = 0; i < 100; i++) /* batch: see ring_live() */
                __builtin_ia32_pause();
        }
        t1 = now();
    }
    *stop = 1;
    drain_all(&rd);
    for (int p = 0; p < nprod; p++)
        waitpid(kids[p], NULL, 0);
    sb_ring_reader_free(&rd);
    sb_shm_close(&shm);
    return (double)got / ((double)(t1 - t0) / 1e9);
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    int all = strcmp(what, "all") == 0;
    size_t rounds = 200000;
    struct dist d256 = {0, 0};

    if (all || !strcmp(what, "enqueue")) {
        size_t sizes[] = {256, 1024, 4096};
        for (int i = 0; i < 3; i++) {
            struct dist d = enqueue_cost(sizes[i], sizes[i] == 4096 ? rounds / 4 : rounds);
            char name[64];
            if (i == 0)
                d256 = d;
            snprintf(name, sizeof name, "enqueue_%zuB_median", sizes[i]);
            if (sizes[i] == 256)
                row(name, "ns", d.median, "<= 50", d.median <= 50);
            else if (sizes[i] == 1024)
                row(name, "ns", d.median, "<= 100", d.median <= 100);
            else
                row(name, "ns", d.median, NULL, 0);
            snprintf(name, sizeof name, "enqueue_%zuB_p99", sizes[i]);
            row(name, "ns", d.p99, NULL, 0);
        }
    }
#ifdef SEGBUS_BENCH_DPDK
    if (all || !strcmp(what, "rte")) {
        if (d256.median == 0)
            d256 = enqueue_cost(256, rounds);
        struct dist r = rte_cost(256, rounds);
        peer_row("enqueue_256B_median_vs_rte_ring", "ns", d256.median, "dpdk_rte_ring_mp", r.median,
                 d256.median / r.median, "ratio <= 2", d256.median <= 2 * r.median);
        peer_row("enqueue_256B_p99_vs_rte_ring", "ns", d256.p99, "dpdk_rte_ring_mp", r.p99,
                 d256.p99 / r.p99, NULL, 0);
    }
#endif
    if (all || !strcmp(what, "peers")) {
        size_t n = 400000; /* a multiple of BURST */
        samples = malloc(n / BURST * sizeof *samples);
        double ring = ring_live(256, n);
        double u = unix_dgram(256, n / 4), p = pipe_peer(256, n / 4), m = mutex_queue(256, n / 4);
        {
            cpu_set_t all;
            CPU_ZERO(&all);
            for (int c = 0; c < sysconf(_SC_NPROCESSORS_ONLN); c++)
                CPU_SET(c, &all);
            sched_setaffinity(0, sizeof all, &all);
        }
        row("producer_256B_live_reader", "ns/record", ring, NULL, 0);
        peer_row("producer_256B_vs_unix_dgram", "ns/record", ring, "unix_dgram_socket", u, u / ring,
                 "peer/value >= 20", u / ring >= 20);
        peer_row("producer_256B_vs_pipe", "ns/record", ring, "pipe", p, p / ring, NULL, 0);
        peer_row("producer_256B_vs_shm_mutex_condvar", "ns/record", ring, "shm_mutex_condvar_queue",
                 m, m / ring, NULL, 0);
    }
    if (all || !strcmp(what, "throughput")) {
        double t = throughput(2, 256, 2.0);
        row("throughput_2proc_256B", "records/s", t, ">= 10000000", t >= 1e7);
    }
    return 0;
}
