#include "quiver/sdk/spark_session.h"

#include <zlib.h>

#include <chrono>
#include <utility>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/version.h"
#include "quiver/sdk/errors.h"
#include "quiver/sdk/log.h"

namespace quiver::sdk {
namespace {

constexpr char kScalarArrow[] = "SCALAR_ARROW";

uint64_t NanosSince(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
}

sparkpb::UdfControlResponse InitFailure(const arrow::Status& failure) {
  sparkpb::UdfControlResponse answer;
  *answer.mutable_init()->mutable_error() = SparkErrorOf(failure);
  return answer;
}

// payload_size and payload_crc32, when set, must match the assembled payload.
arrow::Status CheckPayload(const sparkpb::UdfPayload& udf, const std::string& payload) {
  if (udf.has_payload_size() && udf.payload_size() != static_cast<int64_t>(payload.size())) {
    return ProtocolError("UdfPayload.payload_size is " + std::to_string(udf.payload_size()) +
                         ", but the assembled payload has " + std::to_string(payload.size()) +
                         " bytes");
  }
  if (udf.has_payload_crc32()) {
    const auto crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(payload.data()),
                                                 static_cast<uInt>(payload.size())));
    if (crc != udf.payload_crc32()) {
      return ProtocolError("UdfPayload.payload_crc32 is " + std::to_string(udf.payload_crc32()) +
                           ", but the assembled payload's CRC-32 is " + std::to_string(crc));
    }
  }
  return arrow::Status::OK();
}

// Init.parameters, when set, must be a UTF-8 JSON object (its keys are for class
// UDFs, which this SDK does not have).
arrow::Status CheckParameters(const sparkpb::Init& init) {
  if (!init.has_parameters()) return arrow::Status::OK();
  google::protobuf::Value value;
  auto parsed = google::protobuf::util::JsonStringToMessage(init.parameters(), &value);
  if (!parsed.ok()) {
    return ProtocolError("Init.parameters is not UTF-8 JSON: " + std::string(parsed.message()));
  }
  if (value.kind_case() != google::protobuf::Value::kStructValue) {
    return ProtocolError("Init.parameters must be a JSON object");
  }
  return arrow::Status::OK();
}

}  // namespace

void SparkTotals::Add(const Counters& delta) {
  for (size_t i = 0; i < kKeys.size(); ++i) values_[i] += delta[i];
}

std::map<std::string, std::string> SparkTotals::ToMetrics() const {
  std::map<std::string, std::string> metrics;
  for (size_t i = 0; i < kKeys.size(); ++i) metrics[kKeys[i]] = std::to_string(values_[i].load());
  return metrics;
}

sparkpb::ExecutionError SparkErrorOf(const arrow::Status& failure) {
  const v1::Error error = ErrorOf(failure);
  sparkpb::ExecutionError spark;
  switch (error.kind_case()) {
    case v1::Error::kUserError: {
      auto* user = spark.mutable_user();
      user->set_message(error.user_error().message());
      user->set_error_class(error.user_error().error_class());
      if (!error.user_error().traceback().empty()) {
        user->set_traceback(error.user_error().traceback());
      }
      break;
    }
    case v1::Error::kProtocolError:
      spark.mutable_protocol()->set_message(error.protocol_error().message());
      break;
    default:
      spark.mutable_worker()->set_message(error.has_worker_error() ? error.worker_error().message()
                                                                   : failure.message());
      break;
  }
  return spark;
}

