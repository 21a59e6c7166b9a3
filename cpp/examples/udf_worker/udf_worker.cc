// An example quiver worker in C++: the functions the engine names in its UDF
// specs (payload format "symbol"), and a main that serves them.
//
//   identity(any)        the argument, unchanged
//   upper(string)        the argument in upper case
//   add_one(int64)       x + 1 (also for double)
//   raise_error(any)     fails, to show how a UDF error reaches the engine
//   count_even(int64)    the argument, unchanged; counts its even values in the
//                        UDF's own counter `even_values` (docs/metrics.md)

#include <stdexcept>

#include <arrow/array/array_primitive.h>
#include <arrow/compute/api_scalar.h>
#include <arrow/compute/exec.h>
#include <arrow/compute/initialize.h>
#include <arrow/scalar.h>

#include "quiver/sdk/counter.h"
#include "quiver/sdk/registry.h"
#include "quiver/sdk/serve.h"

namespace {

using quiver::sdk::Arrays;
using ArrayResult = arrow::Result<std::shared_ptr<arrow::Array>>;

ArrayResult Identity(const Arrays& args) { return args[0]; }

ArrayResult Upper(const Arrays& args) {
  ARROW_ASSIGN_OR_RAISE(arrow::Datum upper, arrow::compute::CallFunction("utf8_upper", {args[0]}));
  return upper.make_array();
}

template <typename CType>
ArrayResult AddOne(const Arrays& args) {
  ARROW_ASSIGN_OR_RAISE(arrow::Datum sum,
                        arrow::compute::Add(args[0], arrow::MakeScalar(CType{1})));
  return sum.make_array();
}

ArrayResult CountEven(const Arrays& args) {
  const auto& values = static_cast<const arrow::Int64Array&>(*args[0]);
  int64_t even = 0;
  for (int64_t i = 0; i < values.length(); ++i) {
    if (values.IsValid(i) && values.Value(i) % 2 == 0) ++even;
  }
  quiver::sdk::Counter("even_values").Add(even);
  return args[0];
}

ArrayResult RaiseError(const Arrays&) { throw std::domain_error("raise_error always fails"); }

// Arrow's compute functions are registered on first use of the library.
arrow::Status SetUpCompute() { return arrow::compute::Initialize(); }

}  // namespace

int main(int argc, char** argv) {
  using quiver::sdk::AnyType;
  quiver::sdk::Registry registry;
  registry.Scalar("identity", {AnyType()}, quiver::sdk::SameTypeAs(0), Identity)
      .Scalar("upper", {arrow::utf8()}, arrow::utf8(), Upper, SetUpCompute)
      .Scalar("add_one", {arrow::int64()}, arrow::int64(), AddOne<int64_t>, SetUpCompute)
      .Scalar("add_one", {arrow::float64()}, arrow::float64(), AddOne<double>, SetUpCompute)
      .Scalar("count_even", {arrow::int64()}, arrow::int64(), CountEven)
      .Scalar("raise_error", {AnyType()}, arrow::int64(), RaiseError);
  return quiver::sdk::Serve(argc, argv, registry);
}
