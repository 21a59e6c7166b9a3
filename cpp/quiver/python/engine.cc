#include "quiver/python/engine.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <utility>

#include <arrow/status.h>

#include "quiver/exec/udf_checks.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_spec.h"

namespace quiver::python {
namespace {

class SlicingReader : public arrow::RecordBatchReader {
 public:
  SlicingReader(std::shared_ptr<arrow::RecordBatchReader> input, int64_t batch_rows)
      : input_(std::move(input)), batch_rows_(batch_rows) {}

  std::shared_ptr<arrow::Schema> schema() const override { return input_->schema(); }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    if (current_ == nullptr || offset_ >= current_->num_rows()) {
      ARROW_RETURN_NOT_OK(input_->ReadNext(&current_));
      offset_ = 0;
      if (current_ == nullptr || current_->num_rows() <= batch_rows_) {
        *out = std::move(current_);
        current_ = nullptr;
        return arrow::Status::OK();
      }
    }
    const int64_t rows = std::min(batch_rows_, current_->num_rows() - offset_);
    *out = current_->Slice(offset_, rows);
    offset_ += rows;
    return arrow::Status::OK();
  }

  arrow::Status Close() override { return input_->Close(); }

 private:
  std::shared_ptr<arrow::RecordBatchReader> input_;
  const int64_t batch_rows_;
  std::shared_ptr<arrow::RecordBatch> current_;
  int64_t offset_ = 0;
};

}  // namespace

std::shared_ptr<arrow::RecordBatchReader> SliceBatches(
    std::shared_ptr<arrow::RecordBatchReader> input, int64_t batch_rows) {
  return std::make_shared<SlicingReader>(std::move(input), batch_rows);
}

struct RunHandle::Core {
  // Declared first so that they are destroyed last: the run's workers go back to them.
  std::vector<std::shared_ptr<worker::WorkerDispatcher>> dispatchers;
  std::shared_ptr<arrow::Schema> schema;
  std::mutex mutex;                   // one ReadNext at a time
  std::shared_ptr<exec::UdfRun> run;  // null once ended
  std::atomic<bool> cancelled{false};
  exec::UdfRunMetrics last_metrics;  // kept after the run ends
};

RunHandle::RunHandle(std::shared_ptr<Core> core) : core_(std::move(core)) {}

RunHandle::~RunHandle() { Cancel(); }

std::shared_ptr<arrow::Schema> RunHandle::schema() const { return core_->schema; }

std::future<arrow::Result<std::shared_ptr<arrow::RecordBatch>>> RunHandle::ReadNextAsync() {
  using Result = arrow::Result<std::shared_ptr<arrow::RecordBatch>>;
  auto promise = std::make_shared<std::promise<Result>>();
  auto future = promise->get_future();
  std::thread([core = core_, promise] {
    std::lock_guard<std::mutex> lock(core->mutex);
    if (core->cancelled) {
      core->run = nullptr;
      promise->set_value(arrow::Status::Cancelled(
          "the run was cancelled (its session was closed, or reading it was interrupted)"));
      return;
    }
    if (core->run == nullptr) {  // the end was read already
      promise->set_value(std::shared_ptr<arrow::RecordBatch>());
      return;
    }
    std::shared_ptr<arrow::RecordBatch> batch;
    arrow::Status status = core->run->ReadNext(&batch);
    core->last_metrics = core->run->metrics();
    // The end, a failure or a Cancel that came meanwhile: end the run here, on
    // this thread, so that the caller never waits for it.
    if (!status.ok() || batch == nullptr || core->cancelled) core->run = nullptr;
    promise->set_value(status.ok() ? Result(std::move(batch)) : Result(status));
  }).detach();
  return future;
}

void RunHandle::Cancel() {
  core_->cancelled = true;
  std::unique_lock<std::mutex> lock(core_->mutex, std::try_to_lock);
  // Busy: the read in flight ends the run when it returns.
  if (lock.owns_lock()) core_->run = nullptr;
}

exec::UdfRunMetrics RunHandle::metrics() const {
  std::unique_lock<std::mutex> lock(core_->mutex, std::try_to_lock);
  if (lock.owns_lock() && core_->run != nullptr) return core_->run->metrics();
  return core_->last_metrics;
}

