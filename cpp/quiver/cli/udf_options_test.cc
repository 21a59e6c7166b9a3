#include "quiver/cli/udf_options.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace quiver::cli {
namespace {

std::vector<exec::UdfCall> Calls() {
  exec::UdfCall geo;
  geo.name = "geo";
  geo.runtime = "py";
  exec::UdfCall native;
  native.name = "native";
  native.runtime = "cc";
  return {geo, native};
}

std::string ErrorOf(const std::vector<std::string>& texts) {
  auto calls = Calls();
  arrow::Status status = ApplyUdfOptions(texts, &calls);
  EXPECT_FALSE(status.ok());
  return status.message();
}

TEST(UdfOptionsTest, OptionsBecomeOneJsonObjectPerUdf) {
  auto calls = Calls();
  ASSERT_TRUE(ApplyUdfOptions({"geo.on_error=null", "geo.max_concurrency=64", "geo.timeout=2.5",
                               "geo.retries=4"},
                              &calls)
                  .ok());
  EXPECT_EQ(calls[0].call_options,
            R"({"on_error": "null", "max_concurrency": 64, "timeout": 2.5, "retries": 4})");
  EXPECT_EQ(calls[1].call_options, "");
}

TEST(UdfOptionsTest, IntegersLoseTheirLeadingZeros) {
  auto calls = Calls();
  ASSERT_TRUE(ApplyUdfOptions({"geo.max_concurrency=064", "geo.retries=03"}, &calls).ok());
  EXPECT_EQ(calls[0].call_options, R"({"max_concurrency": 64, "retries": 3})");
}

TEST(UdfOptionsTest, RetriesMayBeAnObjectOfRetryFields) {
  auto calls = Calls();
  ASSERT_TRUE(ApplyUdfOptions({R"(geo.retries={"max_attempts": 5, "max": 2})"}, &calls).ok());
  EXPECT_EQ(calls[0].call_options, R"({"retries": {"max_attempts": 5, "max": 2}})");
}

TEST(UdfOptionsTest, BadValuesSayWhatTheKeyTakes) {
  EXPECT_NE(ErrorOf({"geo.on_error=nul"}).find("on_error takes raise or null, not 'nul'"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"geo.max_concurrency=0"}).find("max_concurrency takes an integer of 1"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"geo.max_concurrency=2.5"}).find("max_concurrency"), std::string::npos);
  EXPECT_NE(ErrorOf({"geo.timeout=-1"}).find("timeout takes a number of seconds above 0"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"geo.timeout=0x10"}).find("timeout takes"), std::string::npos);
  EXPECT_NE(ErrorOf({"geo.max_concurrency=99999999999"}).find("max_concurrency"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"geo.retries=zero"}).find("retries takes a number of attempts"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"geo.onerror=null"}).find("'onerror' is not a UDF option"), std::string::npos);
}

TEST(UdfOptionsTest, WrongTargetsAreUsageErrors) {
  EXPECT_NE(ErrorOf({"geo"}).find("expected NAME.KEY=VALUE"), std::string::npos);
  EXPECT_NE(ErrorOf({"nope.on_error=null"}).find("no --udf has that name (geo, native)"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"native.on_error=null"}).find("runs on runtime 'cc'"), std::string::npos);
  EXPECT_NE(ErrorOf({"geo.on_error=null", "geo.on_error=raise"}).find("given twice"),
            std::string::npos);
}

}  // namespace
}  // namespace quiver::cli
