#include "quiver/protocol/batch_codec.h"

#include <cstring>
#include <utility>

#include <arrow/io/memory.h>
#include <arrow/ipc/dictionary.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/type.h>

namespace quiver::protocol {
namespace {

// An OutputStream that keeps references to the buffers written to it instead of
// copying them. Arrow's IPC writer hands every body buffer over as a
// shared_ptr; the small writes in between (message headers, padding) are
// gathered into fresh buffers.
class BufferListSink : public arrow::io::OutputStream {
 public:
  arrow::Status Close() override {
    closed_ = true;
    return FlushStaged();
  }
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override { return position_; }

  arrow::Status Write(const void* data, int64_t nbytes) override {
    staged_.append(static_cast<const char*>(data), static_cast<size_t>(nbytes));
    position_ += nbytes;
    return arrow::Status::OK();
  }

  arrow::Status Write(const std::shared_ptr<arrow::Buffer>& data) override {
    if (data->size() < kSmallWrite) return Write(data->data(), data->size());
    ARROW_RETURN_NOT_OK(FlushStaged());
    buffers_.push_back(data);
    position_ += data->size();
    return arrow::Status::OK();
  }

  std::vector<std::shared_ptr<arrow::Buffer>> TakeBuffers() { return std::move(buffers_); }

 private:
  // Buffers smaller than this are copied rather than referenced: a copy of a
  // few bytes is cheaper than one more entry for writev.
  static constexpr int64_t kSmallWrite = 256;

  arrow::Status FlushStaged() {
    if (staged_.empty()) return arrow::Status::OK();
    buffers_.push_back(arrow::Buffer::FromString(std::move(staged_)));
    staged_.clear();
    return arrow::Status::OK();
  }

  std::vector<std::shared_ptr<arrow::Buffer>> buffers_;
  std::string staged_;
  int64_t position_ = 0;
  bool closed_ = false;
};

arrow::Result<std::shared_ptr<arrow::RecordBatch>> ReadSingleBatch(
    arrow::ipc::RecordBatchReader* reader) {
  ARROW_ASSIGN_OR_RAISE(auto batch, reader->Next());
  if (batch == nullptr) {
    return arrow::Status::Invalid("Data body holds no record batch (exactly one is required)");
  }
  ARROW_ASSIGN_OR_RAISE(auto extra, reader->Next());
  if (extra != nullptr) {
    return arrow::Status::Invalid(
        "Data body holds more than one record batch "
        "(exactly one is required)");
  }
  return batch;
}

// Buffers that arrive misaligned for their type (a gRPC slice may start
// anywhere) are copied to aligned memory; aligned ones are used in place.
arrow::ipc::IpcReadOptions ReadOptions() {
  auto options = arrow::ipc::IpcReadOptions::Defaults();
  options.ensure_alignment = arrow::ipc::Alignment::kDataTypeSpecificAlignment;
  return options;
}

}  // namespace

arrow::Result<std::vector<std::shared_ptr<arrow::Buffer>>> EncodeBatchStream(
    const arrow::RecordBatch& batch) {
  auto sink = std::make_shared<BufferListSink>();
  ARROW_ASSIGN_OR_RAISE(auto writer, arrow::ipc::MakeStreamWriter(sink, batch.schema()));
  ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(batch));
  ARROW_RETURN_NOT_OK(writer->Close());
  ARROW_RETURN_NOT_OK(sink->Close());
  return sink->TakeBuffers();
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> DecodeBatchStream(
    std::shared_ptr<arrow::Buffer> body) {
  auto input = std::make_shared<arrow::io::BufferReader>(std::move(body));
  ARROW_ASSIGN_OR_RAISE(auto reader,
                        arrow::ipc::RecordBatchStreamReader::Open(input, ReadOptions()));
  return ReadSingleBatch(reader.get());
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> DecodeBatchStream(
    std::shared_ptr<arrow::io::InputStream> stream) {
  ARROW_ASSIGN_OR_RAISE(auto reader,
                        arrow::ipc::RecordBatchStreamReader::Open(stream, ReadOptions()));
  return ReadSingleBatch(reader.get());
}

arrow::Result<std::string> SerializeSchema(const arrow::Schema& schema) {
  ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::ipc::SerializeSchema(schema));
  return buffer->ToString();
}

arrow::Result<std::shared_ptr<arrow::Schema>> DeserializeSchema(std::string_view bytes) {
  auto buffer = std::make_shared<arrow::Buffer>(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                static_cast<int64_t>(bytes.size()));
  arrow::io::BufferReader reader(buffer);
  arrow::ipc::DictionaryMemo memo;
  return arrow::ipc::ReadSchema(&reader, &memo);
}

}  // namespace quiver::protocol
