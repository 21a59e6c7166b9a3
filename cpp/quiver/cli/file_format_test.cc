#include "quiver/cli/file_format.h"

#include <gtest/gtest.h>

#include "quiver/cli/usage_error.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::cli {
namespace {

TEST(FileFormat, DetectsTheExtension) {
  EXPECT_EQ(FormatFromExtension("a/b/people.parquet"), FileFormat::kParquet);
  EXPECT_EQ(FormatFromExtension("people.PQ"), FileFormat::kParquet);
  EXPECT_EQ(FormatFromExtension("people.csv"), FileFormat::kCsv);
  EXPECT_EQ(FormatFromExtension("people.arrow"), FileFormat::kArrowFile);
  EXPECT_EQ(FormatFromExtension("people.feather"), FileFormat::kArrowFile);
  EXPECT_EQ(FormatFromExtension("people.ipc"), FileFormat::kArrowFile);
  EXPECT_EQ(FormatFromExtension("people.arrows"), FileFormat::kArrowStream);
  EXPECT_EQ(FormatFromExtension("people.json"), std::nullopt);
  EXPECT_EQ(FormatFromExtension("parquet"), std::nullopt);
  EXPECT_EQ(FormatFromExtension(""), std::nullopt);
}

TEST(FileFormat, ParsesNames) {
  ASSERT_OK_AND_ASSIGN(auto format, ParseFormatName("Parquet"));
  EXPECT_EQ(format, FileFormat::kParquet);
  ASSERT_OK_AND_ASSIGN(format, ParseFormatName("arrows"));
  EXPECT_EQ(format, FileFormat::kArrowStream);
  ASSERT_OK_AND_ASSIGN(format, ParseFormatName("noop"));
  EXPECT_EQ(format, FileFormat::kNoop);
  auto unknown = ParseFormatName("json");
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(IsUsageError(unknown.status()));
  EXPECT_NE(unknown.status().message().find("unknown format 'json'"), std::string::npos);
}

TEST(FileFormat, NamesRoundTrip) {
  for (auto format : {FileFormat::kParquet, FileFormat::kCsv, FileFormat::kArrowFile,
                      FileFormat::kArrowStream, FileFormat::kNoop}) {
    ASSERT_OK_AND_ASSIGN(auto parsed, ParseFormatName(FormatName(format)));
    EXPECT_EQ(parsed, format);
  }
}

TEST(FileFormat, ResolvesExplicitNamesFirst) {
  ASSERT_OK_AND_ASSIGN(auto format, ResolveInputFormat("data.bin", std::string("csv")));
  EXPECT_EQ(format, FileFormat::kCsv);
  ASSERT_OK_AND_ASSIGN(format, ResolveOutputFormat("out.parquet", std::string("arrow")));
  EXPECT_EQ(format, FileFormat::kArrowFile);
  ASSERT_OK_AND_ASSIGN(format, ResolveOutputFormat("", std::string("noop")));
  EXPECT_EQ(format, FileFormat::kNoop);
}

TEST(FileFormat, ExplainsAnUnknownExtension) {
  auto input = ResolveInputFormat("data.bin", std::nullopt);
  ASSERT_FALSE(input.ok());
  EXPECT_TRUE(IsUsageError(input.status()));
  EXPECT_NE(input.status().message().find("name it with --input-format"), std::string::npos);
  auto output = ResolveOutputFormat("out", std::nullopt);
  EXPECT_NE(output.status().message().find("--output-format parquet|csv|arrow|arrows|noop"),
            std::string::npos);
}

TEST(FileFormat, AsksForAnOutput) {
  auto output = ResolveOutputFormat("", std::nullopt);
  ASSERT_FALSE(output.ok());
  EXPECT_TRUE(IsUsageError(output.status()));
  EXPECT_NE(output.status().message().find("add -o OUTPUT"), std::string::npos);
}

TEST(FileFormat, RefusesToReadNoop) {
  auto input = ResolveInputFormat("x.parquet", std::string("noop"));
  ASSERT_FALSE(input.ok());
  EXPECT_NE(input.status().message().find("output format only"), std::string::npos);
}

}  // namespace
}  // namespace quiver::cli
