// Hello, authentication, Init with every type family, executions and batches.

#include <string>
#include <vector>

#include <arrow/array.h>
#include <arrow/scalar.h>
#include <arrow/type.h>

#include "quiver/conformance/grpc_manage.h"
#include "quiver/conformance/kit_data.h"
#include "quiver/conformance/probe.h"
#include "quiver/conformance/scenarios.h"
#include "quiver/protocol/version.h"

namespace quiver::conformance {
namespace {

arrow::Status CheckHelloFields(const v1::Hello& hello, Probe& probe, bool with_secret,
                               const std::string& section) {
  const StartedWorker& started = probe.started();
  if (with_secret && hello.secret() != started.secret) {
    return Violation(section,
                     "Hello.secret is not QUIVER_WORKER_SECRET as its 64 ASCII characters (got " +
                         std::to_string(hello.secret().size()) + " bytes)");
  }
  if (!with_secret && !hello.secret().empty()) {
    return Violation(section, "ManageResponse.worker carries the secret; it must not");
  }
  if (hello.protocol_version() != protocol::kProtocolVersion) {
    return Violation(section, "protocol_version is " + std::to_string(hello.protocol_version()) +
                                  ", expected 1");
  }
  if (hello.pid() != static_cast<uint32_t>(probe.worker().pid())) {
    return Violation(section, "pid is " + std::to_string(hello.pid()) +
                                  ", but the process started is " +
                                  std::to_string(probe.worker().pid()) +
                                  " (a wrapper script must exec the worker)");
  }
  if (hello.worker_id() != started.worker_id) {
    return Violation(section, "worker_id is '" + hello.worker_id() + "', but --id was '" +
                                  started.worker_id + "'");
  }
  return arrow::Status::OK();
}

arrow::Status Hello(Probe& probe) {
  if (!probe.grpc()) {
    const auto& first = probe.started().first_message;
    if (!first || !first->has_hello()) {
      return Violation("§1", "the worker's first message is not Hello");
    }
    return CheckHelloFields(first->hello(), probe, /*with_secret=*/true, "§1");
  }
  v1::ManageRequest request;
  request.mutable_heartbeat()->set_nonce(7);
  ARROW_ASSIGN_OR_RAISE(auto outcome, CallManage(probe.started().endpoint, probe.started().secret,
                                                 request, probe.options().timeout));
  if (outcome.code != 0) {
    return Violation("§5", "Manage(heartbeat) with the right secret failed: gRPC status " +
                               std::to_string(outcome.code) + " " + outcome.message);
  }
  if (outcome.response.heartbeat().nonce() != 7) {
    return Violation("§5", "Manage(heartbeat) did not echo the nonce");
  }
  return CheckHelloFields(outcome.response.worker(), probe, /*with_secret=*/false, "§5, Manage");
}

arrow::Status Authentication(Probe& probe) {
  v1::ManageRequest request;
  request.mutable_heartbeat()->set_nonce(1);
  const std::string wrong(64, 'f');
  for (const auto& secret : {std::optional<std::string>(wrong), std::optional<std::string>()}) {
    ARROW_ASSIGN_OR_RAISE(auto outcome, CallManage(probe.started().endpoint, secret, request,
                                                   probe.options().timeout));
    if (outcome.code != 16) {
      return Violation("§5, Authentication",
                       std::string("a Manage call ") +
                           (secret ? "with a wrong secret" : "without a secret") +
                           " ended with gRPC status " + std::to_string(outcome.code) +
                           ", expected 16 (UNAUTHENTICATED)");
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto outcome, CallManage(probe.started().endpoint, probe.started().secret,
                                                 request, probe.options().timeout));
  if (outcome.response.refused_calls() < 2) {
    return Violation("§5, Authentication", "refused_calls is " +
                                               std::to_string(outcome.response.refused_calls()) +
                                               " after two refused calls");
  }
  return arrow::Status::OK();
}

arrow::Status TypeFamiliesThroughIdentity(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto input, TypeFamilies(7));
  std::vector<KitCall> calls;
  for (int i = 0; i < input->num_columns(); ++i) {
    calls.push_back({"identity_" + std::to_string(i), "identity", {i}, input->column(i)->type()});
  }
  ARROW_ASSIGN_OR_RAISE(auto init, probe.MakeInit(*input->schema(), calls));
  ARROW_ASSIGN_OR_RAISE(auto results, probe.Execute(init, {input}, "identity over every type"));
  for (int i = 0; i < input->num_columns(); ++i) {
    if (!results[0]->column(i)->Equals(*input->column(i))) {
      return Violation("§3", "identity changed the values of a " +
                                 input->column(i)->type()->ToString() +
                                 " column: " + results[0]->column(i)->ToString());
    }
  }
  return arrow::Status::OK();
}

arrow::Status Functions(Probe& probe) {
  auto numbers = Numbers(6);
  auto texts = Strings(6);
  auto input = arrow::RecordBatch::Make(
      arrow::schema(
          {texts->schema()->field(0), numbers->schema()->field(0), numbers->schema()->field(1)}),
      6, {texts->column(0), numbers->column(0), numbers->column(1)});
  ARROW_ASSIGN_OR_RAISE(
      auto init, probe.MakeInit(*input->schema(), {{"up", "upper", {0}, arrow::utf8()},
                                                   {"plus_i", "add_one", {1}, arrow::int64()},
                                                   {"plus_f", "add_one", {2}, arrow::float64()}}));
  ARROW_ASSIGN_OR_RAISE(
      auto results, probe.Execute(init, {input}, "upper(text), add_one(int64), add_one(float64)"));
  const auto& up = static_cast<const arrow::StringArray&>(*results[0]->column(0));
  const auto& plus_i = static_cast<const arrow::Int64Array&>(*results[0]->column(1));
  const auto& plus_f = static_cast<const arrow::DoubleArray&>(*results[0]->column(2));
  if (up.GetString(3) != "TEXT 3") {
    return Violation("§2", "upper('text 3') returned '" + up.GetString(3) + "'");
  }
  if (plus_i.Value(4) != 5 || plus_f.Value(4) != 5.0 || !plus_i.IsNull(1) || !plus_f.IsNull(1)) {
    return Violation("§2", "add_one returned " + plus_i.ToString() + " and " + plus_f.ToString() +
                               " for 0..5 with a null in row 1");
  }
  return arrow::Status::OK();
}

arrow::Status SeveralExecutions(Probe& probe) {
  for (int execution = 1; execution <= 3; ++execution) {
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
    for (int i = 0; i < execution; ++i) batches.push_back(Strings(10, i * 10));
    ARROW_ASSIGN_OR_RAISE(auto init, probe.MakeInit(*batches[0]->schema(),
                                                    {{"same", "identity", {0}, arrow::utf8()}}));
    const std::string context = "execution " + std::to_string(execution) + " on one worker";
    ARROW_ASSIGN_OR_RAISE(auto schema, probe.Open(init, context));
    for (int i = 0; i < execution; ++i) ARROW_RETURN_NOT_OK(probe.SendData(i, *batches[i]));
    for (int i = 0; i < execution; ++i) {
      ARROW_RETURN_NOT_OK(probe.ExpectData(i, 10, *schema, context).status());
    }
    ARROW_ASSIGN_OR_RAISE(auto metrics, probe.Finish(context));
    const auto count = static_cast<uint64_t>(execution);
    if ((metrics.batches() != 0 && metrics.batches() != count) ||
        (metrics.rows_in() != 0 && metrics.rows_in() != count * 10)) {
      return Violation("§2, Metrics", context + ": FinishResponse.metrics counts " +
                                          std::to_string(metrics.batches()) + " batches and " +
                                          std::to_string(metrics.rows_in()) +
                                          " rows; metrics count this execution only (" +
                                          std::to_string(count) + " batches)");
    }
  }
  return arrow::Status::OK();
}

arrow::Status PipelinedBatches(Probe& probe) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int i = 0; i < 24; ++i) batches.push_back(Strings(1 + (i * 37) % 200, i * 1000));
  ARROW_ASSIGN_OR_RAISE(
      auto init, probe.MakeInit(*batches[0]->schema(), {{"same", "identity", {0}, arrow::utf8()}}));
  // Sequences as one worker of several sees them: not from 0, with gaps.
  ARROW_ASSIGN_OR_RAISE(auto results,
                        probe.Execute(init, batches, "24 batches sent before any answer is read",
                                      /*first_sequence=*/1000, /*stride=*/3));
  for (size_t i = 0; i < batches.size(); ++i) {
    if (!results[i]->column(0)->Equals(*batches[i]->column(0))) {
      return Violation("§2", "batch " + std::to_string(i) + " came back with other values");
    }
  }
  return arrow::Status::OK();
}

