// Conformance: every case of every JSON-Schema-Test-Suite draft-07 file in ../shared must pass.
#include <gtest/gtest.h>

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "json/json.h"
#include "mp/mp_reader.h"
#include "plan/schema.h"
}

namespace
{

std::string slurp(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string to_mp(const std::string &json)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = sb_json_to_msgpack(json.data(), json.size(), &pk, nullptr);
    std::string out = rc ? std::string() : std::string(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return out;
}

// The bytes of map value `key` in the map at r (advances r past the map).
std::string field(const std::string &mp, size_t off, const char *key)
{
    struct sb_mp_reader v;
    if (sb_mp_lookup(mp.data() + off, mp.size() - off, key, &v) != 1)
        return std::string();
    return std::string((const char *)v.p, sb_mp_reader_left(&v));
}

std::string text(const std::string &mp)
{
    struct sb_buf out = SB_BUF_INIT;
    size_t used;
    sb_msgpack_to_json((const uint8_t *)mp.data(), mp.size(), &used, &out);
    std::string s((const char *)out.data, out.len);
    sb_buf_free(&out);
    return s;
}

struct counts {
    int passed = 0, failed = 0;
};

// Runs one suite file; failures are reported through gtest with the group and test names.
counts run_file(const std::string &path)
{
    counts c;
    std::string mp = to_mp(slurp(path));
    EXPECT_FALSE(mp.empty()) << path << ": not JSON";
    struct sb_mp_reader r;
    struct sb_mp_item it;
    sb_mp_reader_init(&r, mp.data(), mp.size());
    if (sb_mp_next(&r, &it) || it.type != SB_MP_ARRAY) {
        ADD_FAILURE() << path << ": not an array of groups";
        c.failed++;
        return c;
    }
    for (uint32_t g = 0; g < it.v.count; g++) {
        size_t goff = sb_mp_reader_offset(&r);
        std::string group = std::string(mp, goff);
        sb_mp_skip(&r);
        std::string schema = field(mp, goff, "schema");
        std::string desc = text(field(mp, goff, "description"));
        struct sb_schema *s = nullptr;
        char err[256];
        int rc = sb_schema_compile_mp((const uint8_t *)schema.data(), schema.size(), &s, err,
                                      sizeof err);
        std::string tests = field(mp, goff, "tests");
        struct sb_mp_reader t;
        struct sb_mp_item th;
        sb_mp_reader_init(&t, tests.data(), tests.size());
        sb_mp_next(&t, &th);
        for (uint32_t i = 0; i < th.v.count; i++) {
            size_t toff = sb_mp_reader_offset(&t);
            sb_mp_skip(&t);
            std::string data = field(tests, toff, "data");
            std::string tdesc = text(field(tests, toff, "description"));
            bool want = field(tests, toff, "valid") == "\xc3";
            if (rc) {
                ADD_FAILURE() << path << ": " << desc << ": schema refused: " << err;
                c.failed++;
                continue;
            }
            // Both modes: collecting violations and stopping at the first.
            struct sb_violations v = {};
            int got = sb_schema_validate(s, (const uint8_t *)data.data(), data.size(), &v);
            int quick = sb_schema_validate(s, (const uint8_t *)data.data(), data.size(), nullptr);
            bool pass =
                got == (want ? 1 : 0) && quick == got && (want ? v.count == 0 : v.count > 0);
            if (pass)
                c.passed++;
            else {
                c.failed++;
                ADD_FAILURE() << path << ": " << desc << " / " << tdesc << ": want "
                              << (want ? "valid" : "invalid") << ", got " << got << " (quick "
                              << quick << ", " << v.count << " violations"
                              << (v.count ? std::string(": ") + v.items[0].reason : "") << ")";
            }
            sb_violations_free(&v);
        }
        sb_schema_free(s);
    }
    return c;
}

bool opendir_ok(const std::string &dir)
{
    DIR *d = opendir(dir.c_str());
    if (d)
        closedir(d);
    return d != nullptr;
}

std::vector<std::string> suite_files(const std::string &dir)
{
    std::vector<std::string> files;
    DIR *d = opendir(dir.c_str());
    if (!d)
        return files;
    while (struct dirent *e = readdir(d)) {
        std::string n = e->d_name;
        if (n.size() > 5 && n.substr(n.size() - 5) == ".json")
            files.push_back(dir + "/" + n);
    }
    closedir(d);
    std::sort(files.begin(), files.end());
    return files;
}

// ../shared beside the repository. In a git worktree (.git is a file naming the main repository's
// .git/worktrees/<name>) that is beside the main checkout, not beside the worktree.
std::string shared_dir()
{
    std::string dir = SEGBUS_SHARED_DIR;
    if (opendir_ok(dir))
        return dir;
    std::string git = slurp(std::string(SEGBUS_SOURCE_DIR) + "/.git");
    size_t at = git.find("gitdir: ");
    size_t wt = git.find("/.git/worktrees/");
    if (at == 0 && wt != std::string::npos)
        return git.substr(8, wt - 8) + "/../shared";
    return dir;
}

} // namespace

TEST(SchemaSuite, Draft7)
{
    // SEGBUS_SCHEMA_SUITE may point at another copy (e.g. the full upstream suite) to check more.
    const char *env = getenv("SEGBUS_SCHEMA_SUITE");
    std::string dir = env ? env : shared_dir() + "/json-schema-test-suite/draft7";
    std::vector<std::string> files = suite_files(dir);
    ASSERT_FALSE(files.empty()) << "no JSON-Schema-Test-Suite files in " << dir;
    int total = 0, failed = 0;
    for (const std::string &f : files) {
        counts c = run_file(f);
        std::printf("%-60s %4d passed %4d failed\n", f.substr(f.rfind('/') + 1).c_str(), c.passed,
                    c.failed);
        total += c.passed + c.failed;
        failed += c.failed;
    }
    std::printf("total: %d cases, %d failed, in %zu files\n", total, failed, files.size());
    EXPECT_GT(total, 0);
    EXPECT_EQ(0, failed);
}
