// The warehouse model's pieces: snake_case names, identifiers, event tables, RFC 3339
// timestamps, the msgpack structure check and type coercion.
#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "outputs/warehouse_model.h"
}

namespace
{

std::string snake(const std::string &s)
{
    char out[SB_WH_NAME_MAX + 1];
    size_t n = sb_wh_snake(s.data(), s.size(), out);
    return std::string(out, n);
}
std::string table(const std::string &s)
{
    char out[SB_WH_NAME_MAX + 1];
    size_t n = sb_wh_event_table(s.data(), s.size(), out);
    EXPECT_EQ(n, strlen(out));
    return out;
}
std::string ts(const std::string &s)
{
    char out[32];
    return sb_wh_timestamp(s.data(), s.size(), out) ? std::string(out) : "invalid";
}

TEST(WarehouseModel, SnakeCase)
{
    EXPECT_EQ("order_completed", snake("Order Completed"));
    EXPECT_EQ("user_id", snake("userId"));
    EXPECT_EQ("http_server", snake("HTTPServer"));
    EXPECT_EQ("utm_source", snake("utm_source"));
    EXPECT_EQ("a_b", snake("  A--b  "));
    EXPECT_EQ("address2", snake("address2"));
    EXPECT_EQ("page_2_url", snake("page 2 URL"));
    EXPECT_EQ("", snake("€€"));
}

TEST(WarehouseModel, EventTables)
{
    EXPECT_EQ("order_completed", table("Order Completed"));
    EXPECT_EQ("_tracks", table("Tracks"));
    EXPECT_EQ("_users", table("users"));
    EXPECT_EQ("_sqlite_sequence", table("sqlite_sequence"));
    EXPECT_EQ("_1st_visit", table("1st Visit"));
    std::string a = table(std::string(300, 'a') + "1"), b = table(std::string(300, 'a') + "2");
    EXPECT_EQ(63u, a.size());
    EXPECT_NE(a, b);
    EXPECT_EQ(a, table(std::string(300, 'a') + "1")); // stable
    EXPECT_EQ(9u, table("日本語").size());
    EXPECT_NE(table("日本語"), table("中文"));
    char out[SB_WH_NAME_MAX + 1];
    sb_wh_ident("xmin", 4, out);
    EXPECT_STREQ("_xmin", out);
}

TEST(WarehouseModel, Timestamps)
{
    EXPECT_EQ("2026-11-28T10:00:00.000Z", ts("2026-11-28T10:00:00Z"));
    EXPECT_EQ("2026-11-28T10:00:00.123Z", ts("2026-11-28T10:00:00.123456789z"));
    EXPECT_EQ("2026-11-28T08:30:00.000Z", ts("2026-11-28T10:00:00+01:30"));
    EXPECT_EQ("2026-01-01T02:00:00.500Z", ts("2025-12-31 23:00:00.5-03:00"));
    EXPECT_EQ("2024-02-29T00:00:00.000Z", ts("2024-02-29T00:00:00Z"));
    EXPECT_EQ("invalid", ts("2023-02-29T00:00:00Z"));
    EXPECT_EQ("invalid", ts("2026-13-01T00:00:00Z"));
    EXPECT_EQ("invalid", ts("2026-11-28T24:00:00Z"));
    EXPECT_EQ("invalid", ts("2026-11-28T10:00:00"));
    EXPECT_EQ("invalid", ts("2026-11-28T10:00:00.Z"));
    EXPECT_EQ("invalid", ts("2026-11-28T10:00:00Zjunk"));
    EXPECT_EQ("invalid", ts("0001-01-01T00:00:00+01:00")); // before year 1 in UTC
    EXPECT_EQ("invalid", ts("yesterday"));
}

TEST(WarehouseModel, Coercion)
{
    char buf[40];
    sb_wh_value v{};
    v.type = SB_WH_TEXT;
    v.s = "42";
    v.n = 2;
    EXPECT_TRUE(sb_wh_coerce(&v, SB_WH_INT, buf));
    EXPECT_EQ(42, v.i);
    v = {};
    v.type = SB_WH_REAL;
    v.d = 2.5;
    EXPECT_FALSE(sb_wh_coerce(&v, SB_WH_INT, buf));
    EXPECT_EQ(SB_WH_NULL, v.type);
    v = {};
    v.type = SB_WH_REAL;
    v.d = 0.1;
    EXPECT_TRUE(sb_wh_coerce(&v, SB_WH_TEXT, buf));
    EXPECT_EQ("0.1", std::string(v.s, v.n));
    v = {};
    v.type = SB_WH_TEXT;
    v.s = "true";
    v.n = 4;
    EXPECT_TRUE(sb_wh_coerce(&v, SB_WH_BOOL, buf));
    EXPECT_EQ(1, v.i);
    v = {};
    v.type = SB_WH_TEXT;
    v.s = "2026-11-28T10:00:00+01:00";
    v.n = 25;
    EXPECT_TRUE(sb_wh_coerce(&v, SB_WH_TS, buf));
    EXPECT_EQ("2026-11-28T09:00:00.000Z", std::string(v.s, v.n));
    v = {};
    v.type = SB_WH_INT;
    v.i = 7;
    EXPECT_FALSE(sb_wh_coerce(&v, SB_WH_BOOL, buf));
}

} // namespace
