/* registry.h: the daemon side of the ring: owns the primary ring, listens on the UNIX
 * socket, authenticates producers (SO_PEERCRED against a uid/gid allow-list), gives each an
 * id and the ring's memfd, tracks their liveness (pidfd + the registration socket), adopts
 * rings handed back after a daemon restart or by standalone producers, and reads them all.
 *
 * Drive it either synchronously (sb_registry_poll) or from an event loop: watch
 * sb_registry_listen_fd() and call sb_registry_accept(); watch each fd that
 * sb_registry_watch_fds() lists and call sb_registry_handle() when it is readable; watch the
 * futex word of each ring (sb_registry_reader()) and call sb_registry_drain(). Nothing
 * blocks: sockets are non-blocking, every reply is one small datagram. */
#ifndef SB_REGISTRY_H
#define SB_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ring/ring.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_registry;

struct sb_registry_config {
    const char *socket_path;
    uint64_t capacity; /* primary ring (default SEGBUS_RING_DEFAULT_CAPACITY) */
    const uid_t *uids; /* allowed peers besides our own uid */
    size_t nuids;
    const gid_t *gids;
    size_t ngids;
    int socket_mode; /* chmod of the socket (default 0666: the allow-list decides) */
    struct sb_ring_reader_opts reader; /* alive/alive_ctx are set by the registry */
    int hold_release; /* 1: sb_registry_drain() does not release what it read; the caller
                         releases with sb_registry_release() once it is durable */
};

void sb_registry_config_init(struct sb_registry_config *cfg);

/* Create the primary ring and listen. A stale socket file at the path is replaced.
 * 0, -EINVAL, -EADDRINUSE (a live daemon listens there), -errno. */
int sb_registry_open(struct sb_registry **out, const struct sb_registry_config *cfg);
void sb_registry_close(struct sb_registry *reg);

int sb_registry_listen_fd(const struct sb_registry *reg);

/* Accept pending connections (listen fd readable). Returns how many, or -errno. */
int sb_registry_accept(struct sb_registry *reg);

/* fd became readable or hung up: a hello on a new connection, EOF of a producer's
 * registration socket, or its pidfd (process exited). Returns 0, or -ENOENT for an fd the
 * registry does not know. */
int sb_registry_handle(struct sb_registry *reg, int fd);

/* The fds to watch for readability (connections and pidfds), into fds[0..max). Returns the
 * count (may exceed max: call again with more room). */
size_t sb_registry_watch_fds(const struct sb_registry *reg, int *fds, size_t max);

/* One synchronous round: poll the listen socket, connections and pidfds for up to
 * timeout_ms and handle what is ready. Returns events handled or -errno. */
int sb_registry_poll(struct sb_registry *reg, int timeout_ms);

/* Rings being read: 0 is the primary; adopted rings follow. */
size_t sb_registry_nrings(const struct sb_registry *reg);
struct sb_ring_reader *sb_registry_reader(struct sb_registry *reg, size_t i);

/* Ring i's 16-byte id as read when it was mapped (a private copy, not the shared bytes), or
 * NULL for a bad index. Stable across daemons: segbusd keys what it spooled of a ring by it. */
const uint8_t *sb_registry_ring_id(const struct sb_registry *reg, size_t i);
/* Read every ring: call fn for each record (a private copy), release after each batch
 * (unless hold_release). fn returns 0 to go on, nonzero to stop (records already handed out
 * are not read again by this reader). Returns records delivered. */
typedef int (*sb_registry_record_fn)(void *ctx, size_t ring, const struct sb_ring_rec *rec);
long sb_registry_drain(struct sb_registry *reg, sb_registry_record_fn fn, void *ctx,
                       int64_t now_ns);

/* hold_release: everything of ring `ring` before pos (a record boundary handed out by a
 * drain) is durable downstream: zero it, publish head and the durable head. Positions at or
 * below the head, or beyond what was read, are ignored. Records read but not released are
 * read again by whoever adopts the ring after a crash. */
void sb_registry_release(struct sb_registry *reg, size_t ring, uint64_t pos);

/* Producers currently registered and alive. */
size_t sb_registry_live_producers(const struct sb_registry *reg);

#ifdef __cplusplus
}
#endif
#endif /* SB_REGISTRY_H */
