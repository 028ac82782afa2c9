#include "advft/runtime/signals.h"

#include <atomic>
#include <csignal>

#include "advft/error.h"

namespace advft::runtime {
namespace {

std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int signal_number) {
  g_stop_signal.store(signal_number);
}

}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  // SA_RESETHAND: the first Ctrl-C asks politely; a second one gets the default (immediate) exit.
  action.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int stop_signal() {
  return g_stop_signal.load();
}

void throw_if_stopped(const std::string& what) {
  if (const int signal = stop_signal()) {
    throw InterruptedError(
        what + " interrupted by signal " + std::to_string(signal) + "; nothing was written",
        128 + signal);
  }
}

void clear_stop_signal() {
  g_stop_signal.store(0);
}

void request_stop(int signal_number) {
  g_stop_signal.store(signal_number);
}

}  // namespace advft::runtime
