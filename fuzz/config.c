/* config.c (fuzz): the YAML configuration loader on arbitrary bytes: it must return 0 or
 * -EINVAL with a message, never crash, leak or hang (aliases, deep nesting, odd scalars). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sb_config cfg;
    struct sb_config_error err;
    int rc = sb_config_load_string(&cfg, (const char *)data, size, "fuzz", &err);

    if (rc == 0)
        sb_config_free(&cfg);
    else if (rc == -EINVAL && !err.msg[0])
        abort(); /* every refusal must say why */
    return 0;
}
