#pragma once

// The checks of a UdfOperator's UDFs, each in one place, with messages that
// say what is wrong and what to do ("did you mean 'name'?"). Execute runs them
// before any worker starts; an engine (or the quiver command) may run
// CheckUdfCalls earlier, before it sets anything up.

#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "quiver/exec/udf_call.h"
#include "quiver/exec/udf_operator.h"
#include "quiver/exec/worker_pipeline.h"

namespace quiver::exec {

/// Checks that every UDF has a name and no two have the same one.
arrow::Status CheckUdfNames(const std::vector<UdfCall>& udfs);

/// Checks that `column`, named by `used_by` (e.g. "UDF 'x' argument 1 (nam)"),
/// is exactly one column of `input`; the error suggests the closest name and
/// lists the input's columns.
arrow::Status CheckColumn(const std::string& column, const arrow::Schema& input,
                          const std::string& used_by);

/// Checks that argument `index` of `udf` can be computed on `input`: every
/// column it names exists, and the compute functions take the columns' types.
arrow::Status CheckArgument(const UdfCall& udf, size_t index, const arrow::Schema& input);

/// Returns the input columns `options` keeps beside the results, after checking
/// that each exists and that no UDF has the name of one.
arrow::Result<std::vector<int>> ResolvePassThrough(const UdfOperatorOptions& options,
                                                   const arrow::Schema& input);

/// Refuses a worker count, batch window or batch byte cap below 1, naming the
/// option as the caller calls it.
arrow::Status CheckOperatorNumbers(const UdfOperatorOptions& options,
                                   const OptionNames& names = {});

/// Runs every check of `options` against `input` that Execute runs, without
/// starting a worker.
arrow::Status CheckUdfCalls(const UdfOperatorOptions& options, const arrow::Schema& input);

/// Returns the UDFs' names quoted and joined, for errors: "'a', 'b'".
std::string QuotedNames(const std::vector<UdfCall>& udfs);

/// Returns the candidate closest to `name` in edit distance when it is close
/// enough to be a likely typo, else an empty string.
std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace quiver::exec
