// Messages the spec does not allow, sent on purpose: the worker answers them
// as the state table says and stays usable, or (a broken frame) exits.

#include <sys/socket.h>

#include <cstring>
#include <string>
#include <vector>

#include <arrow/type.h>

#include "quiver/conformance/grpc_manage.h"
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

// uds: a Data envelope in a control frame (batches travel in data frames) is a
// message not allowed here, not a broken frame: ProtocolError, and the worker
// stays idle.
arrow::Status DataEnvelopeOverUds(Probe& probe) {
  v1::EngineMessage message;
  message.mutable_data()->set_sequence(0);
  message.mutable_data()->set_arrow_ipc("not an Arrow stream");
  ARROW_RETURN_NOT_OK(probe.Send(message));
  ARROW_RETURN_NOT_OK(
      probe
          .ExpectError(v1::Error::kProtocolError, "§4", "EngineMessage.data in a uds control frame")
          .status());
  return probe.ExpectStillServes("after a Data envelope in a control frame");
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

// An Init split over PayloadChunks whose version is refused: the refusal comes
// after the last chunk (a Heartbeat sent before the chunks is echoed first),
// and the chunks themselves draw no second Error.
arrow::Status UnsupportedVersionWithChunks(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  init.set_protocol_version(99);
  const std::string payload = init.udfs(0).payload();
  const size_t half = payload.size() / 2;
  init.mutable_udfs(0)->set_payload(payload.substr(0, 1));
  init.set_payload_chunk_count(2);
  ARROW_RETURN_NOT_OK(probe.SendInit(init));
  ARROW_RETURN_NOT_OK(probe.SendHeartbeat(99));
  for (const auto& part : {payload.substr(1, half - 1), payload.substr(half)}) {
    v1::EngineMessage chunk;
    chunk.mutable_payload_chunk()->set_udf_index(0);
    chunk.mutable_payload_chunk()->set_data(part);
    ARROW_RETURN_NOT_OK(probe.Send(chunk));
  }
  const std::string context = "an Init of protocol version 99 with two PayloadChunks";
  ARROW_RETURN_NOT_OK(
      probe.Expect(v1::WorkerMessage::kHeartbeat, "§2", context + ", a Heartbeat before the chunks")
          .status());
  ARROW_ASSIGN_OR_RAISE(auto error, probe.ExpectError(v1::Error::kProtocolError, "§6", context));
  if (error.protocol_error().message().find("99") == std::string::npos) {
    return Violation(
        "§6", "the ProtocolError does not name version 99: " + error.protocol_error().message());
  }
  ARROW_RETURN_NOT_OK(probe.Cancel("Cancel after the refused Init").status());
  return probe.ExpectStillServes("after a refused Init with PayloadChunks");
}

// An Init in the failed state is ignored like every message but Finish, Cancel
// and Heartbeat: no second Error, no InitResponse.
arrow::Status InitWhenFailed(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto failing, probe.MakeInit(*Strings(0)->schema(),
                                                     {{"failing", "raise_error", {0}, nullptr}}));
  ARROW_RETURN_NOT_OK(probe.Open(failing, "an execution of raise_error").status());
  ARROW_RETURN_NOT_OK(probe.SendData(0, *Strings(2)));
  ARROW_RETURN_NOT_OK(
      probe.ExpectError(v1::Error::kUserError, "§2, Errors", "raise_error over a batch").status());
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  ARROW_RETURN_NOT_OK(probe.SendInit(init));
  ARROW_RETURN_NOT_OK(probe.SendHeartbeat(7));
  ARROW_ASSIGN_OR_RAISE(auto echo, probe.Expect(v1::WorkerMessage::kHeartbeat, "§2, Errors",
                                                "an Init after an Error, then a Heartbeat"));
  if (echo.heartbeat().nonce() != 7) {
    return Violation("§2", "a Heartbeat after an ignored Init was echoed with another nonce");
  }
  ARROW_RETURN_NOT_OK(probe.Cancel("Cancel after an Init in the failed state").status());
  return probe.ExpectStillServes("after an Init in the failed state");
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

// gRPC: an Execute call whose requests end (half-close) with neither Finish nor
// Cancel: the worker may answer the batches it read, then sends a
// ProtocolError and ends the call with status OK; it then serves again.
arrow::Status HalfCloseWithoutFinish(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  std::vector<ExecuteRequest> requests(2);
  *requests[0].control.mutable_init() = init;
  requests[1].sequence = 0;
  requests[1].batch = Strings(3);
  ARROW_ASSIGN_OR_RAISE(auto outcome, CallExecute(probe.started().endpoint, probe.started().secret,
                                                  requests, probe.options().timeout));
  const std::string context = "an Execute call half-closed after Init and one batch";
  const auto& replies = outcome.replies;
  size_t next = 0;
  if (next == replies.size() || !replies[next].control ||
      !replies[next].control->has_init_response()) {
    return Violation("§5", context + ": the first answer is not InitResponse");
  }
  ++next;
  while (next < replies.size() && !replies[next].control) ++next;  // the batch's result, or not
  if (next + 1 != replies.size() || !replies[next].control->has_error() ||
      !replies[next].control->error().has_protocol_error()) {
    return Violation("§5", context +
                               ": expected the batch's result or nothing, then one "
                               "ProtocolError ending the answers; got " +
                               std::to_string(replies.size()) + " answers" +
                               (next < replies.size() ? ", then " + DescribeReply(replies[next])
                                                      : std::string()));
  }
  if (outcome.code != 0) {
    return Violation("§5", context + ": the call ended with gRPC status " +
                               std::to_string(outcome.code) + " " + outcome.message +
                               ", expected OK");
  }
  return probe.ExpectStillServes("after a half-closed Execute call");
}

// gRPC: an Execute call with a wrong secret, and one without, are refused
// UNAUTHENTICATED before any answer, and counted in refused_calls.
arrow::Status ExecuteWithoutSecret(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  std::vector<ExecuteRequest> requests(1);
  *requests[0].control.mutable_init() = init;
  v1::ManageRequest heartbeat;
  heartbeat.mutable_heartbeat()->set_nonce(5);
  ARROW_ASSIGN_OR_RAISE(auto before, CallManage(probe.started().endpoint, probe.started().secret,
                                                heartbeat, probe.options().timeout));
  const std::string wrong(64, 'f');
  for (const auto& secret : {std::optional<std::string>(wrong), std::optional<std::string>()}) {
    ARROW_ASSIGN_OR_RAISE(auto outcome, CallExecute(probe.started().endpoint, secret, requests,
                                                    probe.options().timeout));
    const std::string which = secret ? "with a wrong secret" : "without a secret";
    if (outcome.code != 16 || !outcome.replies.empty()) {
      return Violation("§5, Authentication",
                       "an Execute call " + which + " ended with gRPC status " +
                           std::to_string(outcome.code) + " after " +
                           std::to_string(outcome.replies.size()) +
                           " answers, expected 16 (UNAUTHENTICATED) and none");
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto after, CallManage(probe.started().endpoint, probe.started().secret,
                                               heartbeat, probe.options().timeout));
  const uint64_t counted = after.response.refused_calls() - before.response.refused_calls();
  if (counted != 2) {
    return Violation("§5, Authentication", "refused_calls grew by " + std::to_string(counted) +
                                               " after two refused Execute calls");
  }
  return probe.ExpectStillServes("after refused Execute calls");
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
      {"data-envelope-over-uds", "§4", On::kUdsOnly, DataEnvelopeOverUds},
      {"second-init", "§2, State machines", On::kEvery, SecondInit},
      {"unsupported-protocol-version", "§6", On::kEvery, UnsupportedVersion},
      {"unsupported-version-with-payload-chunks", "§2", On::kEvery, UnsupportedVersionWithChunks},
      {"init-when-failed-is-ignored", "§2, Errors", On::kEvery, InitWhenFailed},
      {"shutdown-during-execution-is-refused", "§2", On::kEvery, ShutdownWhileRunning},
      {"bad-frame-raw-bytes", "§4", On::kUdsOnly, BadFrame},
      {"half-close-without-finish", "§5", On::kGrpcOnly, HalfCloseWithoutFinish},
      {"execute-without-secret-is-refused", "§5, Authentication", On::kGrpcOnly,
       ExecuteWithoutSecret},
  };
}

}  // namespace quiver::conformance