arrow::Status BatchSizes(Probe& probe) {
  const std::vector<std::shared_ptr<arrow::RecordBatch>> batches = {
      Strings(0), Strings(1), Strings(100000), LargeStrings(int64_t{24} << 20), Strings(0)};
  ARROW_ASSIGN_OR_RAISE(
      auto init, probe.MakeInit(*batches[0]->schema(), {{"same", "identity", {0}, arrow::utf8()}}));
  ARROW_ASSIGN_OR_RAISE(auto results,
                        probe.Execute(init, batches, "batches of 0, 1, 100000 rows and 24 MiB"));
  for (size_t i = 0; i < batches.size(); ++i) {
    if (!results[i]->column(0)->Equals(*batches[i]->column(0))) {
      return Violation("§3", "the batch of " + std::to_string(batches[i]->num_rows()) +
                                 " rows came back with other values");
    }
  }
  return arrow::Status::OK();
}

}  // namespace

std::vector<Scenario> ExecutionScenarios() {
  return {
      {"hello", "§1", On::kEvery, Hello},
      {"authentication", "§5", On::kGrpcOnly, Authentication},
      {"init-every-type-family", "§3", On::kEvery, TypeFamiliesThroughIdentity},
      {"init-string-and-arithmetic-functions", "§2", On::kEvery, Functions},
      {"several-executions-on-one-worker", "§2", On::kEvery, SeveralExecutions},
      {"pipelined-batches", "§2", On::kEvery, PipelinedBatches},
      {"empty-one-row-and-large-batches", "§3", On::kEvery, BatchSizes},
  };
}

}  // namespace quiver::conformance
