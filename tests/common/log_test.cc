// Log lines carry time, level and module, and the threshold hides lower levels.
#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "common/log.h"
}

TEST(Log, LineHasLevelModuleAndMessage)
{
    testing::internal::CaptureStderr();
    sb_log_set_level(SB_LOG_INFO);
    sb_info("spool", "recovered %d records", 42);
    sb_debug("spool", "hidden");
    std::string out = testing::internal::GetCapturedStderr();
    EXPECT_NE(std::string::npos, out.find("info  spool: recovered 42 records\n")) << out;
    EXPECT_EQ(std::string::npos, out.find("hidden")) << out;
    EXPECT_EQ('Z', out[23]) << out; // 2026-11-28T14:07:32.123Z
}

TEST(Log, OverlongLineIsCutNotOverflowed)
{
    std::string big(5000, 'x');
    testing::internal::CaptureStderr();
    sb_warn("net", "%s", big.c_str());
    std::string out = testing::internal::GetCapturedStderr();
    EXPECT_LT(out.size(), 2049u);
    EXPECT_EQ('\n', out.back());
}
