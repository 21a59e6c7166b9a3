#include "quiver/sdk/execution.h"

#include <sys/resource.h>

#include <chrono>
#include <utility>

#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/version.h"
#include "quiver/sdk/counter.h"
#include "quiver/sdk/errors.h"
#include "quiver/sdk/log.h"
#include "quiver/sdk/result_size.h"

namespace quiver::sdk {
namespace {

// Measures the nanoseconds between its construction and destruction into a counter.
class Timer {
 public:
  explicit Timer(uint64_t* total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  ~Timer() {
    *total_ += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::steady_clock::now() - start_)
                                         .count());
  }

 private:
  uint64_t* total_;
  std::chrono::steady_clock::time_point start_;
};

// Calls user code, turning what it throws into a UserError naming the UDF.
template <typename Call>
auto Guarded(const std::string& udf_name, Call&& call) -> decltype(call()) {
  try {
    return call();
  } catch (...) {
    return UserErrorFromException(udf_name, std::current_exception());
  }
}

}  // namespace

uint64_t PeakRssBytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

Execution::Execution(const Registry* registry, v1::Init init)
    : registry_(registry),
      init_(std::move(init)),
      chunks_left_(init_.payload_chunk_count()),
      user_counters_before_(CounterSnapshot()) {}

Execution::~Execution() { Close(); }

arrow::Status Execution::AddPayloadChunk(const v1::PayloadChunk& chunk) {
  if (chunks_left_ == 0) {
    return ProtocolError("PayloadChunk beyond the " + std::to_string(init_.payload_chunk_count()) +
                         " announced by Init");
  }
  if (chunk.udf_index() >= static_cast<uint32_t>(init_.udfs_size())) {
    return ProtocolError("PayloadChunk for udf_index " + std::to_string(chunk.udf_index()) +
                         ", but Init has " + std::to_string(init_.udfs_size()) + " UDFs");
  }
  init_.mutable_udfs(static_cast<int>(chunk.udf_index()))->mutable_payload()->append(chunk.data());
  --chunks_left_;
  return arrow::Status::OK();
}

arrow::Status Execution::CheckInit() const {
  if (init_.protocol_version() != protocol::kProtocolVersion) {
    return ProtocolError("Init has protocol_version " + std::to_string(init_.protocol_version()) +
                         "; this worker speaks " + std::to_string(protocol::kProtocolVersion));
  }
  if (init_.data_format() != v1::ARROW_IPC_STREAM) {
    return WorkerError("Init has data_format " + std::to_string(init_.data_format()) +
                       "; this worker reads ARROW_IPC_STREAM (1) only");
  }
  if (init_.udfs_size() == 0) return ProtocolError("Init has no UDFs");
  if (init_.input_schema().empty()) {
    return ProtocolError(
        "Init has no input_schema; a compiled worker picks its functions by argument type");
  }
  return arrow::Status::OK();
}

arrow::Result<std::string> Execution::Load() {
  ARROW_RETURN_NOT_OK(CheckInit());
  auto schema = protocol::DeserializeSchema(init_.input_schema());
  if (!schema.ok()) {
    return ProtocolError("Init.input_schema is not an Arrow IPC schema message: " +
                         schema.status().message());
  }
  input_schema_ = *schema;
  arrow::FieldVector result_fields;
  for (int i = 0; i < init_.udfs_size(); ++i) {
    ARROW_ASSIGN_OR_RAISE(BoundUdf bound, Bind(i));
    result_fields.push_back(arrow::field(bound.name, bound.result_type, /*nullable=*/true));
    udfs_.push_back(std::move(bound));
  }
  ARROW_RETURN_NOT_OK(SetUp());
  auto result_schema = arrow::schema(std::move(result_fields));
  ARROW_ASSIGN_OR_RAISE(std::string bytes, protocol::SerializeSchema(*result_schema));
  result_schema_ = std::move(result_schema);
  return bytes;
}

arrow::Result<Execution::BoundUdf> Execution::Bind(int index) const {
  const v1::UdfDefinition& definition = init_.udfs(index);
  const std::string& name = definition.name();
  if (definition.payload_format() != kSymbolPayloadFormat) {
    return WorkerError("UDF '" + name + "' has payload_format '" + definition.payload_format() +
                           "', which this worker does not know; it loads 'symbol' (the name of "
                           "a registered function)",
                       name);
  }
  if (definition.eval_type() != v1::EVAL_TYPE_UNSPECIFIED &&
      definition.eval_type() != v1::SCALAR_ARROW) {
    return WorkerError("UDF '" + name + "' has eval_type " +
                           std::to_string(definition.eval_type()) +
                           "; this worker's functions are SCALAR_ARROW (1) (or send 0)",
                       name);
  }
  BoundUdf bound;
  bound.name = name;
  arrow::FieldVector fields;
  for (int32_t offset : definition.argument_offsets()) {
    if (offset < 0 || offset >= input_schema_->num_fields()) {
      return ProtocolError("UDF '" + name + "' has argument offset " + std::to_string(offset) +
                           ", but the input schema has " +
                           std::to_string(input_schema_->num_fields()) + " columns");
    }
    bound.offsets.push_back(offset);
    fields.push_back(input_schema_->field(offset));
  }
  ARROW_ASSIGN_OR_RAISE(ResolvedUdf resolved,
                        registry_->Resolve(name, definition.payload(), fields));
  bound.udf = resolved.udf;
  bound.result_type = resolved.result_type;
  if (!definition.return_type().empty()) {
    auto declared = protocol::DeserializeSchema(definition.return_type());
    if (!declared.ok() || (*declared)->num_fields() != 1) {
      return ProtocolError("return_type of UDF '" + name +
                           "' is not an Arrow IPC schema message with one field");
    }
    const auto& engine_type = (*declared)->field(0)->type();
    if (!engine_type->Equals(*bound.result_type)) {
      return WorkerError("UDF '" + name + "' returns " + bound.result_type->ToString() +
                             ", but the engine declared return type " + engine_type->ToString(),
                         name);
    }
  }
  return bound;
}

