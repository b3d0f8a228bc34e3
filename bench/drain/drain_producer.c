/* drain_producer.c: the application side of bench/drain's end-to-end cases: a segbus client
 * sending track events (the shape bench_drain drains, about 256 B) to a running segbusd, each
 * stamped with its enqueue time (properties.t_ns, CLOCK_MONOTONIC ns) for the receiver.
 *   drain_producer SOCKET RATE COUNT    RATE events/s paced per millisecond, 0 = as fast as
 *                                        the ring takes them (full ring: block)
 * Waits for segbus_flush (durable in the daemon's spool), then prints one JSON object. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "segbus/segbus.h"

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    segbus_options_t *o;
    segbus_client_t *c;
    segbus_map_t *props;
    uint64_t rate, count, sent = 0, failed = 0;
    int rc;

    if (argc != 4) {
        fprintf(stderr, "usage: drain_producer SOCKET RATE COUNT\n");
        return 2;
    }
    rate = strtoull(argv[2], NULL, 10);
    count = strtoull(argv[3], NULL, 10);
    o = segbus_options_new();
    props = segbus_map_new();
    if (!o || !props)
        return 1;
    segbus_options_set_socket(o, argv[1]);
    segbus_options_set_standalone(o, 0);
    segbus_options_set_full_policy(o, SEGBUS_FULL_BLOCK, 10000);
    if ((rc = segbus_client_open(&c, o))) {
        fprintf(stderr, "drain_producer: open %s: %s (%s)\n", argv[1], segbus_strerror(rc),
                segbus_last_error());
        return 1;
    }
    segbus_options_free(o);

    uint64_t t0 = mono_ns(), next = t0;
    uint64_t per_ms = rate ? (rate + 999) / 1000 : count;
    while (sent + failed < count) {
        if (rate) {
            /* the events due by now (rate per second from t0), then sleep to the next ms */
            uint64_t due = (mono_ns() - t0) * rate / 1000000000ull + 1;
            if (due > count)
                due = count;
            if (sent + failed >= due) {
                next += 1000000;
                struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
                continue;
            }
        }
        for (uint64_t i = 0; i < per_ms && sent + failed < count; i++) {
            segbus_message_t m = SEGBUS_MESSAGE_INIT;
            segbus_map_reset(props);
            segbus_map_add_str(props, "order_id", "ORD-2024-12345");
            segbus_map_add_double(props, "total", 129.98);
            segbus_map_add_str(props, "currency", "USD");
            segbus_map_add_str(props, "note", "xxxxx");
            segbus_map_add_uint(props, "t_ns", mono_ns());
            m.user_id = "user-000042";
            m.event = "Order Completed";
            m.properties = props;
            rc = segbus_track(c, &m);
            if (rc == 0) {
                sent++;
            } else {
                failed++;
                if (failed < 5)
                    fprintf(stderr, "drain_producer: track: %s\n", segbus_strerror(rc));
            }
            if (rate && sent + failed >= (mono_ns() - t0) * rate / 1000000000ull + 1)
                break;
        }
    }
    uint64_t t1 = mono_ns();
    rc = segbus_flush(c, 30000);
    uint64_t t2 = mono_ns();
    printf("{\"sent\": %" PRIu64 ", \"failed\": %" PRIu64 ", \"enqueue_s\": %.3f, "
           "\"enqueue_per_s\": %.0f, \"flush_rc\": %d, \"flush_s\": %.3f}\n",
           sent, failed, (double)(t1 - t0) / 1e9, (double)sent / ((double)(t1 - t0) / 1e9), rc,
           (double)(t2 - t1) / 1e9);
    segbus_map_free(props);
    segbus_client_close(c);
    return failed ? 1 : 0;
}
