#pragma once

// quiver.v1's Init, as the Init of one Spark Execute stream per UDF
// (docs/spark-protocol.md, sections 2 and 8): Spark's Init carries exactly one
// UdfPayload, so an execution of N UDFs is N streams.

#include <cstddef>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "quiver/transport/spark/spark_client.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::transport::spark {

/// Largest UDF payload sent inline in Init; a larger one goes in PayloadChunks,
/// with payload_size and payload_crc32 set.
inline constexpr size_t kSparkPayloadChunkBytes = size_t{1} << 20;

/// The opening of one UDF's Execute stream.
struct SparkUdfStart {
  /// The UDF's result column (UdfDefinition.name), for messages.
  std::string name;
  /// Columns of quiver's Data batches that are this UDF's arguments, in order.
  std::vector<int> argument_offsets;
  /// Init, then its PayloadChunks when the payload is chunked.
  std::vector<proto::UdfRequest> messages;
};

/// Translates `init` (whose payloads are whole: quiver's PayloadChunks already
/// appended) into one stream opening per UDF. Fails, naming the UDF, for what
/// Spark's dialect cannot carry: grouped and table kinds, an argument offset
/// outside the input schema, an input schema that does not parse.
arrow::Result<std::vector<SparkUdfStart>> TranslateInit(
    const v1::Init& init, size_t chunk_bytes = kSparkPayloadChunkBytes);

}  // namespace quiver::transport::spark
