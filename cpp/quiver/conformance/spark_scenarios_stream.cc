// Scenarios on Execute streams: docs/spark-protocol.md sections 2-4 and 6.

#include <set>
#include <utility>

#include <arrow/array.h>
#include <arrow/type.h>

#include "quiver/conformance/scenario.h"
#include "quiver/conformance/spark_scenarios.h"

namespace quiver::conformance {
namespace {

using transport::spark::ExecuteCall;

const std::shared_ptr<arrow::DataType>& Int64() {
  static const auto type = arrow::int64();
  return type;
}

const std::shared_ptr<arrow::DataType>& Utf8() {
  static const auto type = arrow::utf8();
  return type;
}

// Sends `init` (already built) and expects InitResponse.error of `kind`, then
// Cancel -> CancelResponse as the .proto requires.
arrow::Status ExpectInitRefused(SparkProbe& probe, const spark_proto::UdfRequest& init,
                                const std::string& kind) {
  auto call = probe.Open();
  ARROW_RETURN_NOT_OK(probe.Send(*call, init));
  ARROW_RETURN_NOT_OK(probe.ExpectInitError(*call, kind, "§2"));
  return probe.CancelAndExpectCancelResponse(*call, "§4");
}

arrow::Result<spark_proto::UdfRequest> IdentityInit(SparkProbe& probe) {
  return probe.Init("identity", {Int64()}, Int64());
}

spark_proto::UdfRequest Chunk(std::string data, bool last) {
  spark_proto::UdfRequest request;
  auto* chunk = request.mutable_control()->mutable_payload();
  chunk->set_data(std::move(data));
  if (last) chunk->set_last(true);
  return request;
}

// Init of identity with its payload moved into two PayloadChunks; `tamper`
// changes the declared size or CRC.
arrow::Status ChunkedIdentity(SparkProbe& probe, uint32_t version, int64_t size_delta,
                              uint32_t crc_xor, bool expect_ok) {
  ARROW_ASSIGN_OR_RAISE(auto request, IdentityInit(probe));
  auto* init = request.mutable_control()->mutable_init();
  init->set_protocol_version(version);
  std::string payload = std::move(*init->mutable_udf()->mutable_payload());
  init->mutable_udf()->clear_payload();
  init->set_is_chunking_payload(true);
  init->mutable_udf()->set_payload_size(static_cast<int64_t>(payload.size()) + size_delta);
  init->mutable_udf()->set_payload_crc32(transport::spark::Crc32(payload) ^ crc_xor);
  auto call = probe.Open();
  ARROW_RETURN_NOT_OK(probe.Send(*call, request));
  const size_t half = payload.size() / 2;
  ARROW_RETURN_NOT_OK(probe.Send(*call, Chunk(payload.substr(0, half), false)));
  ARROW_RETURN_NOT_OK(probe.Send(*call, Chunk(payload.substr(half), true)));
  if (!expect_ok) {
    ARROW_RETURN_NOT_OK(probe.ExpectInitError(*call, "protocol", "§2"));
    return probe.CancelAndExpectCancelResponse(*call, "§4");
  }
  ARROW_RETURN_NOT_OK(probe.ExpectInitOk(*call, "r"));
  ARROW_RETURN_NOT_OK(probe.SendBatch(*call, *Int64Batch(4)));
  ARROW_RETURN_NOT_OK(probe.ExpectData(*call, 4).status());
  ARROW_RETURN_NOT_OK(probe.SendControl(*call, "finish"));
  return probe.ExpectTerminator(*call, false, "§4").status();
}

arrow::Status FinishExpectingFinishResponse(SparkProbe& probe, ExecuteCall& call,
                                            spark_proto::FinishResponse* out = nullptr) {
  ARROW_RETURN_NOT_OK(probe.SendControl(call, "finish"));
  ARROW_ASSIGN_OR_RAISE(auto terminator, probe.ExpectTerminator(call, false, "§4"));
  if (!terminator.has_finish()) {
    return Violation("§4", "Finish was answered with CancelResponse");
  }
  if (out != nullptr) *out = terminator.finish();
  return arrow::Status::OK();
}

arrow::Status SingleRequest(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "identity", Int64()));
  auto batch = Int64Batch(10);
  ARROW_RETURN_NOT_OK(probe.SendBatch(*call, *batch));
  ARROW_ASSIGN_OR_RAISE(auto result, probe.ExpectData(*call, 10));
  if (!result->column(0)->Equals(*batch->column(0))) {
    return Violation("§3", "identity answered other values than it got");
  }
  return FinishExpectingFinishResponse(probe, *call);
}

