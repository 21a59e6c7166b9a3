#include "quiver/transport/spark/spark_init.h"

#include <memory>
#include <utility>

#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"

namespace quiver::transport::spark {
namespace {

// docs/spark-protocol.md, section 2: the one protocol version.
constexpr uint32_t kSparkProtocolVersion = 1;

// The input schema of one UDF: the fields of quiver's input schema it takes.
arrow::Result<std::string> ArgumentSchema(const arrow::Schema& input,
                                          const v1::UdfDefinition& udf) {
  arrow::FieldVector fields;
  for (int offset : udf.argument_offsets()) {
    if (offset < 0 || offset >= input.num_fields()) {
      return arrow::Status::Invalid("UDF '", udf.name(), "' takes column ", offset,
                                    " of an input of ", input.num_fields(), " columns");
    }
    fields.push_back(input.field(offset));
  }
  return protocol::SerializeSchema(arrow::Schema(std::move(fields)));
}

// Cuts the payload of `start`'s Init into PayloadChunks when it is large.
void ChunkPayload(size_t chunk_bytes, SparkUdfStart* start) {
  proto::Init* head = start->messages.front().mutable_control()->mutable_init();
  proto::UdfPayload* udf = head->mutable_udf();
  if (udf->payload().size() <= chunk_bytes) return;
  std::string payload = std::move(*udf->mutable_payload());
  udf->clear_payload();  // "may be empty when chunked": every byte goes in a chunk
  udf->set_payload_size(static_cast<int64_t>(payload.size()));
  udf->set_payload_crc32(Crc32(payload));
  head->set_is_chunking_payload(true);
  for (size_t offset = 0; offset < payload.size(); offset += chunk_bytes) {
    proto::PayloadChunk* chunk =
        start->messages.emplace_back().mutable_control()->mutable_payload();
    chunk->set_data(payload.substr(offset, chunk_bytes));
    if (offset + chunk_bytes >= payload.size()) chunk->set_last(true);
  }
}

}  // namespace

arrow::Result<std::vector<SparkUdfStart>> TranslateInit(const v1::Init& init, size_t chunk_bytes) {
  auto input = protocol::DeserializeSchema(init.input_schema());
  if (!input.ok()) {
    return arrow::Status::Invalid("the execution's input schema does not parse: ",
                                  input.status().message());
  }
  std::vector<SparkUdfStart> starts;
  for (const v1::UdfDefinition& udf : init.udfs()) {
    if (udf.eval_type() >= v1::GROUPED_MAP) {
      return arrow::Status::NotImplemented(
          "UDF '", udf.name(), "' is a ", v1::EvalType_Name(udf.eval_type()),
          " UDF; Spark's dialect runs only the scalar kinds (docs/spark-protocol.md, section 8): "
          "run it on a quiver.v1 runtime");
    }
    SparkUdfStart& start = starts.emplace_back();
    start.name = udf.name();
    start.argument_offsets.assign(udf.argument_offsets().begin(), udf.argument_offsets().end());
    proto::Init* spark = start.messages.emplace_back().mutable_control()->mutable_init();
    spark->set_protocol_version(kSparkProtocolVersion);
    spark->set_data_format(proto::ARROW);
    ARROW_ASSIGN_OR_RAISE(*spark->mutable_input_schema(), ArgumentSchema(**input, udf));
    if (!udf.return_type().empty()) spark->set_output_schema(udf.return_type());
    proto::UdfPayload* payload = spark->mutable_udf();
    payload->set_format(udf.payload_format());
    payload->set_payload(udf.payload());
    payload->set_name(udf.name());
    if (udf.eval_type() != v1::EVAL_TYPE_UNSPECIFIED) {
      payload->set_eval_type(v1::EvalType_Name(udf.eval_type()));
    }
    for (const auto& [key, value] : init.configuration())
      (*spark->mutable_session_conf())[key] = value;
    if (!init.session_time_zone().empty()) spark->set_timezone(init.session_time_zone());
    if (init.has_task_context()) {
      auto& context = *spark->mutable_task_context();
      if (!init.task_context().job_id().empty()) context["job_id"] = init.task_context().job_id();
      context["partition"] = std::to_string(init.task_context().partition());
      context["attempt"] = std::to_string(init.task_context().attempt());
    }
    if (!udf.constructor_args().empty()) {
      // constructor_args is a JSON object already (quiver.v1 checks it); it is
      // embedded as a value, not quoted.
      spark->set_parameters("{\"constructor_args\": " + udf.constructor_args() + "}");
    }
    ChunkPayload(chunk_bytes, &start);
  }
  return starts;
}

}  // namespace quiver::transport::spark
