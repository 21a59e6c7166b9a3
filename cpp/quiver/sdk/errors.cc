#include "quiver/sdk/errors.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <typeinfo>
#include <utility>

namespace quiver::sdk {
namespace {

constexpr char kDetailType[] = "quiver::sdk::ErrorDetail";

// The protocol Error a failed Status stands for.
class ErrorDetail : public arrow::StatusDetail {
 public:
  explicit ErrorDetail(v1::Error error) : error_(std::move(error)) {}
  const char* type_id() const override { return kDetailType; }
  std::string ToString() const override { return error_.ShortDebugString(); }
  const v1::Error& error() const { return error_; }

 private:
  v1::Error error_;
};

arrow::Status WithError(arrow::StatusCode code, const std::string& message, v1::Error error) {
  return arrow::Status(code, message, std::make_shared<ErrorDetail>(std::move(error)));
}

// Returns the readable name of a C++ type ("std::out_of_range", not "St12out_of_range").
std::string Demangle(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name != nullptr ? std::string(name.get()) : std::string(type.name());
}

// Names a status code as it is spelled in C++ ("KeyError", not "Key error").
std::string CodeName(arrow::StatusCode code) {
  switch (code) {
    case arrow::StatusCode::OutOfMemory:
      return "OutOfMemory";
    case arrow::StatusCode::KeyError:
      return "KeyError";
    case arrow::StatusCode::TypeError:
      return "TypeError";
    case arrow::StatusCode::Invalid:
      return "Invalid";
    case arrow::StatusCode::IOError:
      return "IOError";
    case arrow::StatusCode::CapacityError:
      return "CapacityError";
    case arrow::StatusCode::IndexError:
      return "IndexError";
    case arrow::StatusCode::Cancelled:
      return "Cancelled";
    case arrow::StatusCode::NotImplemented:
      return "NotImplemented";
    case arrow::StatusCode::ExecutionError:
      return "ExecutionError";
    default:
      return "UnknownError";
  }
}

}  // namespace

arrow::Status UserError(const std::string& udf_name, const std::string& message,
                        const std::string& error_class) {
  v1::Error error;
  auto* user = error.mutable_user_error();
  user->set_udf_name(udf_name);
  user->set_message(message);
  user->set_error_class(error_class);
  return WithError(arrow::StatusCode::ExecutionError,
                   "UDF '" + udf_name + "' raised " + error_class + ": " + message,
                   std::move(error));
}

arrow::Status WorkerError(const std::string& message, const std::string& udf_name) {
  v1::Error error;
  error.mutable_worker_error()->set_message(message);
  error.mutable_worker_error()->set_udf_name(udf_name);
  return WithError(arrow::StatusCode::Invalid, message, std::move(error));
}

arrow::Status ProtocolError(const std::string& message) {
  v1::Error error;
  error.mutable_protocol_error()->set_message(message);
  return WithError(arrow::StatusCode::Invalid, message, std::move(error));
}

arrow::Status UserErrorFromException(const std::string& udf_name, std::exception_ptr exception) {
  try {
    std::rethrow_exception(std::move(exception));
  } catch (const std::exception& caught) {
    return UserError(udf_name, caught.what(), Demangle(typeid(caught)));
  } catch (...) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    return UserError(udf_name, "an exception that is not a std::exception",
                     type != nullptr ? Demangle(*type) : "unknown");
  }
}

arrow::Status UserErrorFromStatus(const std::string& udf_name, const arrow::Status& status) {
  return UserError(udf_name, status.message(), "arrow::StatusCode::" + CodeName(status.code()));
}

bool CarriesError(const arrow::Status& status) {
  const auto& detail = status.detail();
  return detail != nullptr && std::string(detail->type_id()) == kDetailType;
}

v1::Error ErrorOf(const arrow::Status& status) {
  if (CarriesError(status)) {
    return static_cast<const ErrorDetail&>(*status.detail()).error();
  }
  v1::Error error;
  error.mutable_worker_error()->set_message(status.ToString());
  return error;
}

}  // namespace quiver::sdk
