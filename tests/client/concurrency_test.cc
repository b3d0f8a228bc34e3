// concurrency_test.cc: many threads and several forked processes writing through clients at once;
// the registry's reader checks that every event arrives exactly once, each thread's in order.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "../event/mp_text.h"
#include "../ring/daemon_fixture.h"

extern "C" {
#include "segbus/segbus.h"
}

namespace
{

constexpr int kThreads = 4, kPerThread = 3000, kProcs = 3, kPerProc = 2000;

int send_many(segbus_client_t *c, const char *who, int n)
{
    segbus_map_t *p = segbus_map_new();
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", who, i);
        segbus_map_reset(p);
        segbus_map_add_str(p, "who", who);
        segbus_map_add_int(p, "seq", i);
        segbus_message_t m = SEGBUS_MESSAGE_INIT;
        m.user_id = who;
        m.event = "Concurrent";
        m.message_id = id;
        m.properties = p;
        int rc = segbus_track(c, &m);
        if (rc != 0) {
            fprintf(stderr, "%s: %s\n", id, segbus_last_error());
            segbus_map_free(p);
            return rc;
        }
    }
    segbus_map_free(p);
    return 0;
}

TEST(ClientConcurrency, ThreadsAndForkedProcesses)
{
    std::string path = temp_socket_path("client-conc");
    Daemon d(path, 1u << 20);
    segbus_options_t *o = segbus_options_new();
    segbus_options_set_socket(o, path.c_str());
    segbus_options_set_standalone(o, 0);
    segbus_options_set_full_policy(o, SEGBUS_FULL_BLOCK, 10000);
    segbus_client_t *c = nullptr;
    ASSERT_EQ(segbus_client_open(&c, o), 0) << segbus_last_error();
    segbus_options_free(o);
    // Warm one event in the parent first, so the children inherit a live, registered client.
    ASSERT_EQ(send_many(c, "warm", 1), 0);

    std::vector<pid_t> kids;
    for (int k = 0; k < kProcs; k++) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            char who[32];
            snprintf(who, sizeof who, "proc%d", k);
            int rc = send_many(c, who, kPerProc);
            if (rc == 0)
                rc = segbus_flush(c, 20000);
            _exit(rc == 0 ? 0 : 1);
        }
        kids.push_back(pid);
    }
    std::vector<std::thread> th;
    std::vector<int> rcs(kThreads, -1);
    for (int t = 0; t < kThreads; t++)
        th.emplace_back([&, t] {
            char who[32];
            snprintf(who, sizeof who, "thread%d", t);
            rcs[t] = send_many(c, who, kPerThread);
        });
    for (auto &x : th)
        x.join();
    for (int t = 0; t < kThreads; t++)
        EXPECT_EQ(rcs[t], 0);
    for (pid_t pid : kids) {
        int st = 0;
        waitpid(pid, &st, 0);
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child " << pid;
    }
    ASSERT_EQ(segbus_flush(c, 20000), 0) << segbus_last_error();
    size_t want = 1 + kThreads * kPerThread + kProcs * kPerProc;
    ASSERT_TRUE(d.wait_count(want, 20000)) << d.count() << " of " << want;
    auto got = d.take();
    EXPECT_EQ(got.size(), want);
    std::set<std::string> ids;
    std::map<std::string, long> last_seq;
    std::set<uint32_t> producers;
    for (auto &g : got) {
        Decoded e = mp_decode(g.data.data(), g.data.size());
        ASSERT_TRUE(e.ok);
        ASSERT_TRUE(ids.insert(e.fields["messageId"]).second)
            << "duplicate " << e.fields["messageId"];
        std::string who = e.fields["userId"];
        // Per writer, events arrive in the order they were committed.
        std::string props = e.fields["properties"];
        size_t at = props.find("\"seq\":");
        ASSERT_NE(at, std::string::npos);
        long seq = strtol(props.c_str() + at + 6, nullptr, 10);
        auto it = last_seq.find(who);
        if (it != last_seq.end()) {
            EXPECT_GT(seq, it->second) << who;
        }
        last_seq[who] = seq;
        producers.insert(g.producer);
    }
    EXPECT_EQ(ids.size(), want);
    EXPECT_EQ(last_seq.size(), (size_t)(1 + kThreads + kProcs));
    EXPECT_GE(producers.size(), (size_t)(1 + kProcs)) << "each child registers on its own";
    segbus_client_close(c);
}

} // namespace