arrow::Status Execution::SetUp() {
  for (BoundUdf& bound : udfs_) {
    if (bound.udf->setup) {
      Timer timer(&counters_.udf_nanos);
      arrow::Status status = Guarded(bound.name, [&] { return bound.udf->setup(); });
      if (!status.ok()) {
        return CarriesError(status) ? status : UserErrorFromStatus(bound.name, status);
      }
    }
    bound.set_up = true;  // its teardown runs at the end of the execution
  }
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Execution::Decode(
    std::shared_ptr<arrow::io::InputStream> body) {
  auto decoded = protocol::DecodeBatchStream(std::move(body));
  if (!decoded.ok()) {
    return ProtocolError("a Data body is not a valid Arrow IPC stream: " +
                         decoded.status().message());
  }
  ARROW_RETURN_NOT_OK(CheckBatch(**decoded));
  return *decoded;
}

arrow::Status Execution::CheckBatch(const arrow::RecordBatch& batch) const {
  if (!batch.schema()->Equals(*input_schema_, /*check_metadata=*/false)) {
    return ProtocolError("a Data batch has schema " + batch.schema()->ToString() +
                         ", but Init.input_schema is " + input_schema_->ToString());
  }
  if (auto valid = batch.ValidateFull(); !valid.ok()) {
    return ProtocolError("a Data batch is not valid Arrow data: " + valid.message());
  }
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Execution::Run(
    std::shared_ptr<arrow::io::InputStream> body) {
  std::shared_ptr<arrow::RecordBatch> batch;
  {
    Timer timer(&counters_.codec_nanos);
    ARROW_ASSIGN_OR_RAISE(batch, Decode(std::move(body)));
  }
  return RunDecoded(*batch);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Execution::RunDecoded(
    const arrow::RecordBatch& batch) {
  arrow::ArrayVector columns;
  for (const BoundUdf& bound : udfs_) {
    ARROW_ASSIGN_OR_RAISE(auto column, Call(bound, batch));
    columns.push_back(std::move(column));
  }
  counters_.batches += 1;
  counters_.rows_in += static_cast<uint64_t>(batch.num_rows());
  counters_.rows_out += static_cast<uint64_t>(batch.num_rows());
  auto result = arrow::RecordBatch::Make(result_schema_, batch.num_rows(), std::move(columns));
  ARROW_RETURN_NOT_OK(CheckResultSize(*result, udfs_.empty() ? "" : udfs_.front().name));
  return result;
}

arrow::Result<std::shared_ptr<arrow::Array>> Execution::Call(const BoundUdf& bound,
                                                             const arrow::RecordBatch& batch) {
  Arrays arguments;
  arguments.reserve(bound.offsets.size());
  for (int offset : bound.offsets) arguments.push_back(batch.column(offset));
  arrow::Result<std::shared_ptr<arrow::Array>> result;
  {
    Timer timer(&counters_.udf_nanos);
    result = Guarded(bound.name, [&]() -> arrow::Result<std::shared_ptr<arrow::Array>> {
      return bound.udf->call(arguments);
    });
  }
  if (!result.ok()) {
    const arrow::Status& status = result.status();
    return CarriesError(status) ? status : UserErrorFromStatus(bound.name, status);
  }
  ARROW_RETURN_NOT_OK(CheckResult(bound, *result, batch.num_rows()));
  return result;
}

arrow::Status Execution::CheckResult(const BoundUdf& bound,
                                     const std::shared_ptr<arrow::Array>& result,
                                     int64_t rows) const {
  if (result == nullptr) {
    return WorkerError("UDF '" + bound.name + "' returned no array", bound.name);
  }
  if (result->length() != rows) {
    return WorkerError("UDF '" + bound.name + "' returned " + std::to_string(result->length()) +
                           " rows for a batch of " + std::to_string(rows),
                       bound.name);
  }
  if (!result->type()->Equals(*bound.result_type)) {
    return WorkerError("UDF '" + bound.name + "' returned an array of type " +
                           result->type()->ToString() + ", but it was registered to return " +
                           bound.result_type->ToString(),
                       bound.name);
  }
  if (auto valid = result->Validate(); !valid.ok()) {
    return WorkerError("UDF '" + bound.name + "' returned an invalid array: " + valid.message(),
                       bound.name);
  }
  return arrow::Status::OK();
}

void Execution::Close() {
  for (BoundUdf& bound : udfs_) {
    if (!bound.set_up) continue;
    bound.set_up = false;
    if (!bound.udf->teardown) continue;
    arrow::Status status = Guarded(bound.name, [&] { return bound.udf->teardown(); });
    if (!status.ok()) {
      Log(LogLevel::kWarning,
          "the teardown of UDF '" + bound.name + "' failed: " + status.ToString());
    }
  }
}

v1::Metrics Execution::metrics() const {
  v1::Metrics metrics;
  metrics.set_batches(counters_.batches);
  metrics.set_rows_in(counters_.rows_in);
  metrics.set_rows_out(counters_.rows_out);
  metrics.set_udf_nanos(counters_.udf_nanos);
  metrics.set_codec_nanos(counters_.codec_nanos);
  metrics.set_peak_rss_bytes(PeakRssBytes());
  for (const auto& [name, grown] : CountersSince(user_counters_before_)) {
    (*metrics.mutable_counters())[name] = grown;
  }
  return metrics;
}

}  // namespace quiver::sdk
