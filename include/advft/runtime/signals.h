#pragma once
// Graceful stop on SIGINT / SIGTERM: the handler only records the signal; the training loop
// polls it between steps, saves a resumable checkpoint and then exits.
namespace advft::runtime {

/// Installs the handlers (idempotent). A second signal of the same kind kills the process.
void install_stop_handlers();

/// The signal that asked us to stop, or 0.
int stop_signal();

/// Forgets a recorded signal (tests).
void clear_stop_signal();

/// Records a stop request as if `signal_number` had arrived (tests, and callers that stop).
void request_stop(int signal_number);

}  // namespace advft::runtime
