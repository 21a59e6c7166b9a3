#include "quiver/cli/udf_spec.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/compute/expression.h>
#include <arrow/compute/initialize.h>
#include <arrow/scalar.h>
#include <arrow/type.h>

#include "quiver/cli/usage_error.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::cli {
namespace {

namespace fs = std::filesystem;
namespace cp = arrow::compute;

// Each test gets a directory holding udfs.py and f.py, used as the current directory.
class UdfSpecTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_OK(cp::Initialize()); }

  void SetUp() override {
    cwd_ = fs::temp_directory_path() /
           ("quiver_udf_spec_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(cwd_ / "sub");
    // The functions the specs name: the command refuses a name a file cannot define.
    std::ofstream(cwd_ / "udfs.py") << "def shout(x):\n    return x\n\nclean = shout\n";
    std::ofstream(cwd_ / "f.py") << "def g(*args):\n    return args[0]\n";
    std::ofstream(cwd_ / "sub" / "more.py") << "class Outer:\n    def inner(self, x): ...\n";
  }

  void TearDown() override { fs::remove_all(cwd_); }

  arrow::Result<exec::UdfCall> Parse(const std::string& spec) { return ParseUdfSpec(spec, cwd_); }

  // Returns the error message of a spec that must not parse.
  std::string ErrorOf(const std::string& spec) {
    auto result = Parse(spec);
    EXPECT_FALSE(result.ok()) << spec;
    return result.status().message();
  }

  fs::path cwd_;
};

TEST_F(UdfSpecTest, ParsesAFileReferenceWithColumnArguments) {
  ASSERT_OK_AND_ASSIGN(auto call, Parse("loud=udfs.py:shout(name, value)"));
  EXPECT_EQ(call.name, "loud");
  EXPECT_EQ(call.payload_format, "python/ref");
  EXPECT_EQ(call.payload, (cwd_ / "udfs.py").string() + ":shout");
  ASSERT_EQ(call.arguments.size(), 2u);
  EXPECT_EQ(call.arguments[0], cp::field_ref("name"));
  EXPECT_EQ(call.arguments[1], cp::field_ref("value"));
  EXPECT_EQ(call.return_type, nullptr);
}

TEST_F(UdfSpecTest, MakesRelativeAndDottedPathsAbsolute) {
  ASSERT_OK_AND_ASSIGN(auto call, Parse("x=./sub/../sub/more.py:Outer.inner(id)"));
  EXPECT_EQ(call.payload, (cwd_ / "sub" / "more.py").string() + ":Outer.inner");
  const std::string absolute = (cwd_ / "f.py").string();
  ASSERT_OK_AND_ASSIGN(call, Parse("x=" + absolute + ":g(id)"));
  EXPECT_EQ(call.payload, absolute + ":g");
}

TEST_F(UdfSpecTest, KeepsModuleReferencesAsWritten) {
  ASSERT_OK_AND_ASSIGN(auto call, Parse("x=my_pkg.udfs:clean(name)"));
  EXPECT_EQ(call.payload, "my_pkg.udfs:clean");
}

TEST_F(UdfSpecTest, ParsesLiterals) {
  ASSERT_OK_AND_ASSIGN(auto call,
                       Parse("x=f.py:g(1, -7, 2.5, 1e3, 'it''s', true, false, null, '')"));
  ASSERT_EQ(call.arguments.size(), 9u);
  EXPECT_EQ(call.arguments[0], cp::literal(std::make_shared<arrow::Int64Scalar>(1)));
  EXPECT_EQ(call.arguments[1], cp::literal(std::make_shared<arrow::Int64Scalar>(-7)));
  EXPECT_EQ(call.arguments[2], cp::literal(std::make_shared<arrow::DoubleScalar>(2.5)));
  EXPECT_EQ(call.arguments[3], cp::literal(std::make_shared<arrow::DoubleScalar>(1000.0)));
  EXPECT_EQ(call.arguments[4], cp::literal(std::make_shared<arrow::StringScalar>("it's")));
  EXPECT_EQ(call.arguments[5], cp::literal(std::make_shared<arrow::BooleanScalar>(true)));
  EXPECT_EQ(call.arguments[6], cp::literal(std::make_shared<arrow::BooleanScalar>(false)));
  EXPECT_EQ(call.arguments[7], cp::literal(arrow::MakeNullScalar(arrow::null())));
  EXPECT_EQ(call.arguments[8], cp::literal(std::make_shared<arrow::StringScalar>("")));
}

