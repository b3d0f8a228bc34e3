// api_threads_test.cc: one producer handle shared by several threads (the public API's
// thread-safety promise), with claim/commit and write mixed, against a live registry.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "daemon_fixture.h"

namespace
{

#if defined(__SANITIZE_THREAD__)
constexpr uint32_t kPerThread = 3000;
#else
constexpr uint32_t kPerThread = 30000;
#endif

struct Msg {
    uint32_t thread;
    uint32_t seq;
    char pad[40];
};

TEST(ProducerThreads, SharedHandleKeepsEachThreadsOrder)
{
    const int kThreads = 4;
    std::string path = temp_socket_path("threads");
    Daemon d(path, 256 * 1024);
    segbus_producer_options_t o;
    segbus_producer_options_init(&o);
    o.full_policy = SEGBUS_FULL_BLOCK;
    o.block_timeout_ms = 20000;
    segbus_producer_t *p = nullptr;
    ASSERT_EQ(0, segbus_producer_open(&p, path.c_str(), &o));
    std::vector<std::thread> th;
    std::atomic<int> errors{0};
    for (int t = 0; t < kThreads; t++)
        th.emplace_back([&, t] {
            for (uint32_t s = 0; s < kPerThread; s++) {
                Msg m{};
                m.thread = t;
                m.seq = s;
                memset(m.pad, 'a' + t, sizeof m.pad);
                if (s % 2) {
                    if (segbus_producer_write(p, 1, &m, sizeof m) != 0)
                        errors++;
                } else {
                    segbus_claim_t c;
                    if (segbus_producer_claim(p, sizeof m + 16, 1, &c) != 0) {
                        errors++;
                        continue;
                    }
                    memcpy(c.data, &m, sizeof m);
                    if (segbus_producer_commit(p, &c, sizeof m) != 0)
                        errors++;
                }
            }
        });
    for (auto &t : th)
        t.join();
    EXPECT_EQ(0, errors.load());
    ASSERT_EQ(0, segbus_producer_flush(p, 20000));
    auto got = d.take();
    ASSERT_EQ((size_t)kThreads * kPerThread, got.size());
    std::map<uint32_t, uint32_t> next;
    for (auto &g : got) {
        Msg m;
        ASSERT_EQ(sizeof m, g.data.size());
        memcpy(&m, g.data.data(), sizeof m);
        ASSERT_LT(m.thread, (uint32_t)kThreads);
        ASSERT_EQ(next[m.thread], m.seq) << "thread " << m.thread;
        next[m.thread]++;
        for (char ch : m.pad)
            ASSERT_EQ('a' + (int)m.thread, ch);
    }
    segbus_producer_stats_t st;
    ASSERT_EQ(0, segbus_producer_get_stats(p, &st));
    EXPECT_EQ(0u, st.dropped[SEGBUS_DROP_STALE]);
    segbus_producer_close(p);
}

} // namespace
