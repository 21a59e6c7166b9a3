#pragma once

// The Python worker's per-batch path in native code (module quiver._worker_loop).
//
// Once an execution's first batch has been decoded by the Python worker, every
// further Data frame of the same schema is read, decoded, validated, encoded
// and written here: Python is called once per batch with the decoded batch and
// returns the result batch (docs/decisions.md, "The Python worker's batch loop
// in C++"). Anything else on the socket -- a control frame, a body of another
// schema, bytes that break the framing -- ends the loop and goes back, unread
// by the Python side, to the Python worker, which handles it as it always did.
// The bytes on the wire are the same either way.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

namespace quiver::python {

/// What the Python worker made of one batch.
struct BatchAnswer {
  /// The result batch to encode and send; null when the batch was answered
  /// otherwise (an Error) or is dropped (the execution failed before).
  std::shared_ptr<arrow::RecordBatch> result;
  /// Whether to leave the loop after this batch (the execution failed).
  bool leave = false;
};

/// Why WorkerBatchLoop::Serve returned.
struct LoopExit {
  /// Bytes read from the socket but not handled: the start of the next frame
  /// (empty at a frame boundary). The Python reader decodes them as if it had
  /// read them itself.
  std::string unread;
  /// errno of a read that failed (0: none); EOF is not an error.
  int read_error = 0;
  /// errno of a write that failed (0: none).
  int write_error = 0;
  /// Whether the loop left batch `unanswered_sequence` unanswered because its
  /// result could not be taken back or encoded (`unanswered_reason` says why).
  bool unanswered = false;
  uint64_t unanswered_sequence = 0;
  std::string unanswered_reason;
};

/// The Python worker's side of the loop.
struct BatchLoopCallbacks {
  /// Runs the UDFs over one decoded batch.
  std::function<arrow::Result<BatchAnswer>(uint64_t sequence,
                                           std::shared_ptr<arrow::RecordBatch> batch)>
      run_batch;
  /// Sends an encoded result larger than the loop sends inline (shm: a
  /// result that goes into the output arena).
  std::function<arrow::Status(uint64_t sequence, std::shared_ptr<arrow::Buffer> body)>
      send_elsewhere;
  /// Called when a signal interrupted a read or a write: an error (the
  /// signal's handler raised) ends the loop with that error.
  std::function<arrow::Status()> interrupted;
};

/// \brief Reads, decodes, answers and writes the Data frames of one execution.
///
/// The socket is borrowed: the Python worker owns it and reads it again after
/// Serve returns. Not thread-safe; one loop per execution.
class WorkerBatchLoop {
 public:
  /// Makes the loop of an execution whose batches start with the IPC schema
  /// message `schema_message` (the exact bytes, as the engine sends them) and
  /// whose results have the schema of `result_schema_message`. Results whose
  /// encoding is over `max_inline_result_bytes` go to `send_elsewhere`.
  static arrow::Result<std::unique_ptr<WorkerBatchLoop>> Make(
      int fd, std::string_view schema_message, std::string_view result_schema_message,
      int64_t max_inline_result_bytes);

  /// Serves Data frames until something else arrives, the socket ends,
  /// `run_batch` says to leave, or a batch cannot be answered. Fails only
  /// when `interrupted` fails.
  arrow::Result<LoopExit> Serve(const BatchLoopCallbacks& callbacks);

  /// Returns the nanoseconds spent decoding and encoding since the last call.
  int64_t TakeCodecNanos();

  /// Returns the schema results are imported against.
  const std::shared_ptr<arrow::Schema>& result_schema() const { return result_schema_; }

 private:
  WorkerBatchLoop(int fd, std::string schema_message, std::shared_ptr<arrow::Schema> input_schema,
                  std::shared_ptr<arrow::Schema> result_schema, int64_t max_inline_result_bytes);

  // Reads up to `size` bytes into `out`; `*got` says how many came (fewer at
  // EOF). Returns the errno of a failed read, 0 otherwise.
  arrow::Result<int> ReadFully(uint8_t* out, int64_t size, int64_t* got,
                               const BatchLoopCallbacks& callbacks);
  // Waits until the socket is ready for `events` (POLLIN, POLLOUT).
  void WaitFor(short events) const;
  // Writes a data frame of `body`; returns the errno of a failed write.
  arrow::Result<int> WriteDataFrame(uint64_t sequence,
                                    const std::vector<std::shared_ptr<arrow::Buffer>>& body,
                                    const BatchLoopCallbacks& callbacks);
  // Decodes a body that starts with the known schema message and holds
  // exactly one valid record batch; null for anything else.
  std::shared_ptr<arrow::RecordBatch> DecodeKnown(const std::shared_ptr<arrow::Buffer>& body);
  // Returns `exit` saying that batch `sequence` is left unanswered and why.
  static LoopExit Unanswered(LoopExit exit, uint64_t sequence, const arrow::Status& status);
  // Encodes and sends one result; returns the errno of a failed write.
  arrow::Result<int> SendResult(uint64_t sequence, const arrow::RecordBatch& result,
                                const BatchLoopCallbacks& callbacks);

  int fd_;
  std::string schema_message_;
  std::shared_ptr<arrow::Schema> input_schema_;
  std::shared_ptr<arrow::Schema> result_schema_;
  int64_t max_inline_result_bytes_;
  int64_t codec_nanos_ = 0;
};

}  // namespace quiver::python
