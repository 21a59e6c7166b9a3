#include "quiver/exec/udf_checks.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/compute/expression.h>
#include <arrow/compute/initialize.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>

#include "quiver/testing/python.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/worker/worker_dispatcher.h"

namespace quiver::exec {
namespace {

namespace cp = arrow::compute;

std::shared_ptr<arrow::Schema> PeopleSchema() {
  return arrow::schema({arrow::field("id", arrow::int32()), arrow::field("name", arrow::utf8()),
                        arrow::field("value", arrow::float64()),
                        arrow::field("unit price", arrow::float64())});
}

UdfCall Call(std::string name, std::vector<cp::Expression> arguments) {
  UdfCall call;
  call.name = std::move(name);
  call.payload = "f.py:g";
  call.arguments = std::move(arguments);
  return call;
}

arrow::Status Check(std::vector<UdfCall> calls,
                    std::optional<std::vector<std::string>> pass_through = std::nullopt) {
  UdfOperatorOptions options;
  options.udfs = std::move(calls);
  options.pass_through = std::move(pass_through);
  options.pass_through_label = "--select";
  return CheckUdfCalls(options, *PeopleSchema());
}

class UdfChecks : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_OK(cp::Initialize()); }
};

TEST_F(UdfChecks, ChecksColumnsAgainstTheInput) {
  ASSERT_OK(Check({Call("x", {cp::field_ref("name"),
                              cp::call("add", {cp::field_ref("value"), cp::literal(int64_t{1})}),
                              cp::field_ref("unit price")})}));

  auto status =
      Check({Call("x", {cp::field_ref("id"), cp::call("utf8_upper", {cp::field_ref("nam")})})});
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("UDF 'x' argument 2"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("names column 'nam', which the input does not have; did you "
                                  "mean 'name'?"),
            std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("the input columns are: id, name, value, unit price"),
            std::string::npos)
      << status.message();
}

TEST_F(UdfChecks, ChecksArgumentTypes) {
  auto status = Check({Call("x", {cp::call("utf8_upper", {cp::field_ref("id")})})});
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("UDF 'x' argument 1 (utf8_upper(id)) cannot be computed"),
            std::string::npos)
      << status.message();
}

TEST_F(UdfChecks, ChecksOutputNames) {
  const UdfCall name_udf = Call("name", {cp::field_ref("name")});
  auto status = Check({name_udf});
  EXPECT_NE(status.message().find("leave the column out with --select"), std::string::npos)
      << status.message();
  ASSERT_OK(Check({name_udf}, std::vector<std::string>{"id"}));

  const UdfCall x = Call("x", {cp::field_ref("name")});
  status = Check({x, x}, std::vector<std::string>{});
  EXPECT_NE(status.message().find("two UDFs have that name"), std::string::npos)
      << status.message();

  status = Check({x}, std::vector<std::string>{"id", "nmae"});
  EXPECT_NE(status.message().find("--select names column 'nmae'"), std::string::npos)
      << status.message();
}

TEST(ClosestName, FindsLikelyTyposOnly) {
  const std::vector<std::string> names = {"name", "value", "city"};
  EXPECT_EQ(ClosestName("nmae", names), "name");
  EXPECT_EQ(ClosestName("vlaue", names), "value");
  EXPECT_EQ(ClosestName("zzzzzzzz", names), "");
}

// An engine that embeds the operator, with no command line in between, gets
// the same messages, before any worker starts.
class EmbeddedOperator : public UdfChecks {
 protected:
  void SetUp() override {
    worker::WorkerSpec spec;
    spec.command = worker::PythonWorkerCommand(quiver::testing::PythonForWorkers());
    ASSERT_OK_AND_ASSIGN(dispatcher_, worker::WorkerDispatcher::Make(spec));
  }

  arrow::Status Execute(std::vector<UdfCall> calls,
                        std::optional<std::vector<std::string>> pass_through = std::nullopt) {
    UdfOperatorOptions options;
    options.udfs = std::move(calls);
    options.pass_through = std::move(pass_through);
    ARROW_ASSIGN_OR_RAISE(auto op, UdfOperator::Make(dispatcher_.get(), std::move(options)));
    ARROW_ASSIGN_OR_RAISE(auto input, arrow::RecordBatchReader::Make({}, PeopleSchema()));
    return op->Execute(input).status();
  }

  void TearDown() override { EXPECT_EQ(dispatcher_->workers_started(), 0); }

  std::unique_ptr<worker::WorkerDispatcher> dispatcher_;
};

TEST_F(EmbeddedOperator, MissingColumnListsTheInputColumns) {
  auto status = Execute({Call("x", {cp::field_ref("zzzzzz")})});
  EXPECT_NE(status.message().find("UDF 'x' argument 1 (zzzzzz) names column 'zzzzzz', which the "
                                  "input does not have\nthe input columns are: id, name, value, "
                                  "unit price"),
            std::string::npos)
      << status.ToString();
}

TEST_F(EmbeddedOperator, TypoedColumnGetsADidYouMean) {
  auto status = Execute({Call("x", {cp::field_ref("vlaue")})});
  EXPECT_NE(status.message().find("names column 'vlaue', which the input does not have; did you "
                                  "mean 'value'?"),
            std::string::npos)
      << status.ToString();
  status = Execute({Call("x", {cp::field_ref("id")})}, std::vector<std::string>{"nmae"});
  EXPECT_NE(status.message().find("pass_through names column 'nmae', which the input does not "
                                  "have; did you mean 'name'?"),
            std::string::npos)
      << status.ToString();
}

TEST_F(EmbeddedOperator, DuplicateNamesAreRefused) {
  const UdfCall x = Call("x", {cp::field_ref("id")});
  auto status = Execute({x, x});
  EXPECT_NE(status.message().find("UDF name 'x' is used twice in the output: two UDFs have that "
                                  "name"),
            std::string::npos)
      << status.ToString();
  status = Execute({Call("value", {cp::field_ref("id")})});
  EXPECT_NE(status.message().find("UDF name 'value' is used twice in the output: the input column "
                                  "of that name is kept beside the results; rename the UDF or "
                                  "leave the column out with pass_through"),
            std::string::npos)
      << status.ToString();
}

}  // namespace
}  // namespace quiver::exec
