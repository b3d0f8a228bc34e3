// concurrency_test.cc: N threads and N forked processes write sequence-numbered records;
// the reader checks each producer's sequence arrives complete, in order and uncorrupted.
// Also measures how fast a sleeping reader wakes after a commit.
#include <gtest/gtest.h>

#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "daemon_fixture.h"

namespace
{

#if defined(__SANITIZE_THREAD__)
constexpr int kScale = 10;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr int kScale = 10;
#else
constexpr int kScale = 1;
#endif
#else
constexpr int kScale = 1;
#endif

struct RecHead {
    uint32_t producer;
    uint32_t seq;
    uint32_t len;
    uint32_t sum;
};

// Payload: header + bytes derived from (producer, seq) so that corruption is detected.
size_t make_record(uint8_t *buf, uint32_t producer, uint32_t seq)
{
    uint32_t len = sizeof(RecHead) + (seq * 37 + producer * 11) % 700;
    uint32_t sum = 0;
    for (uint32_t i = sizeof(RecHead); i < len; i++) {
        buf[i] = (uint8_t)(producer * 131 + seq * 7 + i);
        sum += buf[i];
    }
    RecHead h{producer, seq, len, sum};
    memcpy(buf, &h, sizeof h);
    return len;
}

// Returns "" if fine, else what is wrong.
std::string check_record(const uint8_t *data, size_t len, std::vector<uint32_t> &next)
{
    RecHead h;
    if (len < sizeof h)
        return "short record";
    memcpy(&h, data, sizeof h);
    if (h.len != len || h.producer >= next.size())
        return "bad length or producer";
    if (h.seq != next[h.producer])
        return "producer " + std::to_string(h.producer) + " expected seq " +
               std::to_string(next[h.producer]) + " got " + std::to_string(h.seq);
    uint32_t sum = 0;
    for (uint32_t i = sizeof h; i < len; i++) {
        if (data[i] != (uint8_t)(h.producer * 131 + h.seq * 7 + i))
            return "corrupt payload";
        sum += data[i];
    }
    if (sum != h.sum)
        return "bad sum";
    next[h.producer]++;
    return "";
}

TEST(RingConcurrency, ThreadsWriteSequencesReaderChecks)
{
    const int kProducers = 4;
    const uint32_t kPerProducer = 200000 / kScale;
    sb_shm shm;
    ASSERT_EQ(0, sb_shm_create(&shm, 256 * 1024));
    sb_ring_reader rd;
    ASSERT_EQ(0, sb_ring_reader_init(&rd, &shm.ring, nullptr, getpid(), sb_ring_now_ns()));
    std::vector<std::thread> th;
    std::atomic<int> wakes{0};
    for (int p = 0; p < kProducers; p++)
        th.emplace_back([&, p] {
            uint8_t buf[1024];
            for (uint32_t seq = 0; seq < kPerProducer; seq++) {
                size_t len = make_record(buf, p, seq);
                int rc;
                while ((rc = sb_ring_write(&shm.ring, p + 1, 1, buf, len)) == -EAGAIN)
                    sched_yield();
                ASSERT_GE(rc, 0);
                if (rc == 1) {
                    wakes++;
                    sb_ring_wake(&shm.ring);
                }
            }
        });
    std::vector<uint32_t> next(kProducers, 0);
    uint64_t total = 0, want = (uint64_t)kProducers * kPerProducer;
    int64_t deadline = sb_ring_now_ns() + 60ll * 1000000000;
    std::string err;
    while (total < want && err.empty() && sb_ring_now_ns() < deadline) {
        int n = sb_ring_read(&rd, sb_ring_now_ns());
        for (int i = 0; i < n && err.empty(); i++) {
            err = check_record(rd.recs[i].data, rd.recs[i].len, next);
            if (rd.recs[i].producer != ((const RecHead *)rd.recs[i].data)->producer + 1)
                err = "producer id mismatch";
        }
        total += n;
        sb_ring_reader_release(&rd);
        if (n == 0)
            sb_ring_reader_wait(&rd, 20000, 10 * 1000000);
    }
    for (auto &t : th)
        t.join();
    EXPECT_EQ("", err);
    EXPECT_EQ(want, total);
    for (int p = 0; p < kProducers; p++)
        EXPECT_EQ(kPerProducer, next[p]);
    EXPECT_EQ(0u, rd.counters[SB_RING_R_CORRUPT]);
    EXPECT_EQ(0u, rd.counters[SB_RING_R_REPAIRED_DEAD] + rd.counters[SB_RING_R_ZERO_GAPS]);
    printf("threads: %llu records, %d futex wakes\n", (unsigned long long)total, wakes.load());
    sb_ring_reader_free(&rd);
    sb_shm_close(&shm);
}

// The whole stack across processes: children register over the socket and write with the
// public API; the parent is the daemon.
TEST(RingConcurrency, ForkedProcessesThroughTheRegistry)
{
    const int kProducers = 4;
    const uint32_t kPerProducer = 100000 / kScale;
    std::string path = temp_socket_path("procs");
    sb_registry_config cfg;
    sb_registry_config_init(&cfg);
    cfg.socket_path = path.c_str();
    cfg.capacity = 256 * 1024;
    sb_registry *reg = nullptr;
    ASSERT_EQ(0, sb_registry_open(&reg, &cfg));
    std::vector<pid_t> kids;
    for (int p = 0; p < kProducers; p++) {
        pid_t pid = fork();
        if (pid == 0) {
            segbus_producer_options_t o;
            segbus_producer_options_init(&o);
            o.full_policy = SEGBUS_FULL_BLOCK;
            o.block_timeout_ms = 20000;
            segbus_producer_t *pr = nullptr;
            if (segbus_producer_open(&pr, path.c_str(), &o) != 0)
                _exit(10);
            uint8_t buf[1024];
            for (uint32_t seq = 0; seq < kPerProducer; seq++) {
                size_t len = make_record(buf, p, seq);
                if (segbus_producer_write(pr, 1, buf, len) != 0)
                    _exit(11);
            }
            int rc = segbus_producer_flush(pr, 20000);
            segbus_producer_close(pr);
            _exit(rc == 0 ? 0 : 12);
        }
        kids.push_back(pid);
    }
    std::vector<uint32_t> next(kProducers, 0);
    std::vector<uint32_t> ids(kProducers, 0);
    uint64_t total = 0, want = (uint64_t)kProducers * kPerProducer;
    int64_t deadline = sb_ring_now_ns() + 60ll * 1000000000;
    std::string err;
    while (total < want && err.empty() && sb_ring_now_ns() < deadline) {
        sb_registry_poll(reg, 0);
        sb_ring_reader *rd = sb_registry_reader(reg, 0);
        int n = sb_ring_read(rd, sb_ring_now_ns());
        for (int i = 0; i < n && err.empty(); i++) {
            err = check_record(rd->recs[i].data, rd->recs[i].len, next);
            uint32_t who = ((const RecHead *)rd->recs[i].data)->producer;
            if (ids[who] == 0)
                ids[who] = rd->recs[i].producer;
            else if (ids[who] != rd->recs[i].producer)
                err = "producer id changed";
        }
        total += n;
        sb_ring_reader_release(rd);
        if (n == 0)
            sb_ring_reader_wait(rd, 20000, 2 * 1000000);
    }
    for (pid_t k : kids) {
        int st = 0;
        waitpid(k, &st, 0);
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child status " << st;
    }
    EXPECT_EQ("", err);
    EXPECT_EQ(want, total);
    std::sort(ids.begin(), ids.end());
    EXPECT_EQ(ids.end(), std::adjacent_find(ids.begin(), ids.end())) << "ids must be distinct";
    sb_registry_close(reg);
}

// A reader asleep on the futex wakes within 1 ms of a commit from another process.
TEST(RingConcurrency, SleepingReaderWakesFast)
{
    sb_shm shm;
    ASSERT_EQ(0, sb_shm_create(&shm, 64 * 1024));
    sb_ring_reader rd;
    ASSERT_EQ(0, sb_ring_reader_init(&rd, &shm.ring, nullptr, getpid(), sb_ring_now_ns()));
    const int kRounds = 60;
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < kRounds; i++) {
            // wait until the reader has gone to sleep, then a little more so it is in the kernel
            int64_t give_up = sb_ring_now_ns() + 5ll * 1000000000;
            while (__atomic_load_n(sb_ring_futex_word(&shm.ring), __ATOMIC_ACQUIRE) == 0 &&
                   sb_ring_now_ns() < give_up)
                usleep(100);
            usleep(2000);
            int64_t t = sb_ring_now_ns();
            int rc = sb_ring_write(&shm.ring, 1, 1, &t, sizeof t);
            if (rc == 1)
                sb_ring_wake(&shm.ring);
            else if (rc != 0)
                _exit(1);
        }
        _exit(0);
    }
    std::vector<int64_t> lat;
    int woken_by_futex = 0;
    for (int i = 0; i < kRounds; i++) {
        int n = 0;
        int64_t got = 0;
        for (int tries = 0; tries < 100 && n == 0; tries++) {
            // no spinning: measure the sleep path
            if (sb_ring_reader_wait(&rd, 0, 1000ll * 1000000)) {
                got = sb_ring_now_ns();
                woken_by_futex++;
            }
            n = sb_ring_read(&rd, sb_ring_now_ns());
        }
        ASSERT_EQ(1, n);
        int64_t sent;
        memcpy(&sent, rd.recs[0].data, sizeof sent);
        if (got == 0)
            got = sb_ring_now_ns();
        lat.push_back(got - sent);
        sb_ring_reader_release(&rd);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    std::sort(lat.begin(), lat.end());
    int64_t med = lat[lat.size() / 2], p95 = lat[lat.size() * 95 / 100], mx = lat.back();
    printf("wake latency: median %lld us, p95 %lld us, max %lld us (%d rounds)\n",
           (long long)med / 1000, (long long)p95 / 1000, (long long)mx / 1000, kRounds);
    RecordProperty("wake_median_us", (int)(med / 1000));
    RecordProperty("wake_p95_us", (int)(p95 / 1000));
    // The goal is 1 ms; the median must meet it. Single rounds on a loaded 2-core VM may be
    // descheduled, so the tail gets a margin.
    EXPECT_LT(med, 1000000);
    EXPECT_LT(p95, 20000000);
    sb_ring_reader_free(&rd);
    sb_shm_close(&shm);
}

} // namespace
