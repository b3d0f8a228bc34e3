/* buf.h: a growable byte buffer, the one used everywhere bytes are built up. */
#ifndef SEGBUS_COMMON_BUF_H
#define SEGBUS_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

struct sb_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

#define SB_BUF_INIT {NULL, 0, 0}

/* Make room for `more` bytes past len. 0 or -ENOMEM (the buffer is unchanged then). */
int sb_buf_reserve(struct sb_buf *buf, size_t more);
/* Append bytes. 0 or -ENOMEM. */
int sb_buf_append(struct sb_buf *buf, const void *data, size_t len);
/* Append a NUL-terminated string (without its NUL). 0 or -ENOMEM. */
int sb_buf_append_str(struct sb_buf *buf, const char *s);
/* Forget the contents, keep the memory. */
static inline void sb_buf_clear(struct sb_buf *buf)
{
    buf->len = 0;
}
/* Free the memory; the buffer is empty and reusable afterwards. */
void sb_buf_free(struct sb_buf *buf);

#endif