namespace {

worker::WorkerSpec SpecOf(const EngineOptions& options) {
  worker::WorkerSpec spec;
  spec.command = options.command;
  spec.transport = options.transport;
  spec.batch_timeout = options.batch_timeout;
  spec.start_timeout = options.start_timeout;
  spec.environment = options.environment;
  spec.max_idle_workers = options.max_idle_workers;
  spec.log_dir = options.log_dir;
  spec.trace_batches = options.trace_batches;
  return spec;
}

arrow::Result<std::shared_ptr<worker::WorkerDispatcher>> MakeDispatcher(
    const EngineOptions& options) {
  ARROW_ASSIGN_OR_RAISE(auto dispatcher, worker::WorkerDispatcher::Make(SpecOf(options)));
  return std::shared_ptr<worker::WorkerDispatcher>(std::move(dispatcher));
}

}  // namespace

Engine::Engine(EngineOptions options, Dispatchers runtimes)
    : options_(std::move(options)), runtimes_(std::move(runtimes)) {}

arrow::Result<std::unique_ptr<Engine>> Engine::Make(EngineOptions options) {
  ARROW_ASSIGN_OR_RAISE(auto dispatcher, MakeDispatcher(options));
  return std::unique_ptr<Engine>(new Engine(std::move(options), {{"", std::move(dispatcher)}}));
}

arrow::Status Engine::AddRuntime(const std::string& name, std::vector<std::string> command,
                                 std::map<std::string, std::string> environment) {
  ARROW_RETURN_NOT_OK(CheckOpen());
  if (HasRuntime(name)) return arrow::Status::OK();
  EngineOptions options = options_;
  options.command = std::move(command);
  options.environment = std::move(environment);
  ARROW_ASSIGN_OR_RAISE(runtimes_[name], MakeDispatcher(options));
  return arrow::Status::OK();
}

bool Engine::HasRuntime(const std::string& name) const { return runtimes_.count(name) > 0; }

arrow::Status Engine::CheckOpen() const {
  if (closed()) return arrow::Status::Invalid("the session is closed; open a new quiver.Session");
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<worker::WorkerDispatcher>> Engine::Dispatcher(
    const std::string& runtime) const {
  ARROW_RETURN_NOT_OK(CheckOpen());
  auto found = runtimes_.find(runtime);
  if (found == runtimes_.end()) {
    return arrow::Status::Invalid("no runtime '", runtime,
                                  "' in this engine; add it with AddRuntime first");
  }
  return found->second;
}

arrow::Result<std::unique_ptr<RunHandle>> Engine::Map(
    std::shared_ptr<arrow::RecordBatchReader> input, exec::UdfOperatorOptions options,
    int64_t batch_rows) {
  ARROW_RETURN_NOT_OK(CheckOpen());
  if (batch_rows < 1) return arrow::Status::Invalid("batch_rows must be at least 1");
  ARROW_RETURN_NOT_OK(exec::CheckUdfCalls(options, *input->schema()));
  auto core = std::make_shared<RunHandle::Core>();
  exec::RuntimeDispatchers used;
  for (const auto& udf : options.udfs) {
    if (used.count(udf.runtime) > 0) continue;
    ARROW_ASSIGN_OR_RAISE(auto dispatcher, Dispatcher(udf.runtime));
    used[udf.runtime] = dispatcher.get();
    core->dispatchers.push_back(std::move(dispatcher));
  }
  // One runtime: its errors are those of a plain run; several: they name the
  // runtime of the failing UDFs and its worker command.
  std::unique_ptr<exec::UdfOperator> udf_operator;
  if (used.size() == 1) {
    ARROW_ASSIGN_OR_RAISE(udf_operator,
                          exec::UdfOperator::Make(used.begin()->second, std::move(options)));
  } else {
    ARROW_ASSIGN_OR_RAISE(udf_operator,
                          exec::UdfOperator::Make(std::move(used), std::move(options)));
  }
  ARROW_ASSIGN_OR_RAISE(auto run,
                        udf_operator->Execute(SliceBatches(std::move(input), batch_rows)));
  core->schema = run->schema();
  core->run = std::move(run);
  return std::make_unique<RunHandle>(std::move(core));
}

int64_t Engine::workers_started() const {
  if (closed()) return workers_started_at_close_;
  int64_t started = 0;
  for (const auto& [name, dispatcher] : runtimes_) started += dispatcher->workers_started();
  return started;
}

void Engine::Close() {
  if (closed()) return;
  workers_started_at_close_ = workers_started();
  runtimes_.clear();
}

}  // namespace quiver::python
