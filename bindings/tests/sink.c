/* sink.c: a stand-in for segbusd in the binding tests and benchmarks: the real registry (socket,
 * SO_PEERCRED, memfd ring, adoption of standalone rings) and the real ring reader, writing every
 * record to stdout as [u32 length][u32 producer id][payload] (little-endian), or only counting
 * them with --discard. Runs until SIGTERM/SIGINT, then drains once more and exits.
 *
 *   segbus_test_sink SOCKET_PATH [--discard] [--capacity BYTES] */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "ring/registry.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

struct out {
    int discard;
    unsigned long long records, bytes;
};

static int on_record(void *ctx, size_t ring, const struct sb_ring_rec *rec)
{
    struct out *o = ctx;
    (void)ring;
    o->records++;
    o->bytes += rec->len;
    if (o->discard)
        return 0;
    uint32_t head[2] = {rec->len, rec->producer};
    if (fwrite(head, sizeof head, 1, stdout) != 1 ||
        fwrite(rec->data, 1, rec->len, stdout) != rec->len)
        return 1;
    return 0;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SOCKET_PATH [--discard] [--capacity BYTES]\n", argv[0]);
        return 2;
    }
    struct out o = {0};
    struct sb_registry_config cfg;
    sb_registry_config_init(&cfg);
    cfg.socket_path = argv[1];
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--discard"))
            o.discard = 1;
        else if (!strcmp(argv[i], "--capacity") && i + 1 < argc)
            cfg.capacity = strtoull(argv[++i], NULL, 0);
        else {
            fprintf(stderr, "sink: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    /* A test runner killed by a timeout (or crashing) must not leave its sinks behind. (The
     * signal follows the thread that spawned us: the tests and benchmarks spawn from their main
     * thread.) */
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
        return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sb_registry *reg;
    int rc = sb_registry_open(&reg, &cfg);
    if (rc < 0) {
        fprintf(stderr, "sink: cannot listen on %s: %s\n", argv[1], strerror(-rc));
        return 1;
    }
    fprintf(stderr, "sink: ready on %s\n", argv[1]);
    long got = 0;
    while (!stop) {
        /* Busy while records flow (no wait), else wait up to 1 ms for sockets: tests and
         * benchmarks need the drain to keep up, not to sleep efficiently. */
        if (sb_registry_poll(reg, got > 0 ? 0 : 1) < 0 && errno != EINTR)
            break;
        got = sb_registry_drain(reg, on_record, &o, now_ns());
        if (got < 0)
            break;
        if (got > 0 && !o.discard && fflush(stdout) != 0)
            break;
    }
    sb_registry_poll(reg, 0);
    sb_registry_drain(reg, on_record, &o, now_ns());
    fflush(stdout);
    fprintf(stderr, "sink: %llu records, %llu bytes\n", o.records, o.bytes);
    sb_registry_close(reg);
    return 0;
}
