/* spool_format.c: encoders and checkers of the spool's on-disk bytes (docs/formats-spool.md). */
#include "spool/spool_format.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: no allocation per record */
#include <xxhash.h>

static inline void put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}
static inline void put64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
}
static inline uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}
static inline uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

const char *sb_spool_status_str(enum sb_spool_status st)
{
    switch (st) {
    case SB_SPOOL_OK:
        return "ok";
    case SB_SPOOL_SHORT:
        return "short buffer";
    case SB_SPOOL_END:
        return "end of data";
    case SB_SPOOL_BAD_MAGIC:
        return "bad magic";
    case SB_SPOOL_BAD_VERSION:
        return "unsupported version";
    case SB_SPOOL_BAD_FIELD:
        return "bad reserved field or size";
    case SB_SPOOL_BAD_GENERATION:
        return "wrong generation";
    case SB_SPOOL_BAD_SEQ:
        return "sequence number out of order";
    case SB_SPOOL_BAD_LENGTH:
        return "impossible length";
    case SB_SPOOL_BAD_CHECKSUM:
        return "checksum mismatch";
    case SB_SPOOL_TRUNCATED:
        return "file ends inside a record";
    case SB_SPOOL_IO_ERROR:
        return "read error";
    }
    return "unknown status";
}

/* Header layout: magic[8] version u32, header_bytes u32, generation, first_seq, segment_bytes,
 * created_unix_ns, reserved u64, xxh3_64 of bytes 0..55. */
void sb_spool_seg_hdr_encode(uint8_t out[SB_SPOOL_SEG_HDR_BYTES], const struct sb_spool_seg_hdr *h)
{
    memset(out, 0, SB_SPOOL_SEG_HDR_BYTES);
    memcpy(out, SB_SPOOL_SEG_MAGIC, 8);
    put32(out + 8, SB_SPOOL_VERSION);
    put32(out + 12, SB_SPOOL_SEG_HDR_BYTES);
    put64(out + 16, h->generation);
    put64(out + 24, h->first_seq);
    put64(out + 32, h->segment_bytes);
    put64(out + 40, h->created_unix_ns);
    put64(out + 56, XXH3_64bits(out, 56));
}

enum sb_spool_status sb_spool_seg_hdr_decode(const uint8_t *p, size_t avail,
                                             struct sb_spool_seg_hdr *h)
{
    if (avail < SB_SPOOL_SEG_HDR_BYTES)
        return SB_SPOOL_TRUNCATED;
    static const uint8_t zero[SB_SPOOL_SEG_HDR_BYTES];
    if (memcmp(p, zero, sizeof zero) == 0)
        return SB_SPOOL_END;
    if (memcmp(p, SB_SPOOL_SEG_MAGIC, 8) != 0)
        return SB_SPOOL_BAD_MAGIC;
    if (get64(p + 56) != XXH3_64bits(p, 56))
        return SB_SPOOL_BAD_CHECKSUM;
    h->version = get32(p + 8);
    if (h->version != SB_SPOOL_VERSION)
        return SB_SPOOL_BAD_VERSION;
    h->header_bytes = get32(p + 12);
    h->generation = get64(p + 16);
    h->first_seq = get64(p + 24);
    h->segment_bytes = get64(p + 32);
    h->created_unix_ns = get64(p + 40);
    if (h->header_bytes != SB_SPOOL_SEG_HDR_BYTES || get64(p + 48) != 0 || h->first_seq == 0 ||
        h->segment_bytes < SB_SPOOL_SEG_HDR_BYTES + SB_SPOOL_REC_HDR_BYTES)
        return SB_SPOOL_BAD_FIELD;
    return SB_SPOOL_OK;
}

static uint64_t rec_sum(const uint8_t *hdr, const void *payload, uint32_t len)
{
    /* Streaming equals the one-shot hash of hdr[0..32) || payload: what the format specifies. */
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, hdr, 32);
    XXH3_64bits_update(&st, payload, len);
    return XXH3_64bits_digest(&st);
}

