#include "quiver/conformance/spark_probe.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <thread>
#include <utility>

#include <arrow/array/builder_binary.h>
#include <arrow/array/builder_primitive.h>
#include <arrow/type.h>

#include "quiver/conformance/scenario.h"
#include "quiver/io/loopback_port.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/transport/spark/spark_data.h"

namespace quiver::conformance {
namespace {

using transport::spark::ExecuteCall;

constexpr std::chrono::milliseconds kProbePause{20};
// Least time a worker has to answer its first heartbeat.
constexpr std::chrono::milliseconds kStartTimeout{30000};

std::string ErrorKind(const spark_proto::ExecutionError& error) {
  switch (error.kind_case()) {
    case spark_proto::ExecutionError::kUser:
      return "user";
    case spark_proto::ExecutionError::kWorker:
      return "worker";
    case spark_proto::ExecutionError::kProtocol:
      return "protocol";
    default:
      return "none";
  }
}

std::string ErrorText(const spark_proto::ExecutionError& error) {
  if (error.has_user()) return error.user().message();
  if (error.has_worker()) return error.worker().message();
  return error.protocol().message();
}

std::string Describe(const spark_proto::UdfResponse& response) {
  if (response.has_data()) return "DataResponse";
  const auto& control = response.control();
  if (control.has_init()) {
    return control.init().has_error() ? "InitResponse{error " + ErrorKind(control.init().error()) +
                                            ": " + ErrorText(control.init().error()) + "}"
                                      : "InitResponse";
  }
  if (control.has_error()) {
    return "ErrorResponse{" + ErrorKind(control.error().error()) + ": " +
           ErrorText(control.error().error()) + "}";
  }
  if (control.has_finish()) return "FinishResponse";
  if (control.has_cancel()) return "CancelResponse";
  return "an empty UdfResponse";
}

std::shared_ptr<arrow::Schema> SchemaOf(
    const std::vector<std::shared_ptr<arrow::DataType>>& types) {
  arrow::FieldVector fields;
  for (size_t i = 0; i < types.size(); ++i) {
    fields.push_back(arrow::field("a" + std::to_string(i), types[i]));
  }
  return arrow::schema(std::move(fields));
}

}  // namespace

arrow::Result<std::unique_ptr<SparkProbe>> SparkProbe::Start(const SparkKitOptions& options,
                                                             const std::string& transport,
                                                             const std::string& directory,
                                                             int worker_number) {
  std::string connection;
  if (transport == "tcp") {
    ARROW_ASSIGN_OR_RAISE(int port, io::FreeLoopbackPort());
    connection = std::to_string(port);
  } else {
    connection = directory + "/worker-" + std::to_string(worker_number) + ".sock";
  }
  std::vector<std::string> argv = options.command;
  argv.insert(argv.end(),
              {"--id", "kit-" + std::to_string(worker_number), "--connection", connection});
  ARROW_ASSIGN_OR_RAISE(auto process, worker::ChildProcess::Spawn(argv, {}, 64 * 1024));
  auto channel = transport::spark::MakeSparkChannel(transport::spark::SparkAddress(connection),
                                                    /*probe=*/true);
  // A worker's start (an interpreter's imports) may take longer than one answer.
  const auto deadline = std::chrono::steady_clock::now() + std::max(options.timeout, kStartTimeout);
  std::string last = "it did not answer";
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto status = process->TryWait()) {
      return Violation("§1",
                       "the worker " + status->ToString() + " before it answered a heartbeat");
    }
    auto pid = transport::spark::PingSparkWorker(channel.get(), std::chrono::milliseconds(500));
    if (pid.ok()) {
      if (*pid != process->pid()) {
        return Violation("§1", "metrics[\"pid\"] is " + std::to_string(*pid) +
                                   ", not the pid of the started worker, " +
                                   std::to_string(process->pid()));
      }
      return std::unique_ptr<SparkProbe>(new SparkProbe(
          options, std::move(process),
          transport::spark::MakeSparkChannel(transport::spark::SparkAddress(connection))));
    }
    last = pid.status().message();
    if (last.find("gRPC status") == std::string::npos) return Violation("§1", last);
    std::this_thread::sleep_for(kProbePause);
  }
  return Violation("§1", "the worker did not answer Manage(Heartbeat) on " + connection +
                             " within the timeout (" + last + ")");
}

SparkProbe::SparkProbe(SparkKitOptions options, std::unique_ptr<worker::ChildProcess> process,
                       std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)), process_(std::move(process)), channel_(std::move(channel)) {}

