// example_configs_test.cc: every segbusd configuration under examples/ (the commented reference,
// the container sidecar, the scale-out tiers) passes `segbusd --check-config`, which compiles
// plans and transforms too; so the files users copy cannot rot. Paths under /etc/segbus/ (where
// the container image puts examples/ files) are read from examples/ instead.
#include <gtest/gtest.h>

#include <dirent.h>

#include <string>
#include <vector>

#include "harness.h"

using namespace sbt;

namespace
{

// examples/**/*.yaml that are segbusd configurations (they have an outputs: list).
std::vector<std::string> example_configs(const std::string &dir)
{
    std::vector<std::string> out;
    DIR *d = opendir(dir.c_str());
    while (dirent *e = d ? readdir(d) : nullptr) {
        std::string name = e->d_name, path = dir + "/" + name;
        if (name[0] == '.')
            continue;
        if (e->d_type == DT_DIR) {
            for (auto &p : example_configs(path))
                out.push_back(p);
        } else if (name.size() > 5 && name.substr(name.size() - 5) == ".yaml" &&
                   slurp(path).find("\noutputs:") != std::string::npos) {
            out.push_back(path);
        }
    }
    if (d)
        closedir(d);
    return out;
}

TEST(ExampleConfigs, EveryOnePassesCheckConfig)
{
    const std::string examples = std::string(SEGBUS_SOURCE_DIR) + "/examples";
    TempDir tmp("segbus-examples");
    auto files = example_configs(examples);
    ASSERT_GE(files.size(), 3u) << "examples/segbusd.yaml, container/sidecar.yaml, scale-out";
    for (const auto &f : files) {
        std::string text = slurp(f);
        for (size_t at; (at = text.find("/etc/segbus/")) != std::string::npos;)
            text.replace(at, 12, examples + "/");
        std::string copy = tmp / "config.yaml";
        write_file(copy, text);
        RunResult r = run_program(Segbusd::binary(), {"--check-config", "--config", copy}, 30);
        EXPECT_EQ(r.code, 0) << f << ":\n" << r.out << r.err;
        EXPECT_NE(r.out.find(": OK"), std::string::npos) << f << ":\n" << r.out << r.err;
    }
}

// A transform that does not parse stops --check-config (it used to pass, and segbusd refused
// to start).
TEST(ExampleConfigs, BadTransformIsRefusedByCheckConfig)
{
    TempDir tmp("segbus-examples");
    std::string cfg = tmp / "bad.yaml";
    write_file(cfg, "sources:\n  - name: web\n    transforms:\n"
                    "      - {type: drop_properties, properties: [email]}\n"
                    "outputs:\n  - {type: file, name: f, settings: {path: " +
                        tmp / "out.ndjson" + "}}\n");
    RunResult r = run_program(Segbusd::binary(), {"--check-config", "--config", cfg}, 30);
    EXPECT_EQ(r.code, 78) << r.out << r.err;
    EXPECT_NE(r.err.find("drop_properties"), std::string::npos) << r.err;
}

} // namespace