/* Record layout: magic u32, flags u32, seq u64, generation u64, len u32, reserved u32,
 * xxh3_64(bytes 0..31 || payload) u64, payload, zero padding to 8. */
void sb_spool_rec_encode(uint8_t *out, uint64_t seq, uint64_t generation, const void *payload,
                         uint32_t len)
{
    put32(out, SB_SPOOL_REC_MAGIC);
    put32(out + 4, 0);
    put64(out + 8, seq);
    put64(out + 16, generation);
    put32(out + 24, len);
    put32(out + 28, 0);
    if (len)
        memcpy(out + SB_SPOOL_REC_HDR_BYTES, payload, len);
    uint64_t total = sb_spool_frame_bytes(len);
    memset(out + SB_SPOOL_REC_HDR_BYTES + len, 0, total - SB_SPOOL_REC_HDR_BYTES - len);
    put64(out + 32, rec_sum(out, out + SB_SPOOL_REC_HDR_BYTES, len));
}

void sb_spool_rec_regenerate(uint8_t *frame, uint64_t generation)
{
    put64(frame + 16, generation);
    put64(frame + 32, rec_sum(frame, frame + SB_SPOOL_REC_HDR_BYTES, get32(frame + 24)));
}

enum sb_spool_status sb_spool_rec_check(const uint8_t *p, size_t avail,
                                        const struct sb_spool_rec_expect *exp,
                                        struct sb_spool_rec *rec, size_t *need)
{
    if (avail < SB_SPOOL_REC_HDR_BYTES) {
        *need = SB_SPOOL_REC_HDR_BYTES;
        return SB_SPOOL_SHORT;
    }
    uint32_t magic = get32(p);
    if (magic == 0)
        return SB_SPOOL_END;
    if (magic != SB_SPOOL_REC_MAGIC)
        return SB_SPOOL_BAD_MAGIC;
    if (get32(p + 4) != 0 || get32(p + 28) != 0)
        return SB_SPOOL_BAD_FIELD;
    rec->seq = get64(p + 8);
    rec->generation = get64(p + 16);
    rec->len = get32(p + 24);
    if (rec->generation != exp->generation)
        return SB_SPOOL_BAD_GENERATION;
    if (rec->seq == 0 || (exp->seq && rec->seq != exp->seq))
        return SB_SPOOL_BAD_SEQ;
    if (rec->len > exp->max_len)
        return SB_SPOOL_BAD_LENGTH;
    rec->frame_bytes = sb_spool_frame_bytes(rec->len);
    if (avail < rec->frame_bytes) {
        *need = rec->frame_bytes;
        return SB_SPOOL_SHORT;
    }
    rec->payload = p + SB_SPOOL_REC_HDR_BYTES;
    if (get64(p + 32) != rec_sum(p, rec->payload, rec->len))
        return SB_SPOOL_BAD_CHECKSUM;
    return SB_SPOOL_OK;
}

/* Slot layout: magic u32, version u32, counter u64, acked_seq u64, flags u32, reserved u32,
 * out_pos u64, out_id u64, reserved u64, xxh3(0..55). Flags bit 0: out_pos/out_id are set. */
void sb_spool_cursor_encode(uint8_t out[SB_SPOOL_CUR_SLOT_BYTES],
                            const struct sb_spool_cursor_slot *c)
{
    memset(out, 0, SB_SPOOL_CUR_SLOT_BYTES);
    put32(out, SB_SPOOL_CUR_MAGIC);
    put32(out + 4, SB_SPOOL_VERSION);
    put64(out + 8, c->counter);
    put64(out + 16, c->acked_seq);
    if (c->has_out_pos) {
        put32(out + 24, SB_SPOOL_CUR_HAS_OUT_POS);
        put64(out + 32, c->out_pos);
        put64(out + 40, c->out_id);
    }
    put64(out + 56, XXH3_64bits(out, 56));
}

