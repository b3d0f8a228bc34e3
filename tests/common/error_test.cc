// Every return code has its own text, and the version macros agree with segbus_version().
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>

#include "segbus/segbus.h"

TEST(Error, SuccessAndErrnoHaveText)
{
    EXPECT_STREQ("success", segbus_strerror(0));
    EXPECT_NE(nullptr, std::strstr(segbus_strerror(-EAGAIN), "full"));
    EXPECT_NE(nullptr, std::strstr(segbus_strerror(-EMSGSIZE), "32 KB"));
    EXPECT_STREQ(strerrordesc_np(ENOENT), segbus_strerror(-ENOENT));
}

TEST(Error, EverySegbusCodeHasDistinctText)
{
    std::set<std::string> seen;
    for (int code = SEGBUS_EBASE + 1; code < SEGBUS_ELAST; code++) {
        const char *text = segbus_strerror(-code);
        ASSERT_NE(nullptr, text) << code;
        EXPECT_STRNE("unknown segbus error", text) << "code " << code << " has no text";
        EXPECT_TRUE(seen.insert(text).second) << "duplicate text for code " << code;
    }
    EXPECT_STREQ("unknown error", segbus_strerror(-SEGBUS_ELAST - 5));
}

TEST(Version, MacrosMatchLibrary)
{
    EXPECT_STREQ(SEGBUS_VERSION_STRING, segbus_version());
    char expect[32];
    std::snprintf(expect, sizeof expect, "%d.%d.%d", SEGBUS_VERSION_MAJOR, SEGBUS_VERSION_MINOR,
                  SEGBUS_VERSION_PATCH);
    EXPECT_STREQ(expect, segbus_version());
}
