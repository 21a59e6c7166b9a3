#pragma once

#include <memory>
#include <string>
#include <vector>

#include <arrow/compute/expression.h>
#include <arrow/type_fwd.h>

namespace quiver::exec {

/// One UDF call of an operator: what to run, on which arguments, under what name.
struct UdfCall {
  /// Name of the result column; quoted in every error about this UDF.
  std::string name;
  /// Which workers run it: a key of the dispatchers given to UdfOperator::Make
  /// (e.g. "py", "rs"). The single-dispatcher UdfOperator::Make ignores it.
  std::string runtime;
  /// How the worker finds the function: "python/ref" (payload "PATH.py:FUNCTION"
  /// or "module:FUNCTION"), "python/cloudpickle", or "symbol" (payload = the
  /// name a compiled worker registered the function under).
  std::string payload_format = "python/ref";
  std::string payload;
  /// Arguments in order. A plain field reference is sent from the buffers it
  /// lives in (no copy); any other expression is evaluated with Arrow compute first.
  std::vector<arrow::compute::Expression> arguments;
  /// The result type when the engine knows it; null lets the worker decide
  /// (a Python UDF's `returns=`). When both are set they must agree.
  std::shared_ptr<arrow::DataType> return_type;
  /// Keyword arguments for a class UDF's constructor, as a JSON object text
  /// (UdfDefinition.constructor_args); empty when there are none.
  std::string constructor_args;
  /// Per-call options of a Python UDF (on_error, max_concurrency, retries,
  /// timeout) as a JSON object text (UdfDefinition.call_options); empty: none.
  std::string call_options;
};

}  // namespace quiver::exec
