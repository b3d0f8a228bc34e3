/* buf.c: a growable byte buffer. */
#include "common/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sb_buf_reserve(struct sb_buf *buf, size_t more)
{
    size_t need, cap;
    uint8_t *grown;

    if (more > SIZE_MAX - buf->len)
        return -ENOMEM;
    need = buf->len + more;
    if (need <= buf->cap)
        return 0;
    cap = buf->cap ? buf->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    grown = realloc(buf->data, cap);
    if (!grown)
        return -ENOMEM;
    buf->data = grown;
    buf->cap = cap;
    return 0;
}

int sb_buf_append(struct sb_buf *buf, const void *data, size_t len)
{
    int rc = sb_buf_reserve(buf, len);
    if (rc)
        return rc;
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    return 0;
}

int sb_buf_append_str(struct sb_buf *buf, const char *s)
{
    return sb_buf_append(buf, s, strlen(s));
}

void sb_buf_free(struct sb_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}
