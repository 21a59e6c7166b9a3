#include "quiver/io/chunked_input_stream.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace quiver::io {

ChunkedInputStream::ChunkedInputStream(arrow::MemoryPool* pool) : pool_(pool) {}

ChunkedInputStream::~ChunkedInputStream() = default;

arrow::Status ChunkedInputStream::Append(std::shared_ptr<arrow::Buffer> chunk) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return arrow::Status::Invalid("ChunkedInputStream: append after Close");
  if (!abort_status_.ok()) return abort_status_;
  if (finished_) return arrow::Status::Invalid("ChunkedInputStream: append after Finish");
  if (chunk == nullptr || chunk->size() == 0) return arrow::Status::OK();
  buffered_ += chunk->size();
  chunks_.push_back(std::move(chunk));
  data_arrived_.notify_all();
  return arrow::Status::OK();
}

void ChunkedInputStream::Finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  finished_ = true;
  data_arrived_.notify_all();
}

void ChunkedInputStream::Abort(arrow::Status status) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (status.ok()) status = arrow::Status::Cancelled("ChunkedInputStream aborted");
  if (abort_status_.ok()) abort_status_ = std::move(status);
  data_arrived_.notify_all();
}

arrow::Status ChunkedInputStream::ExplainFailure(const arrow::Status& reader_status) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (reader_status.ok() || short_read_requested_ == 0) return reader_status;
  return reader_status.WithMessage("stream ended ", short_read_requested_ - short_read_returned_,
                                   " bytes short of a complete message (a read wanted ",
                                   short_read_requested_, " bytes and got ", short_read_returned_,
                                   " at offset ", position_ - short_read_returned_,
                                   "): ", reader_status.message());
}

int64_t ChunkedInputStream::bytes_buffered() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return buffered_;
}

int64_t ChunkedInputStream::bytes_copied() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_copied_;
}

arrow::Status ChunkedInputStream::Close() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  chunks_.clear();
  buffered_ = 0;
  data_arrived_.notify_all();
  return arrow::Status::OK();
}

bool ChunkedInputStream::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

arrow::Result<int64_t> ChunkedInputStream::Tell() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return position_;
}

arrow::Result<int64_t> ChunkedInputStream::WaitForBytes(std::unique_lock<std::mutex>& lock,
                                                        int64_t nbytes, bool consuming) {
  if (nbytes < 0) return arrow::Status::Invalid("cannot read a negative number of bytes");
  data_arrived_.wait(
      lock, [&] { return closed_ || !abort_status_.ok() || finished_ || buffered_ >= nbytes; });
  if (closed_) return arrow::Status::Invalid("ChunkedInputStream: read after Close");
  if (!abort_status_.ok()) return abort_status_;
  const int64_t available = std::min(nbytes, buffered_);
  if (consuming && available < nbytes) NoteShortRead(nbytes, available);
  return available;
}

void ChunkedInputStream::NoteShortRead(int64_t requested, int64_t returned) {
  short_read_requested_ = requested;
  short_read_returned_ = returned;
}

void ChunkedInputStream::CopyFront(int64_t nbytes, uint8_t* out) {
  bytes_copied_ += nbytes;
  while (nbytes > 0) {
    const auto& front = chunks_.front();
    const int64_t take = std::min(nbytes, front->size() - front_offset_);
    std::memcpy(out, front->data() + front_offset_, static_cast<size_t>(take));
    out += take;
    nbytes -= take;
    front_offset_ += take;
    buffered_ -= take;
    position_ += take;
    if (front_offset_ == front->size()) {
      chunks_.pop_front();
      front_offset_ = 0;
    }
  }
}

arrow::Result<int64_t> ChunkedInputStream::Read(int64_t nbytes, void* out) {
  std::unique_lock<std::mutex> lock(mutex_);
  ARROW_ASSIGN_OR_RAISE(const int64_t available, WaitForBytes(lock, nbytes, /*consuming=*/true));
  CopyFront(available, static_cast<uint8_t*>(out));
  return available;
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ChunkedInputStream::Read(int64_t nbytes) {
  std::unique_lock<std::mutex> lock(mutex_);
  ARROW_ASSIGN_OR_RAISE(const int64_t available, WaitForBytes(lock, nbytes, /*consuming=*/true));
  if (available == 0) return std::make_shared<arrow::Buffer>(nullptr, 0);
  const auto& front = chunks_.front();
  if (front->size() - front_offset_ >= available) {
    // Zero copy: the bytes lie inside one chunk, hand out a slice that keeps it alive.
    auto slice = arrow::SliceBuffer(front, front_offset_, available);
    front_offset_ += available;
    buffered_ -= available;
    position_ += available;
    if (front_offset_ == front->size()) {
      chunks_.pop_front();
      front_offset_ = 0;
    }
    return slice;
  }
  ARROW_ASSIGN_OR_RAISE(std::unique_ptr<arrow::Buffer> joined,
                        arrow::AllocateBuffer(available, pool_));
  CopyFront(available, joined->mutable_data());
  return std::shared_ptr<arrow::Buffer>(std::move(joined));
}

arrow::Result<std::string_view> ChunkedInputStream::Peek(int64_t nbytes) {
  std::unique_lock<std::mutex> lock(mutex_);
  ARROW_ASSIGN_OR_RAISE(const int64_t available, WaitForBytes(lock, nbytes, /*consuming=*/false));
  if (available == 0) return std::string_view();
  if (chunks_.front()->size() - front_offset_ < available) {
    // The peeked bytes span chunks: join them into one chunk at the front so the
    // view stays valid until they are read.
    ARROW_ASSIGN_OR_RAISE(std::unique_ptr<arrow::Buffer> joined,
                          arrow::AllocateBuffer(available, pool_));
    const int64_t saved_position = position_;
    CopyFront(available, joined->mutable_data());
    position_ = saved_position;
    buffered_ += available;
    if (front_offset_ > 0) {
      chunks_.front() = arrow::SliceBuffer(chunks_.front(), front_offset_);
      front_offset_ = 0;
    }
    chunks_.push_front(std::shared_ptr<arrow::Buffer>(std::move(joined)));
  }
  const auto& front = chunks_.front();
  return std::string_view(reinterpret_cast<const char*>(front->data() + front_offset_),
                          static_cast<size_t>(available));
}

}  // namespace quiver::io
