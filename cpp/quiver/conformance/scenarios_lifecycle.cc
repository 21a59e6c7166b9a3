// How a worker ends: Shutdown when idle, Shutdown{cancel_running} during an
// execution, SIGTERM, and (uds) the engine closing the connection.

#include <signal.h>

#include <string>
#include <vector>

#include <arrow/type.h>

#include "quiver/conformance/grpc_manage.h"
#include "quiver/conformance/kit_data.h"
#include "quiver/conformance/probe.h"
#include "quiver/conformance/scenarios.h"

namespace quiver::conformance {
namespace {

using Kind = v1::WorkerMessage::KindCase;

arrow::Status ShutdownIdle(Probe& probe) {
  ARROW_RETURN_NOT_OK(probe.SendShutdown(/*cancel_running=*/false));
  ARROW_RETURN_NOT_OK(probe.Expect(Kind::kShutdown, "§2", "Shutdown when idle").status());
  ARROW_RETURN_NOT_OK(probe.ExpectExit(0, "§2", "Shutdown when idle"));
  probe.Retire();
  return arrow::Status::OK();
}

arrow::Status ShutdownCancelRunning(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(
      auto init, probe.MakeInit(*Strings(0)->schema(), {{"same", "identity", {0}, arrow::utf8()}}));
  ARROW_RETURN_NOT_OK(probe.Open(init, "an execution").status());
  for (int i = 0; i < 8; ++i) ARROW_RETURN_NOT_OK(probe.SendData(i, *Strings(2000, i)));
  const std::string context = "Shutdown{cancel_running} during an execution";
  if (!probe.grpc()) {
    ARROW_RETURN_NOT_OK(probe.SendShutdown(/*cancel_running=*/true));
    ARROW_RETURN_NOT_OK(probe.Expect(Kind::kShutdown, "§2", context, /*skip_data=*/true).status());
  } else {
    v1::ManageRequest request;
    request.mutable_shutdown()->set_cancel_running(true);
    ARROW_ASSIGN_OR_RAISE(auto outcome, CallManage(probe.started().endpoint, probe.started().secret,
                                                   request, probe.options().timeout));
    if (outcome.code != 0 || !outcome.response.has_shutdown()) {
      return Violation("§5",
                       "Manage(shutdown, cancel_running) during an execution was not "
                       "answered with shutdown (gRPC status " +
                           std::to_string(outcome.code) + " " + outcome.message + ")");
    }
    // The engine half-closes the call; the worker may have ended it already.
    (void)probe.SendCancel();
    ARROW_RETURN_NOT_OK(
        probe.Expect(Kind::kCancelResponse, "§5", context, /*skip_data=*/true).status());
  }
  ARROW_RETURN_NOT_OK(probe.ExpectExit(0, probe.grpc() ? "§5" : "§2", context));
  probe.Retire();
  return arrow::Status::OK();
}

arrow::Status Sigterm(Probe& probe) {
  ::kill(probe.worker().pid(), SIGTERM);
  ARROW_RETURN_NOT_OK(probe.ExpectExit(0, "§2", "SIGTERM when idle"));
  probe.Retire();
  return arrow::Status::OK();
}

arrow::Status ConnectionClosed(Probe& probe) {
  probe.connection().Shutdown();
  ARROW_RETURN_NOT_OK(probe.ExpectExit(0, "§2", "the engine closed the connection"));
  probe.Retire();
  return arrow::Status::OK();
}

}  // namespace

std::vector<Scenario> LifecycleScenarios() {
  return {
      {"shutdown-idle", "§2", On::kEvery, ShutdownIdle},
      {"shutdown-cancel-running", "§2", On::kEvery, ShutdownCancelRunning},
      {"sigterm-exits-0", "§2", On::kEvery, Sigterm},
      {"connection-closed-exits-0", "§2", On::kUdsOnly, ConnectionClosed},
  };
}

}  // namespace quiver::conformance
