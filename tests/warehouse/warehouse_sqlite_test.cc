// The SQLite warehouse: every call type lands in Segment's warehouse schema with the right
// columns and types, loads are idempotent, users are upserted, the schema evolves, and hostile
// names can neither break nor inject into the SQL.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <cstdlib>
#include <string>
#include <vector>

extern "C" {
#include "outputs/warehouse.h"
#include "outputs/warehouse_model.h"
}
#include "mpv.h"

namespace
{

using Rows = std::vector<std::vector<std::string>>;

V ctx()
{
    return V::obj({{"library", V::obj({{"name", "analytics-node"}, {"version", "2.2.1"}})},
                   {"page", V::obj({{"url", "https://shop.example/cart"}, {"path", "/cart"}})},
                   {"ip", "203.0.113.7"}});
}

V order_completed(const std::string &id, const std::string &user)
{
    return V::obj(
        {{"type", "track"},
         {"event", "Order Completed"},
         {"messageId", id},
         {"userId", user},
         {"anonymousId", "anon-1"},
         {"timestamp", "2026-11-28T10:00:00.123Z"},
         {"sentAt", "2026-11-28T10:00:01Z"},
         {"receivedAt", "2026-11-28T10:00:02.5+01:00"},
         {"originalTimestamp", "2026-11-28T09:59:59.999Z"},
         {"context", ctx()},
         {"integrations", V::obj({{"All", true}})},
         {"properties",
          V::obj(
              {{"order_id", "ORD-2024-12345"},
               {"total", 129.98},
               {"currency", "USD"},
               {"paid", true},
               {"itemCount", 2},
               {"shipping", V::obj({{"method", "UPS"}, {"cost", 5.99}})},
               {"products", V::arr({V::obj({{"product_id", "SKU-12345"}, {"price", 49.99}}),
                                    V::obj({{"product_id", "SKU-67890"}, {"price", 79.99}})})}})}});
}

class SqliteWarehouse : public ::testing::Test
{
  protected:
    std::string dir, path;
    sb_warehouse *w = nullptr;
    sqlite3 *db = nullptr;

    void SetUp() override
    {
        char tmpl[] = "/tmp/sbwh-XXXXXX";
        ASSERT_NE(nullptr, mkdtemp(tmpl));
        dir = tmpl;
        path = dir + "/warehouse.db";
        open();
        ASSERT_EQ(SQLITE_OK, sqlite3_open(path.c_str(), &db));
    }
    void TearDown() override
    {
        sqlite3_close(db);
        sb_warehouse_close(w);
        std::string cmd = "rm -rf '" + dir + "'";
        ASSERT_EQ(0, system(cmd.c_str()));
    }
    void open(const sb_warehouse_options *opt = nullptr)
    {
        char err[256] = "";
        ASSERT_EQ(0, sb_warehouse_sqlite_open(&w, path.c_str(), opt, err, sizeof(err))) << err;
    }
    sb_warehouse_stats load(const std::vector<V> &evs)
    {
        std::vector<std::string> bytes;
        for (auto &e : evs)
            bytes.push_back(mpv(e));
        return load_raw(bytes);
    }
    sb_warehouse_stats load_raw(const std::vector<std::string> &bytes, int want = 0)
    {
        std::vector<sb_warehouse_msg> msgs;
        for (auto &b : bytes)
            msgs.push_back({(const uint8_t *)b.data(), b.size()});
        sb_warehouse_stats st{};
        EXPECT_EQ(want, sb_warehouse_load(w, msgs.data(), msgs.size(), &st))
            << sb_warehouse_errmsg(w);
        return st;
    }
    Rows q(const std::string &sql)
    {
        Rows rows;
        sqlite3_stmt *st = nullptr;
        EXPECT_EQ(SQLITE_OK, sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr))
            << sql << ": " << sqlite3_errmsg(db);
        while (st && sqlite3_step(st) == SQLITE_ROW) {
            std::vector<std::string> r;
            for (int i = 0; i < sqlite3_column_count(st); i++) {
                const unsigned char *t = sqlite3_column_text(st, i);
                r.push_back(t ? (const char *)t : "NULL");
            }
            rows.push_back(r);
        }
        sqlite3_finalize(st);
        return rows;
    }
    std::string one(const std::string &sql)
    {
        Rows r = q(sql);
        return r.empty() || r[0].empty() ? "<no row>" : r[0][0];
    }
    // column -> declared type
    std::map<std::string, std::string> columns(const std::string &table)
    {
        std::map<std::string, std::string> m;
        for (auto &r : q("SELECT name, type FROM pragma_table_info('" + table + "')"))
            m[r[0]] = r[1];
        return m;
    }
};

