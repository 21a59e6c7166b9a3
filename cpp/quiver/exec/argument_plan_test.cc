#include "quiver/exec/argument_plan.h"

#include <gtest/gtest.h>

#include <arrow/compute/initialize.h>
#include <arrow/json/from_string.h>
#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::exec {
namespace {

namespace cp = arrow::compute;

std::shared_ptr<arrow::RecordBatch> Input() {
  auto schema =
      arrow::schema({arrow::field("name", arrow::utf8()), arrow::field("value", arrow::int64())});
  // Long enough that the encoder references the characters instead of copying them.
  const std::string a(300, 'a');
  const std::string c(300, 'c');
  auto names = *arrow::json::ArrayFromJSONString(arrow::utf8(),
                                                 "[\"" + a + "\", null, \"" + c + "\", \"dd\"]");
  auto values = *arrow::json::ArrayFromJSONString(arrow::int64(), "[1, 2, null, 4]");
  return arrow::RecordBatch::Make(schema, 4, {names, values});
}

UdfCall Call(std::string name, std::vector<cp::Expression> arguments) {
  UdfCall call;
  call.name = std::move(name);
  call.arguments = std::move(arguments);
  return call;
}

class ArgumentPlanTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(cp::Initialize()); }
};

TEST_F(ArgumentPlanTest, PlainColumnsAreSentFromTheirOwnBuffers) {
  auto input = Input()->Slice(1, 3);  // a slice: non-zero offsets travel as they are
  ASSERT_OK_AND_ASSIGN(auto plan,
                       ArgumentPlan::Make({Call("f", {cp::field_ref("name")})}, *input->schema()));
  ASSERT_OK_AND_ASSIGN(auto arguments, plan.Build(input));
  EXPECT_EQ(arguments->column(0).get(), input->column(0).get());  // the same array object
  ASSERT_OK_AND_ASSIGN(auto buffers, protocol::EncodeBatchStream(*arguments));
  const auto& characters = input->column(0)->data()->buffers[2];
  bool referenced = false;
  for (const auto& buffer : buffers) {
    referenced |= buffer->data() > characters->data() &&
                  buffer->data() < characters->data() + characters->size();
  }
  EXPECT_TRUE(referenced) << "the characters must go out from the input's own buffer";
}

TEST_F(ArgumentPlanTest, SharedArgumentsBecomeOneColumn) {
  auto input = Input();
  ASSERT_OK_AND_ASSIGN(
      auto plan, ArgumentPlan::Make({Call("f", {cp::field_ref("value"), cp::field_ref("name")}),
                                     Call("g", {cp::field_ref("name")})},
                                    *input->schema()));
  EXPECT_EQ(plan.schema()->num_fields(), 2);
  EXPECT_EQ(plan.offsets()[0], (std::vector<int>{0, 1}));
  EXPECT_EQ(plan.offsets()[1], (std::vector<int>{1}));
}

TEST_F(ArgumentPlanTest, ExpressionsAreEvaluatedColumnar) {
  auto input = Input();
  ASSERT_OK_AND_ASSIGN(
      auto plan,
      ArgumentPlan::Make(
          {Call("f", {cp::call("utf8_upper", {cp::field_ref("name")}),
                      cp::call("add", {cp::field_ref("value"), cp::literal(int64_t{10})}),
                      cp::literal(std::string("constant"))})},
          *input->schema()));
  ASSERT_OK_AND_ASSIGN(auto arguments, plan.Build(input));
  auto upper = *arrow::json::ArrayFromJSONString(
      arrow::utf8(),
      "[\"" + std::string(300, 'A') + "\", null, \"" + std::string(300, 'C') + "\", \"DD\"]");
  auto added = *arrow::json::ArrayFromJSONString(arrow::int64(), "[11, 12, null, 14]");
  auto constant = *arrow::json::ArrayFromJSONString(
      arrow::utf8(), R"(["constant", "constant", "constant", "constant"])");
  EXPECT_TRUE(arguments->column(0)->Equals(*upper)) << arguments->column(0)->ToString();
  EXPECT_TRUE(arguments->column(1)->Equals(*added));
  EXPECT_TRUE(arguments->column(2)->Equals(*constant));
}

TEST_F(ArgumentPlanTest, UnknownColumnNamesTheUdfAndListsTheColumns) {
  auto input = Input();
  auto plan = ArgumentPlan::Make({Call("clean", {cp::field_ref("nmae")})}, *input->schema());
  ASSERT_FALSE(plan.ok());
  const std::string message = plan.status().message();
  EXPECT_NE(message.find("UDF 'clean' argument 1"), std::string::npos) << message;
  EXPECT_NE(message.find("names column 'nmae', which the input does not have"), std::string::npos)
      << message;
  EXPECT_NE(message.find("the input columns are: name, value"), std::string::npos) << message;
}

TEST_F(ArgumentPlanTest, UnknownFunctionIsAnError) {
  auto input = Input();
  auto plan = ArgumentPlan::Make(
      {Call("f", {cp::call("no_such_function", {cp::field_ref("name")})})}, *input->schema());
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("no_such_function"), std::string::npos);
}

}  // namespace
}  // namespace quiver::exec
