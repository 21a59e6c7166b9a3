#include "quiver/input/parallel_parquet_reader.h"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include <parquet/arrow/reader.h>

#include "quiver/io/recycling_pool.h"

namespace quiver::input {
namespace {

using BatchOrError = arrow::Result<std::shared_ptr<arrow::RecordBatch>>;

// The decoded batches of one row group, waiting for the caller.
struct GroupSlot {
  std::deque<BatchOrError> batches;
  bool done = false;  // the group's last batch (or its error) is in `batches`
};

arrow::Result<std::unique_ptr<parquet::arrow::FileReader>> OpenDecoder(
    const std::shared_ptr<arrow::io::RandomAccessFile>& file,
    const std::shared_ptr<parquet::FileMetaData>& metadata,
    const parquet::ArrowReaderProperties& properties) {
  parquet::arrow::FileReaderBuilder builder;
  // The footer is parsed once, by the caller; each decoder reuses it.
  ARROW_RETURN_NOT_OK(builder.Open(file, BufferedReaderProperties(), metadata));
  return builder.memory_pool(io::ReaderMemoryPool())->properties(properties)->Build();
}

class ParallelParquetReader : public arrow::RecordBatchReader {
 public:
  ParallelParquetReader(std::shared_ptr<arrow::Schema> schema,
                        std::vector<std::unique_ptr<parquet::arrow::FileReader>> decoders,
                        std::vector<int> row_groups, std::optional<std::vector<int>> leaves,
                        const ParallelParquetOptions& options)
      : schema_(std::move(schema)),
        decoders_(std::move(decoders)),
        row_groups_(std::move(row_groups)),
        leaves_(std::move(leaves)),
        num_row_groups_(decoders_.front()->parquet_reader()->metadata()->num_row_groups()),
        batches_per_group_(static_cast<size_t>(std::max(1, options.batches_per_group))),
        window_(std::max<int>(
            static_cast<int>(decoders_.size()),
            options.window > 0 ? options.window : static_cast<int>(decoders_.size()) + 1)) {
    for (auto& decoder : decoders_) {
      threads_.emplace_back([this, decoder = decoder.get()] {
        // Named as the single reader's thread is: `top -H` and bench/scaling.py
        // count every decode thread as the reader's CPU.
        pthread_setname_np(pthread_self(), "quiver-read");
        DecodeGroups(decoder);
      });
    }
  }

  ~ParallelParquetReader() override {
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
    while (true) {
      if (!failure_.ok()) return failure_;
      if (reading_ >= static_cast<int>(row_groups_.size())) {
        *out = nullptr;
        return arrow::Status::OK();
      }
      changed_.wait(lock, [&] {
        auto slot = slots_.find(reading_);
        return slot != slots_.end() && (!slot->second.batches.empty() || slot->second.done);
      });
      GroupSlot& slot = slots_[reading_];
      if (slot.batches.empty()) {  // done: the next row group
        slots_.erase(reading_++);
        changed_.notify_all();  // room in the window
        continue;
      }
      BatchOrError next = std::move(slot.batches.front());
      slot.batches.pop_front();
      if (!next.ok()) {
        // An error ends the stream: the threads stop, later calls return it again.
        failure_ = next.status();
        stopping_ = true;
      }
      changed_.notify_all();  // room in the row group
      if (!next.ok()) return failure_;
      *out = std::move(next).ValueUnsafe();
      return arrow::Status::OK();
    }
  }

