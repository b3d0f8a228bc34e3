// dedup_test.cc: messageId dedup against a reference model; count and time windows; speed.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <vector>
#include <deque>
#include <random>
#include <string>
#include <unordered_map>

extern "C" {
#include "pipeline/dedup.h"
#include "pipeline/stage.h"
}

namespace
{

struct Dedup {
    sb_dedup *d = nullptr;
    Dedup(uint32_t n, uint64_t ns)
    {
        EXPECT_EQ(sb_dedup_new(&d, n, ns), 0);
    }
    ~Dedup()
    {
        sb_dedup_free(d);
    }
    int check(const std::string &id, uint64_t t)
    {
        return sb_dedup_check(d, id.data(), id.size(), t);
    }
};

TEST(Dedup, Basics)
{
    Dedup d(4, 0);
    EXPECT_EQ(d.check("a", 1), 0);
    EXPECT_EQ(d.check("a", 2), 1);
    EXPECT_EQ(d.check("b", 3), 0);
    EXPECT_EQ(sb_dedup_size(d.d), 2u);
    // Count window: after 4 more ids, "a" is forgotten.
    for (const char *x : {"c", "d", "e", "f"})
        EXPECT_EQ(d.check(x, 4), 0);
    EXPECT_EQ(sb_dedup_size(d.d), 4u);
    EXPECT_EQ(d.check("a", 5), 0);
    EXPECT_EQ(d.check("f", 5), 1);
    // Ids differing in one byte, and prefixes, are distinct.
    EXPECT_EQ(d.check("ab", 6), 0);
    EXPECT_EQ(d.check("abc", 6), 0);
    EXPECT_EQ(d.check("abd", 6), 0);
}

TEST(Dedup, TimeWindow)
{
    Dedup d(100, 1000);
    EXPECT_EQ(d.check("x", 10), 0);
    EXPECT_EQ(d.check("x", 1009), 1);
    EXPECT_EQ(d.check("x", 1010), 0); // expired exactly at the window and recorded again
    EXPECT_EQ(d.check("x", 1500), 1);
}

TEST(Dedup, OffWhenCountIsZero)
{
    Dedup d(0, 1000);
    EXPECT_EQ(d.check("x", 1), 0);
    EXPECT_EQ(d.check("x", 2), 0);
}

// Random ids from a small alphabet (so that repeats and evictions are frequent) against a
// reference model of the same window: every answer must match, through many evictions and
// backward-shift deletions.
TEST(Dedup, MatchesReferenceModel)
{
    const uint32_t N = 257;
    const uint64_t T = 5000;
    Dedup d(N, T);
    std::deque<std::pair<std::string, uint64_t>> fifo;
    std::unordered_map<std::string, int> live;
    std::mt19937_64 rng(7);
    uint64_t now = 1;
    for (int i = 0; i < 200000; i++) {
        now += rng() % 20;
        std::string id = "id-" + std::to_string(rng() % 1200);
        while (!fifo.empty() && now - fifo.front().second >= T) {
            if (--live[fifo.front().first] == 0)
                live.erase(fifo.front().first);
            fifo.pop_front();
        }
        int expect = live.count(id) ? 1 : 0;
        if (!expect) {
            if (fifo.size() == N) {
                if (--live[fifo.front().first] == 0)
                    live.erase(fifo.front().first);
                fifo.pop_front();
            }
            fifo.emplace_back(id, now);
            live[id]++;
        }
        ASSERT_EQ(d.check(id, now), expect) << "step " << i << " id " << id;
        ASSERT_EQ(sb_dedup_size(d.d), fifo.size());
    }
}

TEST(Dedup, ConstantTimePerEvent)
{
    // 2M checks on a 131072 window (the default), each evicting one id once the window is
    // full. The bound is loose (shared CI machines, sanitizers): it catches O(window) work.
    Dedup d(131072, 0);
    char id[40];
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 2000000; i++) {
        int n = snprintf(id, sizeof id, "0190d9f2-7c1a-7cc0-8a1b-%012d", i);
        ASSERT_EQ(sb_dedup_check(d.d, id, (size_t)n, (uint64_t)i), 0);
    }
    auto dt = std::chrono::steady_clock::now() - t0;
    double ns = std::chrono::duration<double, std::nano>(dt).count() / 2e6;
    printf("{\"name\":\"dedup_check\",\"unit\":\"ns/event\",\"value\":%.1f}\n", ns);
    EXPECT_LT(ns, 10000.0);
    EXPECT_EQ(sb_dedup_size(d.d), 131072u);
}

