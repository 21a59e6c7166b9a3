#include "quiver/cli/file_format.h"

#include <utility>

#include "quiver/cli/usage_error.h"

namespace quiver::cli {
namespace {

// A format the command line names wrongly is a mistake in the command line.
arrow::Result<FileFormat> AsUsageError(arrow::Result<FileFormat> format) {
  if (!format.ok()) return UsageError(format.status().message());
  return format;
}

}  // namespace

arrow::Result<FileFormat> ParseFormatName(std::string_view name) {
  return AsUsageError(input::ParseFormatName(name));
}

arrow::Result<FileFormat> ResolveInputFormat(const std::string& path,
                                             const std::optional<std::string>& explicit_name) {
  return AsUsageError(input::ResolveInputFormat(path, explicit_name, "--input-format"));
}

arrow::Result<FileFormat> ResolveOutputFormat(const std::string& path,
                                              const std::optional<std::string>& explicit_name) {
  return AsUsageError(input::ResolveOutputFormat(path, explicit_name));
}

}  // namespace quiver::cli
