// kafka_chain_test.cc: hub -> Kafka (mock cluster, 3 brokers) -> worker -> SQLite and NDJSON,
// as two real segbusd processes: every event arrives exactly once; all brokers taken down and
// brought back mid-stream loses nothing and repeats nothing.
#include "chain_rig.h"

#include <thread>

using namespace chain;

namespace
{

TEST(KafkaChain, HubToWorkerToSqliteExactlyOnce)
{
    Rig rig;
    Segbusd w;
    ASSERT_TRUE(rig.start_chain(w, "w1"));
    const int n = 3000;
    ASSERT_TRUE(rig.post(0, n)) << rig.log("hub");
    rig.finish(w, "w1", n, 30000);
    int lines = 0;
    auto ids = rig.file_ids("w1", &lines);
    EXPECT_EQ(missing(ids, n), 0);
    EXPECT_EQ(repeated(ids), 0);
    EXPECT_EQ(lines, n);
}

TEST(KafkaChain, BrokersDownAndBackLoseNothing)
{
    Rig rig;
    Segbusd w;
    ASSERT_TRUE(rig.start_chain(w, "w1"));
    const int n = 4000;
    ASSERT_TRUE(rig.post(0, n / 2));
    // Mid-stream: events are flowing through Kafka when every broker goes away for 2 s.
    ASSERT_TRUE(wait_for([&] { return rig.sqlite_ids("w1") > 0; }, 20000)) << rig.log("w1");
    rig.mock->brokers_down(true);
    std::thread later([&] {
        std::this_thread::sleep_for(std::chrono::seconds(2));
        rig.mock->brokers_down(false);
    });
    bool posted = rig.post(n / 2, n); // the hub takes them (spooled) while Kafka is down
    later.join();
    ASSERT_TRUE(posted);
    rig.finish(w, "w1", n, 40000);
    auto ids = rig.file_ids("w1");
    EXPECT_EQ(missing(ids, n), 0);
    EXPECT_EQ(repeated(ids), 0);
}

// SIGTERM while Kafka is unreachable: the worker delivers what it has, cannot commit or leave
// the group, and still exits within its bounds (librdkafka's own close could wait much longer).
TEST(KafkaChain, WorkerStopsWhileBrokersDown)
{
    Rig rig;
    Segbusd w;
    ASSERT_TRUE(rig.start_chain(w, "w1"));
    ASSERT_TRUE(rig.post(0, 500));
    ASSERT_TRUE(wait_for([&] { return rig.sqlite_ids("w1") >= 500; }, 30000)) << rig.log("w1");
    rig.mock->brokers_down(true);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(w.stop(20), 0) << rig.log("w1");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
    rig.mock->brokers_down(false);
    EXPECT_EQ(rig.hub.stop(15), 0) << rig.log("hub");
}

} // namespace