TEST_F(SqliteWarehouse, EachCallTypeLandsInItsTableWithTypedColumns)
{
    std::vector<V> evs = {
        order_completed("m-track", "u1"),
        V::obj({{"type", "identify"},
                {"messageId", "m-identify"},
                {"userId", "u1"},
                {"traits", V::obj({{"email", "ada@example.com"},
                                   {"plan", "pro"},
                                   {"company", V::obj({{"name", "Acme"}, {"employee_count", 40}})},
                                   {"createdAt", "2024-01-02T03:04:05Z"}})},
                {"context", ctx()}}),
        V::obj({{"type", "page"},
                {"messageId", "m-page"},
                {"anonymousId", "anon-2"},
                {"name", "Product Detail"},
                {"category", "Products"},
                {"properties", V::obj({{"path", "/p/1"}, {"price", 49.99}})}}),
        V::obj({{"type", "screen"},
                {"messageId", "m-screen"},
                {"userId", "u2"},
                {"name", "Home"},
                {"properties", V::obj({{"variant", "b"}})}}),
        V::obj({{"type", "group"},
                {"messageId", "m-group"},
                {"userId", "u1"},
                {"groupId", "g-acme"},
                {"traits", V::obj({{"name", "Acme"}, {"employee_count", 40}, {"plan", "ent"}})}}),
        V::obj({{"type", "alias"},
                {"messageId", "m-alias"},
                {"userId", "u1"},
                {"previousId", "anon-1"}}),
    };
    sb_warehouse_stats st = load(evs);
    EXPECT_EQ(6u, st.events);
    EXPECT_EQ(0u, st.rejected);
    EXPECT_EQ(8u, st.rows_inserted); // + order_completed and users

    // tracks: the common columns, context flattened, no properties
    EXPECT_EQ(
        (Rows{{"m-track", "order_completed", "Order Completed", "u1", "anon-1",
               "2026-11-28T10:00:00.123Z", "2026-11-28T10:00:01.000Z", "2026-11-28T09:00:02.500Z",
               "2026-11-28T09:59:59.999Z", "https://shop.example/cart", "analytics-node"}}),
        q("SELECT id, event, event_text, user_id, anonymous_id, timestamp, sent_at, "
          "received_at, original_timestamp, context_page_url, context_library_name FROM "
          "tracks"));
    EXPECT_EQ(0u, columns("tracks").count("total"));
    // the per-event table: properties as typed columns, nested objects flattened, arrays JSON
    auto oc = columns("order_completed");
    EXPECT_EQ("TEXT", oc["order_id"]);
    EXPECT_EQ("REAL", oc["total"]);
    EXPECT_EQ("BOOLEAN", oc["paid"]);
    EXPECT_EQ("INTEGER", oc["item_count"]);
    EXPECT_EQ("REAL", oc["shipping_cost"]);
    EXPECT_EQ("TEXT", oc["products"]);
    EXPECT_EQ("TIMESTAMP", oc["received_at"]);
    EXPECT_EQ(
        (Rows{{"ORD-2024-12345", "129.98", "1", "2", "UPS", "5.99", "real", "integer", "integer"}}),
        q("SELECT order_id, total, paid, item_count, shipping_method, shipping_cost, "
          "typeof(total), typeof(paid), typeof(item_count) FROM order_completed"));
    EXPECT_EQ("[{\"product_id\":\"SKU-12345\",\"price\":49.99},{\"product_id\":\"SKU-67890\","
              "\"price\":79.99}]",
              one("SELECT products FROM order_completed"));
    EXPECT_EQ("SKU-12345", one("SELECT json_extract(products, '$[0].product_id') FROM "
                               "order_completed"));
    EXPECT_EQ("SKU-67890", one("SELECT json_extract(products, '$[1].product_id') FROM "
                               "order_completed"));

    // identifies: traits as columns, camelCase to snake_case, nested traits flattened
    EXPECT_EQ((Rows{{"m-identify", "u1", "ada@example.com", "pro", "Acme", "40",
                     "2024-01-02T03:04:05Z", "analytics-node"}}),
              q("SELECT id, user_id, email, plan, company_name, company_employee_count, "
                "created_at, context_library_name FROM identifies"));
    // users: id is the user id, with the traits
    EXPECT_EQ((Rows{{"u1", "ada@example.com", "pro", "Acme"}}),
              q("SELECT id, email, plan, company_name FROM users"));
    EXPECT_EQ(0u, columns("users").count("user_id"));
    // pages and screens: name, category, properties
    EXPECT_EQ((Rows{{"m-page", "anon-2", "NULL", "Product Detail", "Products", "/p/1", "49.99"}}),
              q("SELECT id, anonymous_id, user_id, name, category, path, price FROM pages"));
    EXPECT_EQ((Rows{{"m-screen", "u2", "Home", "NULL", "b"}}),
              q("SELECT id, user_id, name, category, variant FROM screens"));
    // groups: group_id and traits
    EXPECT_EQ((Rows{{"m-group", "g-acme", "Acme", "40", "ent", "integer"}}),
              q("SELECT id, group_id, name, employee_count, plan, typeof(employee_count) FROM "
                "groups"));
    // aliases
    EXPECT_EQ((Rows{{"m-alias", "u1", "anon-1"}}),
              q("SELECT id, user_id, previous_id FROM aliases"));
    // WAL mode
    EXPECT_EQ("wal", one("PRAGMA journal_mode"));
}

