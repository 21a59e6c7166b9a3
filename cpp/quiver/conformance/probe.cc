#include "quiver/conformance/probe.h"

#include <utility>

#include <arrow/array/array_base.h>
#include <arrow/type.h>
#include <google/protobuf/descriptor.h>

#include "quiver/conformance/kit_data.h"
#include "quiver/conformance/scenario.h"
#include "quiver/io/deadline.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/version.h"

namespace quiver::conformance {
namespace {

std::string CaseName(const v1::WorkerMessage& message) {
  if (message.kind_case() == v1::WorkerMessage::KIND_NOT_SET) return "an empty WorkerMessage";
  const auto* field = message.GetDescriptor()->FindFieldByNumber(message.kind_case());
  return field == nullptr ? "an unknown message" : field->message_type()->name();
}

std::string CaseName(v1::WorkerMessage::KindCase kind) {
  const auto* field = v1::WorkerMessage::descriptor()->FindFieldByNumber(kind);
  return field == nullptr ? "?" : field->message_type()->name();
}

std::string Shorten(std::string text) {
  constexpr size_t kMost = 300;
  if (text.size() > kMost) text = text.substr(0, kMost) + "...";
  return text;
}

std::string DescribeError(const v1::Error& error) {
  std::string kind = error.has_user_error()       ? "UserError"
                     : error.has_worker_error()   ? "WorkerError"
                     : error.has_protocol_error() ? "ProtocolError"
                                                  : "no kind";
  std::string message = error.has_user_error()       ? error.user_error().message()
                        : error.has_worker_error()   ? error.worker_error().message()
                        : error.has_protocol_error() ? error.protocol_error().message()
                                                     : "";
  return "Error{" + kind + ": " + Shorten(message) + "}";
}

}  // namespace

std::string DescribeReply(const transport::WorkerReply& reply) {
  if (!reply.control) {
    return "Data{sequence " + std::to_string(reply.sequence) + ", " +
           std::to_string(reply.batch ? reply.batch->num_rows() : 0) + " rows}";
  }
  if (reply.control->has_error()) return DescribeError(reply.control->error());
  return CaseName(*reply.control) + "{" + Shorten(reply.control->ShortDebugString()) + "}";
}

BackgroundSender::BackgroundSender(Probe& probe,
                                   std::vector<std::shared_ptr<arrow::RecordBatch>> batches,
                                   uint64_t first_sequence, uint64_t stride) {
  thread_ = std::thread([this, &probe, batches = std::move(batches), first_sequence, stride] {
    for (size_t i = 0; i < batches.size() && !cancel_; ++i) {
      status_ = probe.SendData(first_sequence + i * stride, *batches[i]);
      if (!status_.ok()) return;
    }
    if (cancel_) status_ = probe.SendCancel();
  });
}

BackgroundSender::~BackgroundSender() {
  cancel_ = true;
  (void)Join();
}

arrow::Status BackgroundSender::Join() {
  if (thread_.joinable()) thread_.join();
  return status_;
}

Probe::Probe(worker::WorkerDispatcher* dispatcher, std::string transport, ProbeOptions options)
    : dispatcher_(dispatcher), transport_(std::move(transport)), options_(std::move(options)) {}

Probe::~Probe() { Retire(); }

arrow::Status Probe::EnsureWorker() {
  if (worker_ != nullptr && !worker_->broken() && worker_->running()) return arrow::Status::OK();
  Retire();
  ARROW_ASSIGN_OR_RAISE(worker_, dispatcher_->Acquire());
  started_ = FindStartedWorker(worker_->pid());
  if (started_ == nullptr) {
    return arrow::Status::UnknownError("the kit has no record of how ", worker_->Describe(),
                                       " started");
  }
  return arrow::Status::OK();
}

void Probe::Retire() {
  if (worker_ == nullptr) return;
  const pid_t pid = worker_->pid();
  worker_->MarkBroken();
  dispatcher_->Release(std::move(worker_));
  ForgetStartedWorker(pid);
  started_ = nullptr;
}

arrow::Result<v1::Init> Probe::MakeInit(const arrow::Schema& input_schema,
                                        const std::vector<KitCall>& calls) const {
  v1::Init init;
  init.set_protocol_version(protocol::kProtocolVersion);
  init.set_data_format(v1::ARROW_IPC_STREAM);
  ARROW_ASSIGN_OR_RAISE(*init.mutable_input_schema(), protocol::SerializeSchema(input_schema));
  init.set_session_time_zone("UTC");
  for (const auto& call : calls) {
    auto* udf = init.add_udfs();
    udf->set_name(call.name);
    udf->set_payload_format(options_.payload_format);
    udf->set_payload(options_.payload_format == "python/ref"
                         ? options_.python_module + ":" + call.function
                         : call.function);
    for (int argument : call.arguments) udf->add_argument_offsets(argument);
    if (call.return_type != nullptr) {
      ARROW_ASSIGN_OR_RAISE(
          *udf->mutable_return_type(),
          protocol::SerializeSchema(*arrow::schema({arrow::field(call.name, call.return_type)})));
    }
  }
  return init;
}

arrow::Status Probe::Send(const v1::EngineMessage& message) {
  return connection().SendControl(message, io::DeadlineIn(options_.timeout));
}

arrow::Status Probe::SendInit(const v1::Init& init) {
  v1::EngineMessage message;
  *message.mutable_init() = init;
  return Send(message);
}

arrow::Status Probe::SendData(uint64_t sequence, const arrow::RecordBatch& batch) {
  return connection().SendBatch(sequence, batch, io::DeadlineIn(options_.timeout));
}

arrow::Status Probe::SendFinish() {
  v1::EngineMessage message;
  message.mutable_finish();
  return Send(message);
}

arrow::Status Probe::SendCancel() {
  v1::EngineMessage message;
  message.mutable_cancel()->set_reason("conformance kit");
  return Send(message);
}

arrow::Status Probe::SendHeartbeat(uint64_t nonce) {
  v1::EngineMessage message;
  message.mutable_heartbeat()->set_nonce(nonce);
  return Send(message);
}

arrow::Status Probe::SendShutdown(bool cancel_running) {
  v1::EngineMessage message;
  message.mutable_shutdown()->set_cancel_running(cancel_running);
  return Send(message);
}

arrow::Result<transport::WorkerReply> Probe::Next() {
  return connection().Receive(io::DeadlineIn(options_.timeout));
}

arrow::Result<v1::WorkerMessage> Probe::Expect(v1::WorkerMessage::KindCase expected,
                                               const std::string& section,
                                               const std::string& context, bool skip_data) {
  while (true) {
    auto reply = Next();
    if (!reply.ok()) {
      return Violation(section, context + ": expected " + CaseName(expected) +
                                    ", but the connection failed: " + reply.status().message());
    }
    if (!reply->control && skip_data) continue;
    if (reply->control && reply->control->kind_case() == expected) return *reply->control;
    return Violation(
        section, context + ": expected " + CaseName(expected) + ", got " + DescribeReply(*reply));
  }
}

arrow::Result<v1::Error> Probe::ExpectError(v1::Error::KindCase kind, const std::string& section,
                                            const std::string& context) {
  ARROW_ASSIGN_OR_RAISE(auto message, Expect(v1::WorkerMessage::kError, section, context));
  if (message.error().kind_case() != kind) {
    const auto* field = v1::Error::descriptor()->FindFieldByNumber(kind);
    return Violation(section, context + ": expected an Error of kind " +
                                  (field ? field->message_type()->name() : "?") + ", got " +
                                  DescribeError(message.error()));
  }
  return message.error();
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> Probe::ExpectData(uint64_t sequence,
                                                                     int64_t rows,
                                                                     const arrow::Schema& schema,
                                                                     const std::string& context) {
  auto reply = Next();
  const std::string what = context + ", batch " + std::to_string(sequence);
  if (!reply.ok()) {
    return Violation("§2", what + ": expected its result, but the connection failed: " +
                               reply.status().message());
  }
  if (reply->control) {
    return Violation("§2", what + ": expected its result Data, got " + DescribeReply(*reply));
  }
  if (reply->sequence != sequence) {
    return Violation("§2", what + ": the result carries sequence " +
                               std::to_string(reply->sequence) +
                               " (results keep the request's sequence, in order)");
  }
  const auto& batch = *reply->batch;
  if (batch.num_rows() != rows) {
    return Violation("§2", what + ": " + std::to_string(rows) + " rows in, " +
                               std::to_string(batch.num_rows()) + " rows out");
  }
  if (!batch.schema()->Equals(schema, /*check_metadata=*/false)) {
    return Violation("§2", what + ": the result's schema " + batch.schema()->ToString() +
                               " is not InitResponse.result_schema " + schema.ToString());
  }
  arrow::Status valid = batch.ValidateFull();
  if (!valid.ok()) {
    return Violation("§3", what + ": the result is not valid Arrow data: " + valid.message());
  }
  return reply->batch;
}

arrow::Result<std::shared_ptr<arrow::Schema>> Probe::Open(const v1::Init& init,
                                                          const std::string& context) {
  ARROW_RETURN_NOT_OK(SendInit(init));
  ARROW_ASSIGN_OR_RAISE(auto message, Expect(v1::WorkerMessage::kInitResponse, "§2", context));
  auto schema = protocol::DeserializeSchema(message.init_response().result_schema());
  if (!schema.ok()) {
    return Violation("§3, Schema bytes",
                     context +
                         ": InitResponse.result_schema does not parse as an encapsulated "
                         "schema message: " +
                         schema.status().message());
  }
  if ((*schema)->num_fields() != init.udfs_size()) {
    return Violation("§2", context + ": result_schema has " +
                               std::to_string((*schema)->num_fields()) + " fields for " +
                               std::to_string(init.udfs_size()) + " UDFs");
  }
  for (int i = 0; i < init.udfs_size(); ++i) {
    if ((*schema)->field(i)->name() != init.udfs(i).name()) {
      return Violation("§2", context + ": result field " + std::to_string(i) + " is named '" +
                                 (*schema)->field(i)->name() + "', not after its UDF '" +
                                 init.udfs(i).name() + "'");
    }
  }
  return *schema;
}

arrow::Result<v1::Metrics> Probe::Finish(const std::string& context) {
  ARROW_RETURN_NOT_OK(SendFinish());
  ARROW_ASSIGN_OR_RAISE(auto message, Expect(v1::WorkerMessage::kFinishResponse, "§2", context));
  return message.finish_response().metrics();
}

arrow::Result<v1::Metrics> Probe::Cancel(const std::string& context) {
  ARROW_RETURN_NOT_OK(SendCancel());
  ARROW_ASSIGN_OR_RAISE(auto message, Expect(v1::WorkerMessage::kCancelResponse, "§2", context,
                                             /*skip_data=*/true));
  return message.cancel_response().metrics();
}

arrow::Result<std::vector<std::shared_ptr<arrow::RecordBatch>>> Probe::Execute(
    const v1::Init& init, const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches,
    const std::string& context, uint64_t first_sequence, uint64_t stride) {
  ARROW_ASSIGN_OR_RAISE(auto schema, Open(init, context));
  std::vector<std::shared_ptr<arrow::RecordBatch>> results;
  {
    BackgroundSender sender(*this, batches, first_sequence, stride);
    for (size_t i = 0; i < batches.size(); ++i) {
      auto result =
          ExpectData(first_sequence + i * stride, batches[i]->num_rows(), *schema, context);
      if (!result.ok()) {
        // The sender may be blocked on a worker that stopped reading: end the connection.
        connection().Shutdown();
        return result.status();
      }
      results.push_back(std::move(result).ValueUnsafe());
    }
    ARROW_RETURN_NOT_OK(sender.Join());
  }
  ARROW_RETURN_NOT_OK(Finish(context).status());
  return results;
}

arrow::Status Probe::ExpectStillServes(const std::string& after) {
  auto input = Strings(3);
  ARROW_ASSIGN_OR_RAISE(auto init,
                        MakeInit(*input->schema(), {{"identity", "identity", {0}, arrow::utf8()}}));
  auto results = Execute(init, {input}, "an execution " + after);
  if (!results.ok()) {
    return Violation(
        ViolatedSection(results.status()).empty() ? "§2" : ViolatedSection(results.status()),
        "the worker does not serve again " + after + ": " + results.status().message());
  }
  if (!(*results)[0]->column(0)->Equals(*input->column(0))) {
    return Violation("§2", "identity " + after + " returned other values");
  }
  return arrow::Status::OK();
}

arrow::Status Probe::ExpectExit(int code, const std::string& section, const std::string& context) {
  auto status = worker_->process().WaitFor(options_.timeout);
  if (!status) {
    return Violation(section, context + ": the worker did not exit within " +
                                  std::to_string(options_.timeout.count()) + " ms");
  }
  if (status->signaled || status->code != code) {
    return Violation(section, context + ": the worker " + status->ToString() +
                                  ", expected exit status " + std::to_string(code));
  }
  return arrow::Status::OK();
}

}  // namespace quiver::conformance
