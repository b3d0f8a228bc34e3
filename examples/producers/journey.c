/* journey.c: plays the seed's user journey for --users simulated users through libsegbus's C
 * client, with a few deliberately broken events, and prints what it sent as JSON.
 * Deterministic: the same --seed, --users and --prefix give the same events (messageIds too).
 * Build: cc -O2 journey.c -Iinclude -Lbuild/release/src -lsegbus -o journey */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segbus/segbus.h"

static const struct {
    const char *name;
    double price;
    const char *cat;
} products[] = {{"Espresso Machine", 249.0, "Kitchen"}, {"Grinder", 89.5, "Kitchen"},
                {"Running Shoes", 119.99, "Sport"},     {"Yoga Mat", 25.0, "Sport"},
                {"Headphones", 199.0, "Audio"},         {"Desk Lamp", 39.9, "Home"}};
static const char *plans[] = {"free", "pro", "enterprise"};
static const char *currencies[] = {"USD", "EUR", "GBP"};
static const char *industries[] = {"Retail", "SaaS", "Finance", "Health"};
static const char *pages[][3] = {{"Home", "Marketing", "/"},
                                 {"Pricing", "Marketing", "/pricing"},
                                 {"Catalog", "Shop", "/products"}};
static const char *broken_kinds[] = {"typo_event", "price_string", "missing_order_id",
                                     "email_in_properties", "duplicate_message_id"};
enum { N_KINDS = 5, MAX_KEYS = 16 };

static uint64_t rng_state;
/* splitmix64: a tiny deterministic generator, the same on every platform. */
static unsigned rnd(unsigned n)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (unsigned)((z ^ (z >> 31)) % n);
}

static segbus_client_t *client;
static const char *prefix = "c";
static long seed = 1, seq, sent, failed, orders, broken[N_KINDS];
static long by_call[7];
static double revenue[3];
static struct {
    char key[40];
    long n;
} by_event[MAX_KEYS];

static void count_event(const char *key)
{
    for (int i = 0; i < MAX_KEYS; i++) {
        if (!by_event[i].key[0])
            snprintf(by_event[i].key, sizeof by_event[i].key, "%s", key);
        if (!strcmp(by_event[i].key, key)) {
            by_event[i].n++;
            return;
        }
    }
}

/* Sends one event with the next messageId unless msg has one; counts it under key. */
static void send(enum segbus_type type, const char *key, segbus_message_t *msg)
{
    char mid[64];
    if (!msg->message_id) {
        snprintf(mid, sizeof mid, "%s-%ld-%ld", prefix, seed, ++seq);
        msg->message_id = mid;
    }
    int rc = segbus_send(client, type, msg, NULL);
    if (rc != 0) {
        fprintf(stderr, "journey: %s: %s\n", key, segbus_last_error());
        failed++;
        return;
    }
    sent++;
    by_call[type]++;
    count_event(key);
}