TEST_F(SqliteWarehouse, OneTablePerTrackEventInSnakeCase)
{
    std::vector<V> evs;
    const char *names[] = {"Order Completed", "Product Added", "Signed Up",
                           "signed_up",       "SignedUp",      "Feature Activated"};
    int n = 0;
    for (const char *name : names)
        evs.push_back(V::obj({{"type", "track"},
                              {"event", name},
                              {"messageId", "e" + std::to_string(n++)},
                              {"userId", "u"},
                              {"properties", V::obj({{"n", n}})}}));
    load(evs);
    EXPECT_EQ((Rows{{"feature_activated"},
                    {"order_completed"},
                    {"product_added"},
                    {"signed_up"},
                    {"tracks"}}),
              q("SELECT name FROM sqlite_schema WHERE type='table' ORDER BY name"));
    EXPECT_EQ("3", one("SELECT count(*) FROM signed_up"));
    EXPECT_EQ((Rows{{"Signed Up"}, {"SignedUp"}, {"signed_up"}}),
              q("SELECT event_text FROM signed_up ORDER BY event_text"));
    EXPECT_EQ("6", one("SELECT count(*) FROM tracks"));
}

TEST_F(SqliteWarehouse, UsersAreUpsertedWithTheLatestTraits)
{
    auto ident = [](const std::string &id, const std::string &at, V traits) {
        return V::obj({{"type", "identify"},
                       {"messageId", id},
                       {"userId", "u1"},
                       {"receivedAt", at},
                       {"traits", traits}});
    };
    load({ident("i1", "2026-11-28T10:00:00Z",
                V::obj({{"email", "old@example.com"}, {"plan", "free"}}))});
    load({ident("i2", "2026-11-28T11:00:00Z", V::obj({{"plan", "pro"}, {"seats", 5}}))});
    EXPECT_EQ((Rows{{"u1", "old@example.com", "pro", "5", "2026-11-28T11:00:00.000Z"}}),
              q("SELECT id, email, plan, seats, received_at FROM users"));
    // An older identify arriving late fills what is empty and changes nothing newer.
    load({ident("i0", "2026-11-28T09:00:00Z",
                V::obj({{"plan", "trial"}, {"email", "older@example.com"}, {"age", 30}}))});
    EXPECT_EQ((Rows{{"u1", "old@example.com", "pro", "5", "30", "2026-11-28T11:00:00.000Z"}}),
              q("SELECT id, email, plan, seats, age, received_at FROM users"));
    // Two identifies for one user in one batch: the later one wins.
    load({ident("i3", "2026-11-28T12:00:00Z", V::obj({{"plan", "team"}})),
          ident("i4", "2026-11-28T12:00:01Z", V::obj({{"plan", "enterprise"}}))});
    EXPECT_EQ("enterprise", one("SELECT plan FROM users"));
    EXPECT_EQ("1", one("SELECT count(*) FROM users"));
    EXPECT_EQ("5", one("SELECT count(*) FROM identifies"));
    // identify without userId: identifies only
    load({V::obj({{"type", "identify"},
                  {"messageId", "i5"},
                  {"anonymousId", "a9"},
                  {"traits", V::obj({{"plan", "x"}})}})});
    EXPECT_EQ("1", one("SELECT count(*) FROM users"));
    EXPECT_EQ("6", one("SELECT count(*) FROM identifies"));
}

