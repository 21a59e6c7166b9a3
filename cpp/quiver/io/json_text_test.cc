#include "quiver/io/json_text.h"

#include <string>

#include <gtest/gtest.h>

namespace quiver::io {
namespace {

TEST(JsonText, QuotesAndEscapesWhatJsonRequires) {
  EXPECT_EQ(JsonQuoted(""), "\"\"");
  EXPECT_EQ(JsonQuoted("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
  EXPECT_EQ(JsonQuoted("a\nb\tc\rd"), "\"a\\nb\\tc\\rd\"");
  EXPECT_EQ(JsonQuoted(std::string("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\\u007f\"");
}

TEST(JsonText, LeavesUtf8AsItIs) { EXPECT_EQ(JsonQuoted("straße ✓"), "\"straße ✓\""); }

}  // namespace
}  // namespace quiver::io