arrow::Status MultipleRequests(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "upper", Utf8()));
  const std::vector<int64_t> sizes = {5, 7, 0, 3};
  for (int64_t rows : sizes) ARROW_RETURN_NOT_OK(probe.SendBatch(*call, *StringBatch(rows)));
  for (int64_t rows : sizes) {
    ARROW_ASSIGN_OR_RAISE(auto result, probe.ExpectData(*call, rows));
    if (rows > 0) {
      const auto& strings = static_cast<const arrow::StringArray&>(*result->column(0));
      if (strings.GetString(rows - 1) != "A" + std::to_string(rows - 1)) {
        return Violation("§3", "upper's answer to a batch of " + std::to_string(rows) +
                                   " rows is not that batch in upper case (answers out of order?)");
      }
    }
  }
  return FinishExpectingFinishResponse(probe, *call);
}

arrow::Status NoInput(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "identity", Int64()));
  return FinishExpectingFinishResponse(probe, *call);
}

arrow::Status UserError(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "raise_error", Int64()));
  ARROW_RETURN_NOT_OK(probe.SendBatch(*call, *Int64Batch(3)));
  ARROW_RETURN_NOT_OK(probe.ExpectError(*call, "user", "§4"));
  return probe.CancelAndExpectCancelResponse(*call, "§4");
}

arrow::Status InitError(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, probe.Init("no_such_function", {Int64()}, Int64()));
  return ExpectInitRefused(probe, init, "worker");
}

arrow::Status UnknownPayloadFormat(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  init.mutable_control()->mutable_init()->mutable_udf()->set_format("quiver/no-such-format");
  return ExpectInitRefused(probe, init, "worker");
}

arrow::Status MalformedInit(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  init.mutable_control()->mutable_init()->clear_input_schema();
  return ExpectInitRefused(probe, init, "protocol");
}

arrow::Status DataFormat(SparkProbe& probe, int format) {
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  init.mutable_control()->mutable_init()->set_data_format(
      static_cast<spark_proto::UDFWorkerDataFormat>(format));
  return ExpectInitRefused(probe, init, "protocol");
}

arrow::Status CancelBeforeInit(SparkProbe& probe) {
  auto call = probe.Open();
  return probe.CancelAndExpectCancelResponse(*call, "§4");
}

arrow::Status CancelMidStream(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "identity", Int64()));
  ARROW_RETURN_NOT_OK(probe.SendBatch(*call, *Int64Batch(100)));
  ARROW_RETURN_NOT_OK(probe.SendBatch(*call, *Int64Batch(100)));
  return probe.CancelAndExpectCancelResponse(*call, "§4");
}

arrow::Status CancelAfterFinish(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "identity", Int64()));
  ARROW_RETURN_NOT_OK(probe.SendBatch(*call, *Int64Batch(10)));
  ARROW_RETURN_NOT_OK(probe.SendControl(*call, "finish"));
  ARROW_RETURN_NOT_OK(probe.SendControl(*call, "cancel"));
  // Either terminator is right: it depends on whether FinishResponse was out.
  return probe.ExpectTerminator(*call, /*skip_data=*/true, "§4").status();
}

arrow::Status DataBeforeInitResponse(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto request, IdentityInit(probe));
  auto* init = request.mutable_control()->mutable_init();
  std::string payload = std::move(*init->mutable_udf()->mutable_payload());
  init->mutable_udf()->clear_payload();
  init->set_is_chunking_payload(true);
  auto call = probe.Open();
  ARROW_RETURN_NOT_OK(probe.Send(*call, request));
  ARROW_RETURN_NOT_OK(probe.Send(*call, Chunk(payload, false)));
  // No chunk carried `last`: the worker cannot have answered Init yet.
  ARROW_RETURN_NOT_OK(probe.SendBatch(*call, *Int64Batch(2)));
  ARROW_RETURN_NOT_OK(probe.ExpectInitError(*call, "protocol", "§4"));
  return probe.CancelAndExpectCancelResponse(*call, "§4");
}

arrow::Status SecondInit(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "identity", Int64()));
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  ARROW_RETURN_NOT_OK(probe.Send(*call, init));
  ARROW_RETURN_NOT_OK(probe.ExpectError(*call, "protocol", "§4"));
  return probe.CancelAndExpectCancelResponse(*call, "§4");
}

arrow::Status HalfCloseWithoutTerminator(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "identity", Int64()));
  call->WritesDone();
  ARROW_ASSIGN_OR_RAISE(auto terminator, probe.ExpectTerminator(*call, true, "§4"));
  if (!terminator.has_cancel() || !terminator.cancel().has_error() ||
      !terminator.cancel().error().has_protocol()) {
    return Violation("§4",
                     "a half-close without Finish or Cancel must be answered with "
                     "CancelResponse carrying a ProtocolError");
  }
  return arrow::Status::OK();
}

