#include "quiver/input/read_ahead.h"

#include <pthread.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include <arrow/result.h>

namespace quiver::input {
namespace {

class ReadAheadReader : public arrow::RecordBatchReader {
 public:
  ReadAheadReader(std::shared_ptr<arrow::RecordBatchReader> input, int batches)
      : input_(std::move(input)), capacity_(static_cast<size_t>(batches)) {
    thread_ = std::thread([this] {
      // Named so that `top -H` and bench/scaling.py can tell the reader's CPU apart.
      pthread_setname_np(pthread_self(), "quiver-read");
      Run();
    });
  }

  ~ReadAheadReader() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  std::shared_ptr<arrow::Schema> schema() const override { return input_->schema(); }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return !ready_.empty() || ended_; });
    if (ready_.empty()) {
      *out = nullptr;
      return arrow::Status::OK();
    }
    auto next = std::move(ready_.front());
    ready_.pop_front();
    lock.unlock();
    changed_.notify_all();  // room for one more
    if (!next.ok()) return next.status();
    *out = std::move(next).ValueUnsafe();
    return arrow::Status::OK();
  }

 private:
  void Run() {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return ready_.size() < capacity_ || stopping_; });
        if (stopping_) break;
      }
      std::shared_ptr<arrow::RecordBatch> batch;
      arrow::Status status = input_->ReadNext(&batch);
      const bool last = !status.ok() || batch == nullptr;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!status.ok()) ready_.emplace_back(status);
        if (batch != nullptr) ready_.emplace_back(std::move(batch));
        ended_ = last;
      }
      changed_.notify_all();
      if (last) return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    ended_ = true;
  }

  std::shared_ptr<arrow::RecordBatchReader> input_;
  const size_t capacity_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<arrow::Result<std::shared_ptr<arrow::RecordBatch>>> ready_;
  bool ended_ = false;     // the thread read the end or an error: nothing more comes
  bool stopping_ = false;  // the reader is being destroyed
  std::thread thread_;     // last: started once everything above exists
};

}  // namespace

std::shared_ptr<arrow::RecordBatchReader> ReadAhead(std::shared_ptr<arrow::RecordBatchReader> input,
                                                    int batches) {
  return std::make_shared<ReadAheadReader>(std::move(input), batches);
}

}  // namespace quiver::input