int main(int argc, char **argv)
{
    long users = 100, broken_every = 10;
    const char *sock = NULL, *out = "-";
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "usage: journey [--users N] [--seed S] [--prefix P] "
                            "[--broken-every N] [--socket PATH] [--out FILE]\n");
            return 2;
        }
        if (!strcmp(argv[i], "--users"))
            users = atol(v);
        else if (!strcmp(argv[i], "--seed"))
            seed = atol(v);
        else if (!strcmp(argv[i], "--prefix"))
            prefix = v;
        else if (!strcmp(argv[i], "--broken-every"))
            broken_every = atol(v);
        else if (!strcmp(argv[i], "--socket"))
            sock = v;
        else if (!strcmp(argv[i], "--out"))
            out = v;
        else {
            fprintf(stderr, "journey: unknown flag %s\n", argv[i]);
            return 2;
        }
        i++;
    }
    rng_state = (uint64_t)seed;
    segbus_options_t *o = segbus_options_new();
    if (!o || (sock && segbus_options_set_socket(o, sock)) ||
        segbus_options_set_full_policy(o, SEGBUS_FULL_BLOCK, 10000) ||
        segbus_options_set_standalone(o, 0) || segbus_client_open(&client, o)) {
        fprintf(stderr, "journey: cannot open the client: %s\n", segbus_last_error());
        return 1;
    }
    segbus_options_free(o);

    char uid[64], anon[80], company[64], props[2048], traits[1024], mid[64];
    for (long u = 0; u < users; u++) {
        snprintf(uid, sizeof uid, "%s-user-%ld", prefix, u);
        snprintf(anon, sizeof anon, "%s-anon-%ld", prefix, u);
        snprintf(company, sizeof company, "%s-co-%ld", prefix, u % 7);
        const char *plan = plans[rnd(3)];
        for (unsigned n = 1 + rnd(3); n; n--) { /* anonymous browsing */
            const char **pg = pages[rnd(3)];
            snprintf(props, sizeof props,
                     "{\"name\":\"%s\",\"category\":\"%s\",\"url\":\"https://shop.example%s\","
                     "\"referrer\":\"https://search.example/\"}",
                     pg[0], pg[1], pg[2]);
            segbus_message_t m = {
                .anonymous_id = anon, .name = pg[0], .category = pg[1], .properties_json = props};
            send(SEGBUS_PAGE, "Page Viewed", &m);
        }
        static const char *methods[] = {"email", "google", "github"};
        snprintf(props, sizeof props, "{\"signup_method\":\"%s\",\"plan_type\":\"%s\"}",
                 methods[rnd(3)], plan);
        send(SEGBUS_TRACK, "Signed Up",
             &(segbus_message_t){.user_id = uid,
                                 .anonymous_id = anon,
                                 .event = "Signed Up",
                                 .properties_json = props});
        snprintf(traits, sizeof traits,
                 "{\"email\":\"%s@example.com\",\"name\":\"User %ld\",\"plan\":\"%s\","
                 "\"company\":{\"name\":\"%s\",\"id\":\"%s\",\"industry\":\"%s\","
                 "\"employee_count\":%ld},\"created_at\":\"2026-11-28T12:00:00Z\"}",
                 uid, u, plan, company, company, industries[rnd(4)], 10 + u % 7 * 40);
        send(SEGBUS_IDENTIFY, "identify",
             &(segbus_message_t){.user_id = uid, .anonymous_id = anon, .traits_json = traits});
        snprintf(traits, sizeof traits,
                 "{\"name\":\"%s\",\"industry\":\"%s\",\"plan\":\"%s\",\"employee_count\":%ld}",
                 company, industries[u % 7 % 4], plan, 10 + u % 7 * 40);
        send(SEGBUS_GROUP, "group",
             &(segbus_message_t){.user_id = uid, .group_id = company, .traits_json = traits});
        unsigned ncart = 1 + rnd(3), first = rnd(6); /* distinct products: consecutive ones */
        double total = 0;
        char items[1024] = "";
        size_t il = 0;
        for (unsigned k = 0; k < ncart; k++) {
            unsigned p = (first + k) % 6;
            snprintf(
                props, sizeof props,
                "{\"product_id\":\"P-%03u\",\"name\":\"%s\",\"price\":%.2f,\"category\":\"%s\"}", p,
                products[p].name, products[p].price, products[p].cat);
            send(SEGBUS_TRACK, "Product Viewed",
                 &(segbus_message_t){
                     .user_id = uid, .event = "Product Viewed", .properties_json = props});
            snprintf(props, sizeof props,
                     "{\"product_id\":\"P-%03u\",\"name\":\"%s\",\"price\":%.2f,\"quantity\":1}", p,
                     products[p].name, products[p].price);
            send(SEGBUS_TRACK, "Product Added",
                 &(segbus_message_t){
                     .user_id = uid, .event = "Product Added", .properties_json = props});
            il += (size_t)snprintf(items + il, sizeof items - il,
                                   "%s{\"product_id\":\"P-%03u\",\"name\":\"%s\",\"price\":%.2f,"
                                   "\"quantity\":1}",
                                   k ? "," : "", p, products[p].name, products[p].price);
            total += products[p].price;
        }
        unsigned cur = rnd(3);
        snprintf(props, sizeof props,
                 "{\"order_id\":\"%s-order-%ld\",\"total\":%.2f,\"revenue\":%.2f,"
                 "\"currency\":\"%s\",\"products\":[%s]}",
                 prefix, u, total, total, currencies[cur], items);
        send(SEGBUS_TRACK, "Order Completed",
             &(segbus_message_t){
                 .user_id = uid, .event = "Order Completed", .properties_json = props});
        orders++;
        revenue[cur] += total;
        send(SEGBUS_TRACK, "Feature Activated",
             &(segbus_message_t){
                 .user_id = uid,
                 .event = "Feature Activated",
                 .properties_json = "{\"feature_name\":\"dashboards\",\"plan_required\":\"pro\"}"});
        send(SEGBUS_PAGE, "Page Viewed",
             &(segbus_message_t){.user_id = uid,
                                 .name = "Logout",
                                 .category = "Account",
                                 .properties_json = "{\"name\":\"Logout\",\"category\":\"Account\","
                                                    "\"url\":\"https://shop.example/logout\"}"});
        /* reset: the next visit is a new anonymous visitor */
        strncat(anon, "-after-reset", sizeof anon - strlen(anon) - 1);
        send(SEGBUS_PAGE, "Page Viewed",
             &(segbus_message_t){.anonymous_id = anon,
                                 .name = "Home",
                                 .category = "Marketing",
                                 .properties_json = "{\"name\":\"Home\",\"category\":\"Marketing\","
                                                    "\"url\":\"https://shop.example/\"}"});
        if (broken_every <= 0 || u % broken_every)
            continue;
        int kind = (int)((u / broken_every) % N_KINDS);
        broken[kind]++;
        if (kind == 0) {
            send(SEGBUS_TRACK, "Order Complted",
                 &(segbus_message_t){.user_id = uid,
                                     .event = "Order Complted",
                                     .properties_json = "{\"order_id\":\"x\",\"total\":1.0,"
                                                        "\"currency\":\"USD\",\"products\":[]}"});
        } else if (kind == 1) {
            send(SEGBUS_TRACK, "Product Added",
                 &(segbus_message_t){.user_id = uid,
                                     .event = "Product Added",
                                     .properties_json =
                                         "{\"product_id\":\"P-000\",\"name\":\"Espresso Machine\","
                                         "\"price\":\"249.00\",\"quantity\":1}"});
        } else if (kind == 2) {
            send(SEGBUS_TRACK, "Order Completed",
                 &(segbus_message_t){.user_id = uid,
                                     .event = "Order Completed",
                                     .properties_json =
                                         "{\"total\":5.0,\"currency\":\"USD\",\"products\":"
                                         "[{\"product_id\":\"P-003\",\"price\":5.0}]}"});
        } else if (kind == 3) {
            snprintf(props, sizeof props,
                     "{\"feature_name\":\"export\",\"email\":\"%s@example.com\","
                     "\"phone\":\"+1-555-0100\",\"ip\":\"192.0.2.1\"}",
                     uid);
            send(SEGBUS_TRACK, "Feature Activated",
                 &(segbus_message_t){
                     .user_id = uid, .event = "Feature Activated", .properties_json = props});
        } else { /* the same messageId twice: the second is a duplicate */
            snprintf(mid, sizeof mid, "%s-%ld-%ld", prefix, seed, ++seq);
            for (int r = 0; r < 2; r++)
                send(SEGBUS_TRACK, "Feature Activated",
                     &(segbus_message_t){.user_id = uid,
                                         .event = "Feature Activated",
                                         .message_id = mid,
                                         .properties_json = "{\"feature_name\":\"alerts\"}"});
        }
    }
    int frc = segbus_flush(client, 30000);
    segbus_client_close(client);

    FILE *f = strcmp(out, "-") ? fopen(out, "w") : stdout;
    if (!f) {
        perror(out);
        return 1;
    }
    fprintf(f,
            "{\"lang\":\"c\",\"prefix\":\"%s\",\"seed\":%ld,\"users\":%ld,\"sent\":%ld,"
            "\"failed\":%ld,\"orders\":%ld,\"revenue\":{\"USD\":%.2f,\"EUR\":%.2f,\"GBP\":%.2f},"
            "\"by_call\":{\"track\":%ld,\"identify\":%ld,\"page\":%ld,\"group\":%ld},\"broken\":{",
            prefix, seed, users, sent, failed, orders, revenue[0], revenue[1], revenue[2],
            by_call[SEGBUS_TRACK], by_call[SEGBUS_IDENTIFY], by_call[SEGBUS_PAGE],
            by_call[SEGBUS_GROUP]);
    for (int k = 0; k < N_KINDS; k++)
        fprintf(f, "%s\"%s\":%ld", k ? "," : "", broken_kinds[k], broken[k]);
    fprintf(f, "},\"by_event\":{");
    for (int i = 0; i < MAX_KEYS && by_event[i].key[0]; i++)
        fprintf(f, "%s\"%s\":%ld", i ? "," : "", by_event[i].key, by_event[i].n);
    fprintf(f, "}}\n");
    if (f != stdout)
        fclose(f);
    return failed || frc < 0 ? 1 : 0;
}
