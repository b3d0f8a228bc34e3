// The PostgreSQL warehouse against a real, throwaway PostgreSQL 15 server started by the test
// (tests/warehouse/pg-throwaway): rows and types per call type, idempotent COPY loads, users
// upserts, schema evolution, hostile names and schema, reconnection after a server restart.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

extern "C" {
#include "outputs/warehouse.h"
}
#include "mpv.h"

namespace
{

using Rows = std::vector<std::vector<std::string>>;

std::string g_dir, g_port;
const std::string kScript = std::string(SEGBUS_SOURCE_DIR) + "/tests/warehouse/pg-throwaway";

std::string run(const std::string &cmd, int *status)
{
    std::string out;
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) {
        *status = -1;
        return out;
    }
    char buf[256];
    while (fgets(buf, sizeof(buf), p))
        out += buf;
    *status = pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
        out.pop_back();
    return out;
}

// One server for the whole program; a server that cannot start fails every test.
class PgServer : public ::testing::Environment
{
  public:
    void SetUp() override
    {
        char tmpl[] = "/tmp/sbpg-XXXXXX";
        ASSERT_NE(nullptr, mkdtemp(tmpl));
        g_dir = tmpl;
        int status;
        g_port = run("'" + kScript + "' start '" + g_dir + "' fast", &status);
        ASSERT_EQ(0, status) << "PostgreSQL did not start";
        ASSERT_FALSE(g_port.empty());
    }
    void TearDown() override
    {
        int status;
        run("'" + kScript + "' stop '" + g_dir + "'", &status);
        EXPECT_EQ(0, status);
    }
};
::testing::Environment *const g_env = ::testing::AddGlobalTestEnvironment(new PgServer);

std::string conninfo()
{
    return "host=127.0.0.1 port=" + g_port + " user=postgres dbname=postgres";
}

V ctx()
{
    return V::obj({{"library", V::obj({{"name", "analytics-node"}, {"version", "2.2.1"}})},
                   {"page", V::obj({{"url", "https://shop.example/cart"}})}});
}

V order(const std::string &id, const std::string &user)
{
    return V::obj(
        {{"type", "track"},
         {"event", "Order Completed"},
         {"messageId", id},
         {"userId", user},
         {"timestamp", "2026-11-28T10:00:00.123Z"},
         {"receivedAt", "2026-11-28T10:00:02.5+01:00"},
         {"context", ctx()},
         {"properties", V::obj({{"order_id", "ORD-1"},
                                {"total", 129.98},
                                {"paid", true},
                                {"itemCount", 2},
                                {"note", "tab\there\nnewline \\ backslash"},
                                {"products", V::arr({V::obj({{"product_id", "SKU-1"}})})}})}});
}

class PgWarehouse : public ::testing::Test
{
  protected:
    std::string schema;
    sb_warehouse *w = nullptr;
    PGconn *db = nullptr;

    void SetUp() override
    {
        ASSERT_FALSE(g_port.empty()) << "no PostgreSQL server";
        schema =
            std::string("t_") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
        for (auto &c : schema)
            c = (char)tolower(c);
        open();
        db = PQconnectdb(conninfo().c_str());
        ASSERT_EQ(CONNECTION_OK, PQstatus(db)) << PQerrorMessage(db);
    }
    void TearDown() override
    {
        sb_warehouse_close(w);
        PQfinish(db);
    }
    void open(const std::string &sch = "")
    {
        sb_warehouse_options opt{};
        std::string s = sch.empty() ? schema : sch;
        opt.schema = s.c_str();
        char err[512] = "";
        ASSERT_EQ(0, sb_warehouse_pg_open(&w, conninfo().c_str(), &opt, err, sizeof(err))) << err;
    }
    sb_warehouse_stats load(const std::vector<V> &evs, int want = 0)
    {
        std::vector<std::string> bytes;
        for (auto &e : evs)
            bytes.push_back(mpv(e));
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
        PGresult *r = PQexec(db, sql.c_str());
        EXPECT_EQ(PGRES_TUPLES_OK, PQresultStatus(r)) << sql << ": " << PQresultErrorMessage(r);
        for (int i = 0; i < PQntuples(r); i++) {
            std::vector<std::string> row;
            for (int j = 0; j < PQnfields(r); j++)
                row.push_back(PQgetisnull(r, i, j) ? "NULL" : PQgetvalue(r, i, j));
            rows.push_back(row);
        }
        PQclear(r);
        return rows;
    }
    std::string one(const std::string &sql)
    {
        Rows r = q(sql);
        return r.empty() ? "<no row>" : r[0][0];
    }
    std::string t(const std::string &table)
    {
        return "\"" + schema + "\"." + table;
    }
    std::map<std::string, std::string> columns(const std::string &table)
    {
        std::map<std::string, std::string> m;
        for (auto &r : q("SELECT column_name, data_type FROM information_schema.columns WHERE "
                         "table_schema='" +
                         schema + "' AND table_name='" + table + "'"))
            m[r[0]] = r[1];
        return m;
    }
};

