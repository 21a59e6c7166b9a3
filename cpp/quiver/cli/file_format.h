#pragma once

// The file formats of the quiver command's --input-format and --output-format:
// quiver/input/file_format.h, its errors made usage errors (exit 2).

#include <optional>
#include <string>
#include <string_view>

#include <arrow/result.h>

#include "quiver/input/file_format.h"

namespace quiver::cli {

using input::FileFormat;
using input::FormatFromExtension;
using input::FormatName;

/// Parses a --input-format/--output-format value (a usage error when unknown).
arrow::Result<FileFormat> ParseFormatName(std::string_view name);

/// Returns the input format: `explicit_name` when given, else the path's extension.
arrow::Result<FileFormat> ResolveInputFormat(const std::string& path,
                                             const std::optional<std::string>& explicit_name);

/// Returns the output format: `explicit_name` when given, else the path's extension.
arrow::Result<FileFormat> ResolveOutputFormat(const std::string& path,
                                              const std::optional<std::string>& explicit_name);

}  // namespace quiver::cli