TEST_F(SqliteWarehouse, LoadingTheSameBatchTwiceAddsNoRow)
{
    std::vector<V> evs;
    for (int i = 0; i < 50; i++)
        evs.push_back(order_completed("dup-" + std::to_string(i), "u" + std::to_string(i % 3)));
    evs.push_back(V::obj({{"type", "identify"},
                          {"messageId", "dup-id"},
                          {"userId", "u1"},
                          {"traits", V::obj({{"plan", "pro"}})}}));
    // an event without messageId gets an id from its bytes: still idempotent
    evs.push_back(V::obj({{"type", "page"}, {"anonymousId", "a"}, {"name", "Home"}}));
    sb_warehouse_stats a = load(evs);
    EXPECT_EQ(52u, a.events);
    EXPECT_EQ(0u, a.rows_duplicate);
    auto snapshot = [&] {
        return q("SELECT (SELECT count(*) FROM tracks), (SELECT count(*) FROM order_completed), "
                 "(SELECT count(*) FROM identifies), (SELECT count(*) FROM users), (SELECT "
                 "count(*) FROM pages), (SELECT group_concat(id) FROM pages)");
    };
    Rows before = snapshot();
    sb_warehouse_stats b = load(evs);
    EXPECT_EQ(52u, b.events);
    EXPECT_EQ(1u, b.rows_inserted); // the users upsert
    EXPECT_EQ(102u, b.rows_duplicate);
    EXPECT_EQ(before, snapshot());
    EXPECT_EQ("50", before[0][0]);
    EXPECT_EQ(0u, before[0][5].find("sb-"));
    // duplicates inside one batch too
    sb_warehouse_stats c = load({order_completed("x", "u"), order_completed("x", "u")});
    EXPECT_EQ(1u, c.rows_duplicate / 2);
    EXPECT_EQ("1", one("SELECT count(*) FROM tracks WHERE id='x'"));
}

