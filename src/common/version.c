/* version.c: the version of the library that is actually loaded. */
#include "segbus/segbus.h"

SEGBUS_API const char *segbus_version(void)
{
    return SEGBUS_VERSION_STRING;
}
