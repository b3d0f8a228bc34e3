/* bench_spool.c: the spool on a real disk: append throughput of 64 KiB batches with group
 * commit (fresh segments, then recycled ones), fsyncs/s, one-at-a-time durable latency, and
 * read throughput. Prints JSON lines (suite, case, unit, value, ...). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "net/loop.h"
#include "spool/spool.h"

#define BATCH (64u << 10)

static uint64_t durable_upto;

static void on_durable(void *arg, uint64_t upto)
{
    (void)arg;
    durable_upto = upto;
}

static struct sb_loop *loop;

static struct sb_spool *open_spool(const char *dir, uint64_t max_bytes)
{
    struct sb_spool_opts o;
    sb_spool_opts_init(&o);
    o.dir = dir;
    o.segment_bytes = 16u << 20;
    o.max_bytes = max_bytes;
    o.max_pending_bytes = 4u << 20;
    o.on_durable = on_durable;
    const char *outs[] = {"bench"};
    struct sb_spool *sp = NULL;
    int r = sb_spool_open(&sp, loop, &o, outs, 1);
    if (r < 0) {
        fprintf(stderr, "bench_spool: open %s: %s\n", dir, strerror(-r));
        exit(1);
    }
    durable_upto = sb_spool_durable_seq(sp);
    return sp;
}

/* Append `bytes` of 64 KiB batches as fast as the spool takes them (max_pending_bytes 4 MiB:
 * up to 64 batches per commit); with ack, what is durable is acked so segments are recycled. */
static void append_phase(struct sb_spool *sp, const char *name, uint64_t bytes,
                         const uint8_t *batch, int ack)
{
    struct sb_spool_stats s0, s1;
    sb_spool_get_stats(sp, &s0);
    uint64_t n = bytes / BATCH, done = 0, last = 0, in_append = 0;
    uint64_t t0 = sb_now_ns();
    while (done < n || durable_upto < last) {
        while (done < n) {
            uint64_t ta = sb_now_ns();
            int r = sb_spool_append(sp, batch, BATCH, &last);
            in_append += sb_now_ns() - ta;
            if (r == -EAGAIN)
                break;
            if (r < 0) {
                fprintf(stderr, "bench_spool: append: %s\n", strerror(-r));
                exit(1);
            }
            done++;
        }
        sb_loop_run_once(loop, 100000000);
        if (ack && durable_upto)
            sb_spool_ack(sp, 0, durable_upto);
    }
    uint64_t ns = sb_now_ns() - t0;
    sb_spool_get_stats(sp, &s1);
    double sec = (double)ns / 1e9;
    uint64_t commits = s1.commits - s0.commits, fsyncs = s1.fsyncs - s0.fsyncs;
    double fs_ms =
        commits ? (double)(s1.fsync_ns_total - s0.fsync_ns_total) / 1e6 / (double)commits : 0;
    printf("{\"suite\":\"spool\",\"case\":\"append_64k_%s\",\"unit\":\"MB/s\",\"value\":%.1f,"
           "\"batches_per_s\":%.0f,\"commits_per_s\":%.0f,\"fsyncs_per_s\":%.0f,"
           "\"batches_per_commit\":%.1f,\"fsync_ms_avg\":%.3f,\"append_call_us\":%.2f,"
           "\"bytes\":%" PRIu64 ",\"segments_created\":%" PRIu64 ",\"segments_recycled\":%" PRIu64
           "}\n",
           name, (double)(n * BATCH) / 1e6 / sec, (double)n / sec, (double)commits / sec,
           (double)fsyncs / sec, commits ? (double)n / (double)commits : 0, fs_ms,
           (double)in_append / 1e3 / (double)n, n * BATCH,
           s1.segments_created - s0.segments_created, s1.segments_recycled - s0.segments_recycled);
    fflush(stdout);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One batch at a time, each waited for: the latency of a durable append when there is nothing
 * to group with. */
static void latency_phase(struct sb_spool *sp, const uint8_t *batch, int n)
{
    uint64_t *lat = calloc((size_t)n, sizeof *lat);
    uint64_t t_all = sb_now_ns();
    for (int i = 0; i < n; i++) {
        uint64_t seq, t0 = sb_now_ns();
        if (sb_spool_append(sp, batch, BATCH, &seq) < 0)
            exit(1);
        while (durable_upto < seq)
            sb_loop_run_once(loop, 100000000);
        lat[i] = sb_now_ns() - t0;
        sb_spool_ack(sp, 0, seq);
    }
    double sec = (double)(sb_now_ns() - t_all) / 1e9;
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    printf("{\"suite\":\"spool\",\"case\":\"durable_append_64k_one_at_a_time\",\"unit\":\"ms p50\","
           "\"value\":%.3f,\"p99_ms\":%.3f,\"fsyncs_per_s\":%.0f,\"n\":%d}\n",
           (double)lat[n / 2] / 1e6, (double)lat[n * 99 / 100] / 1e6, (double)n / sec, n);
    fflush(stdout);
    free(lat);
}

static int sink(void *arg, uint64_t seq, const void *d, size_t len)
{
    (void)seq;
    *(uint64_t *)arg += len + ((const uint8_t *)d)[len - 1];
    return 0;
}

/* Reads of what was appended (page cache: it was just written), through sb_spool_read (pread). */
static void read_phase(struct sb_spool *sp, const uint8_t *batch, uint64_t bytes)
{
    uint64_t n = bytes / BATCH, last = 0;
    for (uint64_t i = 0; i < n;) {
        int r = sb_spool_append(sp, batch, BATCH, &last);
        if (r == 0)
            i++;
        else
            sb_loop_run_once(loop, 100000000);
    }
    while (durable_upto < last)
        sb_loop_run_once(loop, 100000000);
    sb_spool_rewind(sp, 0);
    uint64_t t0 = sb_now_ns(), got = 0, sum = 0;
    int r;
    while ((r = sb_spool_read(sp, 0, 1u << 20, sink, &sum)) > 0)
        got += (uint64_t)r;
    double sec = (double)(sb_now_ns() - t0) / 1e9;
    printf("{\"suite\":\"spool\",\"case\":\"read_64k_pread_page_cache\",\"unit\":\"MB/s\","
           "\"value\":%.0f,\"batches\":%" PRIu64 "}\n",
           (double)(got * BATCH) / 1e6 / sec, got);
    fflush(stdout);
    sb_spool_ack(sp, 0, last);
}

struct rd {
    struct sb_op op;
    int done, res;
};

static void rd_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct rd *r = SB_CONTAINER_OF(op, struct rd, op);
    r->done = 1;
    r->res = res;
}

