#pragma once
// Which device a process of a data-parallel run trains on.
#include <string>

#include "advft/dist/world.h"

namespace advft::dist {

/// The `device` setting for this process: in a run of several processes "auto" and "cuda" mean
/// the GPU of its local rank (cuda:LOCAL_RANK), as torchrun's one-process-per-GPU convention has
/// it, and "auto" without a GPU the CPU; anything else, and a single process, keep `setting`.
/// Throws DistError when the machine has fewer GPUs than processes.
std::string process_device(const std::string& setting, const World& world);

}  // namespace advft::dist