TEST_F(PgWarehouse, EachCallTypeLandsWithPostgresTypes)
{
    sb_warehouse_stats st = load({
        order("m1", "u1"),
        V::obj({{"type", "identify"},
                {"messageId", "m2"},
                {"userId", "u1"},
                {"traits", V::obj({{"email", "ada@example.com"},
                                   {"company", V::obj({{"employee_count", 40}})}})}}),
        V::obj({{"type", "page"},
                {"messageId", "m3"},
                {"anonymousId", "a"},
                {"name", "Home"},
                {"properties", V::obj({{"path", "/"}})}}),
        V::obj({{"type", "screen"}, {"messageId", "m4"}, {"userId", "u2"}, {"name", "Main"}}),
        V::obj({{"type", "group"},
                {"messageId", "m5"},
                {"userId", "u1"},
                {"groupId", "g1"},
                {"traits", V::obj({{"plan", "ent"}})}}),
        V::obj({{"type", "alias"}, {"messageId", "m6"}, {"userId", "u1"}, {"previousId", "a"}}),
    });
    EXPECT_EQ(6u, st.events);
    EXPECT_EQ(8u, st.rows_inserted);
    auto oc = columns("order_completed");
    EXPECT_EQ("text", oc["id"]);
    EXPECT_EQ("timestamp with time zone", oc["received_at"]);
    EXPECT_EQ("double precision", oc["total"]);
    EXPECT_EQ("boolean", oc["paid"]);
    EXPECT_EQ("bigint", oc["item_count"]);
    EXPECT_EQ("text", oc["products"]);
    EXPECT_EQ((Rows{{"m1", "order_completed", "Order Completed", "129.98", "t", "2",
                     "tab\there\nnewline \\ backslash", "SKU-1", "2026-11-28 09:00:02.5+00",
                     "analytics-node"}}),
              q("SET TIME ZONE 'UTC'; SELECT id, event, event_text, total, paid, item_count, note, "
                "products::json->0->>'product_id', received_at, context_library_name FROM " +
                t("order_completed")));
    EXPECT_EQ("1", one("SELECT count(*) FROM " + t("tracks")));
    EXPECT_EQ((Rows{{"u1", "ada@example.com", "40"}}),
              q("SELECT id, email, company_employee_count FROM " + t("users")));
    EXPECT_EQ((Rows{{"m3", "a", "Home", "/"}}),
              q("SELECT id, anonymous_id, name, path FROM " + t("pages")));
    EXPECT_EQ((Rows{{"Main", "NULL"}}), q("SELECT name, category FROM " + t("screens")));
    EXPECT_EQ((Rows{{"g1", "ent"}}), q("SELECT group_id, plan FROM " + t("groups")));
    EXPECT_EQ((Rows{{"u1", "a"}}), q("SELECT user_id, previous_id FROM " + t("aliases")));
    EXPECT_EQ("1", one("SELECT count(*) FROM " + t("identifies")));
}

