// The test harness itself. When a test process dies of a signal, say where: CTest keeps only what
// reached the pipe, and a crash loses gtest's buffered stdout with it (the GPU machine's first run
// showed four *_CUDA tests as "SegFault" after "[ RUN ]" and nothing else). So stdout is unbuffered
// in the test binary, and a fatal signal prints the faulting address, the faulting instruction's
// library and symbol, and the native backtrace to stderr before the default action. The
// instruction comes from the signal's saved registers: the backtrace stops at the signal frame when
// the faulting code has no unwind information (2026-11-27 on the H200: eight crashes, each with
// only the handler's frame). Under AddressSanitizer its own handler stays: its report says more.
#include <execinfo.h>
#include <gtest/gtest.h>
#include <stdio_ext.h>
#include <ucontext.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
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

void write_text(const char* text) {
  (void)!::write(STDERR_FILENO, text, std::strlen(text));
}

void write_hex(std::uintptr_t value) {
  char text[2 + 2 * sizeof value + 1];
  char* end = text + sizeof text - 1;
  *end = '\0';
  char* digit = end;
  do {
    *--digit = "0123456789abcdef"[value % 16];
    value /= 16;
  } while (value != 0);
  *--digit = 'x';
  *--digit = '0';
  write_text(digit);
}

// The instruction the signal interrupted, from the registers the kernel saved for the handler.
void* faulting_instruction(void* context) {
  if (context == nullptr) return nullptr;
  const auto* registers = &static_cast<const ucontext_t*>(context)->uc_mcontext;
#if defined(__x86_64__)
  return reinterpret_cast<void*>(registers->gregs[REG_RIP]);
#elif defined(__aarch64__)
  return reinterpret_cast<void*>(registers->pc);
#else
  (void)registers;
  return nullptr;
#endif
}

void report_and_reraise(int signal_number, siginfo_t* info, void* context) {
  // Only async-signal-safe calls: write(2) and backtrace_symbols_fd.
  write_text("\nadvft_tests: fatal signal ");
  write_text(signal_name(signal_number));
  // A fault the kernel raised (si_code > 0) has the address it was about; raise() has none.
  if (info != nullptr && info->si_code > 0 &&
      (signal_number == SIGSEGV || signal_number == SIGBUS)) {
    write_text(" at address ");
    write_hex(reinterpret_cast<std::uintptr_t>(info->si_addr));
  }
  write_text("\n");
  if (void* instruction = faulting_instruction(context)) {
    write_text("faulting instruction: ");
    ::backtrace_symbols_fd(&instruction, 1, STDERR_FILENO);
  }
  write_text("backtrace:\n");
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
  struct sigaction action {};
  action.sa_sigaction = report_and_reraise;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  for (int signal_number : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT})
    ::sigaction(signal_number, &action, nullptr);
  return true;
}

const bool installed = install_crash_report();

TEST(CrashReport, IsInstalledAndStdoutIsUnbuffered) {
  EXPECT_TRUE(installed);
  struct sigaction current {};
  ASSERT_EQ(::sigaction(SIGSEGV, nullptr, &current), 0);
  EXPECT_EQ((current.sa_flags & SA_SIGINFO) != 0 && current.sa_sigaction == &report_and_reraise,
            !kSanitizerReports);
  EXPECT_LE(__fbufsize(stdout), 1U);  // glibc gives an unbuffered stream a one-byte buffer
}

TEST(CrashReport, ASegfaultPrintsABacktraceThenDiesOfIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  if (kSanitizerReports) {
    EXPECT_DEATH(std::raise(SIGSEGV), "AddressSanitizer");
  } else {
    EXPECT_EXIT(std::raise(SIGSEGV), ::testing::KilledBySignal(SIGSEGV),
                "fatal signal SIGSEGV\nfaulting instruction: .*\nbacktrace:\n.*advft_tests");
  }
}

// A real fault names the address it was about and the instruction that made it, in our binary
// here: the report says where a crash happened even when the backtrace stops at the signal frame.
TEST(CrashReport, AFaultNamesItsAddressAndTheFaultingInstruction) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const auto write_to_a_bad_address = [] {
    volatile std::uintptr_t address = 16;  // volatile: a write the compiler cannot see through
    *reinterpret_cast<volatile int*>(address) = 1;
  };
  if (kSanitizerReports) {
    EXPECT_DEATH(write_to_a_bad_address(), "AddressSanitizer: SEGV on unknown address");
  } else {
    EXPECT_EXIT(write_to_a_bad_address(), ::testing::KilledBySignal(SIGSEGV),
                "fatal signal SIGSEGV at address 0x10\nfaulting instruction: [^\n]*advft_tests");
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
