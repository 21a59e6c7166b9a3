#pragma once

// Spark's worker -> engine messages as quiver.v1's (docs/spark-protocol.md,
// sections 4 and 6): errors, metrics, and names for messages.

#include <string>
#include <vector>

#include "quiver/transport/spark/spark_client.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::transport::spark {

/// FinishResponse.metrics / CancelResponse.metrics of one stream.
using SparkMetrics = google::protobuf::Map<std::string, std::string>;

/// Returns the message's name for errors: "DataResponse", "InitResponse", ...
std::string MessageName(const proto::UdfResponse& response);

/// quiver.v1's Metrics of an execution from its streams' metrics (section 6):
/// the streams saw the same batches, so counts are the largest, times the sum.
/// A figure that is missing or not a decimal number counts as none.
v1::Metrics MergeMetrics(const std::vector<SparkMetrics>& streams);

/// Fills quiver.v1's Error for a Spark ExecutionError of the stream of UDF
/// `name`. Returns false when the error has no kind (a violation).
bool TranslateError(const proto::ExecutionError& error, const std::string& name, v1::Error* out);

}  // namespace quiver::transport::spark