 private:
  // Takes the next row group whenever the window has room, until none is left.
  void DecodeGroups(parquet::arrow::FileReader* decoder) {
    while (true) {
      int position;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || starting_ < reading_ + window_; });
        if (stopping_ || starting_ >= static_cast<int>(row_groups_.size())) return;
        position = starting_++;
        slots_[position];
      }
      DecodeGroup(decoder, position);
    }
  }

  // Decodes one row group batch by batch, waiting while its slot is full.
  void DecodeGroup(parquet::arrow::FileReader* decoder, int position) {
    const std::vector<int> group = {row_groups_[position]};
    auto opened = leaves_ ? decoder->GetRecordBatchReader(group, *leaves_)
                          : decoder->GetRecordBatchReader(group);
    if (!opened.ok()) {
      Deliver(position, InRowGroup(position, opened.status()));
      return;
    }
    auto batches = std::move(opened).ValueUnsafe();
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] {
          return stopping_ || slots_[position].batches.size() < batches_per_group_;
        });
        if (stopping_) return;
      }
      std::shared_ptr<arrow::RecordBatch> batch;
      arrow::Status status = batches->ReadNext(&batch);
      if (!status.ok()) {
        Deliver(position, InRowGroup(position, status));
        return;
      }
      if (batch == nullptr) {
        Deliver(position, std::nullopt);
        return;
      }
      Deliver(position, std::move(batch));
    }
  }

  // Says which row group an error is in (the user can look at that one).
  arrow::Status InRowGroup(int position, const arrow::Status& status) const {
    return RowGroupError(row_groups_[position], num_row_groups_, status);
  }

  // Hands a batch, an error (both last when an error) or the end to the caller.
  void Deliver(int position, std::optional<BatchOrError> item) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      GroupSlot& slot = slots_[position];
      const bool last = !item.has_value() || !item->ok();
      if (item.has_value()) slot.batches.push_back(std::move(*item));
      slot.done = last;
    }
    changed_.notify_all();
  }

  const std::shared_ptr<arrow::Schema> schema_;
  const std::vector<std::unique_ptr<parquet::arrow::FileReader>> decoders_;
  const std::vector<int> row_groups_;
  const std::optional<std::vector<int>> leaves_;
  const int num_row_groups_;  // in the file, for errors
  const size_t batches_per_group_;
  const int window_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int, GroupSlot> slots_;    // by position in row_groups_: open groups only
  int starting_ = 0;                  // position of the next row group a thread takes
  int reading_ = 0;                   // position of the row group the caller reads
  arrow::Status failure_;             // the error the stream ended with
  bool stopping_ = false;             // an error, or the reader is being destroyed
  std::vector<std::thread> threads_;  // last: started once everything above exists
};

}  // namespace

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ReadParquetInParallel(
    std::shared_ptr<arrow::io::RandomAccessFile> file,
    std::shared_ptr<parquet::FileMetaData> metadata,
    const parquet::ArrowReaderProperties& properties, std::vector<int> row_groups,
    std::optional<std::vector<int>> leaves, const ParallelParquetOptions& options) {
  if (options.threads < 1) return arrow::Status::Invalid("decode threads must be at least 1");
  const int threads = std::max(1, std::min(options.threads, static_cast<int>(row_groups.size())));
  std::vector<std::unique_ptr<parquet::arrow::FileReader>> decoders;
  for (int i = 0; i < threads; ++i) {
    ARROW_ASSIGN_OR_RAISE(auto decoder, OpenDecoder(file, metadata, properties));
    decoders.push_back(std::move(decoder));
  }
  // The schema of the columns read, as a reader of no row group reports it.
  ARROW_ASSIGN_OR_RAISE(auto empty, leaves ? decoders[0]->GetRecordBatchReader({}, *leaves)
                                           : decoders[0]->GetRecordBatchReader({}));
  return std::make_shared<ParallelParquetReader>(empty->schema(), std::move(decoders),
                                                 std::move(row_groups), std::move(leaves), options);
}

arrow::Status RowGroupError(int row_group, int row_groups, const arrow::Status& status) {
  return status.WithMessage("row group ", row_group, " of ", row_groups,
                            " (numbered from 0): ", status.message());
}

parquet::ReaderProperties BufferedReaderProperties() {
  parquet::ReaderProperties properties(io::ReaderMemoryPool());
  properties.enable_buffered_stream();
  properties.set_buffer_size(kDecoderBufferBytes);
  return properties;
}

int DecodeThreadsFor(unsigned cores, int workers) {
  const int free_cores = static_cast<int>(std::max(1U, cores)) - std::max(0, workers);
  return std::clamp(free_cores, 1, kMaxDecodeThreads);
}

int DecodeThreadsOfRun(int workers) {
  if (const char* chosen = std::getenv("QUIVER_DECODE_THREADS"); chosen != nullptr) {
    const int threads = std::atoi(chosen);
    if (threads > 0) return std::min(threads, 64);
  }
  return DecodeThreadsFor(std::thread::hardware_concurrency(), workers);
}

}  // namespace quiver::input
