// The advft binary: builds the CLI from cli/*, runs it, and maps every error to one line and
// a documented exit code (README "Exit codes").
#include <iostream>

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "advft/cli/app.h"
#include "advft/error.h"
#include "advft/runtime/logging.h"
#include "advft/runtime/signals.h"

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
    // LibTorch's messages carry a C++ backtrace; the first line is the one that says what.
    std::string what = e.what_without_backtrace();
    spdlog::error("internal error (LibTorch): {}", what.substr(0, what.find('\n')));
    return advft::kExitInternal;
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", e.what());
    return advft::kExitInternal;
  }
}
