#pragma once

// GoogleTest assertions for arrow::Status and arrow::Result, so tests read like
// the code under test.

#include <gtest/gtest.h>

#include <arrow/result.h>
#include <arrow/status.h>

namespace quiver::testing {

/// Returns the status of a Status or of a Result.
inline const arrow::Status& StatusOf(const arrow::Status& status) { return status; }
template <typename T>
const arrow::Status& StatusOf(const arrow::Result<T>& result) {
  return result.status();
}

}  // namespace quiver::testing

#define QUIVER_CONCAT_INNER(a, b) a##b
#define QUIVER_CONCAT(a, b) QUIVER_CONCAT_INNER(a, b)

/// Asserts that a Status (or Result) expression is OK, printing it otherwise.
#define ASSERT_OK(expr)                                                \
  do {                                                                 \
    const ::arrow::Status _st = ::quiver::testing::StatusOf(expr);     \
    ASSERT_TRUE(_st.ok()) << "'" #expr "' failed: " << _st.ToString(); \
  } while (false)

/// Expects that a Status (or Result) expression is OK.
#define EXPECT_OK(expr)                                                \
  do {                                                                 \
    const ::arrow::Status _st = ::quiver::testing::StatusOf(expr);     \
    EXPECT_TRUE(_st.ok()) << "'" #expr "' failed: " << _st.ToString(); \
  } while (false)

#define QUIVER_ASSIGN_OR_FAIL_IMPL(result_name, lhs, rexpr)                                    \
  auto result_name = (rexpr);                                                                  \
  ASSERT_TRUE(result_name.ok()) << "'" #rexpr "' failed: " << result_name.status().ToString(); \
  lhs = std::move(result_name).ValueUnsafe();

/// Asserts that a Result expression is OK and moves its value into lhs.
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  QUIVER_ASSIGN_OR_FAIL_IMPL(QUIVER_CONCAT(_result_, __COUNTER__), lhs, rexpr)
