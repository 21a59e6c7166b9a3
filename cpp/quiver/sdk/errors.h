#pragma once

// The three ways an execution fails (docs/protocol.md, "Errors"), carried inside
// arrow::Status as a StatusDetail so that they travel through ordinary
// Status-returning code and become one quiver.v1 Error message at the end.

#include <exception>
#include <string>

#include <arrow/status.h>

#include "quiver/v1/quiver.pb.h"

namespace quiver::sdk {

/// Returns a failed Status holding UserError{udf_name, message, error_class}.
arrow::Status UserError(const std::string& udf_name, const std::string& message,
                        const std::string& error_class);

/// Returns a failed Status holding WorkerError{message, udf_name}.
arrow::Status WorkerError(const std::string& message, const std::string& udf_name = "");

/// Returns a failed Status holding ProtocolError{message}.
arrow::Status ProtocolError(const std::string& message);

/// Turns what a UDF threw into a UserError naming the UDF and the exception's type.
arrow::Status UserErrorFromException(const std::string& udf_name, std::exception_ptr exception);

/// Turns a non-OK Status a UDF returned into a UserError naming the UDF; the
/// error class is "arrow::StatusCode::" and the code (e.g. arrow::StatusCode::Invalid).
arrow::Status UserErrorFromStatus(const std::string& udf_name, const arrow::Status& status);

/// Tells whether `status` was made by the functions above (it carries an Error).
bool CarriesError(const arrow::Status& status);

/// Returns the Error message a failed Status stands for: its own kind when it was
/// made by the functions above, else a WorkerError with the status text (an Arrow
/// failure inside the worker is not the UDF's and not the engine's fault).
v1::Error ErrorOf(const arrow::Status& status);

}  // namespace quiver::sdk
