#include "quiver/python/kind_stream.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "quiver/worker/worker_dispatcher.h"

namespace quiver::python {

struct KindStream::Core {
  // Declared first so that it is destroyed last: the run's workers go back to it.
  std::shared_ptr<worker::WorkerDispatcher> dispatcher;
  size_t max_queued = 2;
  mutable std::mutex mutex;
  std::condition_variable changed;
  std::shared_ptr<arrow::Schema> schema;
  std::deque<std::shared_ptr<arrow::RecordBatch>> queue;
  bool done = false;       // the run returned and its workers were released
  arrow::Status status;    // the run's outcome, once done
  bool cancelled = false;  // the reader stopped reading
  exec::UdfRunMetrics metrics;

  // The run's sink: waits for room in the queue; fails once the reader is gone.
  arrow::Status Push(std::shared_ptr<arrow::RecordBatch> batch) {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return cancelled || queue.size() < max_queued; });
    if (cancelled) return Cancelled();
    if (schema == nullptr) schema = batch->schema();
    queue.push_back(std::move(batch));
    changed.notify_all();
    return arrow::Status::OK();
  }

  void Produce(Body body) {
    arrow::Status outcome = body.run(
        [this](std::shared_ptr<arrow::RecordBatch> batch) { return Push(std::move(batch)); });
    std::shared_ptr<arrow::Schema> final_schema = outcome.ok() ? body.final_schema() : nullptr;
    const exec::grouped::KindMetrics figures = body.metrics();
    body = Body{};  // ends the run: its workers go back to the dispatcher, warm
    std::lock_guard<std::mutex> lock(mutex);
    if (schema == nullptr) schema = std::move(final_schema);
    // The input's rows and batches, as a map's figures count them.
    metrics.rows = figures.rows_in;
    metrics.batches = figures.batches_in;
    metrics.bytes_in = figures.bytes_in;
    metrics.worker_udf_time = std::chrono::nanoseconds(figures.worker_udf_nanos);
    metrics.read_time = std::chrono::nanoseconds(figures.read_nanos);
    metrics.groups = figures.groups;
    status = std::move(outcome);
    done = true;
    changed.notify_all();
  }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Take() {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return cancelled || done || !queue.empty(); });
    if (cancelled) return Cancelled();
    if (!queue.empty()) {
      auto batch = std::move(queue.front());
      queue.pop_front();
      changed.notify_all();
      return batch;
    }
    if (!status.ok()) return status;
    return std::shared_ptr<arrow::RecordBatch>();
  }

  static arrow::Status Cancelled() {
    return arrow::Status::Cancelled(
        "the run was cancelled (its session was closed, or reading it was interrupted)");
  }
};

KindStream::KindStream(std::shared_ptr<Core> core) : core_(std::move(core)) {}

std::unique_ptr<KindStream> KindStream::Start(std::shared_ptr<worker::WorkerDispatcher> dispatcher,
                                              std::shared_ptr<arrow::Schema> schema, Body body,
                                              size_t max_queued) {
  auto core = std::make_shared<Core>();
  core->dispatcher = std::move(dispatcher);
  core->schema = std::move(schema);
  core->max_queued = max_queued < 1 ? 1 : max_queued;
  // Detached: the thread owns the core (and through it the dispatcher) until
  // the run ended, however early the stream is dropped.
  std::thread([core, body = std::move(body)]() mutable {
    core->Produce(std::move(body));
  }).detach();
  return std::unique_ptr<KindStream>(new KindStream(std::move(core)));
}

KindStream::~KindStream() { Cancel(); }

std::shared_ptr<arrow::Schema> KindStream::schema() const {
  std::lock_guard<std::mutex> lock(core_->mutex);
  return core_->schema;
}

std::future<arrow::Result<std::shared_ptr<arrow::RecordBatch>>> KindStream::ReadNextAsync() {
  using Result = arrow::Result<std::shared_ptr<arrow::RecordBatch>>;
  auto promise = std::make_shared<std::promise<Result>>();
  auto future = promise->get_future();
  std::thread([core = core_, promise] { promise->set_value(core->Take()); }).detach();
  return future;
}

void KindStream::Cancel() {
  std::lock_guard<std::mutex> lock(core_->mutex);
  core_->cancelled = true;
  core_->queue.clear();
  core_->changed.notify_all();
}

exec::UdfRunMetrics KindStream::metrics() const {
  std::lock_guard<std::mutex> lock(core_->mutex);
  return core_->metrics;
}

}  // namespace quiver::python
