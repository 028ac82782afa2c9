// The advft binary: builds the CLI from cli/*, runs it, and maps every error to one line and
// a documented exit code (README "Exit codes").
#include <iostream>
#include <new>
#include <string>

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "advft/cli/app.h"
#include "advft/error.h"
#include "advft/runtime/logging.h"
#include "advft/runtime/signals.h"

namespace {

// Out of memory is the user's to fix (a smaller batch or model), not a bug: LibTorch says so
// with OutOfMemoryError on a GPU and with an allocator enforce on the CPU.
bool is_out_of_memory(const c10::Error& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
  const std::string what = e.what_without_backtrace();
  return what.find("DefaultCPUAllocator") != std::string::npos ||
         what.find("out of memory") != std::string::npos;
}

int report_out_of_memory(std::string what) {
  // The CPU allocator's message follows an "[enforce fail at alloc_cpu.cpp:75] err == 0." that
  // says nothing to a user.
  const auto allocator = what.find("DefaultCPUAllocator: ");
  if (allocator != std::string::npos) what = what.substr(allocator + 21);
  spdlog::error(
      "out of memory: {}; lower the batch size (train.batch_size, train.val_batch_size, "
      "eval.batch_size, bench --batch) or the model's or images' size",
      what.substr(0, what.find('\n')));
  return advft::kExitConfig;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"advft"};
  advft::cli::setup_app(app);
  advft::runtime::init_logging(false);
  advft::runtime::install_stop_handlers();
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) {
      std::cout << app.help();
      return advft::kExitUsage;
    }
    return advft::kExitOk;
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return advft::kExitUsage;
  } catch (const advft::Error& e) {
    spdlog::error("{}", e.what());
    return e.exit_code();
  } catch (const c10::Error& e) {
    if (is_out_of_memory(e)) return report_out_of_memory(e.what_without_backtrace());
    // LibTorch's messages carry a C++ backtrace; the first line is the one that says what.
    std::string what = e.what_without_backtrace();
    spdlog::error("internal error (LibTorch): {}", what.substr(0, what.find('\n')));
    return advft::kExitInternal;
  } catch (const std::bad_alloc&) {
    return report_out_of_memory("an allocation failed");
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", e.what());
    return advft::kExitInternal;
  }
}