SparkProbe::~SparkProbe() {
  if (!process_->TryWait()) process_->Terminate(std::chrono::milliseconds(2000));
}

std::unique_ptr<ExecuteCall> SparkProbe::Open() {
  return std::make_unique<ExecuteCall>(channel_.get(), options_.timeout);
}

arrow::Result<spark_proto::UdfRequest> SparkProbe::Init(
    const std::string& function, const std::vector<std::shared_ptr<arrow::DataType>>& arguments,
    const std::shared_ptr<arrow::DataType>& returns) const {
  spark_proto::UdfRequest request;
  spark_proto::Init* init = request.mutable_control()->mutable_init();
  init->set_protocol_version(1);
  init->set_data_format(spark_proto::ARROW);
  ARROW_ASSIGN_OR_RAISE(*init->mutable_input_schema(),
                        protocol::SerializeSchema(*SchemaOf(arguments)));
  if (returns != nullptr) {
    ARROW_ASSIGN_OR_RAISE(*init->mutable_output_schema(),
                          protocol::SerializeSchema(arrow::Schema({arrow::field("r", returns)})));
  }
  spark_proto::UdfPayload* udf = init->mutable_udf();
  udf->set_format(options_.payload_format);
  udf->set_payload(options_.payload_format == "python/ref" ? options_.python_module + ":" + function
                                                           : function);
  udf->set_name("r");
  init->set_timezone("UTC");
  return request;
}

arrow::Status SparkProbe::Send(ExecuteCall& call, const spark_proto::UdfRequest& request) {
  if (!call.Write(request)) {
    return Violation("§4", "the worker closed the Execute stream while the kit was sending");
  }
  return arrow::Status::OK();
}

arrow::Status SparkProbe::SendBatch(ExecuteCall& call, const arrow::RecordBatch& batch) {
  ARROW_ASSIGN_OR_RAISE(auto bytes, transport::spark::EncodeDataRequest(batch));
  if (!call.Write(bytes)) {
    return Violation("§3", "the worker closed the Execute stream while the kit sent a batch");
  }
  return arrow::Status::OK();
}

arrow::Status SparkProbe::SendControl(ExecuteCall& call, const std::string& which) {
  spark_proto::UdfRequest request;
  if (which == "finish") {
    request.mutable_control()->mutable_finish();
  } else {
    request.mutable_control()->mutable_cancel()->set_reason("the kit cancels");
  }
  return Send(call, request);
}

arrow::Result<spark_proto::UdfResponse> SparkProbe::Next(ExecuteCall& call,
                                                         const std::string& waiting_for) {
  auto read = call.Read();
  if (!read.ok()) return Violation("§4", "the worker sent " + read.status().message());
  if (!read->has_value()) {
    const grpc::Status status = call.Finish();
    return Violation("§4", "the Execute stream ended (gRPC status " +
                               std::to_string(static_cast<int>(status.error_code())) + " " +
                               status.error_message() + ") while the kit waited for " +
                               waiting_for);
  }
  return std::move(**read);
}

arrow::Status SparkProbe::ExpectInitOk(ExecuteCall& call, const std::string& name) {
  ARROW_ASSIGN_OR_RAISE(auto response, Next(call, "InitResponse"));
  if (!response.control().has_init() || response.control().init().has_error()) {
    return Violation("§2", "expected InitResponse without error, got " + Describe(response));
  }
  auto schema = protocol::DeserializeSchema(response.control().init().data());
  if (!schema.ok() || (*schema)->num_fields() != 1 || (*schema)->field(0)->name() != name) {
    return Violation("§2", "InitResponse.data is not a schema of one field named '" + name + "'");
  }
  return arrow::Status::OK();
}

