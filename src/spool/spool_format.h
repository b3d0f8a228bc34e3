/* spool_format.h: the spool's on-disk bytes (segment header, record frame, cursor slot) and
 * their pure encoders/checkers, shared by the spool engine, recovery, tools and the fuzzer.
 *
 * The format is specified in docs/formats-spool.md; every integer is little-endian. Nothing
 * here does I/O except sb_spool_scan_segment(), which reads through a caller's pread-like function
 * so that recovery (real files) and the fuzzer (memory) run exactly the same code.
 */
#ifndef SEGBUS_SPOOL_FORMAT_H
#define SEGBUS_SPOOL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"

#define SB_SPOOL_VERSION 1u
#define SB_SPOOL_SEG_MAGIC "SBSPOOL" /* 8 bytes with its NUL */
#define SB_SPOOL_SEG_HDR_BYTES 64u
#define SB_SPOOL_REC_MAGIC 0x31524253u /* "SBR1" as bytes on disk */
#define SB_SPOOL_REC_HDR_BYTES 40u
#define SB_SPOOL_REC_ALIGN 8u
#define SB_SPOOL_CUR_MAGIC 0x31434253u /* "SBC1" */
#define SB_SPOOL_CUR_HAS_OUT_POS 1u    /* cursor flags: out_pos and out_id are set */
#define SB_SPOOL_CUR_SLOT_BYTES 64u
#define SB_SPOOL_CUR_SLOT_STRIDE                                                                   \
    4096u /* slots on different pages/sectors: a torn write hits one                               \
           */
#define SB_SPOOL_CUR_FILE_BYTES (2u * SB_SPOOL_CUR_SLOT_STRIDE)

/* Bytes a record of `len` payload bytes takes in a segment, frame and padding included. */
static inline uint64_t sb_spool_frame_bytes(uint64_t len)
{
    return (SB_SPOOL_REC_HDR_BYTES + len + SB_SPOOL_REC_ALIGN - 1) &
           ~(uint64_t)(SB_SPOOL_REC_ALIGN - 1);
}

struct sb_spool_seg_hdr {
    uint32_t version;
    uint32_t header_bytes;
    uint64_t generation;
    uint64_t first_seq;
    uint64_t segment_bytes;
    uint64_t created_unix_ns;
};

/* Why a record or header is not acceptable. SB_SPOOL_OK and SB_SPOOL_END are not errors:
 * END is a zero magic, the pre-zeroed (or truncated-and-reallocated) space after the last
 * record. SHORT means more bytes are needed than were given. */
enum sb_spool_status {
    SB_SPOOL_OK = 0,
    SB_SPOOL_SHORT,
    SB_SPOOL_END,
    SB_SPOOL_BAD_MAGIC,
    SB_SPOOL_BAD_VERSION,
    SB_SPOOL_BAD_FIELD, /* a reserved field or flag is not zero, or a size is impossible */
    SB_SPOOL_BAD_GENERATION,
    SB_SPOOL_BAD_SEQ,
    SB_SPOOL_BAD_LENGTH,
    SB_SPOOL_BAD_CHECKSUM,
    SB_SPOOL_TRUNCATED, /* the file ends inside a record */
    SB_SPOOL_IO_ERROR,
};
const char *sb_spool_status_str(enum sb_spool_status st);

/* Segment header: encode into 64 bytes; decode/verify 64 bytes. */
void sb_spool_seg_hdr_encode(uint8_t out[SB_SPOOL_SEG_HDR_BYTES], const struct sb_spool_seg_hdr *h);
enum sb_spool_status sb_spool_seg_hdr_decode(const uint8_t *p, size_t avail,
                                             struct sb_spool_seg_hdr *h);

/* Frame a record: writes sb_spool_frame_bytes(len) bytes at out (header, payload, zero pad). */
void sb_spool_rec_encode(uint8_t *out, uint64_t seq, uint64_t generation, const void *payload,
                         uint32_t len);
/* Rewrite the generation of an already framed record in place (and its checksum): used to move
 * records that were never durable into a fresh segment. `frame` must be a valid frame. */
