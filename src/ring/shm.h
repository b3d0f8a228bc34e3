/* shm.h: rings in sealed memfds, and the registration protocol spoken over the daemon's UNIX
 * socket (SOCK_SEQPACKET; one message each way; the ring's memfd travels as SCM_RIGHTS). */
#ifndef SB_SHM_H
#define SB_SHM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ring/ring.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A mapped ring. */
struct sb_shm {
    int fd;
    void *mem;
    size_t size;
    struct sb_ring ring;
    uint8_t id[16];
};

/* Create a ring of `capacity` in a memfd sealed against shrink, grow and further sealing,
 * map it read-write and format it. 0, -EINVAL (capacity), or -errno. */
int sb_shm_create(struct sb_shm *s, uint64_t capacity);

/* Validate a ring fd received from an untrusted peer and map it: a regular file with the
 * shrink and grow seals (so the peer cannot SIGBUS us), no write seal, a size that is a ring
 * of an allowed capacity (= expect_capacity when not 0), and a formatted control block.
 * Takes ownership of fd on success only. -EPROTO on any mismatch, -errno otherwise. */
int sb_shm_map_fd(struct sb_shm *s, int fd, uint64_t expect_capacity);

/* Unmap and close. */
void sb_shm_close(struct sb_shm *s);

/* Wire messages. */
#define SB_REG_MAGIC 0x47455242u /* "BREG" */
#define SB_REG_VERSION 1u
#define SB_REG_HANDBACK 1u /* the hello carries a ring fd for the daemon to adopt */

struct sb_reg_hello {
    uint32_t magic;
    uint16_t version;
    uint16_t flags;
    int32_t pid; /* informational: the daemon trusts SO_PEERCRED */
    uint32_t reserved;
};

struct sb_reg_reply {
    uint32_t magic;
    uint16_t version;
    uint16_t reserved;
    int32_t status; /* 0, or a negative error (-SEGBUS_EDENIED, -EPROTO, ...) */
    uint32_t producer_id;
    uint64_t capacity;
    uint8_t ring_id[16];
};

/* Send one message with an optional fd (-1: none). 0 or -errno. */
int sb_reg_send(int sock, const void *msg, size_t len, int fd);

/* Receive one message of exactly `len` bytes and at most one fd (*fd = -1 if none; extra fds
 * are closed). 0, -EPROTO (wrong size, truncated, several fds), -EAGAIN, -ECONNRESET on EOF,
 * or -errno. */
int sb_reg_recv(int sock, void *msg, size_t len, int *fd);

/* Producer side: connect to `path`, send a hello (handing back `handback_fd` when >= 0),
 * wait up to timeout_ms for the reply, validate it and the ring fd.
 * On success *conn is the connected socket (the liveness channel; keep it open), *reply the
 * reply, *ring_fd the ring's memfd. Errors: -SEGBUS_ENODAEMON (nothing listens), -EINVAL (path),
 * -SEGBUS_ETIMEDOUT, -EPROTO, the daemon's status (e.g. -SEGBUS_EDENIED), -errno. */
int sb_reg_connect(const char *path, int timeout_ms, int handback_fd, int *conn,
                   struct sb_reg_reply *reply, int *ring_fd);

#ifdef __cplusplus
}
#endif
#endif /* SB_SHM_H */
