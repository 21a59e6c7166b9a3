#pragma once

// The grammar of `quiver run --udf-option`: a per-call option of a Python UDF
// (docs/async-udfs.md), overriding what its @quiver.udf declares.
//
//   udf_option := NAME '.' KEY '=' VALUE
//   NAME       := the result column of a --udf (its text before '=')
//   KEY        := on_error        VALUE: raise | null
//               | max_concurrency VALUE: an integer, 1 or more
//               | timeout         VALUE: seconds, more than 0
//               | retries         VALUE: attempts in all (an integer, 1 or
//                                 more), or a JSON object of quiver.Retry
//                                 fields, e.g. {"max_attempts": 5, "max": 2}
//
// e.g. --udf 'geo=udfs.py:geocode(city)' --udf-option geo.on_error=null
//      --udf-option geo.max_concurrency=64

#include <string>
#include <vector>

#include <arrow/status.h>

#include "quiver/exec/udf_call.h"

namespace quiver::cli {

/// Sets UdfCall::call_options (a JSON object) of the calls the --udf-option
/// texts name. Unknown UDF names or keys, values a key does not take, keys
/// given twice and options for UDFs of a non-Python runtime are usage errors.
arrow::Status ApplyUdfOptions(const std::vector<std::string>& texts,
                              std::vector<exec::UdfCall>* calls);

}  // namespace quiver::cli