arrow::Result<v1::Init> TranslateSparkInit(const sparkpb::Init& init, const std::string& payload) {
  const uint32_t version =
      init.has_protocol_version() ? init.protocol_version() : kSparkProtocolVersion;
  if (version != kSparkProtocolVersion) {
    return ProtocolError("Init has protocol_version " + std::to_string(version) +
                         "; this worker speaks version " + std::to_string(kSparkProtocolVersion));
  }
  if (init.data_format() != sparkpb::ARROW) {
    return ProtocolError("Init has data_format " + std::to_string(init.data_format()) +
                         "; this worker reads and writes ARROW (1) only");
  }
  if (!init.has_udf()) return ProtocolError("Init carries no udf (UdfPayload)");
  const sparkpb::UdfPayload& udf = init.udf();
  ARROW_RETURN_NOT_OK(CheckPayload(udf, payload));
  const std::string name = udf.has_name() && !udf.name().empty() ? udf.name() : payload;
  if (udf.format() != kSymbolPayloadFormat) {
    return WorkerError("UDF '" + name + "' has payload format '" + udf.format() +
                           "'; this worker accepts '" + kSymbolPayloadFormat +
                           "' (the name of a registered function)",
                       name);
  }
  if (udf.has_eval_type() && udf.eval_type() != kScalarArrow) {
    return WorkerError("UDF '" + name + "' has eval_type '" + udf.eval_type() +
                           "'; this worker runs '" + kScalarArrow + "' only",
                       name);
  }
  if (!init.has_input_schema() || init.input_schema().empty()) {
    return ProtocolError(
        "Init has no input_schema; this worker needs the Arrow IPC schema of the batches");
  }
  auto schema = protocol::DeserializeSchema(init.input_schema());
  if (!schema.ok()) {
    return ProtocolError("Init.input_schema is not an Arrow IPC schema message: " +
                         schema.status().message());
  }
  ARROW_RETURN_NOT_OK(CheckParameters(init));
  v1::Init translated;
  translated.set_protocol_version(protocol::kProtocolVersion);
  translated.set_data_format(v1::ARROW_IPC_STREAM);
  translated.set_input_schema(init.input_schema());
  translated.mutable_configuration()->insert(init.session_conf().begin(),
                                             init.session_conf().end());
  translated.set_session_time_zone(init.timezone());
  v1::UdfDefinition* definition = translated.add_udfs();
  definition->set_name(name);
  definition->set_payload_format(kSymbolPayloadFormat);
  definition->set_payload(payload);
  definition->set_eval_type(v1::SCALAR_ARROW);
  for (int i = 0; i < (*schema)->num_fields(); ++i) definition->add_argument_offsets(i);
  if (init.has_output_schema()) definition->set_return_type(init.output_schema());
  return translated;
}

SparkSession::SparkSession(const Registry* registry, SparkSink* sink, SparkTotals* totals)
    : registry_(registry), sink_(sink), totals_(totals) {}

SparkSession::~SparkSession() {
  if (execution_) execution_->Close();
}

arrow::Status SparkSession::OnControl(const sparkpb::UdfControlRequest& control) {
  switch (control.control_case()) {
    case sparkpb::UdfControlRequest::kInit:
      return OnInit(control.init());
    case sparkpb::UdfControlRequest::kPayload:
      return OnChunk(control.payload());
    case sparkpb::UdfControlRequest::kFinish:
      return OnFinish();
    case sparkpb::UdfControlRequest::kCancel:
      return Terminate();
    case sparkpb::UdfControlRequest::CONTROL_NOT_SET:
      break;
  }
  return Violation("a UdfControlRequest holds no message");
}

arrow::Status SparkSession::OnInit(const sparkpb::Init& init) {
  if (stage_ == SparkStage::kChunking) {
    return Violation("a second Init while the payload's chunks arrive");
  }
  if (stage_ != SparkStage::kAwaitingInit) return Violation("a second Init on the stream");
  if (!init.task_context().empty()) {
    std::string context;
    for (const auto& [key, value] : init.task_context()) context += " " + key + "=" + value;
    Log(LogLevel::kDebug, "Init task_context:" + context);
  }
  if (init.has_is_chunking_payload() && init.is_chunking_payload()) {
    pending_init_ = init;
    pending_payload_ = init.udf().payload();
    stage_ = SparkStage::kChunking;
    return arrow::Status::OK();
  }
  return Load(init, init.udf().payload());
}

arrow::Status SparkSession::OnChunk(const sparkpb::PayloadChunk& chunk) {
  if (stage_ == SparkStage::kAwaitingInit) {
    return Violation("a PayloadChunk before Init (chunks follow an Init with is_chunking_payload)");
  }
  if (stage_ != SparkStage::kChunking) return Violation("a PayloadChunk after InitResponse");
  pending_payload_ += chunk.data();
  if (!chunk.has_last() || !chunk.last()) return arrow::Status::OK();
  const sparkpb::Init init = *std::move(pending_init_);
  pending_init_.reset();
  return Load(init, std::exchange(pending_payload_, {}));
}

