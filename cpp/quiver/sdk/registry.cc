#include "quiver/sdk/registry.h"

#include <sstream>
#include <utility>

#include "quiver/sdk/errors.h"

namespace quiver::sdk {
namespace {

bool Matches(const std::shared_ptr<arrow::DataType>& wanted, const arrow::DataType& actual) {
  return wanted == nullptr || wanted->Equals(actual);
}

std::string TypeText(const std::shared_ptr<arrow::DataType>& type) {
  return type == nullptr ? "any" : type->ToString();
}

// "(int64) or (double, any)": the signatures of the overloads, for errors.
std::string Signatures(const std::vector<ScalarUdf>& overloads) {
  std::ostringstream out;
  for (size_t i = 0; i < overloads.size(); ++i) {
    out << (i == 0 ? "(" : " or (");
    for (size_t a = 0; a < overloads[i].arguments.size(); ++a) {
      out << (a == 0 ? "" : ", ") << TypeText(overloads[i].arguments[a]);
    }
    out << ")";
  }
  return out.str();
}

bool SameArguments(const ScalarUdf& a, const ScalarUdf& b) {
  if (a.arguments.size() != b.arguments.size()) return false;
  for (size_t i = 0; i < a.arguments.size(); ++i) {
    const auto& x = a.arguments[i];
    const auto& y = b.arguments[i];
    if ((x == nullptr) != (y == nullptr) || (x != nullptr && !x->Equals(*y))) return false;
  }
  return true;
}

// Explains why no overload takes `fields`: the first column whose type none takes.
arrow::Status NoOverload(const std::string& udf_name, const std::string& function,
                         const std::vector<ScalarUdf>& overloads,
                         const std::vector<std::shared_ptr<arrow::Field>>& fields) {
  std::ostringstream why;
  why << "UDF '" << udf_name << "': function '" << function << "' takes " << Signatures(overloads)
      << ", but it was given " << fields.size() << " argument(s)";
  for (size_t i = 0; i < fields.size(); ++i) {
    bool taken = false;
    for (const auto& overload : overloads) {
      taken |= i < overload.arguments.size() && Matches(overload.arguments[i], *fields[i]->type());
    }
    if (!taken) {
      why << "; argument " << i + 1 << " is column '" << fields[i]->name() << "' of type "
          << fields[i]->type()->ToString() << ", which it does not take";
      break;
    }
  }
  return WorkerError(why.str(), udf_name);
}

}  // namespace

ResultType ResultType::SameAs(int index) {
  ResultType result(nullptr);
  result.argument_ = index;
  return result;
}

std::shared_ptr<arrow::DataType> ResultType::For(
    const std::vector<std::shared_ptr<arrow::DataType>>& arguments) const {
  if (argument_ < 0) return type_;
  return static_cast<size_t>(argument_) < arguments.size() ? arguments[argument_] : nullptr;
}

Registry& Registry::Scalar(const std::string& name, ScalarUdf udf) {
  if (!status_.ok()) return *this;
  if (!udf.call) {
    status_ = arrow::Status::Invalid("function '", name, "' was registered without code");
  } else if (udf.result.argument() < 0 && udf.result.For({}) == nullptr) {
    status_ = arrow::Status::Invalid("function '", name, "' was registered without a result type");
  } else if (udf.result.argument() >= static_cast<int>(udf.arguments.size())) {
    status_ =
        arrow::Status::Invalid("function '", name, "' returns the type of argument ",
                               udf.result.argument(), ", but it takes ", udf.arguments.size());
  }
  auto& overloads = functions_[name];
  for (const auto& existing : overloads) {
    if (status_.ok() && SameArguments(existing, udf)) {
      status_ = arrow::Status::Invalid("function '", name, "' was registered twice for ",
                                       Signatures({udf}));
    }
  }
  if (status_.ok()) overloads.push_back(std::move(udf));
  return *this;
}

Registry& Registry::Scalar(const std::string& name,
                           std::vector<std::shared_ptr<arrow::DataType>> arguments,
                           ResultType result, ScalarFunction call, Hook setup, Hook teardown) {
  return Scalar(name, ScalarUdf{std::move(arguments), std::move(result), std::move(call),
                                std::move(setup), std::move(teardown)});
}

arrow::Result<ResolvedUdf> Registry::Resolve(
    const std::string& udf_name, const std::string& function,
    const std::vector<std::shared_ptr<arrow::Field>>& fields) const {
  auto found = functions_.find(function);
  if (found == functions_.end()) {
    std::ostringstream known;
    for (const auto& name : names()) known << (known.tellp() > 0 ? ", " : "") << name;
    return WorkerError("UDF '" + udf_name + "' names function '" + function +
                           "', which this worker did not register (it has: " + known.str() + ")",
                       udf_name);
  }
  std::vector<std::shared_ptr<arrow::DataType>> types;
  for (const auto& field : fields) types.push_back(field->type());
  for (const auto& overload : found->second) {
    if (overload.arguments.size() != types.size()) continue;
    bool all = true;
    for (size_t i = 0; i < types.size(); ++i) all &= Matches(overload.arguments[i], *types[i]);
    if (all) return ResolvedUdf{&overload, overload.result.For(types)};
  }
  return NoOverload(udf_name, function, found->second, fields);
}

std::vector<std::string> Registry::names() const {
  std::vector<std::string> names;
  for (const auto& [name, overloads] : functions_) names.push_back(name);
  return names;
}

}  // namespace quiver::sdk
