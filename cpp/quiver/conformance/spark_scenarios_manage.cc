// Scenarios on Manage: heartbeats in every state, shutdown (docs/spark-protocol.md, section 5).

#include <string>
#include <thread>
#include <utility>

#include <arrow/type.h>

#include "quiver/conformance/scenario.h"
#include "quiver/conformance/spark_scenarios.h"

namespace quiver::conformance {
namespace {

using transport::spark::ExecuteCall;

// Rows of the batch a heartbeat overlaps: enough for the UDF to take a while.
constexpr int64_t kLongBatchRows = 1 << 20;

arrow::Status HeartbeatWithPid(SparkProbe& probe, const std::string& state) {
  ARROW_ASSIGN_OR_RAISE(auto metrics, probe.Heartbeat());
  auto pid = metrics.find("pid");
  if (pid == metrics.end() || pid->second != std::to_string(probe.process().pid())) {
    return Violation("§1", "the heartbeat " + state + " does not carry metrics[\"pid\"] = " +
                               std::to_string(probe.process().pid()));
  }
  if (metrics.count("sessions_active") == 0) {
    return Violation("§5", "the heartbeat " + state + " has no metrics[\"sessions_active\"]");
  }
  return arrow::Status::OK();
}

arrow::Status HeartbeatInEveryState(SparkProbe& probe) {
  ARROW_RETURN_NOT_OK(HeartbeatWithPid(probe, "of an idle worker"));
  auto opened = probe.Open();
  ARROW_RETURN_NOT_OK(HeartbeatWithPid(probe, "with a stream open before Init"));
  ARROW_RETURN_NOT_OK(probe.CancelAndExpectCancelResponse(*opened, "§4"));
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "upper", arrow::utf8()));
  ARROW_RETURN_NOT_OK(HeartbeatWithPid(probe, "after InitResponse"));
  ARROW_RETURN_NOT_OK(probe.SendBatch(*call, *StringBatch(kLongBatchRows)));
  ARROW_RETURN_NOT_OK(HeartbeatWithPid(probe, "while a batch of 1M rows is processed"));
  ARROW_RETURN_NOT_OK(probe.ExpectData(*call, kLongBatchRows).status());
  ARROW_RETURN_NOT_OK(probe.SendControl(*call, "finish"));
  ARROW_RETURN_NOT_OK(probe.ExpectTerminator(*call, false, "§4").status());
  return HeartbeatWithPid(probe, "after the stream ended");
}

arrow::Status ExpectExitZero(SparkProbe& probe, const std::string& after) {
  auto status = probe.process().WaitFor(probe.options().timeout);
  if (!status) return Violation("§1", "the worker did not exit after " + after);
  if (status->signaled || status->code != 0) {
    return Violation(
        "§1", "the worker " + status->ToString() + " after " + after + ", not with status 0");
  }
  return arrow::Status::OK();
}

arrow::Status ShutdownIdle(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(bool settled, probe.Shutdown(/*cancel_sessions=*/false));
  if (!settled) return Violation("§5", "an idle worker answered sessions_settled = false");
  return ExpectExitZero(probe, "ShutdownRequest");
}

arrow::Status ShutdownCancellingSessions(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "identity", arrow::int64()));
  ARROW_ASSIGN_OR_RAISE(bool settled, probe.Shutdown(/*cancel_sessions=*/true));
  if (!settled) return Violation("§5", "ShutdownRequest(cancel_sessions) answered unsettled");
  ARROW_RETURN_NOT_OK(probe.ExpectError(*call, "worker", "§5"));
  ARROW_ASSIGN_OR_RAISE(auto terminator, probe.ExpectTerminator(*call, false, "§5"));
  if (!terminator.has_cancel()) {
    return Violation("§5", "a stream cancelled by shutdown ended with FinishResponse");
  }
  return ExpectExitZero(probe, "ShutdownRequest(cancel_sessions=true)");
}

arrow::Status ShutdownWithRunningSession(SparkProbe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto call, OpenReady(probe, "identity", arrow::int64()));
  ARROW_ASSIGN_OR_RAISE(bool settled, probe.Shutdown(/*cancel_sessions=*/false));
  if (settled) return Violation("§5", "sessions_settled = true while a stream was open");
  // A new stream after shutdown is refused with UNAVAILABLE.
  auto late = probe.Open();
  grpc::ByteBuffer ignored;
  late->WritesDone();
  while (late->ReadRaw(&ignored)) {
  }
  const grpc::Status refused = late->Finish();
  if (refused.error_code() != grpc::StatusCode::UNAVAILABLE) {
    return Violation("§5", "an Execute call after ShutdownRequest ended with gRPC status " +
                               std::to_string(static_cast<int>(refused.error_code())) +
                               ", not UNAVAILABLE (14)");
  }
  // The open stream still runs to its end.
  ARROW_RETURN_NOT_OK(probe.SendBatch(*call, *Int64Batch(5)));
  ARROW_RETURN_NOT_OK(probe.ExpectData(*call, 5).status());
  ARROW_RETURN_NOT_OK(probe.SendControl(*call, "finish"));
  ARROW_ASSIGN_OR_RAISE(auto terminator, probe.ExpectTerminator(*call, false, "§5"));
  if (!terminator.has_finish()) {
    return Violation("§5", "a stream open at shutdown was not allowed to finish");
  }
  return ExpectExitZero(probe, "ShutdownRequest and the last stream's end");
}

}  // namespace

std::vector<SparkScenario> SparkManageScenarios() {
  return {
      {"heartbeat in every state", "§5", false, HeartbeatInEveryState},
      {"shutdown when idle", "§5", true, ShutdownIdle},
      {"shutdown cancelling running sessions", "§5", true, ShutdownCancellingSessions},
      {"shutdown with a running session, then a new stream", "§5", true,
       ShutdownWithRunningSession},
  };
}

}  // namespace quiver::conformance
