#pragma once

// JSON string literals for the few JSON documents quiver writes by hand (the
// --metrics file, worker log lines, OTLP/HTTP bodies, Ray job arguments): one
// escaping rule for all of them.

#include <string>
#include <string_view>

namespace quiver::io {

/// Appends the single byte `c` to `out` as it must stand inside a JSON string:
/// `"` and `\` escaped, \n \r \t short, other control bytes as \u00XX, every
/// other byte (UTF-8 included) as it is.
void AppendJsonEscaped(char c, std::string* out);

/// Returns `text` as a quoted JSON string (bytes escaped as AppendJsonEscaped
/// does; the caller vouches for UTF-8).
std::string JsonQuoted(std::string_view text);

}  // namespace quiver::io