TEST_F(SqliteWarehouse, NewPropertiesAddColumnsTypedByTheirFirstValue)
{
    auto ev = [](const std::string &id, V props) {
        return V::obj({{"type", "track"},
                       {"event", "Form Submitted"},
                       {"messageId", id},
                       {"userId", "u"},
                       {"properties", props}});
    };
    sb_warehouse_stats s1 = load({ev("1", V::obj({{"fields", 5}}))});
    EXPECT_EQ(2u, s1.tables_created); // tracks and form_submitted
    sb_warehouse_stats s2 =
        load({ev("2", V::obj({{"fields", 6}, {"form_name", "Contact"}, {"ratio", 0.5}}))});
    EXPECT_EQ(2u, s2.columns_added);
    EXPECT_EQ(0u, s2.tables_created);
    auto cols = columns("form_submitted");
    EXPECT_EQ("INTEGER", cols["fields"]);
    EXPECT_EQ("TEXT", cols["form_name"]);
    EXPECT_EQ("REAL", cols["ratio"]);
    // later values are converted to the column's type, or stored as NULL (and counted)
    sb_warehouse_stats s3 =
        load({ev("3", V::obj({{"fields", "7"}, {"form_name", 42}, {"ratio", 2}})),
              ev("4", V::obj({{"fields", "seven"}, {"form_name", true}})),
              ev("5", V::obj({{"fields", 8.0}, {"ratio", "0.25"}}))});
    EXPECT_EQ(1u, s3.fields_dropped);
    EXPECT_EQ((Rows{{"1", "5", "NULL", "NULL"},
                    {"2", "6", "Contact", "0.5"},
                    {"3", "7", "42", "2.0"},
                    {"4", "NULL", "true", "NULL"},
                    {"5", "8", "NULL", "0.25"}}),
              q("SELECT id, fields, form_name, ratio FROM form_submitted ORDER BY id"));
    EXPECT_EQ("integer", one("SELECT typeof(fields) FROM form_submitted WHERE id='3'"));
    // the catalogue survives a reopen: types are read back from the database
    sb_warehouse_close(w);
    w = nullptr;
    open();
    load({ev("6", V::obj({{"fields", "9"}, {"extra", V::arr({1, "two"})}}))});
    EXPECT_EQ((Rows{{"9", "integer", "[1,\"two\"]"}}),
              q("SELECT fields, typeof(fields), extra FROM form_submitted WHERE id='6'"));
}