TEST_F(PgWarehouse, ReloadingABatchAddsNoRow)
{
    std::vector<V> evs;
    for (int i = 0; i < 100; i++)
        evs.push_back(order("r" + std::to_string(i), "u"));
    evs.push_back(order("r5", "u")); // a duplicate inside the batch
    sb_warehouse_stats a = load(evs);
    EXPECT_EQ(101u, a.events);
    EXPECT_EQ(200u, a.rows_inserted);
    EXPECT_EQ(2u, a.rows_duplicate);
    sb_warehouse_stats b = load(evs);
    EXPECT_EQ(0u, b.rows_inserted);
    EXPECT_EQ(202u, b.rows_duplicate);
    EXPECT_EQ("100", one("SELECT count(*) FROM " + t("tracks")));
    EXPECT_EQ("100", one("SELECT count(*) FROM " + t("order_completed")));
}

// A batch that repeats only some loaded ids (re-batched after a restart) makes the direct COPY
// fail on its first loaded id; the savepoint undoes that COPY and the staging path loads exactly
// the new rows, in every table of the batch, with the stats of that path.
TEST_F(PgWarehouse, APartlyLoadedBatchAddsOnlyItsNewRows)
{
    std::vector<V> first, second;
    for (int i = 0; i < 50; i++)
        first.push_back(order("p" + std::to_string(i), "u"));
    load(first);
    for (int i = 25; i < 75; i++) // 25 loaded, 25 new
        second.push_back(order("p" + std::to_string(i), "u"));
    second.push_back(V::obj({{"type", "page"}, {"messageId", "pg1"}, {"anonymousId", "a"}}));
    sb_warehouse_stats st = load(second);
    EXPECT_EQ(51u, st.events);
    EXPECT_EQ(51u, st.rows_inserted);
    EXPECT_EQ(50u, st.rows_duplicate);
    EXPECT_EQ((Rows{{"75", "75", "1"}}),
              q("SELECT (SELECT count(*) FROM " + t("tracks") + "), (SELECT count(*) FROM " +
                t("order_completed") + "), (SELECT count(*) FROM " + t("pages") + ")"));
    EXPECT_STREQ("", sb_warehouse_errmsg(w)); // the expected unique violation is not an error
}

// Tables made by someone else may have other types (integer, varchar, timestamp without time
// zone) than the loader's (bigint, text, timestamptz): binary COPY needs exact types, so such a
// table goes through the staging table, whose INSERT ... SELECT casts.
TEST_F(PgWarehouse, ATableWithOtherColumnTypesIsLoadedThroughCasts)
{
    PQclear(PQexec(db, ("CREATE SCHEMA \"" + schema + "\"").c_str()));
    PGresult *r = PQexec(db, ("CREATE TABLE " + t("signed_up") +
                              " (id varchar(100) PRIMARY KEY, seats integer, plan varchar(20), "
                              "\"timestamp\" timestamp without time zone)")
                                 .c_str());
    ASSERT_EQ(PGRES_COMMAND_OK, PQresultStatus(r)) << PQresultErrorMessage(r);
    PQclear(r);
    auto ev = [](const std::string &id, int seats) {
        return V::obj({{"type", "track"},
                       {"event", "Signed Up"},
                       {"messageId", id},
                       {"userId", "u"},
                       {"timestamp", "2026-11-28T10:00:00.123Z"},
                       {"properties", V::obj({{"seats", seats}, {"plan", "pro"}})}});
    };
    sb_warehouse_stats st = load({ev("s1", 3), ev("s2", 4)});
    EXPECT_EQ(4u, st.rows_inserted);
    EXPECT_EQ((Rows{{"s1", "3", "pro"}, {"s2", "4", "pro"}}),
              q("SELECT id, seats, plan FROM " + t("signed_up") + " ORDER BY id"));
    EXPECT_EQ("integer", columns("signed_up")["seats"]);
    st = load({ev("s2", 4), ev("s3", 5)});
    EXPECT_EQ(2u, st.rows_inserted);
    EXPECT_EQ(2u, st.rows_duplicate);
    EXPECT_EQ("3", one("SELECT count(*) FROM " + t("signed_up")));
}

