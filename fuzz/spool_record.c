/* spool_record.c: fuzz target: arbitrary bytes as a spool segment file, through the segment
 * scanner in memory and through the whole read-only recovery + read path on a real file.
 *
 * The last input byte picks a mode: odd = the bytes as they are; even = checksums of the header
 * and of every frame that fits are recomputed first, so that the fuzzer gets past XXH3 and
 * explores sequences, lengths, generations and the reader on many "valid" records. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <xxhash.h>

#include "common/log.h"
#include "spool/spool.h"
#include "spool/spool_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
    const uint8_t *p;
    size_t n;
};

static ssize_t mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
    struct mem *m = ctx;
    if (off >= m->n)
        return 0;
    if (len > m->n - off)
        len = m->n - off;
    memcpy(buf, m->p + off, len);
    return (ssize_t)len;
}

static int count_fn(void *arg, uint64_t seq, const void *d, size_t len)
{
    /* Touch every payload byte so a bad pointer or length shows under ASan. */
    unsigned *sum = arg;
    for (size_t i = 0; i < len; i++)
        *sum += ((const uint8_t *)d)[i];
    *sum += (unsigned)seq;
    return 0;
}

static char dir[64];

static void cleanup(void)
{
    char path[128];
    const char *names[] = {"o.cursor", "lock", NULL};
    for (int i = 0; names[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void fix_checksums(uint8_t *b, size_t n)
{
    if (n < SB_SPOOL_SEG_HDR_BYTES)
        return;
    uint64_t h = htole64(XXH3_64bits(b, 56));
    memcpy(b + 56, &h, 8);
    size_t off = SB_SPOOL_SEG_HDR_BYTES;
    while (n - off >= SB_SPOOL_REC_HDR_BYTES) {
        uint32_t len;
        uint64_t gen;
        memcpy(&len, b + off + 24, 4);
        memcpy(&gen, b + off + 16, 8);
        uint64_t fb = sb_spool_frame_bytes(le32toh(len));
        if (fb > n - off)
            break;
        sb_spool_rec_regenerate(b + off, le64toh(gen));
        off += fb;
    }
}

static int one_input(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return one_input(data, 0);
    if (data[size - 1] & 1)
        return one_input(data, size - 1);
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size - 1);
    fix_checksums(copy, size - 1);
    one_input(copy, size - 1);
    free(copy);
    return 0;
}

static int one_input(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        sb_log_set_level(SB_LOG_ERROR + 1); /* recovery warns about every bad file: quiet */
        snprintf(dir, sizeof dir, "/tmp/fuzz_spool.XXXXXX");
        if (!mkdtemp(dir))
            abort();
        atexit(cleanup);
        init = 1;
    }
    /* The generation the header claims, so that a valid header reaches the records. */
    uint64_t gen = 1;
    if (size >= 24) {
        memcpy(&gen, data + 16, 8);
        gen = le64toh(gen);
        if (gen == 0)
            gen = 1;
    }

    struct mem m = {data, size};
    struct sb_spool_scan scan;
    memset(&scan, 0, sizeof scan);
    scan.generation = gen;
    scan.file_bytes = size;
    scan.max_len = UINT32_MAX;
    struct sb_buf scratch = SB_BUF_INIT;
    if (sb_spool_scan_segment(mem_pread, &m, &scan, NULL, NULL, &scratch) != 0)
        abort();
    if (scan.records && (scan.end_offset > size || scan.last_seq < scan.first_seq))
        abort();
    sb_buf_free(&scratch);
    struct sb_spool_cursor_slot c;
    sb_spool_cursor_pick(data, size, &c);

    /* The same bytes as the only segment of a spool directory, recovered read-only and read. */
    char seg[SB_SPOOL_SEG_NAME_LEN + 1], path[128];
    sb_spool_seg_name(seg, gen);
    snprintf(path, sizeof path, "%s/%s", dir, seg);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    uint8_t cur[SB_SPOOL_CUR_FILE_BYTES] = {0};
    struct sb_spool_cursor_slot zero = {1, 0}; /* an output that has acked nothing */
    sb_spool_cursor_encode(cur, &zero);
    snprintf(path, sizeof path, "%s/o.cursor", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, cur, sizeof cur) != (ssize_t)sizeof cur)
        abort();
    close(fd);
    struct sb_spool_opts o;
    sb_spool_opts_init(&o);
    o.dir = dir;
    o.segment_bytes = 64 << 10;
    const char *outs[] = {"o"};
    struct sb_spool *sp = NULL;
    if (sb_spool_open(&sp, NULL, &o, outs, 1) == 0) {
        unsigned sum = 0;
        int n;
        uint64_t got = 0;
        while ((n = sb_spool_read(sp, 0, 1 << 16, count_fn, &sum)) > 0)
            got += (uint64_t)n;
        if (n < 0 && n != -EIO)
            abort();
        if (got > scan.records)
            abort(); /* recovery can never find more than the scan of the same bytes */
        sb_spool_close(sp);
    }
    snprintf(path, sizeof path, "%s/%s", dir, seg);
    unlink(path);
    return 0;
}
