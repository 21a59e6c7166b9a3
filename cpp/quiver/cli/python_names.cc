#include "quiver/cli/python_names.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <regex>
#include <sstream>

#include "quiver/cli/usage_error.h"
#include "quiver/exec/udf_checks.h"

namespace quiver::cli {
namespace {

bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Whether `name` occurs in `text` as a whole word.
bool Mentions(const std::string& text, const std::string& name) {
  for (size_t at = text.find(name); at != std::string::npos; at = text.find(name, at + 1)) {
    const bool starts = at == 0 || !IsNameChar(text[at - 1]);
    const size_t end = at + name.size();
    const bool ends = end == text.size() || !IsNameChar(text[end]);
    if (starts && ends) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> TopLevelNames(const std::string& source) {
  static const std::regex kDefinition(
      R"(^(?:async[ \t]+def|def|class)[ \t]+([A-Za-z_][A-Za-z0-9_]*)|^([A-Za-z_][A-Za-z0-9_]*)[ \t]*(?::[^=\n]*)?=[^=])");
  std::vector<std::string> names;
  std::istringstream lines(source);
  std::string line;
  std::smatch match;
  while (std::getline(lines, line)) {
    if (!std::regex_search(line, match, kDefinition)) continue;
    std::string name = match[1].matched ? match[1].str() : match[2].str();
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return names;
}

arrow::Status CheckPythonFunction(const std::string& path, const std::string& function,
                                  const std::string& option) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return arrow::Status::OK();  // unreadable: the worker says why
  std::ostringstream text;
  text << file.rdbuf();
  const std::string source = text.str();
  const std::string name = function.substr(0, function.find('.'));
  static const std::regex kStarImport(R"((^|\n)[ \t]*from[ \t]+\S+[ \t]+import[ \t]+\*)");
  if (Mentions(source, name) || std::regex_search(source, kStarImport)) {
    return arrow::Status::OK();
  }
  const auto defined = TopLevelNames(source);
  const std::string close = exec::ClosestName(name, defined);
  std::string listed;
  for (const auto& each : defined) listed += (listed.empty() ? "" : ", ") + each;
  return UsageError(option + ": " + path + " has no function '" + name + "'" +
                    (close.empty() ? "" : "; did you mean '" + close + "'?") +
                    "\nits top-level names are: " + (listed.empty() ? "(none)" : listed));
}

}  // namespace quiver::cli
