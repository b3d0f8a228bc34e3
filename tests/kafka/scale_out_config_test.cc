// scale_out_config_test.cc: the configuration of each tier of the Kafka scale-out
// (examples/scale-out/, shown in docs/kafka.md) passes `segbusd --check-config`, so the files
// cannot rot; a kafka_input block that is wrong is refused with the key (and line) named.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <sys/wait.h>

#include "harness.h"

using namespace sbt;

namespace
{

// Runs segbusd --check-config on path: the exit status, and stdout+stderr in out.
int check_config(const std::string &path, std::string &out)
{
    std::string cmd = Segbusd::binary() + " --check-config --config '" + path + "' 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    char buf[512];
    size_t n;
    out.clear();
    if (!p)
        return -1;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        out.append(buf, n);
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(ScaleOutConfig, EveryTierLoads)
{
    for (const char *tier : {"sidecar", "hub", "worker"}) {
        std::string path = std::string(SEGBUS_SOURCE_DIR) + "/examples/scale-out/" + tier + ".yaml";
        std::string out;
        EXPECT_EQ(check_config(path, out), 0) << tier << ": " << out;
        EXPECT_NE(out.find(": OK"), std::string::npos) << out;
        if (std::string(tier) == "worker") {
            EXPECT_NE(out.find("kafka input"), std::string::npos) << out;
        }
    }
}

TEST(ScaleOutConfig, BadKafkaInputNamed)
{
    TempDir tmp("segbus-kafka-config");
    const std::string out_block =
        "outputs:\n  - {type: file, name: f, settings: {path: " + tmp / "out.ndjson" + "}}\n";
    struct {
        const char *yaml, *want;
    } cases[] = {
        {"kafka_input:\n  group: g\n  topics: [t]\n", "kafka_input.brokers: the Kafka input needs"},
        {"kafka_input:\n  brokers: a:9092\n  topics: [t]\n", "kafka_input.group"},
        {"kafka_input:\n  brokers: a:9092\n  group: g\n", "kafka_input.topics"},
        {"kafka_input:\n  brokers: a:9092\n  group: g\n  topics: [t]\n  value_format: xml\n",
         "'xml' is not one of auto, json, msgpack"},
        {"kafka_input:\n  brokers: a:9092\n  group: g\n  topics: [t]\n  revoke_timeout: soon\n",
         "kafka_input.revoke_timeout: 'soon' is not a duration"},
        {"kafka_input:\n  brokers: a:9092\n  group: g\n  topics: [t]\n  partitions: 3\n",
         "kafka_input.partitions: unknown key"},
        {"kafka_input:\n  brokers: a:9092\n  group: g\n  topics: [t]\n  properties:\n"
         "    no.such.property: \"1\"\n",
         "kafka_input.properties.no.such.property (line 6)"},
    };
    for (auto &c : cases) {
        std::string path = tmp / "bad.yaml", out;
        write_file(path, std::string(c.yaml) + out_block);
        EXPECT_EQ(check_config(path, out), 78) << c.yaml << out;
        EXPECT_NE(out.find(c.want), std::string::npos) << c.yaml << "\n--- got: " << out;
    }
}

} // namespace
