#pragma once

// The grammar of `quiver run --udf-arg`: a keyword argument for the constructor
// of a class UDF (docs/class-udfs.md).
//
//   udf_arg := NAME '.' KEY '=' VALUE
//   NAME    := the result column of a --udf (its text before '=')
//   KEY     := IDENT, the constructor's keyword
//   VALUE   := a JSON value when it is one of: true, false, null, a number, or
//              text starting with '"', '[' or '{' (passed as written; the worker
//              checks it); any other text is a string, e.g. model.bin
//
// e.g. --udf 'label=models.py:Classifier(text)' --udf-arg 'label.threshold=0.5'
//      --udf-arg 'label.path=/models/clf.bin'

#include <string>
#include <string_view>
#include <vector>

#include <arrow/status.h>

#include "quiver/exec/udf_call.h"

namespace quiver::cli {

/// Sets UdfCall::constructor_args (a JSON object) of the calls the --udf-arg
/// texts name. Unknown UDF names, keys that are not identifiers, keys given
/// twice and arguments for UDFs of a non-Python runtime are usage errors.
arrow::Status ApplyUdfArgs(const std::vector<std::string>& texts,
                           std::vector<exec::UdfCall>* calls);

/// Returns VALUE as JSON: as written when it is a JSON literal, number, string,
/// array or object (by its first character), else as a JSON string.
std::string UdfArgJson(std::string_view value);

}  // namespace quiver::cli
