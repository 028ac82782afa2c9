#include "advft/models/model_spec.h"

namespace advft::models {

nlohmann::json spec_to_json(const ModelSpec& spec) {
  return {{"kind", spec.kind},
          {"path", spec.path},
          {"arch", spec.arch},
          {"num_classes", spec.num_classes},
          {"in_channels", spec.in_channels},
          {"input_size", spec.input_size},
          {"mean", spec.mean},
          {"std", spec.std},
          {"blocks", spec.blocks},
          {"width", spec.width},
          {"cifar_stem", spec.cifar_stem},
          {"depth", spec.depth},
          {"widen_factor", spec.widen_factor}};
}

}  // namespace advft::models
