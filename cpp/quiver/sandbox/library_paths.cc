#include "quiver/sandbox/library_paths.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "quiver/io/unique_fd.h"

namespace quiver::sandbox {
namespace {

bool ReadAt(int fd, void* buffer, size_t size, uint64_t offset) {
  return ::pread(fd, buffer, size, static_cast<off_t>(offset)) == static_cast<ssize_t>(size);
}

// The file offset of virtual address `address`, through the PT_LOAD segments.
bool FileOffset(const std::vector<Elf64_Phdr>& headers, uint64_t address, uint64_t* offset) {
  for (const auto& header : headers) {
    if (header.p_type == PT_LOAD && address >= header.p_vaddr &&
        address < header.p_vaddr + header.p_filesz) {
      *offset = address - header.p_vaddr + header.p_offset;
      return true;
    }
  }
  return false;
}

std::vector<std::string> SplitExpanding(const std::string& text, const std::string& origin) {
  std::vector<std::string> folders;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t colon = text.find(':', start);
    std::string folder = text.substr(start, colon == std::string::npos ? colon : colon - start);
    for (const char* token : {"$ORIGIN", "${ORIGIN}"}) {
      const size_t at = folder.find(token);
      if (at != std::string::npos) folder.replace(at, std::strlen(token), origin);
    }
    if (!folder.empty()) folders.push_back(folder);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return folders;
}

}  // namespace

std::vector<std::string> ElfLibraryFolders(const std::string& program) {
  io::UniqueFd fd(::open(program.c_str(), O_RDONLY | O_CLOEXEC));
  Elf64_Ehdr elf{};
  if (!fd.valid() || !ReadAt(fd.get(), &elf, sizeof(elf), 0) ||
      std::memcmp(elf.e_ident, ELFMAG, SELFMAG) != 0 || elf.e_ident[EI_CLASS] != ELFCLASS64 ||
      elf.e_phentsize != sizeof(Elf64_Phdr) || elf.e_phnum > 256) {
    return {};
  }
  std::vector<Elf64_Phdr> headers(elf.e_phnum);
  if (!ReadAt(fd.get(), headers.data(), headers.size() * sizeof(Elf64_Phdr), elf.e_phoff)) {
    return {};
  }
  for (const auto& header : headers) {
    if (header.p_type != PT_DYNAMIC || header.p_filesz > (1 << 20)) continue;
    std::vector<Elf64_Dyn> entries(header.p_filesz / sizeof(Elf64_Dyn));
    if (!ReadAt(fd.get(), entries.data(), entries.size() * sizeof(Elf64_Dyn), header.p_offset)) {
      return {};
    }
    uint64_t strtab = 0;
    int64_t runpath = -1;
    int64_t rpath = -1;
    for (const auto& entry : entries) {
      if (entry.d_tag == DT_STRTAB) strtab = entry.d_un.d_ptr;
      if (entry.d_tag == DT_RUNPATH) runpath = static_cast<int64_t>(entry.d_un.d_val);
      if (entry.d_tag == DT_RPATH) rpath = static_cast<int64_t>(entry.d_un.d_val);
    }
    const int64_t chosen = runpath >= 0 ? runpath : rpath;
    uint64_t strings = 0;
    if (chosen < 0 || !FileOffset(headers, strtab, &strings)) return {};
    char text[4096] = {};
    const ssize_t got = ::pread(fd.get(), text, sizeof(text) - 1,
                                static_cast<off_t>(strings + static_cast<uint64_t>(chosen)));
    if (got <= 0) return {};
    const std::string origin = std::filesystem::path(program).parent_path().string();
    return SplitExpanding(std::string(text, ::strnlen(text, static_cast<size_t>(got))), origin);
  }
  return {};
}

}  // namespace quiver::sandbox