arrow::Status SparkSession::Load(const sparkpb::Init& init, const std::string& payload) {
  auto translated = TranslateSparkInit(init, payload);
  if (!translated.ok()) return FailInit(translated.status());
  input_schema_ = arrow::Buffer::FromString(translated->input_schema());
  execution_ = std::make_unique<Execution>(registry_, *std::move(translated));
  auto result_schema = execution_->Load();
  if (!result_schema.ok()) return FailInit(result_schema.status());
  stage_ = SparkStage::kRunning;
  sparkpb::UdfControlResponse answer;
  answer.mutable_init()->set_data(*std::move(result_schema));
  return sink_->SendControl(answer);
}

arrow::Status SparkSession::OnData(const std::vector<std::shared_ptr<arrow::Buffer>>& data,
                                   uint64_t size) {
  switch (stage_) {
    case SparkStage::kRunning:
      break;
    case SparkStage::kFailed:
      return arrow::Status::OK();  // after an error, batches are not answered
    case SparkStage::kAwaitingInit:
    case SparkStage::kChunking:
      return Violation("a DataRequest before InitResponse");
    case SparkStage::kFinishing:
    case SparkStage::kDone:
      return Violation("a DataRequest after Finish");
  }
  batches_in_ += 1;
  bytes_in_ += size;
  // A Cancel follows: the engine discards this batch's answer anyway.
  arrow::Status outcome = sink_->CancelAhead() ? arrow::Status::OK() : Run(data);
  Publish();
  return outcome;
}

arrow::Status SparkSession::Run(const std::vector<std::shared_ptr<arrow::Buffer>>& data) {
  const auto started = std::chrono::steady_clock::now();
  auto batches = DecodeSparkBatches(data, input_schema_);
  execution_->AddCodecNanos(NanosSince(started));
  if (!batches.ok()) return Fail(ProtocolError(batches.status().message()));
  for (const auto& batch : *batches) {
    if (auto checked = execution_->CheckBatch(*batch); !checked.ok()) return Fail(checked);
    auto result = execution_->RunDecoded(*batch);
    if (!result.ok()) return Fail(result.status());
    const auto encoding = std::chrono::steady_clock::now();
    ARROW_ASSIGN_OR_RAISE(const uint64_t sent, sink_->SendData(**result));
    execution_->AddCodecNanos(NanosSince(encoding));
    batches_out_ += 1;
    bytes_out_ += sent;
  }
  return arrow::Status::OK();
}

arrow::Status SparkSession::OnFinish() {
  const bool first = !finish_seen_;
  finish_seen_ = true;
  switch (stage_) {
    case SparkStage::kRunning: {
      if (sink_->CancelAhead()) {
        stage_ = SparkStage::kFinishing;  // CancelResponse will end the stream
        return arrow::Status::OK();
      }
      stage_ = SparkStage::kDone;
      if (execution_) execution_->Close();
      Publish();
      sparkpb::UdfControlResponse answer;
      auto* metrics = answer.mutable_finish()->mutable_metrics();
      for (const auto& [key, value] : Metrics()) (*metrics)[key] = value;
      return sink_->SendControl(answer);
    }
    case SparkStage::kFailed:
      return arrow::Status::OK();  // the engine still sends Cancel: Cancel-after-Finish
    case SparkStage::kAwaitingInit:
    case SparkStage::kChunking:
      return Violation("Finish before InitResponse");
    case SparkStage::kFinishing:
    case SparkStage::kDone:
      break;
  }
  return first ? arrow::Status::OK() : Violation("a second Finish");
}

arrow::Status SparkSession::RequestsEnded() {
  if (stage_ == SparkStage::kDone) return arrow::Status::OK();
  if (!finish_seen_ && !terminator_error_) {
    terminator_error_ = ProtocolError("the request stream ended without Finish or Cancel");
  }
  return Terminate();
}

