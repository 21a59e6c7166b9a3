#include "quiver/cli/udf_spec.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include <arrow/compute/expression.h>
#include <arrow/compute/registry.h>
#include <arrow/scalar.h>
#include <arrow/type.h>

#include "quiver/cli/python_names.h"
#include "quiver/cli/usage_error.h"
#include "quiver/exec/udf_checks.h"

namespace quiver::cli {
namespace {

namespace fs = std::filesystem;
namespace cp = arrow::compute;

constexpr char kSpecForm[] =
    "a UDF spec is NAME=PATH.py:FUNCTION(ARG, ...), NAME=module:FUNCTION(ARG, ...) or, for a "
    "runtime declared with --runtime, NAME=RUNTIME:FUNCTION(ARG, ...), "
    "e.g. loud=udfs.py:shout(name)";
constexpr char kArgumentForms[] =
    "an argument is a column (name, `any name`), a literal (1, 2.5, 'text', true, false, "
    "null) or an Arrow compute function call such as utf8_upper(name) or add(value, 1)";

bool IsIdentStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool IsIdentifier(std::string_view text) {
  return !text.empty() && IsIdentStart(text[0]) &&
         std::all_of(text.begin(), text.end(), IsIdentChar);
}

// Returns whether `text` is IDENT ('.' IDENT)*.
bool IsDottedName(std::string_view text) {
  while (true) {
    const size_t dot = text.find('.');
    if (!IsIdentifier(text.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    text.remove_prefix(dot + 1);
  }
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

// A Python file is named by a path: it ends in .py or has a directory part.
bool LooksLikeFilePath(std::string_view target) {
  return target.find('/') != std::string_view::npos ||
         (target.size() > 3 && target.substr(target.size() - 3) == ".py");
}

// Recursive-descent parser over one --udf or --select text. Positions are byte
// offsets into the text; errors print them 1-based with a caret.
class SpecParser {
 public:
  SpecParser(std::string_view text, std::string_view option,
             const std::set<std::string>* runtimes = nullptr)
      : text_(text), option_(option), runtimes_(runtimes) {}

  arrow::Result<exec::UdfCall> ParseSpec(const fs::path& cwd) {
    exec::UdfCall call;
    SkipSpaces();
    ARROW_ASSIGN_OR_RAISE(call.name, ParseName("the result column name", kSpecForm));
    SkipSpaces();
    if (!Consume('=')) {
      return ErrorAt(pos_, "expected '=' after the result column name '" + call.name + "'",
                     kSpecForm);
    }
    SkipSpaces();
    call.runtime = ParseRuntime();
    if (call.runtime != kPythonRuntime) return ParseSymbolCall(std::move(call));
    ARROW_ASSIGN_OR_RAISE(const Reference reference, ParseReference());
    ARROW_ASSIGN_OR_RAISE(call.arguments, ParseArgumentList());
    SkipSpaces();
    if (!AtEnd()) return ErrorAt(pos_, "unexpected text after the closing ')'", kSpecForm);
    // The file is looked for only once the whole spec parsed: a syntax error is
    // the more useful message when there are both.
    ARROW_ASSIGN_OR_RAISE(std::string target,
                          ResolveTarget(reference.target, reference.target_position, cwd));
    if (LooksLikeFilePath(reference.target)) {
      ARROW_RETURN_NOT_OK(CheckPythonFunction(target, reference.function,
                                              std::string(option_) + " '" + call.name + "'"));
    }
    call.payload_format = "python/ref";
    call.payload = target + ":" + reference.function;
    return call;
  }

  arrow::Result<std::vector<std::string>> ParseColumns() {
    std::vector<std::string> columns;
    SkipSpaces();
    if (AtEnd()) return columns;
    while (true) {
      SkipSpaces();
      const size_t start = pos_;
      ARROW_ASSIGN_OR_RAISE(std::string column,
                            ParseName("a column name", "write columns as a,b or `a name`,c"));
      if (std::find(columns.begin(), columns.end(), column) != columns.end()) {
        return ErrorAt(start, "column '" + column + "' is listed twice");
      }
      columns.push_back(std::move(column));
      SkipSpaces();
      if (AtEnd()) return columns;
      if (!Consume(',')) return ErrorAt(pos_, "expected ',' between column names");
    }
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  void SkipSpaces() {
    while (!AtEnd() && IsSpace(text_[pos_])) ++pos_;
  }
  bool Consume(char c) {
    if (Peek() != c || AtEnd()) return false;
    ++pos_;
    return true;
  }

  arrow::Status ErrorAt(size_t pos, const std::string& what, std::string_view hint = {}) const {
    std::string message = std::string(option_) + ": " + what + " at position " +
                          std::to_string(pos + 1) + ":\n  " + std::string(text_) + "\n  " +
                          std::string(pos, ' ') + "^";
    if (!hint.empty()) message += "\n" + std::string(hint);
    return UsageError(std::move(message));
  }

  std::string_view ReadIdentifier() {
    const size_t start = pos_;
    while (!AtEnd() && IsIdentChar(text_[pos_])) ++pos_;
    return text_.substr(start, pos_ - start);
  }

  // Reads the text between the `quote` at pos_ and the next lone one; a doubled
  // quote stands for one. Returns nullopt when the text is not closed.
  std::optional<std::string> ReadDelimited(char quote) {
    ++pos_;
    std::string out;
    while (!AtEnd()) {
      const char c = text_[pos_++];
      if (c != quote) {
        out += c;
      } else if (Peek() == quote && !AtEnd()) {
        out += quote;
        ++pos_;
      } else {
        return out;
      }
    }
    return std::nullopt;
  }

  // Reads `text` after an opening backquote was seen at pos_; `` is one backquote.
  arrow::Result<std::string> ReadQuoted() {
    const size_t start = pos_;
    std::optional<std::string> name = ReadDelimited('`');
    if (!name) {
      return ErrorAt(start, "unterminated `quoted name`",
                     "close it with ` (write `` for a backquote)");
    }
    if (name->empty()) return ErrorAt(start, "empty `quoted name`");
    return std::move(*name);
  }

  // Parses IDENT or QUOTED.
  arrow::Result<std::string> ParseName(const std::string& what, std::string_view hint) {
    if (Peek() == '`') return ReadQuoted();
    if (AtEnd() || !IsIdentStart(Peek())) return ErrorAt(pos_, "expected " + what, hint);
    return std::string(ReadIdentifier());
  }

  // Reads RUNTIME ':' when the text starts with `py:` or a declared runtime's
  // name and a colon; returns the runtime, "py" when none is named.
  std::string ParseRuntime() {
    const size_t start = pos_;
    const std::string name(ReadIdentifier());
    const bool declared =
        name == kPythonRuntime || (runtimes_ != nullptr && runtimes_->count(name));
    if (declared && Peek() == ':') {
      ++pos_;
      SkipSpaces();
      return name;
    }
    pos_ = start;
    return kPythonRuntime;
  }

  // Parses SYMBOL '(' [ARG (',' ARG)*] ')' after a compiled runtime's prefix.
  arrow::Result<exec::UdfCall> ParseSymbolCall(exec::UdfCall call) {
    const size_t start = pos_;
    const size_t paren = text_.find('(', start);
    if (paren == std::string_view::npos) {
      return ErrorAt(text_.size(), "expected '(' and the arguments after the function name",
                     kSpecForm);
    }
    const std::string_view symbol = Trim(text_.substr(start, paren - start));
    if (symbol.empty() || symbol.find_first_of(" \t)`'") != std::string_view::npos) {
      return ErrorAt(start, "expected the name the worker of runtime '" + call.runtime +
                                "' registered its function under, e.g. " + call.runtime +
                                ":hash_name(name)");
    }
    pos_ = paren + 1;
    ARROW_ASSIGN_OR_RAISE(call.arguments, ParseArgumentList());
    SkipSpaces();
    if (!AtEnd()) return ErrorAt(pos_, "unexpected text after the closing ')'", kSpecForm);
    call.payload_format = "symbol";
    call.payload = std::string(symbol);
    return call;
  }

  // Finds the '(' that opens the UDF's arguments: the first one preceded by
  // ':FUNCTION' with a non-empty target before the colon. Paths may hold '(' and ':'.
  std::optional<std::pair<size_t, size_t>> FindColonAndParen(size_t start) const {
    for (size_t paren = start; paren < text_.size(); ++paren) {
      if (text_[paren] != '(') continue;
      size_t end = paren;
      while (end > start && IsSpace(text_[end - 1])) --end;
      size_t begin = end;
      while (begin > start && (IsIdentChar(text_[begin - 1]) || text_[begin - 1] == '.')) --begin;
      if (begin > start + 1 && begin < end && text_[begin - 1] == ':') {
        return std::make_pair(begin - 1, paren);
      }
    }
    return std::nullopt;
  }

  struct Reference {
    std::string target;  // as written: a file path or a module name
    size_t target_position = 0;
    std::string function;
  };

  // Parses REF and the '(' after it.
  arrow::Result<Reference> ParseReference() {
    const size_t start = pos_;
    const auto found = FindColonAndParen(start);
    if (!found) {
      const std::string_view rest = text_.substr(start);
      if (rest.find(':') == std::string_view::npos) {
        return ErrorAt(start, "expected PATH.py:FUNCTION or module:FUNCTION", kSpecForm);
      }
      if (rest.find('(') == std::string_view::npos) {
        return ErrorAt(text_.size(), "expected '(' and the arguments after the function name",
                       kSpecForm);
      }
      return ErrorAt(start, "expected PATH.py:FUNCTION( or module:FUNCTION(", kSpecForm);
    }
    const auto [colon, paren] = *found;
    const std::string_view function = Trim(text_.substr(colon + 1, paren - colon - 1));
    if (!IsDottedName(function)) {
      return ErrorAt(colon + 1, "'" + std::string(function) + "' is not a Python function name");
    }
    pos_ = paren + 1;
    return Reference{std::string(Trim(text_.substr(start, colon - start))), start,
                     std::string(function)};
  }

  // Returns the name of the file beside `path` closest to its name, or "".
  static std::string ClosestFile(const fs::path& path) {
    std::error_code error;
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path.parent_path(), error)) {
      if (entry.is_regular_file(error)) names.push_back(entry.path().filename().string());
    }
    return exec::ClosestName(path.filename().string(), names);
  }

  // Makes a file target absolute and checks it exists; checks a module name's form.
  arrow::Result<std::string> ResolveTarget(std::string_view target, size_t at,
                                           const fs::path& cwd) const {
    if (!LooksLikeFilePath(target)) {
      if (IsDottedName(target)) return std::string(target);
      return ErrorAt(at,
                     "'" + std::string(target) +
                         "' is neither a Python file (PATH.py) nor a module name (package.module)",
                     kSpecForm);
    }
    fs::path path{std::string(target)};
    const char* home = std::getenv("HOME");
    if (target.substr(0, 2) == "~/" && home != nullptr) {
      path = fs::path(home) / std::string(target.substr(2));
    }
    if (path.is_relative()) path = cwd / path;
    path = path.lexically_normal();
    std::error_code error;
    const auto status = fs::status(path, error);
    if (!fs::exists(status)) {
      const std::string close = ClosestFile(path);
      return UsageError(std::string(option_) + ": UDF file " + path.string() +
                        " does not exist (relative paths are taken from the current directory, " +
                        cwd.string() + ")" +
                        (close.empty() ? "" : "; did you mean '" + close + "'?"));
    }
    if (!fs::is_regular_file(status)) {
      return UsageError(std::string(option_) + ": UDF file " + path.string() + " is not a file");
    }
    return path.string();
  }

  // Parses '(' already consumed, then [ARG (',' ARG)*] ')'.
  arrow::Result<std::vector<cp::Expression>> ParseArgumentList() {
    std::vector<cp::Expression> arguments;
    SkipSpaces();
    if (Consume(')')) return arguments;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(auto argument, ParseArgument());
      arguments.push_back(std::move(argument));
      SkipSpaces();
      if (Consume(')')) return arguments;
      if (!Consume(',')) {
        return ErrorAt(pos_,
                       AtEnd() ? "expected ',' or ')'" : "expected ',' or ')' after an argument");
      }
    }
  }

  arrow::Result<cp::Expression> ParseArgument() {
    SkipSpaces();
    const char c = Peek();
    if (AtEnd() || c == ')' || c == ',')
      return ErrorAt(pos_, "expected an argument", kArgumentForms);
    if (c == '`') {
      ARROW_ASSIGN_OR_RAISE(std::string column, ReadQuoted());
      return cp::field_ref(std::move(column));
    }
    if (c == '\'') return ParseString();
    if (IsDigit(c) || ((c == '-' || c == '+') && IsDigit(Peek(1)))) return ParseNumber();
    if (!IsIdentStart(c)) {
      return ErrorAt(pos_, std::string("unexpected character '") + c + "'", kArgumentForms);
    }
    const size_t start = pos_;
    const std::string name(ReadIdentifier());
    const size_t after_name = pos_;
    SkipSpaces();
    if (Consume('(')) return ParseCall(name, start);
    pos_ = after_name;
    if (name == "true") return cp::literal(std::make_shared<arrow::BooleanScalar>(true));
    if (name == "false") return cp::literal(std::make_shared<arrow::BooleanScalar>(false));
    if (name == "null") return cp::literal(arrow::MakeNullScalar(arrow::null()));
    return cp::field_ref(name);
  }

  arrow::Result<cp::Expression> ParseCall(const std::string& function, size_t at) {
    auto registry = cp::GetFunctionRegistry();
    if (!registry->GetFunction(function).ok()) {
      const std::string close = exec::ClosestName(function, registry->GetFunctionNames());
      std::string hint = close.empty() ? "" : "did you mean " + close + "? ";
      hint += "Functions: https://arrow.apache.org/docs/cpp/compute.html";
      return ErrorAt(at, "unknown Arrow compute function '" + function + "'", hint);
    }
    ARROW_ASSIGN_OR_RAISE(auto arguments, ParseArgumentList());
    return cp::call(function, std::move(arguments));
  }

  arrow::Result<cp::Expression> ParseString() {
    const size_t start = pos_;
    std::optional<std::string> text = ReadDelimited('\'');
    if (!text) {
      return ErrorAt(start, "unterminated string literal",
                     "close it with ' (write '' for a quote)");
    }
    return cp::literal(std::make_shared<arrow::StringScalar>(std::move(*text)));
  }

  arrow::Result<cp::Expression> ParseNumber() {
    const size_t start = pos_;
    if (Peek() == '-' || Peek() == '+') ++pos_;
    bool is_float = false;
    while (IsDigit(Peek())) ++pos_;
    if (Peek() == '.' && IsDigit(Peek(1))) {
      is_float = true;
      ++pos_;
      while (IsDigit(Peek())) ++pos_;
    }
    if ((Peek() == 'e' || Peek() == 'E') &&
        (IsDigit(Peek(1)) || ((Peek(1) == '-' || Peek(1) == '+') && IsDigit(Peek(2))))) {
      is_float = true;
      pos_ += 2;
      while (IsDigit(Peek())) ++pos_;
    }
    if (IsIdentChar(Peek()) || Peek() == '.') {
      return ErrorAt(pos_, "unexpected character '" + std::string(1, Peek()) + "' in a number");
    }
    std::string_view digits = text_.substr(start, pos_ - start);
    if (digits.front() == '+') digits.remove_prefix(1);
    if (is_float) {
      // strtod, not from_chars: it is locale-independent enough for "C" digits and
      // accepts every form the scanner above lets through.
      const std::string copy(digits);
      return cp::literal(std::make_shared<arrow::DoubleScalar>(std::strtod(copy.c_str(), nullptr)));
    }
    int64_t value = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (error != std::errc() || end != digits.data() + digits.size()) {
      return ErrorAt(start, "integer literal out of the int64 range",
                     "write it as a float (e.g. 1e20) if that is what you mean");
    }
    return cp::literal(std::make_shared<arrow::Int64Scalar>(value));
  }

  std::string_view text_;
  std::string_view option_;
  const std::set<std::string>* runtimes_;
  size_t pos_ = 0;
};

}  // namespace

arrow::Result<exec::UdfCall> ParseUdfSpec(std::string_view spec, const fs::path& cwd) {
  return SpecParser(spec, "--udf").ParseSpec(cwd);
}

arrow::Result<exec::UdfCall> ParseUdfSpec(std::string_view spec, const fs::path& cwd,
                                          const std::set<std::string>& runtimes) {
  return SpecParser(spec, "--udf", &runtimes).ParseSpec(cwd);
}

arrow::Result<std::vector<std::string>> ParseColumnList(std::string_view text) {
  return SpecParser(text, "--select").ParseColumns();
}

}  // namespace quiver::cli
