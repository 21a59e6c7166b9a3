#include "quiver/protocol/batch_codec.h"

#include <cstring>
#include <list>
#include <utility>

#include <arrow/io/memory.h>
#include <arrow/ipc/dictionary.h>
#include <arrow/ipc/message.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/type.h>
#include <arrow/util/endian.h>

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

  // Appends `data` by reference, whatever its size.
  arrow::Status Append(const std::shared_ptr<arrow::Buffer>& data) {
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

// Buffers that arrive misaligned for their type (a gRPC slice may start
// anywhere) are copied to aligned memory; aligned ones are used in place.
arrow::ipc::IpcReadOptions ReadOptions() {
  auto options = arrow::ipc::IpcReadOptions::Defaults();
  options.ensure_alignment = arrow::ipc::Alignment::kDataTypeSpecificAlignment;
  return options;
}

// The end-of-stream marker: a continuation token and a zero length.
constexpr uint8_t kEndOfStream[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};

// Schemas seen last on this thread; a few, so that a thread that alternates
// between the argument schemas of several runs still finds each of them.
constexpr size_t kCachedSchemas = 4;
// Schema messages larger than this are parsed every time rather than kept.
constexpr int64_t kMaxCachedSchemaBytes = int64_t{64} << 10;

bool HasDictionaries(const arrow::DataType& type) {
  if (type.id() == arrow::Type::DICTIONARY) return true;
  for (const auto& child : type.fields()) {
    if (HasDictionaries(*child->type())) return true;
  }
  return false;
}

bool HasDictionaries(const arrow::Schema& schema) {
  for (const auto& field : schema.fields()) {
    if (HasDictionaries(*field->type())) return true;
  }
  return false;
}

// A schema and its encapsulated IPC schema message, as a stream writer emits it.
struct EncodedSchema {
  std::shared_ptr<arrow::Schema> schema;
  std::shared_ptr<arrow::Buffer> message;
  bool has_dictionaries = false;
};

// The schema message is the same for every batch of a schema, and building
// its flatbuffer costs more than the rest of encoding a small batch: it is
// built once per schema and thread, and its bytes are referenced afterwards.
class EncodedSchemaCache {
 public:
  static EncodedSchemaCache& ForThisThread() {
    thread_local EncodedSchemaCache cache;
    return cache;
  }

  arrow::Result<const EncodedSchema*> Find(const std::shared_ptr<arrow::Schema>& schema) {
    for (auto entry = entries_.begin(); entry != entries_.end(); ++entry) {
      // The same object (a run reuses its argument schema), else equal fields and metadata.
      if (entry->schema == schema || entry->schema->Equals(*schema, /*check_metadata=*/true)) {
        entries_.splice(entries_.begin(), entries_, entry);
        return &entries_.front();
      }
    }
    EncodedSchema encoded;
    encoded.schema = schema;
    ARROW_ASSIGN_OR_RAISE(encoded.message, arrow::ipc::SerializeSchema(*schema));
    encoded.has_dictionaries = HasDictionaries(*schema);
    entries_.push_front(std::move(encoded));
    if (entries_.size() > kCachedSchemas) entries_.pop_back();
    return &entries_.front();
  }

 private:
  std::list<EncodedSchema> entries_;
};

// Schemas with dictionaries: their dictionaries travel in every body, which the
// stream writer arranges.
arrow::Result<std::vector<std::shared_ptr<arrow::Buffer>>> EncodeWithStreamWriter(
    const arrow::RecordBatch& batch) {
  auto sink = std::make_shared<BufferListSink>();
  ARROW_ASSIGN_OR_RAISE(auto writer, arrow::ipc::MakeStreamWriter(sink, batch.schema()));
  ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(batch));
  ARROW_RETURN_NOT_OK(writer->Close());
  ARROW_RETURN_NOT_OK(sink->Close());
  return sink->TakeBuffers();
}

// The bytes of a schema message that opened a body, and the schema they parse to.
struct DecodedSchema {
  std::string bytes;
  std::shared_ptr<arrow::Schema> schema;
};

// Every body of a peer starts with the same schema message. Bodies that start
// with bytes already parsed on this thread reuse their schema; only bytes that
// the general reader decoded successfully are remembered.
class DecodedSchemaCache {
 public:
  static DecodedSchemaCache& ForThisThread() {
    thread_local DecodedSchemaCache cache;
    return cache;
  }

  // Returns the schema whose message `body` starts with, if it is known.
  const DecodedSchema* Find(const arrow::Buffer& body) {
    for (auto entry = entries_.begin(); entry != entries_.end(); ++entry) {
      const auto size = static_cast<int64_t>(entry->bytes.size());
      if (body.size() >= size && std::memcmp(body.data(), entry->bytes.data(), size) == 0) {
        entries_.splice(entries_.begin(), entries_, entry);
        return &entries_.front();
      }
    }
    return nullptr;
  }