void sb_spool_rec_regenerate(uint8_t *frame, uint64_t generation);

struct sb_spool_rec {
    uint64_t seq;
    uint64_t generation;
    uint32_t len;
    uint64_t frame_bytes; /* header + payload + padding */
    const uint8_t *payload;
};

/* What a record must look like to be accepted. seq 0 accepts any sequence number. */
struct sb_spool_rec_expect {
    uint64_t generation;
    uint64_t seq;
    uint32_t max_len;
};

/* Check the record at p[0..avail). OK fills *rec (payload points into p). SHORT: *need is the
 * number of bytes required (header size or whole frame). Never reads past p + avail. */
enum sb_spool_status sb_spool_rec_check(const uint8_t *p, size_t avail,
                                        const struct sb_spool_rec_expect *exp,
                                        struct sb_spool_rec *rec, size_t *need);

/* Cursor slot (two per cursor file; the valid one with the higher counter wins). */
struct sb_spool_cursor_slot {
    uint64_t counter;
    uint64_t acked_seq;
    /* Where the output's own destination stood after delivering acked_seq (e.g. a file's
     * length and inode), when has_out_pos; lets it undo a delivery the cursor never saw. */
    bool has_out_pos;
    uint64_t out_pos, out_id;
};
void sb_spool_cursor_encode(uint8_t out[SB_SPOOL_CUR_SLOT_BYTES],
                            const struct sb_spool_cursor_slot *c);
enum sb_spool_status sb_spool_cursor_decode(const uint8_t *p, size_t avail,
                                            struct sb_spool_cursor_slot *c);
/* Pick the newer valid slot of a whole cursor file's bytes. OK or the reason neither is valid. */
enum sb_spool_status sb_spool_cursor_pick(const uint8_t *file, size_t len,
                                          struct sb_spool_cursor_slot *c);

/* Reads up to len bytes at off into buf; returns bytes read (0 at end of file) or -errno. */
typedef ssize_t (*sb_spool_pread_fn)(void *ctx, void *buf, size_t len, uint64_t off);
/* Called for each valid record; return nonzero to stop the scan there (stop = SB_SPOOL_OK). */
typedef int (*sb_spool_scan_fn)(void *arg, const struct sb_spool_rec *rec, uint64_t offset);

/* The result of scanning one segment file from its header to its first unacceptable record. */
struct sb_spool_scan {
    /* inputs */
    uint64_t generation; /* the generation the file name says; the header must agree */
    uint64_t file_bytes; /* size of the file */
    uint32_t max_len;    /* longest payload accepted */
    /* outputs */
    struct sb_spool_seg_hdr hdr;
    enum sb_spool_status hdr_status; /* not OK: the file holds no usable segment */
    enum sb_spool_status stop;       /* why the scan ended: END at a clean end, else the fault */
    uint64_t records;
    uint64_t first_seq, last_seq; /* 0 when records == 0 */
    uint64_t end_offset;          /* offset just past the last valid record */
    int io_error;                 /* -errno when stop == SB_SPOOL_IO_ERROR */
};

/* Scan a segment: verify the header, then every record in order (magic, generation, seq
 * exactly one more than the last, length bounds, checksum) until the first that fails or a
 * clean end. `scratch` is a read window the caller keeps (it grows to the largest record).
 * Returns 0, or -ENOMEM; a bad file is a result, not an error. */
int sb_spool_scan_segment(sb_spool_pread_fn rd, void *ctx, struct sb_spool_scan *scan,
                          sb_spool_scan_fn fn, void *arg, struct sb_buf *scratch);

/* File names: "<16 hex digits>.seg" for segments, "<output>.cursor" for cursors. */
#define SB_SPOOL_SEG_NAME_LEN 20 /* without the NUL */
void sb_spool_seg_name(char out[SB_SPOOL_SEG_NAME_LEN + 1], uint64_t generation);
bool sb_spool_seg_name_parse(const char *name, uint64_t *generation);
/* Output names become file names: 1..64 of [A-Za-z0-9_.-], not starting with '.'. */
bool sb_spool_output_name_ok(const char *name);

#endif
