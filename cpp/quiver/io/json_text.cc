#include "quiver/io/json_text.h"

#include <cstdio>

namespace quiver::io {

void AppendJsonEscaped(char c, std::string* out) {
  switch (c) {
    case '"':
      *out += "\\\"";
      return;
    case '\\':
      *out += "\\\\";
      return;
    case '\n':
      *out += "\\n";
      return;
    case '\r':
      *out += "\\r";
      return;
    case '\t':
      *out += "\\t";
      return;
    default:
      break;
  }
  const auto byte = static_cast<unsigned char>(c);
  if (byte < 0x20 || byte == 0x7F) {
    char escaped[8];
    std::snprintf(escaped, sizeof(escaped), "\\u%04x", byte);
    *out += escaped;
  } else {
    out->push_back(c);
  }
}

std::string JsonQuoted(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) AppendJsonEscaped(c, &out);
  return out + "\"";
}

}  // namespace quiver::io
