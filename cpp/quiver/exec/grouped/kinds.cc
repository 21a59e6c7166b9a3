#include "quiver/exec/grouped/kinds.h"

#include <utility>

#include <arrow/compute/expression.h>
#include <arrow/table.h>
#include <arrow/type.h>
#include <arrow/util/byte_size.h>

#include "quiver/exec/udf_checks.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/version.h"

namespace quiver::exec::grouped {

arrow::Result<v1::Init> MakeKindInit(const std::vector<UdfCall>& udfs, v1::EvalType eval_type,
                                     const arrow::Schema& sent_schema,
                                     const std::vector<std::vector<int>>& offsets) {
  v1::Init init;
  init.set_protocol_version(protocol::kProtocolVersion);
  init.set_data_format(v1::ARROW_IPC_STREAM);
  ARROW_ASSIGN_OR_RAISE(*init.mutable_input_schema(), protocol::SerializeSchema(sent_schema));
  init.set_session_time_zone("UTC");
  for (size_t i = 0; i < udfs.size(); ++i) {
    v1::UdfDefinition* definition = init.add_udfs();
    definition->set_name(udfs[i].name);
    definition->set_payload_format(udfs[i].payload_format);
    definition->set_payload(udfs[i].payload);
    definition->set_eval_type(eval_type);
    for (int offset : offsets[i]) definition->add_argument_offsets(offset);
  }
  return init;
}

arrow::Result<std::vector<int>> ResolveColumns(const arrow::Schema& schema,
                                               const std::vector<std::string>& names,
                                               const std::string& what) {
  std::vector<int> positions;
  for (const auto& name : names) {
    const int index = schema.GetFieldIndex(name);
    if (index < 0) {
      std::string hint = ClosestName(name, schema.field_names());
      return arrow::Status::Invalid(what, " names column '", name, "', which the input lacks",
                                    hint.empty() ? "" : " (did you mean '" + hint + "'?)",
                                    "; its columns: ", schema.ToString());
    }
    positions.push_back(index);
  }
  return positions;
}

arrow::Result<int> ArgumentColumn(const UdfCall& udf, size_t argument,
                                  const arrow::Schema& schema) {
  const auto* ref = udf.arguments[argument].field_ref();
  if (ref == nullptr || ref->name() == nullptr) {
    return arrow::Status::Invalid("UDF '", udf.name, "': argument ", argument + 1, " (",
                                  udf.arguments[argument].ToString(),
                                  ") must be a column name for a grouped kind");
  }
  ARROW_ASSIGN_OR_RAISE(auto positions,
                        ResolveColumns(schema, {*ref->name()}, "UDF '" + udf.name + "'"));
  return positions.front();
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> ReadWhole(arrow::RecordBatchReader* input,
                                                             KindMetrics* metrics) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    arrow::Status read = input->ReadNext(&batch);
    if (!read.ok()) return read.WithMessage("reading the input: ", read.message());
    if (batch == nullptr) break;
    metrics->rows_in += batch->num_rows();
    metrics->bytes_in += arrow::util::TotalBufferSize(*batch);
    batches.push_back(std::move(batch));
  }
  ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches(input->schema(), batches));
  batches.clear();
  return table->CombineChunksToBatch();
}

}  // namespace quiver::exec::grouped
