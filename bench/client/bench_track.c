/* bench_track.c: cost of one segbus_track() of the seed's "Order Completed" event through a real
 * client into a real ring drained by an in-process registry (the daemon's own ring code), with
 * the properties built per call through the builder, given as JSON text, or prebuilt.
 * Prints JSON lines: suite, case, unit, value (median CPU ns per call over batches of 1000), goal,
 * met, plus p90 and the wall-clock median. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event/event.h"
#include "ring/registry.h"
#include "../../tests/support/seed_order.h"
#include "ring/ring.h"
#include "segbus/segbus.h"

#define BATCH 1000
#define BATCHES 300
#define GOAL_NS 300.0

static const char order_json[] =
    "{\"order_id\":\"ORD-2024-12345\",\"total\":129.98,\"subtotal\":119.98,\"tax\":10.40,"
    "\"shipping\":5.99,\"discount\":6.39,\"coupon\":\"SAVE10\",\"currency\":\"USD\","
    "\"products\":[{\"product_id\":\"SKU-12345\",\"name\":\"Premium Widget\",\"price\":49.99,"
    "\"quantity\":1,\"category\":\"Widgets\",\"brand\":\"Acme\"},{\"product_id\":\"SKU-67890\","
    "\"name\":\"Deluxe Gadget\",\"price\":79.99,\"quantity\":1,\"category\":\"Gadgets\","
    "\"brand\":\"Acme\"}]}";

static void build_order(segbus_map_t *p)
{
    segbus_map_reset(p);
    seed_order_completed(p);
}

static atomic_int stop_drain;
static atomic_long drained;

static int on_rec(void *ctx, size_t ring, const struct sb_ring_rec *rec)
{
    (void)ctx;
    (void)ring;
    (void)rec;
    atomic_fetch_add_explicit(&drained, 1, memory_order_relaxed);
    return 0;
}

static void *drain_main(void *arg)
{
    struct sb_registry *reg = arg;
    while (!atomic_load(&stop_drain)) {
        sb_registry_poll(reg, 0);
        if (sb_registry_drain(reg, on_rec, NULL, sb_ring_now_ns()) == 0)
            usleep(50);
    }
    return NULL;
}

/* The calling thread's CPU time: what one call costs the application, without the time the
 * thread spent descheduled (the bench shares 2 cores with the drain thread and the machine). */
static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum mode { BUILDER, BUILDER_PREBUILT, JSON_TEXT, ENCODE_ONLY };

static long failures;

static void one(segbus_client_t *c, enum mode mode, segbus_map_t *p)
{
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "USR-12345";
    m.event = "Order Completed";
    if (mode == BUILDER)
        build_order(p);
    if (mode == JSON_TEXT)
        m.properties_json = order_json;
    else
        m.properties = p;
    int rc;
    if (mode == ENCODE_ONLY) {
        const uint8_t *out;
        size_t len;
        rc = sb_event_encode(NULL, SEGBUS_TRACK, &m, &out, &len, NULL);
    } else {
        rc = segbus_track(c, &m);
    }
    if (rc != 0)
        failures++;
}

static void run_case(segbus_client_t *c, enum mode mode, const char *name, int with_goal)
{
    segbus_map_t *p = segbus_map_new();
    build_order(p);
    static double per_call[BATCHES], wall[BATCHES];
    for (int i = 0; i < 20 * BATCH; i++) /* warm caches, scratch, the ring's pages */
        one(c, mode, p);
    failures = 0;
    for (int b = 0; b < BATCHES; b++) {
        double t0 = cpu_ns(), w0 = wall_ns();
        for (int i = 0; i < BATCH; i++)
            one(c, mode, p);
        per_call[b] = (cpu_ns() - t0) / BATCH;
        wall[b] = (wall_ns() - w0) / BATCH;
    }
    qsort(per_call, BATCHES, sizeof per_call[0], cmp_double);
    qsort(wall, BATCHES, sizeof wall[0], cmp_double);
    double med = per_call[BATCHES / 2], p90 = per_call[BATCHES * 9 / 10];
    double wmed = wall[BATCHES / 2];
    if (with_goal)
        printf("{\"suite\": \"client\", \"case\": \"%s\", \"unit\": \"ns/call\", \"value\": %.1f, "
               "\"p90\": %.1f, \"wall_median\": %.1f, \"goal\": \"<= %.0f\", \"met\": %s, "
               "\"failed_calls\": %ld}\n",
               name, med, p90, wmed, GOAL_NS, med <= GOAL_NS ? "true" : "false", failures);
    else
        printf("{\"suite\": \"client\", \"case\": \"%s\", \"unit\": \"ns/call\", \"value\": %.1f, "
               "\"p90\": %.1f, \"wall_median\": %.1f, \"failed_calls\": %ld}\n",
               name, med, p90, wmed, failures);
    fflush(stdout);
    segbus_map_free(p);
}

int main(void)
{
    char path[108];
    snprintf(path, sizeof path, "/tmp/segbus-bench-%d.sock", (int)getpid());
    struct sb_registry_config cfg;
    sb_registry_config_init(&cfg);
    cfg.socket_path = path;
    cfg.capacity = 64u << 20;
    struct sb_registry *reg;
    int rc = sb_registry_open(&reg, &cfg);
    if (rc < 0) {
        fprintf(stderr, "bench: registry: %s\n", segbus_strerror(rc));
        return 1;
    }
    pthread_t drain;
    pthread_create(&drain, NULL, drain_main, reg);
    segbus_options_t *o = segbus_options_new();
    segbus_options_set_socket(o, path);
    segbus_options_set_standalone(o, 0);
    segbus_options_set_full_policy(o, SEGBUS_FULL_BLOCK, 1000);
    segbus_client_t *c;
    rc = segbus_client_open(&c, o);
    segbus_options_free(o);
    if (rc < 0) {
        fprintf(stderr, "bench: client: %s\n", segbus_last_error());
        return 1;
    }
    /* The goal is on the call itself: properties handed over in a builder, or as JSON text.
     * Building the properties through the builder is application work measured on its own row
     * (build + call), without a goal. */
    run_case(c, BUILDER_PREBUILT, "segbus_track Order Completed, properties via builder", 1);
    run_case(c, JSON_TEXT, "segbus_track Order Completed, properties as JSON text", 1);
    run_case(c, BUILDER, "build the properties (27 builder calls) + segbus_track", 0);
    run_case(NULL, ENCODE_ONLY, "encode only (validate + msgpack, no ring), builder", 0);
    segbus_flush(c, 5000);
    segbus_client_close(c);
    atomic_store(&stop_drain, 1);
    pthread_join(drain, NULL);
    sb_registry_close(reg);
    unlink(path);
    fprintf(stderr, "bench: %ld events drained\n", atomic_load(&drained));
    return 0;
}
