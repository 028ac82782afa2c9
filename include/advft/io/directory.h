#pragma once
// Listing and removing directories with POSIX calls instead of std::filesystem's iterators.
// A PyTorch wheel's libtorch_cpu.so exports its own, statically linked copy of libstdc++'s
// std::filesystem (pytorch/pytorch#133437; 142 symbols in 2.11's, seen on the GPU machine), so a
// program linked against it may run one directory walk partly in that copy and partly in the
// system's libstdc++, which need not agree on the iterator's private state. The test binary built
// against that wheel died of SIGSEGV in exactly the tests whose temporary directory held files (a
// small program doing the same walks did not: the cause is not established); these helpers leave
// that question out of everything advft and its tests walk. Our binaries also load libstdc++
// before libtorch_cpu.so now (CMakeLists.txt), so the calls that remain bind to one copy.
#include <string>
#include <system_error>
#include <vector>

namespace advft::io {

/// The names of the entries of `dir`, "." and ".." left out, sorted. On failure (no such
/// directory, not a directory, no permission) returns what it read and sets `error`.
std::vector<std::string> directory_names(const std::string& dir, std::error_code& error);

/// Removes `path`, and when it is a directory (a symbolic link to one is removed as a link),
/// everything in it, like std::filesystem::remove_all. A `path` that does not exist is not an
/// error. Sets `error` to the first failure and goes on removing what it can.
void remove_tree(const std::string& path, std::error_code& error);

}  // namespace advft::io
