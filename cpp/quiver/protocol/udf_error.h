#pragma once

// Why a UDF run failed, kept as an arrow::StatusDetail so that an embedding
// engine (C++, or a binding on top of it) can tell a user's exception from a
// worker crash and retry only what is retryable, without parsing messages.
//
//   const quiver::UdfErrorDetail* detail = quiver::UdfErrorDetailOf(status);
//   if (detail != nullptr && detail->retryable()) { /* run the batch again */ }

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <arrow/status.h>

namespace quiver {

/// What went wrong, from the engine's point of view.
enum class UdfErrorKind {
  /// The UDF raised an exception (quiver.v1 UserError); the worker lives on.
  kUserError,
  /// The worker could not run the UDF: it did not load, its result had the
  /// wrong type, ... (quiver.v1 WorkerError); the worker lives on.
  kWorkerError,
  /// A result had a different number of rows than its batch.
  kWrongRowCount,
  /// A result's columns differ from the ones the worker's InitResponse promised.
  kWrongResultSchema,
  /// The worker did not answer within the per-batch timeout and was stopped.
  kTimeout,
  /// The worker process ended or its connection failed (crash, kill, OOM).
  kWorkerLost,
  /// The worker broke the protocol (an unexpected message, a wrong sequence).
  kProtocolViolation,
  /// A batch was refused before it was sent: in Arrow IPC form it is over the
  /// largest message a worker accepts (WorkerSpec::max_message_bytes). Nothing
  /// was sent and the worker lives on; smaller batches succeed.
  kBatchTooLarge,
  /// The worker went over its memory cap (WorkerSpec::memory_limit_bytes) and
  /// was stopped by the engine.
  kOverMemoryCap,
};

/// Returns the kind's name, e.g. "user error", "worker lost".
const char* UdfErrorKindName(UdfErrorKind kind);

/// \brief The detail attached to every Status a worker session fails with.
///
/// Fields that do not apply to a kind stay empty (a remote worker has no pid,
/// a timeout has no exit status).
class UdfErrorDetail : public arrow::StatusDetail {
 public:
  /// The type id of this detail, for StatusDetail::type_id().
  static constexpr char kTypeId[] = "quiver::UdfErrorDetail";

  UdfErrorKind kind = UdfErrorKind::kWorkerLost;
  /// The UDF the worker named (user and worker errors), else empty.
  std::string udf_name;
  /// The exception's class, e.g. "ValueError" (user errors).
  std::string error_class;
  /// The UDF's traceback as the worker formatted it (user errors).
  std::string traceback;
  /// The worker, as messages name it: "worker 3 (pid 1234)" or "remote worker at ...".
  std::string worker;
  /// The worker's pid; 0 for a remote worker.
  int64_t worker_pid = 0;
  /// How the worker process ended, when it did (kWorkerLost): its exit status,
  /// or the signal that killed it.
  std::optional<int> exit_status;
  std::optional<int> signal;
  /// The last lines of the worker's stdout and stderr, when known.
  std::string log_tail;

  const char* type_id() const override { return kTypeId; }
  /// Returns e.g. "user error in UDF 'clean' (ValueError) on worker 3 (pid 1234)".
  std::string ToString() const override;

  /// Returns whether running the same batch again on a new worker may succeed:
  /// true for a lost worker and a timeout, false for anything the UDF or the
  /// worker's code decided.
  bool retryable() const;
};

/// Returns the UdfErrorDetail of `status`, or null when it has none.
const UdfErrorDetail* UdfErrorDetailOf(const arrow::Status& status);

/// Returns `status` with `detail` attached (the message and code unchanged).
arrow::Status WithUdfError(const arrow::Status& status, UdfErrorDetail detail);

/// Returns `status` marked as the worker breaking the protocol (a result that
/// does not decode): the engine then says so and stops the worker, rather than
/// reporting a worker that went away.
arrow::Status AsProtocolViolation(const arrow::Status& status);

}  // namespace quiver
