#include "quiver/exec/grouped/session_pool.h"

#include <utility>

#include <arrow/type.h>

#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_session.h"

namespace quiver::exec::grouped {

SessionPool::SessionPool(worker::WorkerDispatcher* dispatcher, int window, std::string label)
    : dispatcher_(dispatcher), window_(window), label_(std::move(label)) {}

SessionPool::~SessionPool() { Stop(); }

arrow::Result<std::unique_ptr<SessionPool>> SessionPool::Start(worker::WorkerDispatcher* dispatcher,
                                                               const v1::Init& init, int workers,
                                                               int window_per_worker,
                                                               std::string label) {
  std::unique_ptr<SessionPool> pool(
      new SessionPool(dispatcher, window_per_worker < 1 ? 1 : window_per_worker, std::move(label)));
  auto acquired = dispatcher->AcquireMany(workers < 1 ? 1 : workers);
  if (!acquired.ok()) return pool->Fail(acquired.status(), "while starting");
  pool->workers_ = std::move(acquired).ValueUnsafe();
  // Every worker loads its UDF at once; then each answer is waited for.
  for (auto& worker : pool->workers_) {
    auto session = worker::WorkerSession::Start(worker.get(), init);
    if (!session.ok()) return pool->Fail(session.status(), "while starting");
    pool->sessions_.push_back(std::move(session).ValueUnsafe());
  }
  for (auto& session : pool->sessions_) {
    arrow::Status ready = session->WaitUntilReady();
    if (!ready.ok()) return pool->Fail(ready, "while starting");
    const auto& schema = session->result_schema();
    if (pool->result_schema_ == nullptr) {
      pool->result_schema_ = schema;
    } else if (!pool->result_schema_->Equals(*schema, /*check_metadata=*/false)) {
      return pool->Fail(
          arrow::Status::Invalid("workers disagree on the result schema: ",
                                 pool->result_schema_->ToString(), " vs ", schema->ToString()),
          "while starting");
    }
  }
  return pool;
}

bool SessionPool::Full() const {
  return pending_.size() >= sessions_.size() * static_cast<size_t>(window_);
}

arrow::Status SessionPool::Submit(const arrow::RecordBatch& batch, int64_t expected_rows,
                                  int64_t tag) {
  if (!failure_.ok()) return failure_;
  Pending pending{next_sequence_++, next_session_, expected_rows, tag};
  next_session_ = (next_session_ + 1) % static_cast<int>(sessions_.size());
  arrow::Status sent = sessions_[pending.session]->Send(pending.sequence, batch);
  if (!sent.ok()) {
    return Fail(sent, "sending batch " + std::to_string(pending.sequence) + " (" +
                          std::to_string(batch.num_rows()) + " rows)");
  }
  pending_.push_back(pending);
  return arrow::Status::OK();
}

arrow::Result<Answer> SessionPool::Next() {
  if (!failure_.ok()) return failure_;
  if (pending_.empty()) return arrow::Status::Invalid(label_, ": no batch awaits an answer");
  const Pending pending = pending_.front();
  pending_.pop_front();
  auto result = sessions_[pending.session]->Receive(pending.sequence, pending.rows);
  if (!result.ok()) {
    return Fail(result.status(), "on batch " + std::to_string(pending.sequence) + " in " +
                                     workers_[pending.session]->Describe());
  }
  return Answer{pending.tag, pending.session, std::move(result).ValueUnsafe()};
}

arrow::Result<int64_t> SessionPool::Finish() {
  if (!failure_.ok()) return failure_;
  int64_t udf_nanos = 0;
  for (auto& session : sessions_) {
    auto metrics = session->Finish();
    if (!metrics.ok()) return Fail(metrics.status(), "while finishing");
    udf_nanos += static_cast<int64_t>(metrics->udf_nanos());
  }
  Stop();
  return udf_nanos;
}

arrow::Status SessionPool::Fail(const arrow::Status& status, const std::string& where) {
  if (failure_.ok()) {
    failure_ = status.WithMessage(label_, " failed ", where, ": ", status.message());
  }
  Stop();
  return failure_;
}

void SessionPool::Stop() {
  sessions_.clear();  // aborts unfinished sessions and joins their threads
  for (auto& worker : workers_) dispatcher_->Release(std::move(worker));
  workers_.clear();
  pending_.clear();
}

}  // namespace quiver::exec::grouped