arrow::Status BatchOfAnotherSchema(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "identity", Int64()));
  ARROW_RETURN_NOT_OK(probe.SendBatch(*call, *StringBatch(3)));
  ARROW_RETURN_NOT_OK(probe.ExpectError(*call, "protocol", "§3"));
  return probe.CancelAndExpectCancelResponse(*call, "§4");
}

arrow::Status ConcurrentStreams(SparkProbe& probe) {
  std::vector<std::unique_ptr<ExecuteCall>> calls;
  for (int i = 0; i < 3; ++i) {
    ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "add_one", Int64()));
    calls.push_back(std::move(call));
  }
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < calls.size(); ++i) {
      ARROW_RETURN_NOT_OK(probe.SendBatch(*calls[i], *Int64Batch(10 * (i + 1))));
    }
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    for (int round = 0; round < 3; ++round) {
      ARROW_ASSIGN_OR_RAISE(auto result, probe.ExpectData(*calls[i], 10 * (i + 1)));
      const auto& values = static_cast<const arrow::Int64Array&>(*result->column(0));
      if (values.Value(0) != 1) return Violation("§3", "add_one(0) was not 1 on a shared worker");
    }
    ARROW_RETURN_NOT_OK(FinishExpectingFinishResponse(probe, *calls[i]));
  }
  return arrow::Status::OK();
}

arrow::Status MetricsKeys(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "identity", Int64()));
  ARROW_RETURN_NOT_OK(probe.SendBatch(*call, *Int64Batch(7)));
  ARROW_RETURN_NOT_OK(probe.ExpectData(*call, 7).status());
  spark_proto::FinishResponse finish;
  ARROW_RETURN_NOT_OK(FinishExpectingFinishResponse(probe, *call, &finish));
  for (const char* key : {"rows_in", "rows_out", "batches_in", "batches_out", "bytes_in",
                          "bytes_out", "udf_time_ns", "codec_time_ns", "peak_rss_bytes"}) {
    if (finish.metrics().count(key) == 0) {
      return Violation("§6", std::string("FinishResponse.metrics has no '") + key + "'");
    }
  }
  if (finish.metrics().at("rows_in") != "7" || finish.metrics().at("batches_in") != "1") {
    return Violation("§6", "FinishResponse.metrics counts rows_in " +
                               finish.metrics().at("rows_in") + ", batches_in " +
                               finish.metrics().at("batches_in") + " for one batch of 7 rows");
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<std::unique_ptr<ExecuteCall>> OpenReady(
    SparkProbe& probe, const std::string& function, const std::shared_ptr<arrow::DataType>& type) {
  ARROW_ASSIGN_OR_RAISE(auto init, probe.Init(function, {type}, type));
  auto call = probe.Open();
  ARROW_RETURN_NOT_OK(probe.Send(*call, init));
  ARROW_RETURN_NOT_OK(probe.ExpectInitOk(*call, "r"));
  return call;
}

std::vector<SparkScenario> SparkStreamScenarios() {
  return {
      {"single request", "§3", false, SingleRequest},
      {"multiple requests", "§3", false, MultipleRequests},
      {"no input", "§4", false, NoInput},
      {"user error", "§4", false, UserError},
      {"init error", "§2", false, InitError},
      {"unknown payload format", "§2", false, UnknownPayloadFormat},
      {"malformed Init (no input_schema)", "§2", false, MalformedInit},
      {"protocol version 99 with chunked payload", "§2", false,
       [](SparkProbe& p) { return ChunkedIdentity(p, 99, 0, 0, false); }},
      {"data_format 0", "§2", false, [](SparkProbe& p) { return DataFormat(p, 0); }},
      {"data_format unknown (7)", "§2", false, [](SparkProbe& p) { return DataFormat(p, 7); }},
      {"chunked payload", "§2", false,
       [](SparkProbe& p) { return ChunkedIdentity(p, 1, 0, 0, true); }},
      {"chunked payload with a bad CRC", "§2", false,
       [](SparkProbe& p) { return ChunkedIdentity(p, 1, 0, 0x1, false); }},
      {"chunked payload with a bad size", "§2", false,
       [](SparkProbe& p) { return ChunkedIdentity(p, 1, 3, 0, false); }},
      {"Cancel before Init", "§4", false, CancelBeforeInit},
      {"Cancel mid-stream", "§4", false, CancelMidStream},
      {"Cancel after Finish", "§4", false, CancelAfterFinish},
      {"DataRequest before InitResponse", "§4", false, DataBeforeInitResponse},
      {"a second Init", "§4", false, SecondInit},
      {"half-close without Finish or Cancel", "§4", false, HalfCloseWithoutTerminator},
      {"a batch of another schema", "§3", false, BatchOfAnotherSchema},
      {"concurrent streams", "§8", false, ConcurrentStreams},
      {"metrics keys", "§6", false, MetricsKeys},
  };
}

}  // namespace quiver::conformance
