#include "quiver/cli/udf_options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <utility>

#include "quiver/cli/udf_args.h"
#include "quiver/cli/udf_spec.h"
#include "quiver/cli/usage_error.h"

namespace quiver::cli {
namespace {

constexpr char kUdfOptionForm[] =
    "a UDF option is NAME.KEY=VALUE with KEY one of on_error (raise, null), max_concurrency "
    "(an integer, 1 or more), timeout (seconds) and retries (attempts in all, or a JSON object "
    "of quiver.Retry fields), e.g. --udf-option 'geo.on_error=null'";

// Parses all of `text` as a finite number; false when it is not one.
bool ParseNumber(const std::string& text, double* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *out = std::strtod(text.c_str(), &end);
  return errno == 0 && end == text.c_str() + text.size() && std::isfinite(*out);
}

// Returns `text` as a JSON integer when it is digits only, 1 to 999,999,999.
std::optional<std::string> PositiveInteger(const std::string& text) {
  if (text.empty() || text.size() > 9 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const long value = std::strtol(text.c_str(), nullptr, 10);
  if (value < 1) return std::nullopt;
  return std::to_string(value);  // without leading zeros, which JSON does not allow
}

// Returns the JSON for VALUE of KEY, or a usage error saying what KEY takes.
arrow::Result<std::string> OptionJson(const std::string& text, const std::string& key,
                                      const std::string& value) {
  const std::string where = "--udf-option '" + text + "': ";
  if (key == "on_error") {
    if (value == "raise" || value == "null") return "\"" + value + "\"";
    return UsageError(where + "on_error takes raise or null, not '" + value + "'");
  }
  if (key == "max_concurrency") {
    if (auto number = PositiveInteger(value)) return *number;
    return UsageError(where +
                      "max_concurrency takes an integer of 1 or more (the calls a "
                      "worker runs at once), not '" +
                      value + "'");
  }
  if (key == "timeout") {
    double seconds = 0;
    const std::string json = UdfArgJson(value);  // a JSON number as written, else a string
    if (ParseNumber(value, &seconds) && seconds > 0 && json.front() != '"') return json;
    return UsageError(where + "timeout takes a number of seconds above 0, not '" + value + "'");
  }
  if (key == "retries") {
    if (auto number = PositiveInteger(value)) return *number;
    if (!value.empty() && value.front() == '{') return value;
    return UsageError(where +
                      "retries takes a number of attempts (1 or more) or a JSON object "
                      "such as {\"max_attempts\": 5, \"initial\": 0.2}, not '" +
                      value + "'");
  }
  return UsageError(where + "'" + key + "' is not a UDF option\n" + kUdfOptionForm);
}

exec::UdfCall* FindCall(const std::string& name, std::vector<exec::UdfCall>* calls,
                        std::string* known) {
  exec::UdfCall* found = nullptr;
  for (auto& candidate : *calls) {
    if (candidate.name == name) found = &candidate;
    *known += (known->empty() ? "" : ", ") + candidate.name;
  }
  return found;
}

}  // namespace

arrow::Status ApplyUdfOptions(const std::vector<std::string>& texts,
                              std::vector<exec::UdfCall>* calls) {
  // Per UDF name: the keys in the order given, each with its JSON value.
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> options;
  for (const auto& text : texts) {
    const size_t equals = text.find('=');
    const size_t dot = text.rfind('.', equals);
    if (equals == std::string::npos || dot == std::string::npos || dot == 0) {
      return UsageError("--udf-option '" + text + "': expected NAME.KEY=VALUE\n" + kUdfOptionForm);
    }
    const std::string name = text.substr(0, dot);
    const std::string key = text.substr(dot + 1, equals - dot - 1);
    ARROW_ASSIGN_OR_RAISE(std::string json, OptionJson(text, key, text.substr(equals + 1)));
    auto& keys = options[name];
    for (const auto& [existing, unused] : keys) {
      if (existing == key)
        return UsageError("--udf-option: " + name + "." + key + " is given twice");
    }
    keys.emplace_back(key, std::move(json));
  }
  for (const auto& [name, keys] : options) {
    std::string known;
    exec::UdfCall* call = FindCall(name, calls, &known);
    if (call == nullptr) {
      return UsageError("--udf-option names UDF '" + name + "', but no --udf has that name (" +
                        known + ")");
    }
    if (call->runtime != kPythonRuntime) {
      return UsageError("--udf-option '" + name + "." + keys.front().first + "': UDF '" + name +
                        "' runs on runtime '" + call->runtime +
                        "'; UDF options are for Python UDFs");
    }
    std::string json = "{";
    for (const auto& [key, value] : keys) {
      json += (json.size() > 1 ? ", " : "") + ("\"" + key + "\": ") + value;
    }
    call->call_options = json + "}";
  }
  return arrow::Status::OK();
}

}  // namespace quiver::cli