/* How to read spooled batches back: synchronous pread vs io_uring READ through the loop (queue
 * depth 1 and 8), 64 KiB at a time from a 64 MiB file in the page cache. */
static void read_method_phase(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/readtest", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    const size_t total = 64u << 20;
    uint8_t *buf = malloc(8 * BATCH);
    memset(buf, 0x5a, 8 * BATCH);
    for (size_t off = 0; off < total; off += BATCH)
        if (pwrite(fd, buf, BATCH, (off_t)off) != (ssize_t)BATCH)
            exit(1);
    fdatasync(fd);
    const int passes = 4;
    const uint64_t n = passes * (total / BATCH);
    /* pread */
    uint64_t t0 = sb_now_ns();
    for (int p = 0; p < passes; p++)
        for (size_t off = 0; off < total; off += BATCH)
            if (pread(fd, buf, BATCH, (off_t)off) != (ssize_t)BATCH)
                exit(1);
    double pread_us = (double)(sb_now_ns() - t0) / 1e3 / (double)n;
    /* io_uring READ, one at a time and 8 in flight */
    double uring_us[2];
    int depths[2] = {1, 8};
    for (int d = 0; d < 2; d++) {
        struct rd r[8];
        t0 = sb_now_ns();
        size_t off = 0;
        for (uint64_t issued = 0; issued < n;) {
            int q = depths[d];
            for (int i = 0; i < q; i++) {
                r[i].done = 0;
                struct io_uring_sqe *sqe = sb_loop_sqe(loop, &r[i].op, rd_cqe);
                io_uring_prep_read(sqe, fd, buf + (size_t)i * BATCH, BATCH, off);
                off = (off + BATCH) % total;
            }
            for (int i = 0; i < q; i++)
                while (!r[i].done)
                    sb_loop_run_once(loop, 100000000);
            for (int i = 0; i < q; i++)
                if (r[i].res != (int)BATCH)
                    exit(1);
            issued += (uint64_t)q;
        }
        uring_us[d] = (double)(sb_now_ns() - t0) / 1e3 / (double)n;
    }
    printf(
        "{\"suite\":\"spool\",\"case\":\"read_64k_pread_us\",\"unit\":\"us/read\",\"value\":%.2f,"
        "\"io_uring_qd1_us\":%.2f,\"io_uring_qd8_us\":%.2f}\n",
        pread_us, uring_us[0], uring_us[1]);
    fflush(stdout);
    close(fd);
    unlink(path);
    free(buf);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "bench-spool-tmp";
    sb_log_set_level(SB_LOG_WARN);
    if (sb_loop_new(&loop, 256) < 0)
        return 1;
    uint8_t *batch = malloc(BATCH);
    for (unsigned i = 0; i < BATCH; i++)
        batch[i] = (uint8_t)(i * 7 + 3);
    struct sb_spool *sp = open_spool(dir, 512u << 20);
    /* Fresh files first (nothing acked: every segment is a new fallocated file), then steady
     * state with the output acking as it goes, so segment files are renamed and reused. */
    append_phase(sp, "fresh_segments", 256u << 20, batch, 0);
    sb_spool_ack(sp, 0, durable_upto);
    append_phase(sp, "recycled_segments", 512u << 20, batch, 1);
    latency_phase(sp, batch, 300);
    read_phase(sp, batch, 128u << 20);
    read_method_phase(dir);
    if (sb_spool_close(sp) < 0)
        return 1;
    sb_loop_free(loop);
    free(batch);
    return 0;
}
