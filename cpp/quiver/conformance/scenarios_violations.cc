// Messages the spec does not allow, sent on purpose: the worker answers them
// as the state table says and stays usable, or (a broken frame) exits.

#include <sys/socket.h>

#include <cstring>
#include <string>
#include <vector>

#include <arrow/type.h>

#include "quiver/conformance/kit_data.h"
#include "quiver/conformance/probe.h"
#include "quiver/conformance/scenarios.h"

namespace quiver::conformance {
namespace {

arrow::Result<v1::Init> IdentityInit(Probe& probe) {
  return probe.MakeInit(*Strings(0)->schema(), {{"same", "identity", {0}, arrow::utf8()}});
}

arrow::Status DataBeforeInit(Probe& probe) {
  ARROW_RETURN_NOT_OK(probe.SendData(0, *Strings(2)));
  ARROW_RETURN_NOT_OK(
      probe.ExpectError(v1::Error::kProtocolError, "§2, State machines", "Data before Init")
          .status());
  // Idle stays idle: the next Init starts an execution.
  return probe.ExpectStillServes("after Data before Init");
}

arrow::Status SecondInit(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  ARROW_RETURN_NOT_OK(probe.Open(init, "the first Init").status());
  ARROW_RETURN_NOT_OK(probe.SendInit(init));
  ARROW_RETURN_NOT_OK(
      probe.ExpectError(v1::Error::kProtocolError, "§2, State machines", "a second Init").status());
  ARROW_RETURN_NOT_OK(probe.Cancel("Cancel after the second Init").status());
  return probe.ExpectStillServes("after a second Init");
}

arrow::Status UnsupportedVersion(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  init.set_protocol_version(99);
  ARROW_RETURN_NOT_OK(probe.SendInit(init));
  ARROW_ASSIGN_OR_RAISE(auto error, probe.ExpectError(v1::Error::kProtocolError, "§6",
                                                      "an Init of protocol version 99"));
  if (error.protocol_error().message().find("99") == std::string::npos) {
    return Violation(
        "§6", "the ProtocolError does not name version 99: " + error.protocol_error().message());
  }
  ARROW_RETURN_NOT_OK(probe.Cancel("Cancel after the refused Init").status());
  return probe.ExpectStillServes("after an Init of an unknown version");
}

arrow::Status ShutdownWhileRunning(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  ARROW_RETURN_NOT_OK(probe.Open(init, "an execution").status());
  ARROW_RETURN_NOT_OK(probe.SendShutdown(/*cancel_running=*/false));
  ARROW_RETURN_NOT_OK(probe
                          .ExpectError(v1::Error::kProtocolError, "§2",
                                       "Shutdown without cancel_running during an execution")
                          .status());
  ARROW_RETURN_NOT_OK(probe.Cancel("Cancel after the refused Shutdown").status());
  return probe.ExpectStillServes("after a refused Shutdown");
}

arrow::Status BadFrame(Probe& probe) {
  // A header with a wrong magic: the stream has lost its place.
  unsigned char header[32] = {'B', 'A', 'D', '!', 1};
  const int fd = probe.started().raw_socket.get();
  if (::send(fd, header, sizeof(header), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(header))) {
    return arrow::Status::IOError("could not write to the worker's socket: ", std::strerror(errno));
  }
  // Best effort: a ProtocolError may come first; then the connection closes.
  auto reply = probe.Next();
  if (reply.ok()) {
    if (!reply->control || !reply->control->has_error() ||
        !reply->control->error().has_protocol_error()) {
      return Violation("§4",
                       "after a frame with a bad magic: expected a ProtocolError or the "
                       "end of the connection, got " +
                           DescribeReply(*reply));
    }
  }
  ARROW_RETURN_NOT_OK(probe.ExpectExit(1, "§4", "after a frame with a bad magic"));
  probe.Retire();
  return arrow::Status::OK();
}

}  // namespace

std::vector<Scenario> ViolationScenarios() {
  return {
      {"data-before-init", "§2, State machines", On::kUdsOnly, DataBeforeInit},
      {"second-init", "§2, State machines", On::kEvery, SecondInit},
      {"unsupported-protocol-version", "§6", On::kEvery, UnsupportedVersion},
      {"shutdown-during-execution-is-refused", "§2", On::kEvery, ShutdownWhileRunning},
      {"bad-frame-raw-bytes", "§4", On::kUdsOnly, BadFrame},
  };
}

}  // namespace quiver::conformance
