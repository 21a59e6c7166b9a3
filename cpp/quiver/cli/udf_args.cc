#include "quiver/cli/udf_args.h"

#include <cstdio>
#include <map>
#include <set>

#include "quiver/cli/udf_spec.h"
#include "quiver/cli/usage_error.h"
#include "quiver/io/json_text.h"

namespace quiver::cli {
namespace {

constexpr char kUdfArgForm[] =
    "a constructor argument is NAME.KEY=VALUE, e.g. --udf-arg 'label.threshold=0.5' for "
    "--udf 'label=models.py:Classifier(text)'";

bool IsIdentifier(std::string_view text) {
  if (text.empty()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Consumes one or more digits at `i`; returns whether there was one.
bool Digits(std::string_view text, size_t* i) {
  const size_t start = *i;
  while (*i < text.size() && IsDigit(text[*i])) ++*i;
  return *i > start;
}

// A JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsJsonNumber(std::string_view text) {
  size_t i = 0;
  if (i < text.size() && text[i] == '-') ++i;
  if (i < text.size() && text[i] == '0') {
    ++i;
  } else if (!Digits(text, &i)) {
    return false;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (!Digits(text, &i)) return false;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (!Digits(text, &i)) return false;
  }
  return i == text.size();
}

}  // namespace

std::string UdfArgJson(std::string_view value) {
  if (value == "true" || value == "false" || value == "null" || IsJsonNumber(value)) {
    return std::string(value);
  }
  if (!value.empty() && (value.front() == '"' || value.front() == '[' || value.front() == '{')) {
    return std::string(value);
  }
  return io::JsonQuoted(value);
}

arrow::Status ApplyUdfArgs(const std::vector<std::string>& texts,
                           std::vector<exec::UdfCall>* calls) {
  // Per UDF name: the keys in the order given, each with its JSON value.
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> arguments;
  for (const auto& text : texts) {
    const size_t equals = text.find('=');
    const size_t dot = text.rfind('.', equals);
    if (equals == std::string::npos || dot == std::string::npos) {
      return UsageError("--udf-arg '" + text + "': expected NAME.KEY=VALUE\n" + kUdfArgForm);
    }
    const std::string name = text.substr(0, dot);
    const std::string key = text.substr(dot + 1, equals - dot - 1);
    if (!IsIdentifier(key)) {
      return UsageError("--udf-arg '" + text + "': '" + key +
                        "' is not a keyword argument name (letters, digits, _)\n" + kUdfArgForm);
    }
    auto& keys = arguments[name];
    for (const auto& [existing, unused] : keys) {
      if (existing == key) {
        return UsageError("--udf-arg: " + name + "." + key + " is given twice");
      }
    }
    keys.emplace_back(key, UdfArgJson(std::string_view(text).substr(equals + 1)));
  }
  for (const auto& [name, keys] : arguments) {
    exec::UdfCall* call = nullptr;
    std::string known;
    for (auto& candidate : *calls) {
      if (candidate.name == name) call = &candidate;
      known += (known.empty() ? "" : ", ") + candidate.name;
    }
    if (call == nullptr) {
      return UsageError("--udf-arg names UDF '" + name + "', but no --udf has that name (" + known +
                        ")");
    }
    if (call->runtime != kPythonRuntime) {
      return UsageError("--udf-arg '" + name + "." + keys.front().first + "': UDF '" + name +
                        "' runs on runtime '" + call->runtime +
                        "'; constructor arguments are for Python class UDFs");
    }
    std::string json = "{";
    for (const auto& [key, value] : keys) {
      json += (json.size() > 1 ? ", " : "") + io::JsonQuoted(key) + ": " + value;
    }
    call->constructor_args = json + "}";
  }
  return arrow::Status::OK();
}

}  // namespace quiver::cli
