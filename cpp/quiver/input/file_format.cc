#include "quiver/input/file_format.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace quiver::input {
namespace {

struct NamedFormat {
  std::string_view name;
  FileFormat format;
};

// Extensions and names in one table, so --help, detection and parsing agree.
constexpr std::array<NamedFormat, 7> kExtensions = {{
    {".parquet", FileFormat::kParquet},
    {".pq", FileFormat::kParquet},
    {".csv", FileFormat::kCsv},
    {".arrow", FileFormat::kArrowFile},
    {".feather", FileFormat::kArrowFile},
    {".ipc", FileFormat::kArrowFile},
    {".arrows", FileFormat::kArrowStream},
}};

constexpr std::array<NamedFormat, 9> kNames = {{
    {"parquet", FileFormat::kParquet},
    {"pq", FileFormat::kParquet},
    {"csv", FileFormat::kCsv},
    {"arrow", FileFormat::kArrowFile},
    {"feather", FileFormat::kArrowFile},
    {"ipc", FileFormat::kArrowFile},
    {"arrows", FileFormat::kArrowStream},
    {"arrow-stream", FileFormat::kArrowStream},
    {"noop", FileFormat::kNoop},
}};

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

arrow::Status UnknownExtension(const std::string& path, std::string_view option) {
  return arrow::Status::Invalid(
      "cannot tell the format of '" + path +
      "' from its extension (known: .parquet .pq .csv .arrow .feather .ipc "
      ".arrows); name it with " +
      std::string(option) + (option.back() == '=' ? "" : " ") + "parquet|csv|arrow|arrows" +
      (option == "--output-format" ? "|noop" : ""));
}

}  // namespace

std::string_view FormatName(FileFormat format) {
  switch (format) {
    case FileFormat::kParquet:
      return "parquet";
    case FileFormat::kCsv:
      return "csv";
    case FileFormat::kArrowFile:
      return "arrow";
    case FileFormat::kArrowStream:
      return "arrows";
    case FileFormat::kNoop:
      return "noop";
  }
  return "unknown";
}

std::optional<FileFormat> FormatFromExtension(std::string_view path) {
  const std::string lower = Lower(path);
  for (const auto& [extension, format] : kExtensions) {
    if (EndsWith(lower, extension)) return format;
  }
  return std::nullopt;
}

arrow::Result<FileFormat> ParseFormatName(std::string_view name) {
  const std::string lower = Lower(name);
  for (const auto& [known, format] : kNames) {
    if (lower == known) return format;
  }
  return arrow::Status::Invalid(
      "unknown format '" + std::string(name) +
      "'; the formats are parquet, csv, arrow (IPC file), arrows (IPC stream) "
      "and, for output only, noop");
}

arrow::Result<FileFormat> ResolveInputFormat(const std::string& path,
                                             const std::optional<std::string>& explicit_name,
                                             std::string_view option) {
  FileFormat format;
  if (explicit_name) {
    ARROW_ASSIGN_OR_RAISE(format, ParseFormatName(*explicit_name));
  } else {
    const auto detected = FormatFromExtension(path);
    if (!detected) return UnknownExtension(path, option);
    format = *detected;
  }
  if (format == FileFormat::kNoop) {
    return arrow::Status::Invalid("noop is an output format only; it cannot be read");
  }
  return format;
}

arrow::Result<FileFormat> ResolveOutputFormat(const std::string& path,
                                              const std::optional<std::string>& explicit_name) {
  if (explicit_name) return ParseFormatName(*explicit_name);
  if (path.empty())
    return arrow::Status::Invalid("no output given; add -o OUTPUT (or --output-format noop)");
  const auto detected = FormatFromExtension(path);
  if (!detected) return UnknownExtension(path, "--output-format");
  return *detected;
}

}  // namespace quiver::input
