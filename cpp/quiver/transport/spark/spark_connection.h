#pragma once

#include <memory>
#include <string>

#include <arrow/result.h>

#include "quiver/transport/connection.h"

namespace quiver::transport::spark {

/// \brief Makes a Connection that speaks quiver.v1 to the engine and Spark's
/// UdfWorker protocol to the worker at `connection` (a Unix socket path, or a
/// loopback TCP port), as docs/spark-protocol.md says an engine does.
///
/// One quiver execution of N UDFs is N concurrent Execute streams, one per UDF,
/// each given its own argument columns; their DataResponses are joined back into
/// one result batch per input batch. Every response is checked (its place in
/// the stream, its row count, its Arrow bytes); a violation fails the execution
/// with a UdfErrorDetail of kind kProtocolViolation, a stream that ends without
/// FinishResponse or CancelResponse is a transport failure. An ErrorResponse or
/// InitResponse.error is answered with Cancel on every stream, as the .proto
/// requires, and reported as quiver.v1's Error.
std::unique_ptr<Connection> ConnectSpark(const std::string& connection);

}  // namespace quiver::transport::spark
