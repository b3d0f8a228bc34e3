/* sb_scratch.h: the per-thread scratch memory of the Python and Ruby event calls. A converter may
 * run language code (isoformat, __str__, to_s) that switches threads or re-enters an event call
 * from a logging handler; so scratch memory is per thread, and a re-entered call gets fresh
 * memory (*temp = 1: the caller frees it) instead of the busy one. Header-only: each binding is
 * its own shared object with its own key. */
#ifndef SEGBUS_BINDINGS_SB_SCRATCH_H
#define SEGBUS_BINDINGS_SB_SCRATCH_H

#include <pthread.h>
#include <stdlib.h>

#include <msgpack.h>

#include "segbus/segbus.h"

struct sb_scratch {
    msgpack_sbuffer buf;
    segbus_map_t *maps[3]; /* body (properties or traits), context, integrations */
    int busy;
};

static pthread_key_t sb_scratch_key;
static pthread_once_t sb_scratch_once = PTHREAD_ONCE_INIT;

static inline void sb_scratch_free(void *p)
{
    struct sb_scratch *s = (struct sb_scratch *)p;
    if (!s)
        return;
    msgpack_sbuffer_destroy(&s->buf);
    for (int i = 0; i < 3; i++)
        segbus_map_free(s->maps[i]);
    free(s);
}

static inline void sb_scratch_key_init(void)
{
    (void)pthread_key_create(&sb_scratch_key, sb_scratch_free);
}

static inline struct sb_scratch *sb_scratch_new(void)
{
    struct sb_scratch *s = (struct sb_scratch *)calloc(1, sizeof *s);
    if (!s)
        return NULL;
    msgpack_sbuffer_init(&s->buf);
    for (int i = 0; i < 3; i++) {
        if (!(s->maps[i] = segbus_map_new())) {
            sb_scratch_free(s);
            return NULL;
        }
    }
    return s;
}

/* The thread's scratch, or a fresh one (*temp = 1) when it is busy. NULL: no memory. */
static inline struct sb_scratch *sb_scratch_get(int *temp)
{
    (void)pthread_once(&sb_scratch_once, sb_scratch_key_init);
    struct sb_scratch *s = (struct sb_scratch *)pthread_getspecific(sb_scratch_key);
    *temp = 0;
    if (s && !s->busy)
        return s;
    if (!s) {
        if (!(s = sb_scratch_new()))
            return NULL;
        if (pthread_setspecific(sb_scratch_key, s) == 0)
            return s;
    } else if (!(s = sb_scratch_new())) {
        return NULL;
    }
    *temp = 1;
    return s;
}

#endif
