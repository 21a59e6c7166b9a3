#include "quiver/cli/class_env_options.h"

#include <CLI/CLI.hpp>

namespace quiver::cli {

void AddClassEnvOptions(CLI::App* run, RunOptions* options) {
  run->add_option("--udf-arg", options->udf_args,
                  "Constructor argument of a class UDF: 'NAME.KEY=VALUE' (repeatable; VALUE "
                  "is JSON or plain text), e.g. --udf-arg 'label.threshold=0.5'")
      ->type_size(1)
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_option("--udf-option", options->udf_options,
                  "Per-call option of a Python UDF: 'NAME.KEY=VALUE' with KEY on_error, "
                  "max_concurrency, timeout or retries (repeatable), e.g. --udf-option "
                  "'geo.on_error=null' (docs/async-udfs.md, udf_options.h)")
      ->type_size(1)
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_option("--requirements", options->requirements_file,
                  "A pip requirements file: the Python UDFs run in a virtual environment with "
                  "these packages (and their own @quiver.udf(requirements=...)), built once "
                  "and cached under $XDG_CACHE_HOME/quiver/envs");
}

}  // namespace quiver::cli
