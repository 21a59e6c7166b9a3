#pragma once

// Manage and Execute calls with the metadata the kit chooses (a wrong secret,
// none) and ends the engine's gRPC connection never makes (a half-close with
// neither Finish nor Cancel).

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/record_batch.h>

#include <arrow/result.h>

#include "quiver/transport/connection.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::conformance {

/// How a Manage call ended.
struct ManageOutcome {
  /// The gRPC status code (0 OK, 16 UNAUTHENTICATED, ...) and its message.
  int code = 0;
  std::string message;
  v1::ManageResponse response;
};

/// Calls Manage on the gRPC worker at `endpoint` ("grpc+unix:PATH",
/// "grpc+tcp:HOST:PORT") with `secret` as "quiver-secret" metadata (none when
/// nullopt). Fails only when the endpoint is not a gRPC one.
arrow::Result<ManageOutcome> CallManage(const std::string& endpoint,
                                        const std::optional<std::string>& secret,
                                        const v1::ManageRequest& request,
                                        std::chrono::milliseconds timeout);

/// One request of a hand-made Execute call: a control message, or (when
/// `batch` is set) Data{sequence, batch}.
struct ExecuteRequest {
  v1::EngineMessage control;
  uint64_t sequence = 0;
  std::shared_ptr<arrow::RecordBatch> batch;
};

/// How a hand-made Execute call ended: its gRPC status and every answer.
struct ExecuteOutcome {
  int code = 0;
  std::string message;
  std::vector<transport::WorkerReply> replies;
};

/// Opens an Execute call on the gRPC worker at `endpoint` with `secret` as
/// "quiver-secret" metadata (none when nullopt), writes `requests`, half-closes,
/// and reads answers until the worker ends the call (or `timeout` passes).
arrow::Result<ExecuteOutcome> CallExecute(const std::string& endpoint,
                                          const std::optional<std::string>& secret,
                                          const std::vector<ExecuteRequest>& requests,
                                          std::chrono::milliseconds timeout);

}  // namespace quiver::conformance