enum sb_spool_status sb_spool_cursor_decode(const uint8_t *p, size_t avail,
                                            struct sb_spool_cursor_slot *c)
{
    if (avail < SB_SPOOL_CUR_SLOT_BYTES)
        return SB_SPOOL_TRUNCATED;
    if (get32(p) == 0 && get64(p + 56) == 0)
        return SB_SPOOL_END;
    if (get32(p) != SB_SPOOL_CUR_MAGIC)
        return SB_SPOOL_BAD_MAGIC;
    if (get64(p + 56) != XXH3_64bits(p, 56))
        return SB_SPOOL_BAD_CHECKSUM;
    if (get32(p + 4) != SB_SPOOL_VERSION)
        return SB_SPOOL_BAD_VERSION;
    uint32_t flags = get32(p + 24);
    if ((flags & ~SB_SPOOL_CUR_HAS_OUT_POS) || get32(p + 28) != 0 || get64(p + 48) != 0)
        return SB_SPOOL_BAD_FIELD;
    if (!(flags & SB_SPOOL_CUR_HAS_OUT_POS) && (get64(p + 32) != 0 || get64(p + 40) != 0))
        return SB_SPOOL_BAD_FIELD;
    c->counter = get64(p + 8);
    c->acked_seq = get64(p + 16);
    c->has_out_pos = flags & SB_SPOOL_CUR_HAS_OUT_POS;
    c->out_pos = get64(p + 32);
    c->out_id = get64(p + 40);
    if (c->counter == 0)
        return SB_SPOOL_BAD_FIELD;
    return SB_SPOOL_OK;
}

enum sb_spool_status sb_spool_cursor_pick(const uint8_t *file, size_t len,
                                          struct sb_spool_cursor_slot *c)
{
    struct sb_spool_cursor_slot s[2];
    enum sb_spool_status st[2];
    st[0] = sb_spool_cursor_decode(file, len, &s[0]);
    st[1] = len > SB_SPOOL_CUR_SLOT_STRIDE
                ? sb_spool_cursor_decode(file + SB_SPOOL_CUR_SLOT_STRIDE,
                                         len - SB_SPOOL_CUR_SLOT_STRIDE, &s[1])
                : SB_SPOOL_TRUNCATED;
    int pick = -1;
    if (st[0] == SB_SPOOL_OK && (st[1] != SB_SPOOL_OK || s[0].counter > s[1].counter))
        pick = 0;
    else if (st[1] == SB_SPOOL_OK)
        pick = 1;
    if (pick < 0)
        return st[0] != SB_SPOOL_END ? st[0] : st[1];
    *c = s[pick];
    return SB_SPOOL_OK;
}

/* Reads stay inside [0, file_bytes): a file shorter than its header claims ends the scan with
 * TRUNCATED rather than reading garbage past it. */
