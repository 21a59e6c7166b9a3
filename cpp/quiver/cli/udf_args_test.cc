#include "quiver/cli/udf_args.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "quiver/cli/usage_error.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::cli {
namespace {

std::vector<exec::UdfCall> Calls() {
  exec::UdfCall label;
  label.name = "label";
  label.runtime = "py";
  exec::UdfCall other;
  other.name = "other";
  other.runtime = "py";
  exec::UdfCall native;
  native.name = "native";
  native.runtime = "cc";
  return {label, other, native};
}

TEST(UdfArgJsonTest, JsonValuesPassAsWrittenAndTextBecomesAString) {
  EXPECT_EQ(UdfArgJson("0.5"), "0.5");
  EXPECT_EQ(UdfArgJson("-12"), "-12");
  EXPECT_EQ(UdfArgJson("1e-3"), "1e-3");
  EXPECT_EQ(UdfArgJson("true"), "true");
  EXPECT_EQ(UdfArgJson("null"), "null");
  EXPECT_EQ(UdfArgJson("[1, 2]"), "[1, 2]");
  EXPECT_EQ(UdfArgJson(R"({"a": 1})"), R"({"a": 1})");
  EXPECT_EQ(UdfArgJson(R"("quoted")"), R"("quoted")");
  EXPECT_EQ(UdfArgJson("/models/clf.bin"), R"("/models/clf.bin")");
  EXPECT_EQ(UdfArgJson("01"), R"("01")");  // not a JSON number: text
  EXPECT_EQ(UdfArgJson("1."), R"("1.")");
  EXPECT_EQ(UdfArgJson(""), R"("")");
  EXPECT_EQ(UdfArgJson("say \"hi\"\\\n"), R"("say \"hi\"\\\n")");
}

TEST(ApplyUdfArgsTest, BuildsOneJsonObjectPerUdfInTheOrderGiven) {
  auto calls = Calls();
  ASSERT_OK(ApplyUdfArgs({"label.threshold=0.5", "label.path=/m/clf.bin", "other.k=[1]"}, &calls));
  EXPECT_EQ(calls[0].constructor_args, R"({"threshold": 0.5, "path": "/m/clf.bin"})");
  EXPECT_EQ(calls[1].constructor_args, R"({"k": [1]})");
  EXPECT_EQ(calls[2].constructor_args, "");
}

TEST(ApplyUdfArgsTest, ADottedUdfNameSplitsAtTheLastDotBeforeTheEquals) {
  std::vector<exec::UdfCall> calls(1);
  calls[0].name = "a.b";
  calls[0].runtime = "py";
  ASSERT_OK(ApplyUdfArgs({"a.b.x=v.w"}, &calls));
  EXPECT_EQ(calls[0].constructor_args, R"({"x": "v.w"})");
}

TEST(ApplyUdfArgsTest, MistakesAreUsageErrorsThatSayWhatIsWrong) {
  struct Case {
    std::string text;
    std::string says;
  };
  for (const auto& [text, says] : std::vector<Case>{
           {"label", "expected NAME.KEY=VALUE"},
           {"label=1", "expected NAME.KEY=VALUE"},
           {"label.2x=1", "'2x' is not a keyword argument name"},
           {"nope.k=1", "no --udf has that name (label, other, native)"},
           {"native.k=1", "runs on runtime 'cc'"},
       }) {
    auto calls = Calls();
    const auto status = ApplyUdfArgs({text}, &calls);
    EXPECT_TRUE(IsUsageError(status)) << text << ": " << status.ToString();
    EXPECT_NE(status.message().find(says), std::string::npos) << status.message();
  }
  auto calls = Calls();
  const auto twice = ApplyUdfArgs({"label.k=1", "label.k=2"}, &calls);
  EXPECT_NE(twice.message().find("label.k is given twice"), std::string::npos);
}

}  // namespace
}  // namespace quiver::cli
