#include "quiver/exec/grouped/kinds.h"

#include <chrono>
#include <utility>

#include <arrow/compute/expression.h>
#include <arrow/table.h>
#include <arrow/type.h>
#include <arrow/util/byte_size.h>

#include "quiver/exec/udf_checks.h"
#include "quiver/exec/worker_init.h"

namespace quiver::exec::grouped {

arrow::Status CheckKindOptions(const KindOptions& options, const OptionNames& names) {
  ARROW_RETURN_NOT_OK(CheckAtLeastOne(names.batch_rows, options.batch_rows));
  ARROW_RETURN_NOT_OK(CheckAtLeastOne(options.max_group_bytes_label, options.max_group_bytes));
  PipelineOptions pipeline;
  pipeline.workers = options.workers;
  pipeline.max_batches_in_flight_per_worker = options.max_batches_in_flight_per_worker;
  return CheckPipelineOptions(pipeline, names);
}

arrow::Result<std::unique_ptr<WorkerPipeline>> StartKind(
    worker::WorkerDispatcher* dispatcher, const std::vector<UdfCall>& udfs, v1::EvalType eval_type,
    const arrow::Schema& sent_schema, const std::vector<std::vector<int>>& offsets,
    const KindOptions& options, std::string label) {
  ARROW_RETURN_NOT_OK(CheckKindOptions(options));
  ARROW_ASSIGN_OR_RAISE(auto init, MakeInit(udfs, sent_schema, offsets, eval_type));
  PipelineOptions pipeline;
  pipeline.workers = options.workers;
  pipeline.max_batches_in_flight_per_worker = options.max_batches_in_flight_per_worker;
  pipeline.label = std::move(label);
  return WorkerPipeline::Start(dispatcher, init, std::move(pipeline));
}

arrow::Result<std::vector<int>> ResolveColumns(const arrow::Schema& schema,
                                               const std::vector<std::string>& names,
                                               const std::string& what) {
  std::vector<int> positions;
  for (const auto& name : names) {
    ARROW_RETURN_NOT_OK(CheckColumn(name, schema, what));
    positions.push_back(schema.GetFieldIndex(name));
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

arrow::Status CheckKindColumns(const std::vector<UdfCall>& udfs, const KindOptions& options,
                               const arrow::Schema& schema, bool plain_arguments) {
  ARROW_RETURN_NOT_OK(ResolveColumns(schema, options.group_by, "the group keys").status());
  for (const auto& udf : udfs) {
    for (size_t a = 0; a < udf.arguments.size(); ++a) {
      if (plain_arguments) {
        ARROW_RETURN_NOT_OK(ArgumentColumn(udf, a, schema).status());
      } else {
        ARROW_RETURN_NOT_OK(CheckArgument(udf, a, schema));
      }
    }
  }
  return arrow::Status::OK();
}

std::string GroupsText(int64_t first_group, int64_t groups) {
  return "groups " + std::to_string(first_group) + "-" + std::to_string(first_group + groups - 1);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> ReadCounted(arrow::RecordBatchReader* input,
                                                               KindMetrics* metrics) {
  const auto start = std::chrono::steady_clock::now();
  std::shared_ptr<arrow::RecordBatch> batch;
  arrow::Status read = input->ReadNext(&batch);
  metrics->read_nanos +=
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  if (!read.ok()) return read.WithMessage("reading the input: ", read.message());
  if (batch == nullptr) return batch;
  metrics->rows_in += batch->num_rows();
  metrics->batches_in += 1;
  metrics->bytes_in += arrow::util::TotalBufferSize(*batch);
  return batch;
}

arrow::Status FinishKind(WorkerPipeline* pipeline, const AnswerHandler& handle,
                         const std::vector<UdfCall>& udfs, const std::string& step,
                         KindMetrics* metrics) {
  arrow::Result<int64_t> nanos = pipeline->DrainAndFinish(handle);
  UdfGroupMetrics group;
  for (const auto& udf : udfs) group.udfs.push_back(udf.name + step);
  group.workers = pipeline->worker_metrics();
  group.worker_starts = pipeline->worker_starts();
  group.batch_spans = pipeline->batch_spans();
  metrics->groups.push_back(std::move(group));
  ARROW_RETURN_NOT_OK(nanos.status());
  metrics->worker_udf_nanos += *nanos;
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> ReadWhole(arrow::RecordBatchReader* input,
                                                             KindMetrics* metrics) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto batch, ReadCounted(input, metrics));
    if (batch == nullptr) break;
    batches.push_back(std::move(batch));
  }
  ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches(input->schema(), batches));
  batches.clear();
  return table->CombineChunksToBatch();
}

}  // namespace quiver::exec::grouped