static ssize_t fill(sb_spool_pread_fn rd, void *ctx, uint8_t *buf, size_t want, uint64_t off,
                    uint64_t file_bytes)
{
    if (off >= file_bytes)
        return 0;
    if (want > file_bytes - off)
        want = (size_t)(file_bytes - off);
    size_t got = 0;
    while (got < want) {
        ssize_t n = rd(ctx, buf + got, want - got, off + got);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

#define SCAN_WINDOW (1u << 20)

int sb_spool_scan_segment(sb_spool_pread_fn rd, void *ctx, struct sb_spool_scan *scan,
                          sb_spool_scan_fn fn, void *arg, struct sb_buf *scratch)
{
    scan->records = scan->first_seq = scan->last_seq = 0;
    scan->end_offset = SB_SPOOL_SEG_HDR_BYTES;
    scan->io_error = 0;
    scan->stop = SB_SPOOL_END;
    memset(&scan->hdr, 0, sizeof scan->hdr);

    uint8_t hb[SB_SPOOL_SEG_HDR_BYTES];
    ssize_t n = fill(rd, ctx, hb, sizeof hb, 0, scan->file_bytes);
    if (n < 0) {
        scan->io_error = (int)n;
        scan->hdr_status = scan->stop = SB_SPOOL_IO_ERROR;
        return 0;
    }
    scan->hdr_status = sb_spool_seg_hdr_decode(hb, (size_t)n, &scan->hdr);
    if (scan->hdr_status == SB_SPOOL_OK && scan->hdr.generation != scan->generation)
        scan->hdr_status = SB_SPOOL_BAD_GENERATION;
    if (scan->hdr_status != SB_SPOOL_OK) {
        scan->stop = scan->hdr_status;
        return 0;
    }
    /* The header's size bounds the records, the real file size bounds the reads. */
    uint64_t limit = scan->hdr.segment_bytes;
    if (limit > scan->file_bytes)
        limit = scan->file_bytes;

    struct sb_spool_rec_expect exp = {scan->generation, scan->hdr.first_seq, scan->max_len};
    uint64_t off = SB_SPOOL_SEG_HDR_BYTES; /* file offset of scratch->data[pos] */
    size_t pos = 0;
    sb_buf_clear(scratch);
    if (sb_buf_reserve(scratch, SB_SPOOL_REC_HDR_BYTES) < 0) /* data is never NULL below */
        return -ENOMEM;
    for (;;) {
        struct sb_spool_rec rec;
        size_t need = 0;
        size_t avail = scratch->len - pos;
        enum sb_spool_status st = sb_spool_rec_check(scratch->data + pos, avail, &exp, &rec, &need);
        if (st == SB_SPOOL_SHORT) {
            uint64_t left = limit - off; /* bytes of the segment not yet consumed */
            uint64_t want = need < left ? need : left;
            if (avail < want) {
                /* Slide the unread bytes to the front and read a window (at least `want`). */
                if (avail)
                    memmove(scratch->data, scratch->data + pos, avail);
                scratch->len = avail;
                pos = 0;
                size_t wnd = want > SCAN_WINDOW ? (size_t)want : SCAN_WINDOW;
                if (sb_buf_reserve(scratch, wnd - avail) < 0)
                    return -ENOMEM;
                n = fill(rd, ctx, scratch->data + avail, wnd - avail, off + avail, limit);
                if (n < 0) {
                    scan->io_error = (int)n;
                    scan->stop = SB_SPOOL_IO_ERROR;
                    break;
                }
                scratch->len = avail + (size_t)n;
                if (n > 0)
                    continue;
                /* The file shrank under us: it ends inside what we need. */
                scan->stop = SB_SPOOL_TRUNCATED;
                break;
            }
            /* All the segment's remaining bytes are here and the record needs more: zeros are
             * a clean end; anything else was cut by the file's end or claims too much. */
            int zero = 1;
            for (size_t i = 0; i < avail; i++)
                zero &= scratch->data[pos + i] == 0;
            scan->stop = zero                              ? SB_SPOOL_END
                         : limit < scan->hdr.segment_bytes ? SB_SPOOL_TRUNCATED
                                                           : SB_SPOOL_BAD_LENGTH;
            break;
        }
        if (st != SB_SPOOL_OK) {
            scan->stop = st;
            break;
        }
        if (!scan->records)
            scan->first_seq = rec.seq;
        scan->records++;
        scan->last_seq = rec.seq;
        scan->end_offset = off + rec.frame_bytes;
        if (fn && fn(arg, &rec, off)) {
            scan->stop = SB_SPOOL_OK;
            break;
        }
        off += rec.frame_bytes;
        pos += rec.frame_bytes;
        exp.seq = rec.seq + 1;
    }
    return 0;
}

void sb_spool_seg_name(char out[SB_SPOOL_SEG_NAME_LEN + 1], uint64_t generation)
{
    snprintf(out, SB_SPOOL_SEG_NAME_LEN + 1, "%016llx.seg", (unsigned long long)generation);
}

bool sb_spool_seg_name_parse(const char *name, uint64_t *generation)
{
    if (strlen(name) != SB_SPOOL_SEG_NAME_LEN || strcmp(name + 16, ".seg") != 0)
        return false;
    uint64_t g = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        g = g << 4 | (uint64_t)d;
    }
    if (g == 0)
        return false;
    *generation = g;
    return true;
}

bool sb_spool_output_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64 || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}
