// Fuzzes control-message parsing as the engine does it: a WorkerMessage
// parsed from a control frame's metadata (uds) or a gRPC message, then the
// fields the engine reads from it - the result schema of an InitResponse (an
// Arrow IPC schema message), the texts of an Error, the metrics of a
// FinishResponse - and the description it prints for an unexpected message.

#include <cstddef>
#include <cstdint>
#include <string>

#include <arrow/type.h>

#include "fuzz/fuzz_input.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/v1/quiver.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exactly sized copy, as the uds connection receives the metadata.
  auto bytes = quiver::fuzz::ExactCopy(data, size);
  quiver::v1::WorkerMessage message;
  if (!message.ParseFromArray(bytes->data(), static_cast<int>(bytes->size()))) return 0;
  std::string text = message.GetTypeName() + " " + message.ShortDebugString();
  if (message.has_init_response()) {
    auto schema = quiver::protocol::DeserializeSchema(message.init_response().result_schema());
    if (schema.ok()) text += (*schema)->ToString();
  }
  if (message.has_error()) {
    const auto& error = message.error();
    text += error.user_error().udf_name() + error.user_error().message() +
            error.user_error().traceback() + error.worker_error().message() +
            error.protocol_error().message();
  }
  if (message.has_finish_response()) {
    text += std::to_string(message.finish_response().metrics().rows_out());
  }
  volatile size_t sink = text.size();
  (void)sink;
  return 0;
}
