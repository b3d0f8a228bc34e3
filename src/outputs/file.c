/* file.c: the NDJSON file output: one event per line as Segment JSON, for debugging and tests.
 * A write(2) that completes counts as delivered (no fsync: the spool holds the durable copy
 * until the ack, and this output is a debugging aid, not a store). Each delivery reports the
 * file's length and inode, which the spool saves with the ack cursor; at start-up the file is
 * cut back to the length saved with the last ack on disk, so that lines written for a batch
 * whose ack a crash lost are not there twice once the batch is written again. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "json/json.h"
#include "outputs/output.h"
#include "pipeline/batch.h"

struct file_out {
    char *path;
    uint64_t rotate_bytes;
    int fd;
    uint64_t size, ino;
    struct sb_buf lines;
};

static int file_open(struct file_out *f)
{
    struct stat st;

    f->fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (f->fd < 0)
        return -errno;
    if (fstat(f->fd, &st) != 0) {
        int e = -errno;
        close(f->fd);
        f->fd = -1;
        return e;
    }
    f->size = (uint64_t)st.st_size;
    f->ino = (uint64_t)st.st_ino;
    return 0;
}

static int file_init(void **state, const struct sb_output_config *cfg, struct sb_loop *loop,
                     char *err, size_t errlen)
{
    struct file_out *f = calloc(1, sizeof *f);
    int rc;

    if (!f)
        return -ENOMEM;
    f->path = strdup(cfg->path);
    f->rotate_bytes = cfg->rotate_bytes;
    if (!f->path) {
        free(f);
        return -ENOMEM;
    }
    rc = file_open(f);
    if (rc) {
        snprintf(err, errlen, "output %s: cannot open %s: %s", cfg->name, f->path, strerror(-rc));
        free(f->path);
        free(f);
        return rc;
    }
    *state = f;
    return 0;
}

static int file_rotate(struct file_out *f)
{
    size_t n = strlen(f->path) + 3;
    char *old = malloc(n);
    int rc = 0;

    if (!old)
        return -ENOMEM;
    snprintf(old, n, "%s.1", f->path);
    if (rename(f->path, old) != 0)
        rc = -errno;
    free(old);
    close(f->fd);
    f->fd = -1;
    if (rc)
        return rc;
    return file_open(f);
}

static int file_deliver(void *state, struct sb_delivery *d)
{
    struct file_out *f = state;
    const uint8_t *p = d->envelope + SB_BATCH_HEAD_BYTES;
    const uint8_t *end = d->envelope + d->len - SB_BATCH_TAIL_BYTES;
    struct sb_output_result res = {.status = 200};
    size_t off = 0;

    sb_buf_clear(&f->lines);
    for (uint32_t i = 0; i < d->count && p < end; i++) {
        size_t used;
        int rc = sb_msgpack_to_json(p, (size_t)(end - p), &used, &f->lines);
        if (rc)
            return rc == -ENOMEM ? -ENOMEM : -EPROTO;
        if (sb_buf_append(&f->lines, "\n", 1))
            return -ENOMEM;
        p += used;
    }
    if (f->fd < 0 && file_open(f) != 0)
        return -EIO;
    while (off < f->lines.len) {
        ssize_t w = write(f->fd, f->lines.data + off, f->lines.len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            res.status = -errno;
            res.detail = strerror(errno);
            res.detail_len = strlen(res.detail);
            /* Lines already written will be written again on the retry: at-least-once for a
             * failing disk, the price of not tracking partial batches. */
            sb_delivery_done(d, &res);
            return 0;
        }
        off += (size_t)w;
    }
    f->size += off;
    res.has_pos = true;
    res.pos = f->size;
    res.pos_id = f->ino;
    if (f->rotate_bytes && f->size >= f->rotate_bytes)
        (void)file_rotate(f); /* a failed rotation keeps appending to the same file */
    sb_delivery_done(d, &res);
    return 0;
}

static int file_resume(void *state, uint64_t pos, uint64_t ino)
{
    struct file_out *f = state;

    if (f->fd < 0 || ino != f->ino) {
        /* Rotated (or replaced) since that ack: the lines after it are in another file and
         * are written again here. Duplicates, never a loss. */
        sb_warn("output",
                "%s: not the file of the last acknowledged batch (rotated?): lines "
                "written after it may appear twice",
                f->path);
        return 0;
    }
    if (f->size < pos) {
        /* Shorter than what was acknowledged: lines were lost outside segbusd (the file is not
         * fsynced: a power loss, or someone truncated it). Nothing to undo. */
        sb_warn("output", "%s: %llu bytes, but %llu were acknowledged: lines lost outside segbusd",
                f->path, (unsigned long long)f->size, (unsigned long long)pos);
        return 0;
    }
    if (f->size == pos)
        return 0;
    /* Written after the last ack that reached the disk: those batches are delivered again. */
    if (ftruncate(f->fd, (off_t)pos) != 0)
        return -errno;
    sb_info("output",
            "%s: removed %llu bytes written after the last acknowledged batch (they are "
            "written again)",
            f->path, (unsigned long long)(f->size - pos));
    f->size = pos;
    return 0;
}

static void file_destroy(void *state)
{
    struct file_out *f = state;

    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    sb_buf_free(&f->lines);
    free(f->path);
    free(f);
}

const struct sb_output_plugin sb_output_file = {"file", file_init, file_deliver, file_destroy,
                                                file_resume};