arrow::Status SparkProbe::ExpectInitError(ExecuteCall& call, const std::string& kind,
                                          const std::string& section) {
  ARROW_ASSIGN_OR_RAISE(auto response, Next(call, "InitResponse with an error"));
  if (!response.control().has_init() || !response.control().init().has_error() ||
      ErrorKind(response.control().init().error()) != kind) {
    return Violation(section,
                     "expected InitResponse{error " + kind + "}, got " + Describe(response));
  }
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> SparkProbe::ExpectData(ExecuteCall& call,
                                                                          int64_t rows) {
  ARROW_ASSIGN_OR_RAISE(auto response, Next(call, "DataResponse"));
  if (!response.has_data()) {
    return Violation("§3", "expected DataResponse, got " + Describe(response));
  }
  auto batch =
      transport::spark::DecodeDataResponse(std::move(*response.mutable_data()->mutable_data()));
  if (!batch.ok()) {
    return Violation("§3", "DataResponse.data is not one Arrow IPC stream of one batch: " +
                               batch.status().message());
  }
  if ((*batch)->num_rows() != rows) {
    return Violation("§3", "a DataResponse of " + std::to_string((*batch)->num_rows()) +
                               " rows answered a batch of " + std::to_string(rows));
  }
  return *batch;
}

arrow::Status SparkProbe::ExpectError(ExecuteCall& call, const std::string& kind,
                                      const std::string& section) {
  ARROW_ASSIGN_OR_RAISE(auto response, Next(call, "ErrorResponse"));
  if (!response.control().has_error() || ErrorKind(response.control().error().error()) != kind) {
    return Violation(section, "expected ErrorResponse{" + kind + "}, got " + Describe(response));
  }
  return arrow::Status::OK();
}

arrow::Result<spark_proto::UdfControlResponse> SparkProbe::ExpectTerminator(
    ExecuteCall& call, bool skip_data, const std::string& section) {
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto response, Next(call, "FinishResponse or CancelResponse"));
    if (response.has_data() && skip_data) continue;
    if (!response.control().has_finish() && !response.control().has_cancel()) {
      return Violation(section,
                       "expected FinishResponse or CancelResponse, got " + Describe(response));
    }
    call.WritesDone();
    grpc::ByteBuffer extra;
    if (call.ReadRaw(&extra)) {
      return Violation(section, "the worker sent a message after " + Describe(response));
    }
    (void)call.Finish();
    return response.control();
  }
}

arrow::Status SparkProbe::CancelAndExpectCancelResponse(ExecuteCall& call,
                                                        const std::string& section) {
  ARROW_RETURN_NOT_OK(SendControl(call, "cancel"));
  ARROW_ASSIGN_OR_RAISE(auto terminator, ExpectTerminator(call, /*skip_data=*/true, section));
  if (!terminator.has_cancel()) {
    return Violation(section, "Cancel was answered with FinishResponse, not CancelResponse");
  }
  return arrow::Status::OK();
}

arrow::Result<std::map<std::string, std::string>> SparkProbe::Heartbeat() {
  spark_proto::WorkerRequest request;
  request.mutable_heartbeat();
  auto reply = transport::spark::CallSparkManage(channel_.get(), request, options_.timeout);
  if (reply.code != grpc::StatusCode::OK || !reply.response.has_heartbeat()) {
    return Violation("§5", "Manage(Heartbeat) was not answered with HeartbeatResponse (gRPC " +
                               std::to_string(static_cast<int>(reply.code)) + " " + reply.message +
                               ")");
  }
  const auto& metrics = reply.response.heartbeat().metrics();
  return std::map<std::string, std::string>(metrics.begin(), metrics.end());
}

arrow::Result<bool> SparkProbe::Shutdown(bool cancel_sessions) {
  spark_proto::WorkerRequest request;
  request.mutable_shutdown()->set_cancel_sessions(cancel_sessions);
  auto reply = transport::spark::CallSparkManage(channel_.get(), request, options_.timeout);
  if (reply.code != grpc::StatusCode::OK || !reply.response.has_shutdown()) {
    return Violation("§5", "ShutdownRequest was not answered with ShutdownResponse (gRPC " +
                               std::to_string(static_cast<int>(reply.code)) + " " + reply.message +
                               ")");
  }
  return reply.response.shutdown().sessions_settled();
}

std::shared_ptr<arrow::RecordBatch> Int64Batch(int64_t rows) {
  arrow::Int64Builder builder;
  for (int64_t i = 0; i < rows; ++i) (void)builder.Append(i);
  std::shared_ptr<arrow::Array> values = builder.Finish().ValueOrDie();
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("a0", arrow::int64())}), rows,
                                  {values});
}

std::shared_ptr<arrow::RecordBatch> StringBatch(int64_t rows) {
  arrow::StringBuilder builder;
  for (int64_t i = 0; i < rows; ++i) (void)builder.Append("a" + std::to_string(i));
  std::shared_ptr<arrow::Array> values = builder.Finish().ValueOrDie();
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("a0", arrow::utf8())}), rows,
                                  {values});
}

}  // namespace quiver::conformance
