#pragma once

// The folders a compiled worker loads its shared libraries from, beyond the
// system's: its ELF RUNPATH (or RPATH), with $ORIGIN expanded, and
// LD_LIBRARY_PATH. A sandboxed worker must be able to read them to start.

#include <string>
#include <vector>

namespace quiver::sandbox {

/// Returns the RUNPATH (else RPATH) folders of the 64-bit ELF file `program`;
/// none for anything else (a script, an unreadable file).
std::vector<std::string> ElfLibraryFolders(const std::string& program);

}  // namespace quiver::sandbox
