#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>
#include <arrow/memory_pool.h>
#include <arrow/result.h>
#include <arrow/status.h>

namespace quiver::io {

/// \brief An arrow::io::InputStream over a queue of byte chunks that arrive over time.
///
/// This is quiver's zero-copy byte stream: a transport that receives a message as
/// several buffers (gRPC slices, socket reads) appends them here, and an Arrow IPC
/// reader reads the message as one stream. A read that falls inside one chunk
/// returns a slice of that chunk, so no byte is copied; a read that spans chunks
/// concatenates exactly the bytes it returns, once.
///
/// One producer thread calls Append / Finish / Abort; one reader thread reads.
/// Reads block until enough bytes arrived, the producer finished (then they return
/// fewer bytes), or the producer aborted (then they return its status).
class ChunkedInputStream : public arrow::io::InputStream {
 public:
  /// Creates an empty stream; `pool` allocates the buffers of reads that span chunks.
  explicit ChunkedInputStream(arrow::MemoryPool* pool = arrow::default_memory_pool());
  ~ChunkedInputStream() override;

  /// Adds the next chunk at the end of the stream. Empty chunks are ignored.
  /// Fails after Finish, Abort or Close.
  arrow::Status Append(std::shared_ptr<arrow::Buffer> chunk);

  /// Marks the end of the stream: reads past the last chunk return fewer bytes.
  void Finish();

  /// Ends the stream with an error: a blocked or later read returns `status`.
  void Abort(arrow::Status status);
  using arrow::io::InputStream::Abort;  // the FileInterface overload stays callable

  /// Describes a failure of a reader of this stream, adding how many bytes the
  /// stream lacked when the failure was caused by its end (a message cut short).
  arrow::Status ExplainFailure(const arrow::Status& reader_status) const;

  /// Returns the number of bytes appended and not yet read.
  int64_t bytes_buffered() const;

  /// Returns how many bytes reads had to copy (reads spanning chunks, reads into
  /// caller memory); the rest were handed out as slices of the chunks.
  int64_t bytes_copied() const;

  arrow::Status Close() override;
  bool closed() const override;
  arrow::Result<int64_t> Tell() const override;
  arrow::Result<int64_t> Read(int64_t nbytes, void* out) override;
  arrow::Result<std::shared_ptr<arrow::Buffer>> Read(int64_t nbytes) override;
  arrow::Result<std::string_view> Peek(int64_t nbytes) override;
  bool supports_zero_copy() const override { return true; }

 private:
  // Blocks until `nbytes` are buffered or the stream ended; returns how many
  // bytes a read of `nbytes` may take now. A consuming read that the end cuts
  // short is remembered for ExplainFailure.
  arrow::Result<int64_t> WaitForBytes(std::unique_lock<std::mutex>& lock, int64_t nbytes,
                                      bool consuming);
  // Moves `nbytes` (<= buffered) from the front chunks into `out`.
  void CopyFront(int64_t nbytes, uint8_t* out);
  // Records a read that the end of the stream cut short.
  void NoteShortRead(int64_t requested, int64_t returned);

  arrow::MemoryPool* pool_;
  mutable std::mutex mutex_;
  std::condition_variable data_arrived_;
  std::deque<std::shared_ptr<arrow::Buffer>> chunks_;
  int64_t front_offset_ = 0;  // bytes of chunks_.front() already read
  int64_t buffered_ = 0;      // unread bytes over all chunks
  int64_t position_ = 0;      // bytes read so far
  int64_t bytes_copied_ = 0;
  bool finished_ = false;
  bool closed_ = false;
  arrow::Status abort_status_;
  int64_t short_read_requested_ = 0;  // last read cut short by the end, if any
  int64_t short_read_returned_ = 0;
};

}  // namespace quiver::io
