#pragma once
// The shape every checkpoint error must have: one line, naming what is wrong.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "advft/error.h"

namespace advft::testing {

/// Runs `load` and requires a one-line CheckpointError whose message holds every one of `parts`.
inline void expect_checkpoint_error(const std::function<void()>& load,
                                    const std::vector<std::string>& parts) {
  try {
    load();
    ADD_FAILURE() << "no error; expected one mentioning " << parts.front();
  } catch (const CheckpointError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    for (const auto& part : parts)
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
  }
}

}  // namespace advft::testing
