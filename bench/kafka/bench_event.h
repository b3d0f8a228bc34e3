/* bench_event.h: the event both Kafka benchmarks send (a track of one of 1000 users). */
#ifndef SEGBUS_BENCH_KAFKA_EVENT_H
#define SEGBUS_BENCH_KAFKA_EVENT_H

#include <msgpack.h>
#include <stdio.h>
#include <string.h>

static void bench_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Event i into sb (cleared first); user gets its userId (at least 32 bytes). */
static void bench_pack_event(msgpack_sbuffer *sb, msgpack_packer *pk, long i, char user[32])
{
    char id[32];

    snprintf(id, sizeof id, "m%ld", i);
    snprintf(user, 32, "u%ld", i % 1000);
    msgpack_sbuffer_clear(sb);
    msgpack_pack_map(pk, 6);
    bench_pack_str(pk, "type"), bench_pack_str(pk, "track");
    bench_pack_str(pk, "userId"), bench_pack_str(pk, user);
    bench_pack_str(pk, "event"), bench_pack_str(pk, "Order Completed");
    bench_pack_str(pk, "messageId"), bench_pack_str(pk, id);
    bench_pack_str(pk, "properties"), msgpack_pack_map(pk, 1);
    bench_pack_str(pk, "total"), msgpack_pack_int(pk, 42);
    bench_pack_str(pk, "timestamp"), bench_pack_str(pk, "2026-11-28T14:00:00.000Z");
}

#endif
