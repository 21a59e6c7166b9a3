#pragma once

// The file formats quiver reads and writes, and how a path or a name picks one.

#include <optional>
#include <string>
#include <string_view>

#include <arrow/result.h>

namespace quiver::input {

enum class FileFormat {
  kParquet,
  kCsv,
  /// Arrow IPC file format ("ARROW1" magic; .arrow, .feather, .ipc). As an input
  /// format it means "Arrow IPC", file or stream, told apart by the magic.
  kArrowFile,
  /// Arrow IPC stream format (.arrows).
  kArrowStream,
  /// Discards the output (to measure the UDFs alone); not an input format.
  kNoop,
};

/// Returns the format's canonical name, as --input-format/--output-format accept it.
std::string_view FormatName(FileFormat format);

/// Returns the format a path's extension names (case-insensitive), or nullopt.
std::optional<FileFormat> FormatFromExtension(std::string_view path);

/// Parses a format name (Invalid when unknown).
arrow::Result<FileFormat> ParseFormatName(std::string_view name);

/// Returns the input format: `explicit_name` when given, else the path's
/// extension. `option` is what names a format where the caller takes it
/// ("--input-format" for the quiver command), quoted in the errors (Invalid).
arrow::Result<FileFormat> ResolveInputFormat(const std::string& path,
                                             const std::optional<std::string>& explicit_name,
                                             std::string_view option = "--input-format");

/// Returns the output format: `explicit_name` when given, else the path's extension.
arrow::Result<FileFormat> ResolveOutputFormat(const std::string& path,
                                              const std::optional<std::string>& explicit_name);

}  // namespace quiver::input
