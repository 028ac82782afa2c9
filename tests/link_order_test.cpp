// The order in which our binaries load libstdc++ and LibTorch. PyTorch's wheels export their own,
// older copy of std::filesystem from libtorch_cpu.so; the dynamic linker binds every call to the
// first loaded library that defines the symbol, so libstdc++.so.6 must load before libtorch_cpu.so
// (CMakeLists.txt names it first; the reasons are there). On a GPU machine eight tests that
// removed folders with std::filesystem died of SIGSEGV (2026-11-27) while libtorch_cpu.so came
// first. Debian's LibTorch exports no such copy, but the order is checked the same here.
#include <gtest/gtest.h>
#include <link.h>

#include <sstream>
#include <string>
#include <vector>

#include "fixtures.h"

namespace advft::testing {
namespace {

/// The position of the first name that contains `part`, or -1.
int position_of(const std::vector<std::string>& names, const std::string& part) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].find(part) != std::string::npos) return static_cast<int>(i);
  }
  return -1;
}

/// Every object this process has loaded, in the order the dynamic linker searches them.
std::vector<std::string> loaded_objects_of_this_process() {
  std::vector<std::string> names;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        static_cast<std::vector<std::string>*>(out)->emplace_back(info->dlpi_name);
        return 0;
      },
      &names);
  return names;
}

/// The libraries `binary` loads, in order, as the dynamic linker lists them without running it.
std::vector<std::string> loaded_objects_of(const std::string& binary) {
  const RunResult listing = run_command("LD_TRACE_LOADED_OBJECTS=1 " + binary);
  EXPECT_EQ(listing.exit_code, 0) << listing.output;
  std::vector<std::string> names;
  std::istringstream lines(listing.output);
  for (std::string line; std::getline(lines, line);)
    names.push_back(line);
  return names;
}

void expect_libstdcxx_before_libtorch(const std::vector<std::string>& names) {
  std::string first_names;
  for (size_t i = 0; i < names.size() && i < 12; ++i)
    first_names += names[i] + "\n";
  const int libstdcxx = position_of(names, "libstdc++.so");
  const int libtorch_cpu = position_of(names, "libtorch_cpu.so");
  ASSERT_GE(libstdcxx, 0) << "no libstdc++ among " << names.size() << " objects:\n" << first_names;
  ASSERT_GE(libtorch_cpu, 0) << "no libtorch_cpu among " << names.size() << " objects:\n"
                             << first_names;
  EXPECT_LT(libstdcxx, libtorch_cpu) << "libstdc++ loads as object " << libstdcxx
                                     << ", libtorch_cpu as " << libtorch_cpu << "; the first:\n"
                                     << first_names;
}

TEST(LinkOrder, TheTestBinaryLoadsLibstdcxxBeforeLibTorch) {
  expect_libstdcxx_before_libtorch(loaded_objects_of_this_process());
}

TEST(LinkOrder, AdvftLoadsLibstdcxxBeforeLibTorch) {
  expect_libstdcxx_before_libtorch(loaded_objects_of(ADVFT_BINARY));
}

}  // namespace
}  // namespace advft::testing