TEST_F(UdfSpecTest, ParsesNestedComputeCalls) {
  ASSERT_OK_AND_ASSIGN(auto call, Parse("x = f.py:g( utf8_upper(name) , add(value, 1), "
                                        "binary_join_element_wise(name, utf8_lower(name), '-') )"));
  ASSERT_EQ(call.arguments.size(), 3u);
  EXPECT_EQ(call.arguments[0], cp::call("utf8_upper", {cp::field_ref("name")}));
  EXPECT_EQ(call.arguments[1],
            cp::call("add", {cp::field_ref("value"),
                             cp::literal(std::make_shared<arrow::Int64Scalar>(1))}));
  EXPECT_EQ(call.arguments[2],
            cp::call("binary_join_element_wise",
                     {cp::field_ref("name"), cp::call("utf8_lower", {cp::field_ref("name")}),
                      cp::literal(std::make_shared<arrow::StringScalar>("-"))}));
}

TEST_F(UdfSpecTest, ParsesBackquotedNames) {
  ASSERT_OK_AND_ASSIGN(auto call, Parse("`net price`=f.py:g(`unit price`, `a``b`, `true`)"));
  EXPECT_EQ(call.name, "net price");
  EXPECT_EQ(call.arguments[0], cp::field_ref("unit price"));
  EXPECT_EQ(call.arguments[1], cp::field_ref("a`b"));
  EXPECT_EQ(call.arguments[2], cp::field_ref("true"));
}

TEST_F(UdfSpecTest, AcceptsNoArguments) {
  ASSERT_OK_AND_ASSIGN(auto call, Parse("x=f.py:g()"));
  EXPECT_TRUE(call.arguments.empty());
}

TEST_F(UdfSpecTest, PointsAtAMissingArgument) {
  const std::string message = ErrorOf("x=f.py:g(a,");
  EXPECT_NE(message.find("expected an argument at position 12:\n  x=f.py:g(a,\n"
                         "             ^"),
            std::string::npos)
      << message;
  EXPECT_TRUE(IsUsageError(Parse("x=f.py:g(a,").status()));
}

TEST_F(UdfSpecTest, ReportsSyntaxErrorsBeforeAMissingFile) {
  const std::string message = ErrorOf("x=missing.py:g(a,");
  EXPECT_NE(message.find("expected an argument"), std::string::npos) << message;
}

struct BadSpec {
  std::string spec;
  std::string expected;  // a part of the message
  int position;          // 1-based, 0 when the message names none
};

TEST_F(UdfSpecTest, ExplainsEachSyntaxError) {
  const std::vector<BadSpec> cases = {
      {"f.py:g(a)", "expected '=' after the result column name 'f'", 2},
      {"=f.py:g(a)", "expected the result column name", 1},
      {"x=f.py:g", "expected '(' and the arguments after the function name", 9},
      {"x=f.py(a)", "expected PATH.py:FUNCTION or module:FUNCTION", 3},
      {"x=f.py:g(a", "expected ',' or ')'", 11},
      {"x=f.py:g(a b)", "expected ',' or ')' after an argument", 12},
      {"x=f.py:g(a))", "unexpected text after the closing ')'", 12},
      {"x=f.py:g('abc)", "unterminated string literal", 10},
      {"x=f.py:g(`abc)", "unterminated `quoted name`", 10},
      {"x=f.py:g(,a)", "expected an argument", 10},
      {"x=f.py:g(a, $)", "unexpected character '$'", 13},
      {"x=f.py:g(12abc)", "unexpected character 'a' in a number", 12},
      {"x=f.py:g(99999999999999999999)", "integer literal out of the int64 range", 10},
      {"x=f.py:g(utf8_uper(name))", "unknown Arrow compute function 'utf8_uper'", 10},
      {"x=not a module:g(a)", "is neither a Python file (PATH.py) nor a module name", 3},
      {"x=f.py:g..h(a)", "'g..h' is not a Python function name", 8},
  };
  for (const auto& bad : cases) {
    const std::string message = ErrorOf(bad.spec);
    EXPECT_NE(message.find(bad.expected), std::string::npos) << bad.spec << "\n" << message;
    const std::string where = "at position " + std::to_string(bad.position) + ":\n  " + bad.spec +
                              "\n  " + std::string(bad.position - 1, ' ') + "^";
    EXPECT_NE(message.find(where), std::string::npos) << bad.spec << "\n" << message;
  }
}

