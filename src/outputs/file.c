/* file.c: the NDJSON file output: one event per line as Segment JSON, rotated by size and/or
 * age into <path>.1 (newest) .. <path>.<keep> (oldest; older ones are deleted).
 * A write(2) that completes counts as delivered (no fsync: the spool holds the durable copy
 * until the ack, and this output is a debugging aid, not a store). A batch is never split
 * across two files: rotation happens between batches. Each delivery reports the file's length
 * and inode, which the spool saves with the ack cursor; at start-up the file is cut back to the
 * length saved with the last ack on disk, so that lines written for a batch whose ack a crash
 * lost are not there twice once the batch is written again. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "json/json.h"
#include "net/loop.h"
#include "outputs/output.h"
#include "pipeline/batch.h"

struct file_out {
    char *path;
    uint64_t rotate_bytes, rotate_interval_ns;
    uint32_t keep;
    int fd;
    uint64_t size, ino;
    uint64_t opened_ns; /* when this daemon started writing the current file */
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
    f->opened_ns = sb_now_ns();
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
    f->rotate_interval_ns = cfg->rotate_interval_ns;
    f->keep = cfg->keep ? cfg->keep : 1;
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

/* Shift <path>.k to <path>.k+1 from the oldest down (the one past `keep` is replaced, i.e.
 * deleted), then the current file to <path>.1 and open a new one. */
static int file_rotate(struct file_out *f)
{
    size_t n = strlen(f->path) + 16;
    char *from = malloc(n), *to = malloc(n);
    int rc = 0;

    if (!from || !to) {
        free(from);
        free(to);
        return -ENOMEM;
    }
    for (uint32_t k = f->keep; k > 1; k--) {
        snprintf(from, n, "%s.%u", f->path, k - 1);
        snprintf(to, n, "%s.%u", f->path, k);
        if (rename(from, to) != 0 && errno != ENOENT)
            sb_warn("output", "file: cannot rename %s: %s", from, strerror(errno));
    }
    snprintf(to, n, "%s.1", f->path);
    if (rename(f->path, to) != 0)
        rc = -errno;
    free(from);
    free(to);
    if (rc) {
        sb_warn("output", "file: cannot rotate %s: %s; appending to it", f->path, strerror(-rc));
        return rc;
    }
    close(f->fd);
    f->fd = -1;
    return file_open(f);
}

static bool rotate_due(const struct file_out *f)
{
    if (f->size == 0)
        return false; /* never rotate an empty file: keep N files of events, not N empty ones */
    if (f->rotate_bytes && f->size >= f->rotate_bytes)
        return true;
    return f->rotate_interval_ns && sb_now_ns() - f->opened_ns >= f->rotate_interval_ns;
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
    if (rotate_due(f)) /* by age: a file older than rotate_interval gets no more batches */
        (void)file_rotate(f);
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
