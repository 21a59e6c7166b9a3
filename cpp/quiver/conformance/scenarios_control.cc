// PayloadChunk, Heartbeat in every state, Cancel, UDF errors, unknown functions.

#include <string>
#include <vector>

#include <arrow/type.h>

#include "quiver/conformance/kit_data.h"
#include "quiver/conformance/probe.h"
#include "quiver/conformance/scenarios.h"

namespace quiver::conformance {
namespace {

using Kind = v1::WorkerMessage::KindCase;

arrow::Result<v1::Init> IdentityInit(Probe& probe) {
  return probe.MakeInit(*Strings(0)->schema(), {{"same", "identity", {0}, arrow::utf8()}});
}

arrow::Result<v1::Init> FailingInit(Probe& probe) {
  // The UDF's name differs from the function's, to check that errors name the UDF.
  return probe.MakeInit(*Numbers(0)->schema(), {{"failing", "raise_error", {0}, nullptr}});
}

arrow::Status PayloadChunks(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  const std::string payload = init.udfs(0).payload();
  const size_t third = payload.size() / 3;
  init.mutable_udfs(0)->set_payload(payload.substr(0, third));
  init.set_payload_chunk_count(2);
  ARROW_RETURN_NOT_OK(probe.SendInit(init));
  for (const auto& part : {payload.substr(third, third), payload.substr(2 * third)}) {
    v1::EngineMessage chunk;
    chunk.mutable_payload_chunk()->set_udf_index(0);
    chunk.mutable_payload_chunk()->set_data(part);
    ARROW_RETURN_NOT_OK(probe.Send(chunk));
  }
  const std::string context = "a payload in Init and two PayloadChunks";
  ARROW_RETURN_NOT_OK(probe.Expect(Kind::kInitResponse, "§2", context).status());
  auto input = Strings(4);
  ARROW_RETURN_NOT_OK(probe.SendData(0, *input));
  auto reply = probe.Next();
  if (!reply.ok() || reply->control || reply->batch->num_rows() != 4) {
    return Violation("§2", context + ": the batch after them was not answered (" +
                               (reply.ok() ? DescribeReply(*reply) : reply.status().message()) +
                               ")");
  }
  return probe.Finish(context).status();
}

arrow::Status ExpectEcho(Probe& probe, uint64_t nonce, const std::string& state) {
  ARROW_RETURN_NOT_OK(probe.SendHeartbeat(nonce));
  ARROW_ASSIGN_OR_RAISE(auto reply,
                        probe.Expect(Kind::kHeartbeat, "§2", "a Heartbeat when " + state));
  if (reply.heartbeat().nonce() != nonce) {
    return Violation("§2", "a Heartbeat when " + state + " was answered with nonce " +
                               std::to_string(reply.heartbeat().nonce()) + ", not " +
                               std::to_string(nonce));
  }
  return arrow::Status::OK();
}

arrow::Status Heartbeats(Probe& probe) {
  ARROW_RETURN_NOT_OK(ExpectEcho(probe, 11, "idle"));
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  ARROW_RETURN_NOT_OK(probe.Open(init, "an execution").status());
  ARROW_RETURN_NOT_OK(ExpectEcho(probe, 12, "running"));
  // With a batch in flight the echo may come before or after its result.
  ARROW_RETURN_NOT_OK(probe.SendData(0, *Strings(5)));
  ARROW_RETURN_NOT_OK(probe.SendHeartbeat(13));
  bool echoed = false;
  bool answered = false;
  while (!(echoed && answered)) {
    ARROW_ASSIGN_OR_RAISE(auto reply, probe.Next());
    if (!reply.control && !answered && reply.sequence == 0 && reply.batch->num_rows() == 5) {
      answered = true;
    } else if (reply.control && reply.control->has_heartbeat() &&
               reply.control->heartbeat().nonce() == 13 && !echoed) {
      echoed = true;
    } else {
      return Violation("§2",
                       "a Heartbeat with a batch in flight: expected the batch's result "
                       "and the echo, got " +
                           DescribeReply(reply));
    }
  }
  ARROW_RETURN_NOT_OK(probe.Finish("an execution with heartbeats").status());
  ARROW_ASSIGN_OR_RAISE(auto failing, FailingInit(probe));
  ARROW_RETURN_NOT_OK(probe.Open(failing, "an execution of raise_error").status());
  ARROW_RETURN_NOT_OK(probe.SendData(0, *Numbers(3)));
  ARROW_RETURN_NOT_OK(
      probe.ExpectError(v1::Error::kUserError, "§2, Errors", "raise_error's batch").status());
  ARROW_RETURN_NOT_OK(ExpectEcho(probe, 14, "failed (after an Error)"));
  ARROW_RETURN_NOT_OK(probe.Cancel("Cancel after the Error").status());
  return ExpectEcho(probe, 15, "idle again");
}

arrow::Status CancelMidStream(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  ARROW_ASSIGN_OR_RAISE(auto schema, probe.Open(init, "an execution"));
  constexpr int kBatches = 16;
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int i = 0; i < kBatches; ++i) batches.push_back(Strings(5000, i));
  BackgroundSender sender(probe, batches, 0, 1);
  auto first = probe.ExpectData(0, 5000, *schema, "the first batch");
  if (!first.ok()) probe.connection().Shutdown();
  ARROW_RETURN_NOT_OK(first.status());
  sender.Cancel();
  // Results answered before the Cancel arrived may still come, in order.
  uint64_t next = 1;
  while (true) {
    auto reply = probe.Next();
    if (!reply.ok()) {
      return Violation("§2",
                       "Cancel mid-stream: expected CancelResponse, but the connection "
                       "failed: " +
                           reply.status().message());
    }
    if (reply->control && reply->control->has_cancel_response()) break;
    if (reply->control || reply->sequence < next || reply->sequence >= kBatches) {
      return Violation("§2",
                       "Cancel mid-stream: expected results of later batches in order, "
                       "then CancelResponse; got " +
                           DescribeReply(*reply));
    }
    next = reply->sequence + 1;
  }
  ARROW_RETURN_NOT_OK(sender.Join());
  return probe.ExpectStillServes("after a Cancel mid-stream");
}

// Runs raise_error on three batches: one Error naming the UDF and the first
// batch, nothing for the others.
arrow::Status FailThreeBatches(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, FailingInit(probe));
  ARROW_RETURN_NOT_OK(probe.Open(init, "an execution of raise_error").status());
  for (int i = 0; i < 3; ++i) ARROW_RETURN_NOT_OK(probe.SendData(40 + i, *Numbers(3)));
  ARROW_ASSIGN_OR_RAISE(auto error, probe.ExpectError(v1::Error::kUserError, "§2, Errors",
                                                      "raise_error over a batch"));
  if (error.user_error().udf_name() != "failing") {
    return Violation("§2, Errors", "UserError.udf_name is '" + error.user_error().udf_name() +
                                       "', not the UDF's name 'failing'");
  }
  if (!error.has_sequence() || error.sequence() != 40) {
    return Violation("§2, Errors", "the Error does not name batch 40 (has_sequence " +
                                       std::to_string(error.has_sequence()) + ", sequence " +
                                       std::to_string(error.sequence()) + ")");
  }
  return arrow::Status::OK();
}