TEST_F(SqliteWarehouse, HostileNamesCanNeitherBreakNorInject)
{
    std::string longname(500, 'x');
    std::vector<V> evs = {
        V::obj({{"type", "track"},
                {"event", "\"; DROP TABLE tracks; --"},
                {"messageId", "h1"},
                {"userId", "u"},
                {"properties", V::obj({{"\"); DROP TABLE users; --", "a"},
                                       {"x\" TEXT); DELETE FROM tracks; --", "b"},
                                       {"select", "c"},
                                       {"order", "d"},
                                       {"group", "e"},
                                       {"", "empty"},
                                       {"€€", "euro"},
                                       {"1st", "first"},
                                       {longname, "long1"},
                                       {longname + "y", "long2"},
                                       {"ctid", "sys"},
                                       {"userId", "spoofed"},
                                       {"id", "spoofed"},
                                       {"received_at", "spoofed"},
                                       {"'", "quote"},
                                       {"a\0b", "nul"}})}}),
        V::obj({{"type", "track"}, {"event", "Tracks"}, {"messageId", "h2"}, {"userId", "u"}}),
        V::obj(
            {{"type", "track"}, {"event", "sqlite_master"}, {"messageId", "h3"}, {"userId", "u"}}),
        V::obj({{"type", "track"}, {"event", "users"}, {"messageId", "h4"}, {"userId", "u"}}),
        V::obj({{"type", "track"}, {"event", longname}, {"messageId", "h5"}, {"userId", "u"}}),
        V::obj({{"type", "track"}, {"event", "日本語"}, {"messageId", "h6"}, {"userId", "u"}}),
        V::obj({{"type", "identify"},
                {"messageId", "h7"},
                {"userId", "u\"); DROP TABLE users;"},
                {"traits", V::obj({{"x\"=1; DELETE FROM users; --", "v"}})}}),
    };
    // a key with a NUL byte
    evs[0].o[4].second.o.back().first = std::string("a\0b", 3);
    sb_warehouse_stats st = load(evs);
    EXPECT_EQ(7u, st.events);
    EXPECT_EQ((Rows{{"u\"); DROP TABLE users;", "v"}}),
              q("SELECT id, x_1_delete_from_users FROM users"));
    Rows tables = q("SELECT name FROM sqlite_schema WHERE type='table' ORDER BY name");
    std::vector<std::string> names;
    for (auto &r : tables)
        names.push_back(r[0]);
    // every table is still there and the hostile event got its own safe table
    EXPECT_NE(names.end(), std::find(names.begin(), names.end(), "tracks"));
    EXPECT_NE(names.end(), std::find(names.begin(), names.end(), "drop_table_tracks"));
    EXPECT_NE(names.end(), std::find(names.begin(), names.end(), "_tracks"));
    EXPECT_NE(names.end(), std::find(names.begin(), names.end(), "_sqlite_master"));
    EXPECT_NE(names.end(), std::find(names.begin(), names.end(), "_users"));
    for (auto &n : names) {
        EXPECT_LE(n.size(), 63u) << n;
        EXPECT_EQ(std::string::npos, n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_"))
            << n;
    }
    EXPECT_EQ("6", one("SELECT count(*) FROM tracks"));
    auto cols = columns("drop_table_tracks");
    for (auto &c : cols) {
        EXPECT_LE(c.first.size(), 63u) << c.first;
        EXPECT_EQ(std::string::npos,
                  c.first.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_"))
            << c.first;
    }
    EXPECT_EQ((Rows{{"a", "b", "c", "d", "e", "first", "sys", "u", "h1"}}),
              q("SELECT drop_table_users, x_text_delete_from_tracks, \"select\", \"order\", "
                "\"group\", _1st, _ctid, user_id, id FROM drop_table_tracks"));
    // two 500-byte names stay two columns, each cut to 63 bytes with a hash
    int longcols = 0;
    for (auto &c : cols)
        longcols += c.first.compare(0, 10, "xxxxxxxxxx") == 0;
    EXPECT_EQ(2, longcols);
    EXPECT_NE("spoofed", one("SELECT received_at FROM drop_table_tracks"));
    // the 500-char event name gets a table cut to 63 bytes
    EXPECT_EQ("1", one("SELECT count(*) FROM sqlite_schema WHERE type='table' AND name LIKE "
                       "'xxxxxxxxxx%' AND length(name)=63"));
    // a name with no ASCII letters gets a hashed table of its own
    EXPECT_EQ("日本語", one("SELECT event_text FROM tracks WHERE id='h6'"));
}

TEST_F(SqliteWarehouse, CollisionsResolveTheSameWayWhateverTheKeyOrder)
{
    auto ev = [](const std::string &id, Obj props) {
        return V::obj({{"type", "track"},
                       {"event", "Clash"},
                       {"messageId", id},
                       {"userId", "u"},
                       {"properties", V::obj(props)}});
    };
    Obj a = {{"userName", "camel"},
             {"user_name", "exact"},
             {"A B", "space"},
             {"a-b", "dash"},
             {"nest", V::obj({{"x", "nested"}})},
             {"nest_x", "flat"}};
    Obj b(a.rbegin(), a.rend());
    load({ev("1", a), ev("2", b)});
    // nest.x and nest_x both spell nest_x exactly: the smaller key path wins (compared segment
    // by segment, length first), so the nested one, in either order
    EXPECT_EQ((Rows{{"1", "exact", "space", "nested"}, {"2", "exact", "space", "nested"}}),
              q("SELECT id, user_name, a_b, nest_x FROM clash ORDER BY id"));
    // a property named like a context column loses to the context
    load({V::obj({{"type", "track"},
                  {"event", "Clash"},
                  {"messageId", "3"},
                  {"userId", "u"},
                  {"context", V::obj({{"ip", "1.2.3.4"}})},
                  {"properties", V::obj({{"context_ip", "spoof"}})}})});
    EXPECT_EQ("1.2.3.4", one("SELECT context_ip FROM clash WHERE id='3'"));
}

TEST_F(SqliteWarehouse, NullsMissingFieldsAndBadEvents)
{
    std::vector<std::string> raw = {
        mpv(V::obj({{"type", "track"},
                    {"event", "Sparse"},
                    {"anonymousId", "a"},
                    {"timestamp", "not a time"},
                    {"sentAt", V()},
                    {"properties", V::obj({{"gone", V()}, {"kept", 1}, {"empty", V::obj({})}})},
                    {"context", "not a map"}})),
        mpv(V::obj({{"type", "page"}, {"messageId", "p-min"}})),
        mpv(V::obj({{"type", "track"}, {"messageId", "no-event"}, {"userId", "u"}})),
        mpv(V::obj({{"type", "purchase"}, {"messageId", "bad-type"}})),
        mpv(V::arr({1, 2})),
        std::string("\xc1\x00\xff", 3),
        std::string("\xdf\xff\xff\xff\xff", 5), // a map claiming 4 G entries
        mpv(V::obj({{"type", "alias"}, {"messageId", "al"}, {"userId", 42}})),
        mpv(V::obj({{"type", "group"}, {"messageId", "gr"}, {"userId", "u"}, {"traits", 7}})),
    };
    sb_warehouse_stats st = load_raw(raw);
    EXPECT_EQ(4u, st.events);
    EXPECT_EQ(5u, st.rejected);
    EXPECT_NE(std::string::npos, std::string(sb_warehouse_errmsg(w)).find("rejected"));
    EXPECT_EQ((Rows{{"NULL", "NULL", "NULL", "a", "1"}}),
              q("SELECT timestamp, sent_at, user_id, anonymous_id, kept FROM sparse"));
    EXPECT_EQ(0u, columns("sparse").count("gone"));
    EXPECT_NE("NULL", one("SELECT received_at FROM sparse")); // set at load time
    EXPECT_EQ((Rows{{"p-min", "NULL", "NULL", "NULL"}}),
              q("SELECT id, name, user_id, anonymous_id FROM pages"));
    EXPECT_EQ((Rows{{"42", "NULL"}}), q("SELECT user_id, previous_id FROM aliases"));
    EXPECT_EQ("NULL", one("SELECT group_id FROM groups"));
    // invalid UTF-8 is repaired, NUL bytes removed
    load({V::obj({{"type", "page"}, {"messageId", "utf"}, {"name", std::string("a\xff\0b", 4)}})});
    EXPECT_EQ("a\xef\xbf\xbd"
              "b",
              one("SELECT name FROM pages WHERE id='utf'"));
}

TEST_F(SqliteWarehouse, ATenThousandEventBatch)
{
    std::vector<std::string> raw;
    for (int i = 0; i < 10000; i++) {
        std::string id = "big-" + std::to_string(i);
        switch (i % 4) {
        case 0:
            raw.push_back(mpv(order_completed(id, "u" + std::to_string(i % 100))));
            break;
        case 1:
            raw.push_back(mpv(V::obj({{"type", "page"},
                                      {"messageId", id},
                                      {"anonymousId", "a"},
                                      {"name", "Home"},
                                      {"context", ctx()}})));
            break;
        case 2:
            raw.push_back(mpv(V::obj({{"type", "identify"},
                                      {"messageId", id},
                                      {"userId", "u" + std::to_string(i % 100)},
                                      {"traits", V::obj({{"n", i}})}})));
            break;
        default:
            raw.push_back(mpv(V::obj({{"type", "track"},
                                      {"event", "Product Added"},
                                      {"messageId", id},
                                      {"userId", "u"},
                                      {"properties", V::obj({{"price", 49.99}, {"q", i}})}})));
        }
    }
    auto t0 = std::chrono::steady_clock::now();
    sb_warehouse_stats st = load_raw(raw);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(10000u, st.events);
    EXPECT_EQ((Rows{{"5000", "2500", "2500", "2500", "25", "2500"}}),
              q("SELECT (SELECT count(*) FROM tracks), (SELECT count(*) FROM order_completed), "
                "(SELECT count(*) FROM pages), (SELECT count(*) FROM identifies), (SELECT "
                "count(*) FROM users), (SELECT count(*) FROM product_added)"));
    // the users row holds the last n each user was given
    EXPECT_EQ("9998", one("SELECT n FROM users WHERE id='u98'"));
    EXPECT_LT(s, 10.0);
}

TEST_F(SqliteWarehouse, ALockedDatabaseFailsTheWholeBatchAndTheRetryLoadsIt)
{
    sb_warehouse_close(w);
    w = nullptr;
    sb_warehouse_options opt{};
    opt.busy_timeout_ms = 50;
    open(&opt);
    load({order_completed("first", "u")});
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr));
    std::vector<std::string> raw = {mpv(order_completed("second", "u")),
                                    mpv(V::obj({{"type", "track"},
                                                {"event", "New One"},
                                                {"messageId", "third"},
                                                {"userId", "u"},
                                                {"properties", V::obj({{"z", 1}})}}))};
    load_raw(raw, -EBUSY);
    EXPECT_NE(std::string::npos, std::string(sb_warehouse_errmsg(w)).find("sqlite"));
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr));
    EXPECT_EQ("1", one("SELECT count(*) FROM tracks"));
    sb_warehouse_stats st = load_raw(raw);
    EXPECT_EQ(2u, st.events);
    EXPECT_EQ("3", one("SELECT count(*) FROM tracks"));
    EXPECT_EQ("1", one("SELECT z FROM new_one"));
}

