#include "quiver/input/ordered_decoder.h"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace quiver::input {
namespace {

using BatchOrError = arrow::Result<std::shared_ptr<arrow::RecordBatch>>;

class OrderedDecoder : public arrow::RecordBatchReader {
 public:
  OrderedDecoder(std::shared_ptr<arrow::Schema> schema, ClaimPiece claim,
                 const OrderedDecodeOptions& options)
      : schema_(std::move(schema)),
        claim_(std::move(claim)),
        window_(std::max(std::max(1, options.threads),
                         options.window > 0 ? options.window : std::max(1, options.threads) + 1)) {
    for (int thread = 0; thread < std::max(1, options.threads); ++thread) {
      threads_.emplace_back([this, thread] {
        // Named as the single reader's thread is: `top -H` and bench/scaling.py
        // count every decode thread as the reader's CPU.
        pthread_setname_np(pthread_self(), "quiver-read");
        DecodePieces(thread);
      });
    }
  }

  ~OrderedDecoder() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!failure_.ok()) return failure_;
    changed_.wait(lock, [&] { return decoded_.count(reading_) > 0 || reading_ == end_; });
    if (reading_ == end_) {
      *out = nullptr;
      return arrow::Status::OK();
    }
    auto found = decoded_.find(reading_);
    BatchOrError next = std::move(found->second);
    decoded_.erase(found);
    ++reading_;
    if (!next.ok()) {
      // An error ends the stream: the threads stop, later calls return it again.
      failure_ = next.status();
      stopping_ = true;
    }
    changed_.notify_all();  // room in the window
    if (!next.ok()) return failure_;
    *out = std::move(next).ValueUnsafe();
    return arrow::Status::OK();
  }

 private:
  // Claims the next piece whenever the window has room and decodes it, until
  // no piece is left or the reader stops.
  void DecodePieces(int thread) {
    while (true) {
      int64_t position;
      DecodePiece decode;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || claimed_ < reading_ + window_; });
        if (stopping_ || claimed_ == end_) return;
        position = claimed_++;
        auto claimed = claim_();
        if (!claimed.ok() || !claimed->has_value()) {
          // Nothing more is claimed: an error takes this position, the end follows it.
          if (!claimed.ok()) {
            decoded_.emplace(position, claimed.status());
            end_ = claimed_;
          } else {
            end_ = --claimed_;
          }
          changed_.notify_all();
          return;
        }
        decode = std::move(**claimed);
      }
      BatchOrError batch = decode(thread);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        decoded_.emplace(position, std::move(batch));
      }
      changed_.notify_all();
    }
  }

  const std::shared_ptr<arrow::Schema> schema_;
  const ClaimPiece claim_;
  const int64_t window_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int64_t, BatchOrError> decoded_;  // by position, waiting for the caller
  int64_t claimed_ = 0;                      // position of the next piece claimed
  int64_t reading_ = 0;                      // position of the piece the caller reads next
  int64_t end_ = -1;                         // the position after the last piece, once known
  arrow::Status failure_;                    // the error the stream ended with
  bool stopping_ = false;                    // an error, or the reader is being destroyed
  std::vector<std::thread> threads_;         // last: started once everything above exists
};

}  // namespace

std::shared_ptr<arrow::RecordBatchReader> DecodeInOrder(std::shared_ptr<arrow::Schema> schema,
                                                        ClaimPiece claim,
                                                        const OrderedDecodeOptions& options) {
  return std::make_shared<OrderedDecoder>(std::move(schema), std::move(claim), options);
}

}  // namespace quiver::input
