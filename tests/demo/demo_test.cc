// demo_test.cc: runs `segbus demo` (sidecar, hub when present, producers in C, Python and Ruby)
// with a few users and checks its exit code, its verdict and numbers in the warehouse.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace
{

std::string run(const std::string &cmd, int *status)
{
    std::string out;
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) {
        *status = -1;
        return out;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        out.append(buf, n);
    *status = pclose(p);
    return out;
}

long long scalar(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = nullptr;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

// Processes whose command line mentions dir (the demo's daemons and producers).
int processes_using(const std::string &dir)
{
    int n = 0;
    DIR *d = opendir("/proc");
    while (struct dirent *e = d ? readdir(d) : nullptr) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        std::ifstream f(std::string("/proc/") + e->d_name + "/cmdline");
        std::stringstream ss;
        ss << f.rdbuf();
        if (ss.str().find(dir + "/") != std::string::npos && std::to_string(getpid()) != e->d_name)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

TEST(Demo, EveryExpectedEventArrives)
{
    char tmpl[] = "/tmp/segbus-demo-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl;
    const int users = 15, procs = 1, langs = 3;
    int status = 0;
    std::string out = run(std::string(SEGBUS_BINARY_DIR "/src/cli/segbus demo --users ") +
                              std::to_string(users) + " --procs " + std::to_string(procs) +
                              " --build " SEGBUS_BINARY_DIR " --dir " + dir + " 2>&1",
                          &status);
    ASSERT_TRUE(WIFEXITED(status)) << out;
    EXPECT_EQ(WEXITSTATUS(status), 0) << out;
    EXPECT_NE(out.find("\nPASS: "), std::string::npos) << out;
    EXPECT_NE(out.find("revenue by currency"), std::string::npos) << out;
    EXPECT_EQ(processes_using(dir), 0) << "the demo left processes behind";

    sqlite3 *db = nullptr;
    ASSERT_EQ(sqlite3_open_v2((dir + "/warehouse.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    const long long n = users * procs * langs;
    EXPECT_EQ(scalar(db, "SELECT count(*) FROM users"), n);
    EXPECT_EQ(scalar(db, "SELECT count(*) FROM identifies"), n);
    EXPECT_EQ(scalar(db, "SELECT count(*) FROM signed_up"), n);
    // One order per user, plus the deliberately broken ones that the plan lets through (omit).
    EXPECT_GE(scalar(db, "SELECT count(*) FROM order_completed WHERE order_id LIKE '%-order-%'"),
              n);
    EXPECT_EQ(scalar(db,
                     "SELECT count(*) FROM order_completed WHERE order_id LIKE '%-order-%' "
                     "AND (total IS NULL OR total <= 0 OR currency NOT IN ('USD','EUR','GBP'))"),
              0);
    EXPECT_EQ(scalar(db, "SELECT count(DISTINCT id) FROM tracks"),
              scalar(db, "SELECT count(*) FROM tracks"));
    sqlite3_close(db);
    EXPECT_EQ(system(("rm -rf " + dir).c_str()), 0);
}

} // namespace