TEST_F(PgWarehouse, UsersAreUpsertedWithTheLatestTraits)
{
    auto ident = [](const std::string &id, const std::string &at, V traits) {
        return V::obj({{"type", "identify"},
                       {"messageId", id},
                       {"userId", "u1"},
                       {"receivedAt", at},
                       {"traits", traits}});
    };
    load({ident("i1", "2026-11-28T10:00:00Z", V::obj({{"email", "old@x"}, {"plan", "free"}}))});
    load({ident("i2", "2026-11-28T11:00:00Z", V::obj({{"plan", "pro"}, {"seats", 5}}))});
    EXPECT_EQ((Rows{{"old@x", "pro", "5"}}), q("SELECT email, plan, seats FROM " + t("users")));
    // older and newer in one batch, in the wrong order, plus an identify without a userId
    load({ident("i4", "2026-11-28T13:00:00Z", V::obj({{"plan", "enterprise"}})),
          ident("i3", "2026-11-28T12:00:00Z", V::obj({{"plan", "team"}, {"age", 30}})),
          ident("i0", "2026-11-28T09:00:00Z", V::obj({{"email", "older@x"}, {"city", "Oslo"}})),
          V::obj({{"type", "identify"}, {"messageId", "i9"}, {"anonymousId", "a"}})});
    EXPECT_EQ((Rows{{"u1", "old@x", "enterprise", "5", "30", "Oslo"}}),
              q("SELECT id, email, plan, seats, age, city FROM " + t("users")));
    EXPECT_EQ("6", one("SELECT count(*) FROM " + t("identifies")));
    // a resent old batch changes nothing
    load({ident("i1", "2026-11-28T10:00:00Z", V::obj({{"email", "old@x"}, {"plan", "free"}}))});
    EXPECT_EQ("enterprise", one("SELECT plan FROM " + t("users")));
}

TEST_F(PgWarehouse, SchemaEvolvesAndValuesAreCoerced)
{
    auto ev = [](const std::string &id, V props) {
        return V::obj({{"type", "track"},
                       {"event", "Form Submitted"},
                       {"messageId", id},
                       {"userId", "u"},
                       {"properties", props}});
    };
    load({ev("1", V::obj({{"fields", 5}}))});
    sb_warehouse_stats s = load({ev("2", V::obj({{"fields", "6"}, {"name", "Contact"}})),
                                 ev("3", V::obj({{"fields", "six"}, {"ratio", 0.5}}))});
    EXPECT_EQ(2u, s.columns_added);
    EXPECT_EQ(1u, s.fields_dropped);
    EXPECT_EQ((Rows{{"1", "5", "NULL", "NULL"},
                    {"2", "6", "Contact", "NULL"},
                    {"3", "NULL", "NULL", "0.5"}}),
              q("SELECT id, fields, name, ratio FROM " + t("form_submitted") + " ORDER BY id"));
    // a new session learns the columns from the server
    sb_warehouse_close(w);
    w = nullptr;
    open();
    load({ev("4", V::obj({{"fields", 7}, {"extra", true}}))});
    EXPECT_EQ("boolean", columns("form_submitted")["extra"]);
    EXPECT_EQ("7", one("SELECT fields FROM " + t("form_submitted") + " WHERE id='4'"));
}

