#include "quiver/cli/batch_bytes_option.h"

#include <CLI/CLI.hpp>

#include "quiver/cli/run_command.h"

namespace quiver::cli {

void AddBatchBytesOption(CLI::App* run, RunOptions& options) {
  run->add_option("--batch-bytes", options.batch_bytes,
                  "Most bytes of UDF arguments per batch sent to a worker, beside --batch-rows "
                  "(e.g. 4MiB, 512KiB); a larger batch is cut, a row over it goes alone")
      ->transform(CLI::AsSizeValue(/*kb_is_1000=*/false))
      ->capture_default_str();
}

}  // namespace quiver::cli