  // Remembers the schema message `body` starts with, which parsed to `schema`.
  void Remember(const arrow::Buffer& body, std::shared_ptr<arrow::Schema> schema) {
    if (HasDictionaries(*schema)) return;
    const int64_t size = SchemaMessageSize(body);
    if (size <= 0 || size > kMaxCachedSchemaBytes) return;
    entries_.push_front({body.ToString().substr(0, static_cast<size_t>(size)), std::move(schema)});
    if (entries_.size() > kCachedSchemas) entries_.pop_back();
  }

 private:
  // Returns the bytes of the schema message at the start of `body` (a
  // continuation token, the metadata length, the metadata, no body), or 0
  // when it is framed otherwise.
  static int64_t SchemaMessageSize(const arrow::Buffer& body) {
    if (body.size() < 8) return 0;
    uint32_t continuation = 0;
    int32_t length = 0;
    std::memcpy(&continuation, body.data(), 4);
    std::memcpy(&length, body.data() + 4, 4);
    length = arrow::bit_util::FromLittleEndian(length);
    if (continuation != 0xffffffffu || length <= 0 || 8 + int64_t{length} > body.size()) return 0;
    arrow::io::BufferReader reader(arrow::SliceBuffer(
        std::make_shared<arrow::Buffer>(body.data(), body.size()), 0, 8 + int64_t{length}));
    auto message = arrow::ipc::ReadMessage(&reader);
    if (!message.ok() || *message == nullptr || (*message)->body_length() != 0 ||
        (*message)->type() != arrow::ipc::MessageType::SCHEMA) {
      return 0;
    }
    return 8 + int64_t{length};
  }

  std::list<DecodedSchema> entries_;
};

// Reads the one record batch after a schema message known to be `schema`;
// null when the body holds anything but that batch and the end of the stream.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> DecodeAfterKnownSchema(
    const std::shared_ptr<arrow::Buffer>& body, const DecodedSchema& schema) {
  const auto offset = static_cast<int64_t>(schema.bytes.size());
  arrow::io::BufferReader reader(arrow::SliceBuffer(body, offset));
  ARROW_ASSIGN_OR_RAISE(auto message, arrow::ipc::ReadMessage(&reader));
  if (message == nullptr || message->type() != arrow::ipc::MessageType::RECORD_BATCH) {
    return nullptr;
  }
  ARROW_ASSIGN_OR_RAISE(
      auto batch, arrow::ipc::ReadRecordBatch(*message, schema.schema, nullptr, ReadOptions()));
  ARROW_ASSIGN_OR_RAISE(auto extra, arrow::ipc::ReadMessage(&reader));
  if (extra != nullptr) return nullptr;
  return batch;
}

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

}  // namespace

arrow::Result<int64_t> EncodedBatchSize(const arrow::RecordBatch& batch) {
  int64_t size = 0;
  ARROW_RETURN_NOT_OK(arrow::ipc::GetRecordBatchSize(batch, &size));
  return size;
}

arrow::Result<std::vector<std::shared_ptr<arrow::Buffer>>> EncodeBatchStream(
    const arrow::RecordBatch& batch) {
  ARROW_ASSIGN_OR_RAISE(const EncodedSchema* schema,
                        EncodedSchemaCache::ForThisThread().Find(batch.schema()));
  if (schema->has_dictionaries) return EncodeWithStreamWriter(batch);
  // The stream the writer would produce, its schema message taken from the cache.
  BufferListSink sink;
  ARROW_RETURN_NOT_OK(sink.Append(schema->message));
  const auto options = arrow::ipc::IpcWriteOptions::Defaults();
  arrow::ipc::IpcPayload payload;
  ARROW_RETURN_NOT_OK(arrow::ipc::GetRecordBatchPayload(batch, options, &payload));
  int32_t metadata_length = 0;
  ARROW_RETURN_NOT_OK(arrow::ipc::WriteIpcPayload(payload, options, &sink, &metadata_length));
  ARROW_RETURN_NOT_OK(sink.Write(kEndOfStream, sizeof(kEndOfStream)));
  ARROW_RETURN_NOT_OK(sink.Close());
  return sink.TakeBuffers();
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> DecodeBatchStream(
    std::shared_ptr<arrow::Buffer> body) {
  DecodedSchemaCache& cache = DecodedSchemaCache::ForThisThread();
  if (const DecodedSchema* known = cache.Find(*body)) {
    auto fast = DecodeAfterKnownSchema(body, *known);
    if (fast.ok() && *fast != nullptr) return std::move(fast).ValueUnsafe();
    // Anything unusual after a known schema (an error, a second batch, a
    // dictionary batch) takes the general path, which words the error.
  }
  auto input = std::make_shared<arrow::io::BufferReader>(body);
  ARROW_ASSIGN_OR_RAISE(auto reader,
                        arrow::ipc::RecordBatchStreamReader::Open(input, ReadOptions()));
  ARROW_ASSIGN_OR_RAISE(auto batch, ReadSingleBatch(reader.get()));
  cache.Remember(*body, reader->schema());
  return batch;
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