// sb_dedup_prefetch is a hint: interleaved with the checks (of the next id, of garbage, on a
// dedup that is off) it changes no answer.
TEST(Dedup, PrefetchChangesNothing)
{
    Dedup d(64, 0), off(0, 0);
    std::mt19937_64 rng(11);
    std::vector<std::string> ids;
    for (int i = 0; i < 5000; i++)
        ids.push_back("id-" + std::to_string(rng() % 100));
    std::unordered_map<std::string, int> seen;
    std::deque<std::string> fifo;
    for (size_t i = 0; i < ids.size(); i++) {
        if (i + 1 < ids.size())
            sb_dedup_prefetch(d.d, ids[i + 1].data(), ids[i + 1].size());
        uint64_t junk = rng();
        sb_dedup_prefetch(d.d, &junk, sizeof junk);
        sb_dedup_prefetch(off.d, &junk, sizeof junk);
        int expect = seen.count(ids[i]) ? 1 : 0;
        if (!expect) {
            if (fifo.size() == 64) {
                seen.erase(fifo.front());
                fifo.pop_front();
            }
            fifo.push_back(ids[i]);
            seen[ids[i]] = 1;
        }
        ASSERT_EQ(d.check(ids[i], 1), expect) << i;
        ASSERT_EQ(off.check(ids[i], 1), 0);
    }
}

} // namespace

extern "C" {
#include "pipeline/batch.h"
#include "pipeline/verify.h"
}
#include "event_util.h"

namespace
{

// The drain's per-event CPU path without I/O: verify -> dedup -> batcher (msgpack envelopes),
// on ~256-byte events. Prints events/s (a JSON line for comparisons run to run); checks that
// every event reached a batch.
TEST(PipelinePath, VerifyDedupBatchThroughput)
{
    sb_pipeline *p;
    ASSERT_EQ(sb_pipeline_new(&p), 0);
    ASSERT_EQ(sb_pipeline_add(p, sb_verify_stage_new()), 0);
    sb_dedup *dd;
    ASSERT_EQ(sb_dedup_new(&dd, 131072, 600ull * 1000000000ull), 0);
    ASSERT_EQ(sb_pipeline_add(p, sb_dedup_stage_new(dd)), 0);
    struct Count {
        uint64_t events = 0, batches = 0;
        static int emit(void *arg, const uint8_t *, size_t, uint32_t n)
        {
            ((Count *)arg)->events += n;
            ((Count *)arg)->batches++;
            return 0;
        }
    } cnt;
    sb_batch_limits lim{2500, 500000, 100000000};
    sb_batcher *b;
    ASSERT_EQ(sb_batcher_new(&b, &lim, Count::emit, &cnt), 0);
    const int N = 400000;
    std::vector<std::string> evs;
    for (int i = 0; i < 1024; i++) {
        std::string e = sbt::pack(
            {{"type", sbt::Val::str("track")},
             {"userId", sbt::Val::str("user-" + std::to_string(i))},
             {"event", sbt::Val::str("Order Completed")},
             {"messageId", sbt::Val::str("0190d9f2-7c1a-7cc0-8a1b-00000000")},
             {"timestamp", sbt::Val::str("2026-11-28T14:00:00.000Z")},
             {"properties", sbt::Val::raw(sbt::map_raw({{"total", sbt::Val::num(42)},
                                                        {"currency", sbt::Val::str("USD")},
                                                        {"sku", sbt::Val::str("SKU-12345")}}))},
             {"context", sbt::Val::raw(sbt::map_raw({{"library", sbt::Val::str("segbus")},
                                                     {"ip", sbt::Val::str("10.1.2.3")}}))}});
        evs.push_back(e);
    }
    size_t avg = 0;
    for (auto &e : evs)
        avg += e.size();
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < N; i++) {
        std::string &e = evs[i & 1023];
        // A distinct messageId per event: patch the last 8 id characters in place.
        size_t at = e.find("00000000");
        if (at == std::string::npos)
            at = e.find("0190d9f2-7c1a-7cc0-8a1b-") + 24;
        char id[9];
        snprintf(id, sizeof id, "%08x", i);
        memcpy(&e[at], id, 8);
        sb_event_meta m{};
        m.now_ns = (uint64_t)i;
        const uint8_t *out;
        size_t len;
        ASSERT_EQ(sb_pipeline_run(p, (const uint8_t *)e.data(), e.size(), &m, &out, &len),
                  SB_STAGE_PASS);
        ASSERT_EQ(sb_batcher_add(b, out, len, m.now_ns), 0);
    }
    sb_batcher_flush(b, 0, true);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("{\"name\":\"verify_dedup_batch\",\"unit\":\"events/s\",\"value\":%.0f,"
           "\"event_bytes\":%zu}\n",
           N / s, avg / evs.size());
    EXPECT_EQ(cnt.events, (uint64_t)N);
    sb_batcher_free(b);
    sb_pipeline_free(p);
}

} // namespace