TEST_F(UdfSpecTest, SuggestsTheClosestComputeFunction) {
  const std::string message = ErrorOf("x=f.py:g(utf8_uper(name))");
  EXPECT_NE(message.find("did you mean utf8_upper?"), std::string::npos) << message;
}

TEST_F(UdfSpecTest, AMissingUdfFileIsAUsageErrorSuggestingTheClosestFile) {
  auto result = Parse("x=nope/missing.py:g(a)");
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(IsUsageError(result.status()));
  EXPECT_NE(
      result.status().message().find((cwd_ / "nope" / "missing.py").string() + " does not exist"),
      std::string::npos)
      << result.status().message();
  EXPECT_NE(ErrorOf("x=sub/:g(a)").find("is not a file"), std::string::npos);
  EXPECT_NE(ErrorOf("x=udf.py:shout(a)").find("did you mean 'udfs.py'?"), std::string::npos);
}

TEST(ParseColumnList, SplitsOnCommas) {
  ASSERT_OK_AND_ASSIGN(auto columns, ParseColumnList(" id , name,`a, b`"));
  EXPECT_EQ(columns, (std::vector<std::string>{"id", "name", "a, b"}));
  ASSERT_OK_AND_ASSIGN(columns, ParseColumnList(""));
  EXPECT_TRUE(columns.empty());
  ASSERT_OK_AND_ASSIGN(columns, ParseColumnList("  "));
  EXPECT_TRUE(columns.empty());
}

TEST(ParseColumnList, RejectsBadLists) {
  EXPECT_NE(ParseColumnList("a,,b").status().message().find("expected a column name at position 3"),
            std::string::npos);
  EXPECT_NE(ParseColumnList("a,b,a").status().message().find("column 'a' is listed twice"),
            std::string::npos);
  EXPECT_NE(ParseColumnList("a b").status().message().find("expected ',' between column names"),
            std::string::npos);
  EXPECT_TRUE(IsUsageError(ParseColumnList("a,").status()));
}

TEST_F(UdfSpecTest, ADeclaredRuntimeNamesACompiledFunction) {
  const std::set<std::string> runtimes = {"rs", "cc"};
  ASSERT_OK_AND_ASSIGN(auto call, ParseUdfSpec("h = rs:hash_name(name, 3)", cwd_, runtimes));
  EXPECT_EQ(call.runtime, "rs");
  EXPECT_EQ(call.payload_format, "symbol");
  EXPECT_EQ(call.payload, "hash_name");
  ASSERT_EQ(call.arguments.size(), 2u);
  EXPECT_EQ(call.arguments[0], cp::field_ref("name"));
}

TEST_F(UdfSpecTest, PythonIsTheDefaultRuntimeAndCanBeNamed) {
  const std::set<std::string> runtimes = {"rs"};
  ASSERT_OK_AND_ASSIGN(auto plain, ParseUdfSpec("x=udfs.py:clean(city)", cwd_, runtimes));
  ASSERT_OK_AND_ASSIGN(auto named, ParseUdfSpec("x=py:udfs.py:clean(city)", cwd_, runtimes));
  for (const auto& call : {plain, named}) {
    EXPECT_EQ(call.runtime, "py");
    EXPECT_EQ(call.payload_format, "python/ref");
    EXPECT_EQ(call.payload, (cwd_ / "udfs.py").string() + ":clean");
  }
  // An undeclared prefix is a Python module; py: reaches a module named like a runtime.
  ASSERT_OK_AND_ASSIGN(auto module, ParseUdfSpec("x=tools:clean(city)", cwd_, runtimes));
  EXPECT_EQ(module.payload, "tools:clean");
  ASSERT_OK_AND_ASSIGN(auto shadowed, ParseUdfSpec("x=py:rs:clean(city)", cwd_, runtimes));
  EXPECT_EQ(shadowed.runtime, "py");
  EXPECT_EQ(shadowed.payload, "rs:clean");
}

TEST_F(UdfSpecTest, ACompiledRuntimeSpecNeedsAFunctionAndParentheses) {
  const std::set<std::string> runtimes = {"rs"};
  auto missing = ParseUdfSpec("h=rs:(name)", cwd_, runtimes);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(IsUsageError(missing.status()));
  EXPECT_NE(missing.status().message().find("registered"), std::string::npos);
  EXPECT_FALSE(ParseUdfSpec("h=rs:hash_name", cwd_, runtimes).ok());
}

}  // namespace
}  // namespace quiver::cli
