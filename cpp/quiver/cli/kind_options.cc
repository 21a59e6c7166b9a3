#include "quiver/cli/kind_options.h"

#include <CLI/CLI.hpp>

namespace quiver::cli {

void AddKindOptions(CLI::App* run, KindOptions* options) {
  run->add_option("--group-by", options->group_by,
                  "Key columns, comma-separated, for --apply or --agg");
  run->add_option("--apply", options->apply,
                  "Grouped map: 'PATH.py:FUNCTION' gets all rows of each group (a pandas "
                  "DataFrame or pyarrow Table) and returns a table of its declared schema");
  run->add_option("--agg", options->aggs,
                  "Grouped aggregate: 'NAME=PATH.py:FUNCTION(COLUMN, ...)', one value per group "
                  "(repeatable)")
      ->type_size(1)
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_option("--udtf", options->udtf,
                  "Table function: 'NAME=PATH.py:FUNCTION(ARG, ...)', zero or more rows per "
                  "input row, beside the kept input columns (one per run)");
  run->add_option("--max-group-bytes", options->max_group_bytes,
                  "Largest group (Arrow bytes) sent to a worker with --apply or --agg")
      ->capture_default_str();
}

}  // namespace quiver::cli
