#pragma once

// The functions a compiled worker offers, by name. The engine names one in
// UdfDefinition.payload (payload format "symbol"); the worker picks the overload
// registered for the argument types of the Init's input schema.
//
//   quiver::sdk::Registry registry;
//   registry.Scalar("add_one", {arrow::int64()}, arrow::int64(), AddOneInt64)
//       .Scalar("add_one", {arrow::float64()}, arrow::float64(), AddOneDouble)
//       .Scalar("identity", {quiver::sdk::AnyType()}, quiver::sdk::SameTypeAs(0), Identity);

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <arrow/array.h>
#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type.h>

namespace quiver::sdk {

/// The argument columns of one call, one array per argument, all of the batch's length.
using Arrays = std::vector<std::shared_ptr<arrow::Array>>;

/// A scalar UDF: N arrays in, one array of the same length out. It may throw or
/// return a non-OK Status; either becomes a UserError naming the UDF.
using ScalarFunction = std::function<arrow::Result<std::shared_ptr<arrow::Array>>(const Arrays&)>;

/// Code run once per execution that uses a function (setup after Init, teardown
/// at its end: Finish, Cancel, an error or shutdown).
using Hook = std::function<arrow::Status()>;

/// Returns the argument type that matches any column type.
inline std::shared_ptr<arrow::DataType> AnyType() { return nullptr; }

/// The type a function returns: a fixed type, or the type of one of its arguments.
class ResultType {
 public:
  /// Returns a fixed type (implicit, so that `arrow::int64()` can be passed).
  ResultType(std::shared_ptr<arrow::DataType> type)  // NOLINT(google-explicit-constructor)
      : type_(std::move(type)) {}
  /// Returns the type of argument `index` (for functions over AnyType()).
  static ResultType SameAs(int index);

  /// Settles the type for concrete argument types.
  std::shared_ptr<arrow::DataType> For(
      const std::vector<std::shared_ptr<arrow::DataType>>& arguments) const;
  /// Returns the argument index of SameAs, or -1 for a fixed type.
  int argument() const { return argument_; }

 private:
  std::shared_ptr<arrow::DataType> type_;
  int argument_ = -1;
};

/// Returns the result type "the type of argument `index`".
inline ResultType SameTypeAs(int index) { return ResultType::SameAs(index); }

/// One registered overload.
struct ScalarUdf {
  /// Argument types in order; AnyType() (null) matches any type.
  std::vector<std::shared_ptr<arrow::DataType>> arguments;
  ResultType result{nullptr};
  ScalarFunction call;
  /// Optional, run once per execution before the first batch / after the last.
  Hook setup;
  Hook teardown;
};

/// A registered overload chosen for concrete argument types.
struct ResolvedUdf {
  const ScalarUdf* udf = nullptr;
  std::shared_ptr<arrow::DataType> result_type;
};

/// \brief The functions of a worker, by name; a name may have overloads that
/// differ in argument types.
class Registry {
 public:
  /// Registers `udf` under `name`. A mistake (no function, a SameAs index out of
  /// range, an overload registered twice) is kept and reported by status().
  Registry& Scalar(const std::string& name, ScalarUdf udf);

  /// Registers a function, with optional code run before the first and after
  /// the last batch of each execution that uses it.
  Registry& Scalar(const std::string& name, std::vector<std::shared_ptr<arrow::DataType>> arguments,
                   ResultType result, ScalarFunction call, Hook setup = {}, Hook teardown = {});

  /// Returns the first registration mistake, or OK.
  const arrow::Status& status() const { return status_; }

  /// Picks the overload of `function` for the argument columns `fields`; fails
  /// with a WorkerError naming `udf_name`, the function, and the column whose
  /// type no overload takes.
  arrow::Result<ResolvedUdf> Resolve(
      const std::string& udf_name, const std::string& function,
      const std::vector<std::shared_ptr<arrow::Field>>& fields) const;

  /// Returns the registered names, sorted.
  std::vector<std::string> names() const;

 private:
  std::map<std::string, std::vector<ScalarUdf>> functions_;
  arrow::Status status_;
};

}  // namespace quiver::sdk
