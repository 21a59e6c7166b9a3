#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "quiver/io/deadline.h"
#include "quiver/transport/connection.h"
#include "quiver/v1/quiver.pb.h"
#include "quiver/worker/log_sink.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_activity.h"

namespace quiver::worker {

/// Largest UDF payload sent inside Init; a larger one (a function shipped by
/// value) goes on in PayloadChunk messages, so that no message nears a
/// transport's size limit (gRPC's default is 4 MiB).
inline constexpr size_t kPayloadChunkBytes = size_t{1} << 20;

/// Returns the messages that start an execution of `init`: Init, with each
/// payload cut to `chunk_bytes`, then one PayloadChunk per further piece.
std::vector<v1::EngineMessage> SplitLargePayloads(const v1::Init& init,
                                                  size_t chunk_bytes = kPayloadChunkBytes);

/// Checks the fields of a worker's result schema past one per UDF (`udfs`:
/// the UDFs' names, in Init order): each must be the NAME__error string
/// column of a UDF that keeps its failing rows, each UDF at most once, in
/// Init order (docs/protocol.md, "Rows that fail").
arrow::Status CheckErrorColumns(const arrow::Schema& schema, const std::vector<std::string>& udfs);

/// \brief One UDF execution on one worker (docs/protocol.md, section 2, engine side).
///
/// Sending (the caller's thread) and receiving never wait on each other, so a
/// worker that answers while it still reads cannot deadlock the engine: while
/// a reply is due that the caller does not wait for (a batch sent while another
/// is unanswered, or one large enough to fill the socket), a thread of the
/// execution reads every reply. When no answer is unread, that thread rests and
/// the caller's thread reads the next reply itself when it waits for it (over a
/// transport whose Receive keeps a deadline): one batch in flight then costs no
/// hand-off between engine threads. Every result is fully validated and checked
/// for its sequence number, row count and schema before it is handed out. Every
/// failure carries a UdfErrorDetail (protocol/udf_error.h) saying what kind it is.
class WorkerExecution {
 public:
  /// Sends `init`; call WaitUntilReady before sending batches. Starting several
  /// executions before waiting on any lets the workers load their UDFs at once.
  static arrow::Result<std::unique_ptr<WorkerExecution>> Start(Worker* worker,
                                                               const v1::Init& init);

  /// Waits for the worker to accept the Init sent by Start.
  arrow::Status WaitUntilReady();

  /// Stops the receiving thread; an execution not finished is aborted first.
  ~WorkerExecution();

  /// Returns the schema of result batches, one field per UDF.
  const std::shared_ptr<arrow::Schema>& result_schema() const { return result_schema_; }

  /// Sends one batch of UDF arguments.
  arrow::Status Send(uint64_t sequence, const arrow::RecordBatch& arguments);

  /// Waits for the result of `sequence`, which must be the oldest unanswered
  /// batch of this execution and have `rows` rows (any number when `rows` is -1:
  /// the grouped and table kinds, whose callers check the rows themselves).
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Receive(uint64_t sequence, int64_t rows);

  /// Ends the execution after all results were received; returns the worker's metrics.
  arrow::Result<v1::Metrics> Finish();

  /// Ends the execution early: Cancel when the worker is healthy (so it can be
  /// reused), else marks it broken.
  void Abort();

  /// Returns the CPU time the worker process used since this execution
  /// started; -1 for a remote worker or when unknown.
  int64_t CpuNanos() const;

  Worker* worker() { return worker_; }

  /// Returns when the reply last taken by WaitUntilReady or Receive arrived
  /// (read by the receiving thread, not when the caller took it): the end of
  /// the worker start's and the sampled batches' spans.
  std::chrono::system_clock::time_point last_reply_arrival() const { return last_arrival_; }

 private:
  explicit WorkerExecution(Worker* worker);