arrow::Status UdfErrorThenFinish(Probe& probe) {
  ARROW_RETURN_NOT_OK(FailThreeBatches(probe));
  // The later batches are ignored: the next message is the FinishResponse.
  ARROW_RETURN_NOT_OK(probe.Finish("Finish after the Error").status());
  return probe.ExpectStillServes("after a UDF error and Finish");
}

arrow::Status UdfErrorThenCancel(Probe& probe) {
  ARROW_RETURN_NOT_OK(FailThreeBatches(probe));
  ARROW_RETURN_NOT_OK(probe.SendCancel());
  ARROW_RETURN_NOT_OK(
      probe.Expect(Kind::kCancelResponse, "§2, Errors", "Cancel after the Error").status());
  return probe.ExpectStillServes("after a UDF error and Cancel");
}

arrow::Status ExpectInitRefused(Probe& probe, const v1::Init& init, const std::string& context,
                                const std::string& named) {
  ARROW_RETURN_NOT_OK(probe.SendInit(init));
  ARROW_ASSIGN_OR_RAISE(auto error, probe.ExpectError(v1::Error::kWorkerError, "§2", context));
  if (error.worker_error().message().find(named) == std::string::npos) {
    return Violation("§2", context + ": the WorkerError does not name '" + named +
                               "': " + error.worker_error().message());
  }
  ARROW_RETURN_NOT_OK(probe.Cancel(context + ", then Cancel").status());
  return probe.ExpectStillServes("after " + context);
}

arrow::Status UnknownFunction(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, probe.MakeInit(*Strings(0)->schema(),
                                                  {{"ghost", "no_such_function", {0}, nullptr}}));
  return ExpectInitRefused(probe, init, "an Init naming a function the worker does not have",
                           "ghost");
}

arrow::Status UnknownPayloadFormat(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto init, IdentityInit(probe));
  init.mutable_udfs(0)->set_payload_format("quiver-conformance/unknown");
  return ExpectInitRefused(probe, init, "an Init with an unknown payload format",
                           "quiver-conformance/unknown");
}

}  // namespace

std::vector<Scenario> ControlScenarios() {
  return {
      {"payload-chunks", "§2", On::kEvery, PayloadChunks},
      {"heartbeat-in-every-state", "§2", On::kEvery, Heartbeats},
      {"cancel-mid-stream", "§2", On::kEvery, CancelMidStream},
      {"udf-error-then-finish", "§2, Errors", On::kEvery, UdfErrorThenFinish},
      {"udf-error-then-cancel", "§2, Errors", On::kEvery, UdfErrorThenCancel},
      {"unknown-udf-is-a-worker-error-at-init", "§2", On::kEvery, UnknownFunction},
      {"unknown-payload-format", "§2", On::kEvery, UnknownPayloadFormat},
  };
}

}  // namespace quiver::conformance
