#include "quiver/sdk/registry.h"

#include <gtest/gtest.h>

#include "quiver/sdk/errors.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::sdk {
namespace {

ScalarFunction Constant(int tag) {
  return [tag](const Arrays& args) -> arrow::Result<std::shared_ptr<arrow::Array>> {
    return arrow::MakeArrayOfNull(arrow::int32(), args.empty() ? tag : args[0]->length());
  };
}

arrow::FieldVector Fields(std::vector<std::shared_ptr<arrow::DataType>> types) {
  arrow::FieldVector fields;
  for (size_t i = 0; i < types.size(); ++i) {
    fields.push_back(arrow::field("c" + std::to_string(i), types[i]));
  }
  return fields;
}

TEST(Registry, PicksTheOverloadForTheArgumentTypes) {
  Registry registry;
  registry.Scalar("f", {arrow::int64()}, arrow::int64(), Constant(1))
      .Scalar("f", {arrow::float64()}, arrow::float64(), Constant(2))
      .Scalar("f", {arrow::utf8(), AnyType()}, SameTypeAs(1), Constant(3));
  ASSERT_OK(registry.status());
  ASSERT_OK_AND_ASSIGN(auto resolved, registry.Resolve("u", "f", Fields({arrow::float64()})));
  EXPECT_TRUE(resolved.result_type->Equals(*arrow::float64()));
  ASSERT_OK_AND_ASSIGN(resolved,
                       registry.Resolve("u", "f", Fields({arrow::utf8(), arrow::date32()})));
  EXPECT_TRUE(resolved.result_type->Equals(*arrow::date32()));
  EXPECT_EQ(registry.names(), std::vector<std::string>{"f"});
}

TEST(Registry, AnUnknownNameIsAWorkerErrorListingTheKnownOnes) {
  Registry registry;
  registry.Scalar("alpha", {AnyType()}, SameTypeAs(0), Constant(1))
      .Scalar("beta", {AnyType()}, SameTypeAs(0), Constant(1));
  auto resolved = registry.Resolve("col", "gamma", Fields({arrow::int8()}));
  ASSERT_FALSE(resolved.ok());
  const v1::Error error = ErrorOf(resolved.status());
  ASSERT_TRUE(error.has_worker_error());
  EXPECT_EQ(error.worker_error().udf_name(), "col");
  EXPECT_NE(error.worker_error().message().find("'gamma'"), std::string::npos);
  EXPECT_NE(error.worker_error().message().find("alpha, beta"), std::string::npos);
}

TEST(Registry, AnUnsupportedTypeNamesTheColumnAndType) {
  Registry registry;
  registry.Scalar("inc", {arrow::int64()}, arrow::int64(), Constant(1));
  auto resolved = registry.Resolve("u", "inc", Fields({arrow::large_utf8()}));
  ASSERT_FALSE(resolved.ok());
  const std::string message = ErrorOf(resolved.status()).worker_error().message();
  EXPECT_NE(message.find("column 'c0' of type large_string"), std::string::npos) << message;
  EXPECT_NE(message.find("takes (int64)"), std::string::npos) << message;
  EXPECT_FALSE(registry.Resolve("u", "inc", Fields({})).ok());  // wrong arity
}

TEST(Registry, RegistrationMistakesAreKept) {
  Registry twice;
  twice.Scalar("f", {arrow::int64()}, arrow::int64(), Constant(1))
      .Scalar("f", {arrow::int64()}, arrow::utf8(), Constant(2));
  EXPECT_FALSE(twice.status().ok());
  Registry out_of_range;
  out_of_range.Scalar("f", {arrow::int64()}, SameTypeAs(1), Constant(1));
  EXPECT_FALSE(out_of_range.status().ok());
  Registry no_code;
  no_code.Scalar("f", {arrow::int64()}, arrow::int64(), nullptr);
  EXPECT_FALSE(no_code.status().ok());
}

}  // namespace
}  // namespace quiver::sdk
