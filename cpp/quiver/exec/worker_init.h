#pragma once

// The Init every kind sends its workers (docs/protocol.md, section 2; its
// constructor and call options: section 3).

#include <vector>

#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "quiver/exec/udf_call.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::exec {

/// Makes the Init of an execution that sends batches of `sent_schema`: each
/// UDF with its payload, constructor arguments, declared return type (when
/// the engine knows it), `eval_type` (unspecified for the scalar kinds: the
/// worker decides) and its argument `offsets` into the sent batches.
arrow::Result<v1::Init> MakeInit(const std::vector<UdfCall>& udfs, const arrow::Schema& sent_schema,
                                 const std::vector<std::vector<int>>& offsets,
                                 v1::EvalType eval_type = v1::EVAL_TYPE_UNSPECIFIED);

}  // namespace quiver::exec