  void ReceiveLoop();
  // Tells the activity and the log sink that the oldest batch was answered.
  void NoteAnswer();
  // A reply as the receiving thread hands it over: result batches were
  // validated there, beside the caller's thread, which reads the verdict.
  struct Received {
    arrow::Result<transport::WorkerReply> reply;
    arrow::Status validity;  // of reply->batch (protocol::ValidateResultBatch)
    std::chrono::system_clock::time_point arrived;  // when the receiving thread read it
  };
  // Reads one reply off the connection (until `deadline`) and does what each
  // needs before anyone may use it: the answer noted, a result validated.
  Received ReadReply(io::Deadline deadline);
  // Books `received` in (mutex_ held): the worker owes the next answer from
  // now, an answer is one fewer unread, an error or an ending ends the reading.
  void BookLocked(const Received& received);
  // Whether the caller's thread may read the connection now (mutex_ held).
  bool CallerMayReadLocked() const;
  // Has the receiving thread read from now on (mutex_ held); false when it
  // already does or nothing more may be read.
  bool WakeReceiverLocked();
  // Waits for the next reply until `deadline`, reading it on this thread when
  // the receiving thread rests; a timeout marks the worker broken. Sets
  // `*validity`, when given, to the verdict on a result batch.
  arrow::Result<transport::WorkerReply> NextReply(io::Deadline deadline, const std::string& what,
                                                  arrow::Status* validity = nullptr);
  arrow::Status CheckResult(const transport::WorkerReply& reply, const arrow::Status& validity,
                            uint64_t sequence, int64_t rows);
  arrow::Status ErrorFromWorker(const v1::Error& error);
  // Marks the worker broken: it did not answer `what` within the batch timeout.
  arrow::Status TimedOut(const std::string& what);
  // Marks the worker broken and explains its failure `what` (kWorkerLost).
  arrow::Status Broken(const std::string& what);
  // Marks the worker broken after its connection failed with `transport_error`.
  arrow::Status Lost(const arrow::Status& transport_error);
  void StopReceiving();
  io::Deadline BatchDeadline() const;
  // The moment the worker's next answer is due: a batch timeout after it began
  // to owe one (a batch was sent to it while it owed none, or its last answer came).
  io::Deadline AnswerDeadline();

  Worker* worker_;
  // Null without --log-dir.
  std::shared_ptr<LogSink> log_sink_;
  // Listed for live views (--progress json) while the execution lives.
  std::unique_ptr<WorkerActivity> activity_;
  int64_t cpu_at_start_ = -1;
  int udf_count_ = 0;  // -1: a grouped or table kind, any result width
  // The UDFs' names, in Init order: a result field past the UDFs' own is
  // accepted only as one of their NAME__error columns (docs/protocol.md).
  std::vector<std::string> udf_names_;
  std::shared_ptr<arrow::Schema> result_schema_;
  // Whether the connection's Receive keeps its deadline, so that the caller's
  // thread may read (else the receiving thread always reads).
  bool caller_may_read_ = false;
  std::thread receiver_;
  std::mutex mutex_;
  std::condition_variable reply_arrived_;
  // The receiving thread waits here for its turn to read (or to stop).
  std::condition_variable receiver_turn_;
  std::deque<Received> replies_;
  int64_t unanswered_ = 0;  // batches sent, not yet answered
  int64_t unread_ = 0;      // batches sent whose answers were not yet read off the connection
  std::chrono::steady_clock::time_point owed_since_;  // see AnswerDeadline
  bool done_ = false;                                 // Finish or Abort completed
  bool receiver_reads_ = true;                        // the receiving thread reads, else it rests
  bool caller_reading_ = false;  // the caller's thread is in the connection's Receive
  bool stopping_ = false;        // the receiving thread is to return
  // A reply ended the execution (or the connection failed): nothing more is read.
  bool ended_ = false;
  std::chrono::system_clock::time_point last_arrival_;  // of the reply last taken
};

}  // namespace quiver::worker
