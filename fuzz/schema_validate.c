/* fuzz/schema_validate.c: a schema and an instance from outside (JSON, split at the first
 * newline); compiling and validating must not crash, leak or disagree between the collecting
 * and the stop-at-first modes (beyond what stopping early explains). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "plan/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t slen = nl ? (size_t)(nl - data) : size;
    struct sb_schema *s = NULL;
    char err[200];
    if (sb_schema_compile_json((const char *)data, slen, &s, err, sizeof err) != 0)
        return 0;
    const char *inst = nl ? (const char *)nl + 1 : "{\"a\":[1,2.5,\"x\",null,true,{}]}";
    size_t ilen = nl ? size - slen - 1 : strlen(inst);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (sb_json_to_msgpack(inst, ilen, &pk, NULL) == 0) {
        struct sb_violations v = {0};
        int a = sb_schema_validate(s, (const uint8_t *)sb.data, sb.size, &v);
        int b = sb_schema_validate(s, (const uint8_t *)sb.data, sb.size, NULL);
        /* Stopping at the first failure does a prefix of the collecting walk: it may stop before
         * a $ref cycle the full walk runs into (-ELOOP), never the other way round. */
        if (a >= 0 && b >= 0 && a != b)
            abort();
        if (b == -ELOOP && a != -ELOOP)
            abort();
        if (a == -ELOOP && b != 0 && b != -ELOOP)
            abort();
        if ((a == 1 && v.count) || (a == 0 && !v.count) || (a < 0 && v.count))
            abort();
        for (size_t i = 0; i < v.count; i++)
            if (!v.items[i].path || !v.items[i].pointer || !v.items[i].reason)
                abort();
        sb_violations_free(&v);
    }
    msgpack_sbuffer_destroy(&sb);
    sb_schema_free(s);
    return 0;
}