arrow::Status SparkSession::Stop(const std::string& reason) {
  const arrow::Status failure = WorkerError(reason);
  switch (stage_) {
    case SparkStage::kDone:
      return arrow::Status::OK();
    case SparkStage::kFailed:
      break;
    case SparkStage::kAwaitingInit:
    case SparkStage::kChunking:
      terminator_error_ = failure;  // an ErrorResponse belongs to the data phase
      break;
    case SparkStage::kRunning:
    case SparkStage::kFinishing: {
      sparkpb::UdfControlResponse answer;
      *answer.mutable_error()->mutable_error() = SparkErrorOf(failure);
      ARROW_RETURN_NOT_OK(sink_->SendControl(answer));
      break;
    }
  }
  return Terminate();
}

arrow::Status SparkSession::Violation(const std::string& message) {
  const arrow::Status failure = ProtocolError(message);
  switch (stage_) {
    case SparkStage::kAwaitingInit:
    case SparkStage::kChunking:
      return FailInit(failure);
    case SparkStage::kRunning:
      return Fail(failure);
    case SparkStage::kFinishing:
      if (!terminator_error_) terminator_error_ = failure;
      return arrow::Status::OK();
    case SparkStage::kFailed:
    case SparkStage::kDone:
      break;
  }
  Log(LogLevel::kInfo, "ignoring (the stream already failed or ended): " + message);
  return arrow::Status::OK();
}

arrow::Status SparkSession::Terminate() {
  if (stage_ == SparkStage::kDone) {
    return arrow::Status::OK();  // a Cancel after FinishResponse arrives too late: ignored
  }
  stage_ = SparkStage::kDone;
  if (execution_) execution_->Close();
  Publish();
  sparkpb::UdfControlResponse answer;
  sparkpb::CancelResponse* cancel = answer.mutable_cancel();
  for (const auto& [key, value] : Metrics()) (*cancel->mutable_metrics())[key] = value;
  if (terminator_error_) *cancel->mutable_error() = SparkErrorOf(*terminator_error_);
  return sink_->SendControl(answer);
}

arrow::Status SparkSession::FailInit(const arrow::Status& failure) {
  Log(LogLevel::kWarning, failure.message());
  stage_ = SparkStage::kFailed;
  pending_init_.reset();
  return sink_->SendControl(InitFailure(failure));
}

arrow::Status SparkSession::Fail(const arrow::Status& failure) {
  Log(LogLevel::kWarning, failure.message());
  stage_ = SparkStage::kFailed;
  sparkpb::UdfControlResponse answer;
  *answer.mutable_error()->mutable_error() = SparkErrorOf(failure);
  return sink_->SendControl(answer);
}

SparkTotals::Counters SparkSession::Counters() const {
  const v1::Metrics run = execution_ ? execution_->metrics() : v1::Metrics();
  return {run.rows_in(), run.rows_out(), batches_in_,     batches_out_,
          bytes_in_,     bytes_out_,     run.udf_nanos(), run.codec_nanos()};
}

void SparkSession::Publish() {
  const SparkTotals::Counters now = Counters();
  SparkTotals::Counters delta{};
  for (size_t i = 0; i < now.size(); ++i) delta[i] = now[i] - published_[i];
  totals_->Add(delta);
  published_ = now;
}

std::map<std::string, std::string> SparkSession::Metrics() const {
  std::map<std::string, std::string> metrics;
  const SparkTotals::Counters counters = Counters();
  for (size_t i = 0; i < counters.size(); ++i) {
    metrics[SparkTotals::kKeys[i]] = std::to_string(counters[i]);
  }
  metrics["peak_rss_bytes"] = std::to_string(PeakRssBytes());
  // The UDFs' own counters, one `counter.NAME` key each (docs/spark-protocol.md, "Metrics").
  if (execution_) {
    const v1::Metrics run = execution_->metrics();
    for (const auto& [name, grown] : run.counters()) {
      metrics["counter." + name] = std::to_string(grown);
    }
  }
  return metrics;
}

}  // namespace quiver::sdk
