// kafka_worker_test.cc: delivery workers (real segbusd processes) on librdkafka's mock cluster:
// a worker SIGKILLed mid-stream and restarted loses nothing (SQLite, idempotent on id, holds
// every event once); workers joining and leaving the group mid-stream (cooperative rebalances,
// revokes that wait for durability) lose nothing and repeat nothing across the workers.
#include "chain_rig.h"

#include <thread>

using namespace chain;

namespace
{

TEST(KafkaWorker, KilledAndRestartedLosesNothing)
{
    Rig rig;
    Segbusd w;
    ASSERT_TRUE(rig.start_chain(w, "w1"));
    const int n = 6000;
    std::thread feed([&] { rig.post(0, n, 50); });
    // Kill it while it is busy: some events delivered, more consumed, spooled, in flight.
    bool midway = wait_for([&] { return rig.sqlite_ids("w1") >= (size_t)n / 4; }, 30000);
    w.kill9();
    size_t at_kill = rig.sqlite_ids("w1");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_TRUE(rig.start_worker(w, "w1", true));
    feed.join();
    ASSERT_TRUE(midway) << rig.log("w1");
    EXPECT_LT(at_kill, (size_t)n) << "killed too late to test anything";
    rig.finish(w, "w1", n, 40000);
    int lines = 0;
    auto ids = rig.file_ids("w1", &lines);
    EXPECT_EQ(missing(ids, n), 0);
    // What was consumed after the last commit is read again after the restart (the dedup
    // window died with the process): at most what one commit interval and a batch cover.
    printf("killed at %zu of %d delivered; file: %d lines, %d ids repeated\n", at_kill, n, lines,
           repeated(ids));
}

TEST(KafkaWorker, RebalancesLoseAndRepeatNothing)
{
    Rig rig;
    Segbusd a, b;
    ASSERT_TRUE(rig.start_chain(a, "wa"));
    const int n = 6000;
    std::thread feed([&] { // ~15 s of traffic: the mock re-forms a group in about 5 s
        for (int i = 0; i < n; i += 100) {
            rig.post(i, i + 100, 50);
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
        }
    });
    auto delivered = [&] { // distinct ids in both warehouses
        std::map<std::string, int> rows;
        rig.sqlite_id_set("wa", rows);
        rig.sqlite_id_set("wb", rows);
        return rows.size();
    };
    // b joins while a is busy: a gives partitions up (after what it took is durable).
    ASSERT_TRUE(wait_for([&] { return delivered() >= (size_t)n / 5; }, 30000)) << rig.log("wa");
    ASSERT_TRUE(rig.start_worker(b, "wb"));
    // a leaves mid-stream (SIGTERM: delivers, commits, leaves the group): b takes everything.
    bool b_took = wait_for([&] { return rig.sqlite_ids("wb") > 0; }, 30000);
    bool more = wait_for([&] { return delivered() >= (size_t)n / 2; }, 30000);
    EXPECT_EQ(a.stop(15), 0) << rig.log("wa");
    feed.join();
    EXPECT_TRUE(b_took) << rig.log("wb");
    EXPECT_TRUE(more);
    EXPECT_TRUE(wait_for([&] { return delivered() >= (size_t)n; }, 40000)) << delivered() << "\n"
                                                                           << rig.log("wb");
    EXPECT_EQ(b.stop(15), 0) << rig.log("wb");
    EXPECT_EQ(rig.hub.stop(15), 0) << rig.log("hub");
    // Every event in one of the two warehouses and files.
    auto ids = rig.file_ids("wa");
    for (auto &kv : rig.file_ids("wb"))
        ids[kv.first] += kv.second;
    std::map<std::string, int> rows;
    rig.sqlite_id_set("wa", rows);
    rig.sqlite_id_set("wb", rows);
    EXPECT_EQ(missing(ids, n), 0);
    EXPECT_EQ(missing(rows, n), 0);
    EXPECT_GT(rig.sqlite_ids("wa"), 0u);
    EXPECT_GT(rig.sqlite_ids("wb"), 0u);
    // Repeats across workers come only from a commit the group refused (the mock cluster
    // refuses commits while it re-forms the group, and sometimes fails a SyncGroup); each
    // revoke otherwise commits what it delivered before giving the partitions up.
    int rep = repeated(ids);
    printf("rebalances: %d ids delivered by both workers (commit refused: a %d, b %d)\n", rep,
           rig.commit_refused("wa"), rig.commit_refused("wb"));
    if (!rig.commit_refused("wa") && !rig.commit_refused("wb")) {
        EXPECT_EQ(rep, 0);
    }
}

} // namespace
