// The growable buffer keeps what was appended, across growth, and frees cleanly.
#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "common/buf.h"
}

TEST(Buf, AppendsAcrossGrowth)
{
    struct sb_buf buf = SB_BUF_INIT;
    std::string expect;
    for (int i = 0; i < 1000; i++) {
        std::string piece = std::to_string(i) + ",";
        ASSERT_EQ(0, sb_buf_append_str(&buf, piece.c_str()));
        expect += piece;
    }
    ASSERT_EQ(expect.size(), buf.len);
    EXPECT_EQ(expect, std::string((const char *)buf.data, buf.len));
    EXPECT_GE(buf.cap, buf.len);
    sb_buf_clear(&buf);
    EXPECT_EQ(0u, buf.len);
    sb_buf_free(&buf);
    EXPECT_EQ(nullptr, buf.data);
    sb_buf_free(&buf); // twice is harmless
}

TEST(Buf, RefusesImpossibleSize)
{
    struct sb_buf buf = SB_BUF_INIT;
    ASSERT_EQ(0, sb_buf_append(&buf, "abc", 3));
    EXPECT_EQ(-ENOMEM, sb_buf_reserve(&buf, SIZE_MAX - 1));
    EXPECT_EQ(3u, buf.len);
    sb_buf_free(&buf);
}
