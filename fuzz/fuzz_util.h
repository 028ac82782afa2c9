#pragma once
// What every advft fuzz target shares: the one failure a hostile file may cause is an
// advft::CheckpointError that names the file. Any other exception escapes to libFuzzer (which
// reports it as a crash), and so does a CheckpointError that forgets the file name, because
// users see that message as the only line the CLI prints.
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "advft/error.h"

namespace advft::fuzz {

/// The name the targets pass as the file's path; every error message must contain it.
inline const std::string kSourceName = "fuzz-input";

/// LibTorch's intra-op pool would start a thread per core for each copy; one is plenty and keeps
/// the run reproducible.
inline void init_torch() {
  torch::set_num_threads(1);
}

/// Runs `decode` and accepts a successful return or an `Expected` error (a CheckpointError for
/// checkpoints, a DataError for data files) naming kSourceName.
template <typename Expected = CheckpointError, typename Decode>
void expect_success_or_error(Decode&& decode) {
  try {
    decode();
  } catch (const Expected& e) {
    // For triage: ADVFT_FUZZ_VERBOSE=1 ./target FILE shows where an input stopped.
    static const bool verbose = std::getenv("ADVFT_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "expected error: %s\n", e.what());
    if (std::string(e.what()).find(kSourceName) == std::string::npos) {
      std::fprintf(stderr, "error without the file name: %s\n", e.what());
      std::abort();
    }
  }
}

/// Runs `decode` and accepts a successful return or a CheckpointError naming kSourceName.
template <typename Decode>
void expect_success_or_checkpoint_error(Decode&& decode) {
  expect_success_or_error<CheckpointError>(decode);
}

}  // namespace advft::fuzz