TEST_F(PgWarehouse, HostileNamesAndSchemaAreQuotedNeverExecuted)
{
    sb_warehouse_close(w);
    w = nullptr;
    schema = "we\"ird; DROP SCHEMA public CASCADE; --";
    open();
    load({V::obj({{"type", "track"},
                  {"event", "\"; DROP TABLE tracks; --"},
                  {"messageId", "h1"},
                  {"userId", "u"},
                  {"properties", V::obj({{"\"); DROP TABLE users; --", "a"},
                                         {"select", "b"},
                                         {"xmin", "c"},
                                         {"ctid", "d"},
                                         {std::string(200, 'y'), "long"}})}}),
          V::obj({{"type", "track"}, {"event", "users"}, {"messageId", "h2"}, {"userId", "u"}})});
    std::string s = "\"we\"\"ird; DROP SCHEMA public CASCADE; --\"";
    EXPECT_EQ(
        (Rows{{"a", "b", "c", "d"}}),
        q("SELECT drop_table_users, \"select\", _xmin, _ctid FROM " + s + ".drop_table_tracks"));
    EXPECT_EQ("2", one("SELECT count(*) FROM " + s + ".tracks"));
    EXPECT_EQ("1", one("SELECT count(*) FROM " + s + "._users"));
    EXPECT_EQ("1", one("SELECT count(*) FROM information_schema.schemata WHERE "
                       "schema_name='public'"));
}

TEST_F(PgWarehouse, ATenThousandEventBatch)
{
    std::vector<V> evs;
    for (int i = 0; i < 10000; i++) {
        std::string id = "b" + std::to_string(i);
        if (i % 3 == 0)
            evs.push_back(order(id, "u" + std::to_string(i % 50)));
        else if (i % 3 == 1)
            evs.push_back(V::obj({{"type", "page"},
                                  {"messageId", id},
                                  {"anonymousId", "a"},
                                  {"name", "Home"},
                                  {"context", ctx()}}));
        else
            evs.push_back(V::obj({{"type", "identify"},
                                  {"messageId", id},
                                  {"userId", "u" + std::to_string(i % 50)},
                                  {"traits", V::obj({{"n", i}})}}));
    }
    sb_warehouse_stats st = load(evs);
    EXPECT_EQ(10000u, st.events);
    EXPECT_EQ((Rows{{"3334", "3333", "3333", "50"}}),
              q("SELECT (SELECT count(*) FROM " + t("tracks") + "), (SELECT count(*) FROM " +
                t("pages") + "), (SELECT count(*) FROM " + t("identifies") +
                "), (SELECT count(*) FROM " + t("users") + ")"));
    EXPECT_EQ("9998", one("SELECT n FROM " + t("users") + " WHERE id='u48'"));
}

TEST_F(PgWarehouse, ReconnectsAfterTheServerRestarts)
{
    load({order("before", "u")});
    int status;
    run("'" + kScript + "' down '" + g_dir + "'", &status);
    ASSERT_EQ(0, status);
    // server down: the load fails as a whole, saying why
    int rc = sb_warehouse_load(w, nullptr, 0, nullptr);
    std::string m1 = mpv(order("during", "u"));
    sb_warehouse_msg msg{(const uint8_t *)m1.data(), m1.size()};
    rc = sb_warehouse_load(w, &msg, 1, nullptr);
    EXPECT_EQ(-ENOTCONN, rc);
    EXPECT_NE(std::string::npos, std::string(sb_warehouse_errmsg(w)).find("postgresql"));
    run("'" + kScript + "' up '" + g_dir + "'", &status);
    ASSERT_EQ(0, status);
    PQreset(db);
    // the same batch again, on a new connection
    sb_warehouse_stats st{};
    EXPECT_EQ(0, sb_warehouse_load(w, &msg, 1, &st)) << sb_warehouse_errmsg(w);
    EXPECT_EQ(1u, st.events);
    EXPECT_EQ((Rows{{"before"}, {"during"}}), q("SELECT id FROM " + t("tracks") + " ORDER BY id"));
}

TEST(PgWarehouseOpen, AServerThatIsNotThereIsAnError)
{
    sb_warehouse *w = nullptr;
    char err[512] = "";
    sb_warehouse_options opt{};
    opt.connect_timeout_s = 2;
    EXPECT_EQ(-ECONNREFUSED, sb_warehouse_pg_open(&w, "host=127.0.0.1 port=1 user=postgres", &opt,
                                                  err, sizeof(err)));
    EXPECT_EQ(nullptr, w);
    EXPECT_NE(std::string::npos, std::string(err).find("connect")) << err;
}

} // namespace
