// The test harness itself. When a test process dies of a signal, say where: CTest keeps only what
// reached the pipe, and a crash loses gtest's buffered stdout with it (the GPU machine's first run
// showed four *_CUDA tests as "SegFault" after "[ RUN ]" and nothing else). So stdout is unbuffered
// in the test binary, and a fatal signal prints the native backtrace to stderr before the default
// action. Under AddressSanitizer its own handler stays: its report says more.
#include <execinfo.h>
#include <gtest/gtest.h>
#include <stdio_ext.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "test_util.h"

namespace advft::testing {
namespace {

#ifdef __SANITIZE_ADDRESS__
constexpr bool kSanitizerReports = true;
#else
constexpr bool kSanitizerReports = false;
#endif

const char* signal_name(int signal_number) {
  switch (signal_number) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    default:
      return "SIGABRT";
  }
}

void report_and_reraise(int signal_number) {
  // Only async-signal-safe calls: write(2) and backtrace_symbols_fd.
  const char* name = signal_name(signal_number);
  const char prefix[] = "\nadvft_tests: fatal signal ";
  (void)!::write(STDERR_FILENO, prefix, sizeof prefix - 1);
  (void)!::write(STDERR_FILENO, name, std::strlen(name));
  (void)!::write(STDERR_FILENO, "; backtrace:\n", 13);
  void* frames[64];
  const int depth = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, depth, STDERR_FILENO);
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

bool install_crash_report() {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  if (kSanitizerReports) return true;
  // backtrace() loads libgcc on first use, which is not safe inside the handler: do it now.
  void* warm[1];
  ::backtrace(warm, 1);
  for (int signal_number : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT})
    std::signal(signal_number, report_and_reraise);
  return true;
}

const bool installed = install_crash_report();

TEST(CrashReport, IsInstalledAndStdoutIsUnbuffered) {
  EXPECT_TRUE(installed);
  struct sigaction current {};
  ASSERT_EQ(::sigaction(SIGSEGV, nullptr, &current), 0);
  EXPECT_EQ(current.sa_handler == &report_and_reraise, !kSanitizerReports);
  EXPECT_LE(__fbufsize(stdout), 1U);  // glibc gives an unbuffered stream a one-byte buffer
}

TEST(CrashReport, ASegfaultPrintsABacktraceThenDiesOfIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  if (kSanitizerReports) {
    EXPECT_DEATH(std::raise(SIGSEGV), "AddressSanitizer");
  } else {
    EXPECT_EXIT(std::raise(SIGSEGV), ::testing::KilledBySignal(SIGSEGV),
                "fatal signal SIGSEGV; backtrace:\n.*advft_tests");
  }
}

// A TempDir that cannot be made fails its test with the reason, instead of crashing on a null path.
TEST(TempDirFixture, ThatCannotBeMadeThrowsWithTheReason) {
  const char* old = std::getenv("TMPDIR");
  const std::string saved = old ? old : "";
  ::setenv("TMPDIR", "/proc", 1);  // a directory where nobody, root included, makes folders
  try {
    TempDir dir;
    ADD_FAILURE() << "made " << dir.path();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create /proc/advft-test-"), std::string::npos)
        << e.what();
  }
  if (old) {
    ::setenv("TMPDIR", saved.c_str(), 1);
  } else {
    ::unsetenv("TMPDIR");
  }
  TempDir made;
  EXPECT_TRUE(std::filesystem::is_directory(made.path()));
}

}  // namespace
}  // namespace advft::testing