TEST_F(SqliteWarehouse, ColumnCapDropsNewPropertiesOnly)
{
    sb_warehouse_close(w);
    w = nullptr;
    sb_warehouse_options opt{};
    opt.max_columns = 12;
    open(&opt);
    Obj props;
    for (int i = 0; i < 30; i++)
        props.push_back({"p" + std::to_string(i), i});
    sb_warehouse_stats st = load({V::obj({{"type", "track"},
                                          {"event", "Wide"},
                                          {"messageId", "w"},
                                          {"userId", "u"},
                                          {"properties", V::obj(props)}})});
    EXPECT_EQ(1u, st.events);
    EXPECT_EQ(12u, columns("wide").size());
    EXPECT_GE(st.fields_dropped, 20u);
}

TEST(SqliteWarehouseOpen, BadPathsGiveAnErrorNamingTheCause)
{
    sb_warehouse *w = reinterpret_cast<sb_warehouse *>(1);
    char err[256] = "";
    EXPECT_GT(0, sb_warehouse_sqlite_open(&w, "/nonexistent-dir/x.db", nullptr, err, sizeof(err)));
    EXPECT_EQ(nullptr, w);
    EXPECT_NE(std::string::npos, std::string(err).find("sqlite"));
    char tmpl[] = "/tmp/sbwh-notdb-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(4096, write(fd, std::string(4096, 'z').data(), 4096));
    close(fd);
    EXPECT_EQ(-EIO, sb_warehouse_sqlite_open(&w, tmpl, nullptr, err, sizeof(err)));
    EXPECT_NE(std::string::npos, std::string(err).find("not a database")) << err;
    unlink(tmpl);
    EXPECT_EQ(-EINVAL, sb_warehouse_load(nullptr, nullptr, 0, nullptr));
    sb_warehouse_close(nullptr);
}

} // namespace
