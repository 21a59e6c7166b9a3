#include "quiver/cli/failure_message.h"

#include <cstdint>
#include <cstdio>

#include "quiver/protocol/udf_error.h"

namespace quiver::cli {
namespace {

// Length of the well-formed UTF-8 sequence that starts at `text[at]`, or 0 when
// there is none (a stray byte, a truncated or overlong sequence, a surrogate).
size_t Utf8SequenceLength(std::string_view text, size_t at) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) return 1;
  size_t length = 0;
  uint32_t smallest = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    smallest = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    smallest = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    smallest = 0x10000;
  } else {
    return 0;
  }
  if (at + length > text.size()) return 0;
  uint32_t code_point = lead & (0x7F >> length);
  for (size_t k = 1; k < length; ++k) {
    if ((byte(at + k) & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(at + k) & 0x3F);
  }
  const bool surrogate = code_point >= 0xD800 && code_point <= 0xDFFF;
  if (code_point < smallest || code_point > 0x10FFFF || surrogate) return 0;
  return length;
}

// What the user can do about a failure of `kind`.
const char* Advice(UdfErrorKind kind) {
  switch (kind) {
    case UdfErrorKind::kUserError:
      return "fix the UDF or its input; the traceback above shows where it raised";
    case UdfErrorKind::kWorkerError:
      return "the worker could not load or run the UDF as declared (a function it does not "
             "have, a wrong result type or length); fix the UDF spec or the UDF";
    case UdfErrorKind::kWrongRowCount:
    case UdfErrorKind::kWrongResultSchema:
      return "the UDF's result does not fit its declaration; fix the UDF";
    case UdfErrorKind::kTimeout:
      return "raise --batch-timeout if the UDF is only slow, or lower --batch-rows";
    case UdfErrorKind::kWorkerLost:
      return "the worker process ended; its output above may say why (memory, a crash)";
    case UdfErrorKind::kProtocolViolation:
      return "the worker does not follow the quiver.v1 protocol; check its version";
    case UdfErrorKind::kBatchTooLarge:
      return "lower --batch-rows so that each batch fits in one message";
    case UdfErrorKind::kOverMemoryCap:
      return "raise --worker-memory, or lower --batch-rows if memory grows with the batch";
  }
  return "";
}

}  // namespace

std::string EscapeInvalidUtf8(std::string_view text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (size_t at = 0; at < text.size();) {
    const size_t length = Utf8SequenceLength(text, at);
    if (length > 0) {
      escaped.append(text.substr(at, length));
      at += length;
      continue;
    }
    char hex[5];
    std::snprintf(hex, sizeof(hex), "\\x%02x", static_cast<unsigned char>(text[at]));
    escaped += hex;
    ++at;
  }
  return escaped;
}

std::string FailureMessage(const arrow::Status& status) {
  // Worker-supplied names and messages may hold any bytes; a terminal or a log
  // reader must get valid UTF-8.
  std::string text = EscapeInvalidUtf8(status.message());
  const UdfErrorDetail* detail = UdfErrorDetailOf(status);
  if (detail == nullptr) return text;
  return text + "\n(" + UdfErrorKindName(detail->kind) + ": " + Advice(detail->kind) + ")";
}

}  // namespace quiver::cli
