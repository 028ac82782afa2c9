#pragma once
// Graceful stop on SIGINT / SIGTERM: the handler only records the signal; the training loop
// polls it between steps, saves a resumable checkpoint and then exits; evaluation and the
// benchmark poll it between batches, convert, inspect and schedule after each long phase, and
// these stop with nothing written. main installs the handlers for every command, so a command
// that never polls would run to its end after a Ctrl-C: each one that takes seconds must poll.
#include <string>

namespace advft::runtime {

/// Installs the handlers (idempotent). A second signal of the same kind kills the process.
void install_stop_handlers();

/// The signal that asked us to stop, or 0.
int stop_signal();

/// After a stop request, throws InterruptedError "<what> interrupted by signal N; nothing was
/// written" with exit code 128 + N (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a
/// process killed by it. For loops whose partial results are worth nothing.
void throw_if_stopped(const std::string& what);

/// Forgets a recorded signal (tests).
void clear_stop_signal();

/// Records a stop request as if `signal_number` had arrived (tests, and callers that stop).
void request_stop(int signal_number);

}  // namespace advft::runtime
