#pragma once

// Several input files read as one stream, in the order given: what
// quiver.Session.map reads when it is handed paths.

#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "quiver/exec/udf_call.h"
#include "quiver/input/input_file.h"

namespace quiver::input {

/// Opens `paths` as one stream of batches, file after file. Every path is
/// checked first (a missing file fails here, naming the closest name beside
/// it); the first file is opened now, each next one once the one before it was
/// read to its end, so that one file's decode threads and read-ahead run at a
/// time. A file whose columns (those read) differ from the first file's fails
/// the stream when it is reached, naming both files. `format` names the format
/// of every file (as options.format_option takes it); nullopt picks each
/// file's from its extension. file_schema is the first file's; total_rows is
/// known for one file only.
arrow::Result<InputFile> OpenInputFiles(const std::vector<std::string>& paths,
                                        const std::optional<std::string>& format,
                                        const InputReadOptions& options);

/// Returns the input columns a run of `calls` reads: their arguments and
/// `pass_through`; nullopt (every column) without `pass_through`, which keeps
/// them all.
std::optional<std::vector<std::string>> NeededColumns(
    const std::vector<exec::UdfCall>& calls,
    const std::optional<std::vector<std::string>>& pass_through);

}  // namespace quiver::input
