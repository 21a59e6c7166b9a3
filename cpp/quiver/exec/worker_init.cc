#include "quiver/exec/worker_init.h"

#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/version.h"

namespace quiver::exec {

arrow::Result<v1::Init> MakeInit(const std::vector<UdfCall>& udfs, const arrow::Schema& sent_schema,
                                 const std::vector<std::vector<int>>& offsets,
                                 v1::EvalType eval_type) {
  if (offsets.size() != udfs.size()) {
    return arrow::Status::Invalid("an Init needs the argument offsets of each of its ", udfs.size(),
                                  " UDFs, not ", offsets.size());
  }
  v1::Init init;
  init.set_protocol_version(protocol::kProtocolVersion);
  init.set_data_format(v1::ARROW_IPC_STREAM);
  ARROW_ASSIGN_OR_RAISE(*init.mutable_input_schema(), protocol::SerializeSchema(sent_schema));
  init.set_session_time_zone("UTC");
  for (size_t i = 0; i < udfs.size(); ++i) {
    const UdfCall& udf = udfs[i];
    v1::UdfDefinition* definition = init.add_udfs();
    definition->set_name(udf.name);
    definition->set_payload_format(udf.payload_format);
    definition->set_payload(udf.payload);
    definition->set_constructor_args(udf.constructor_args);
    definition->set_call_options(udf.call_options);
    definition->set_eval_type(eval_type);
    for (int offset : offsets[i]) definition->add_argument_offsets(offset);
    if (udf.return_type != nullptr) {
      ARROW_ASSIGN_OR_RAISE(
          *definition->mutable_return_type(),
          protocol::SerializeSchema(*arrow::schema({arrow::field(udf.name, udf.return_type)})));
    }
  }
  return init;
}

}  // namespace quiver::exec
