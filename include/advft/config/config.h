#pragma once
// Typed configuration of one run. Filled from JSON (defaults < file < --set < flags) and
// validated once by config/load.h; the rest of advft only ever sees these structs.
#include <cstdint>
#include <string>
#include <vector>

#include "advft/models/model_spec.h"

namespace advft::config {

/// One attack, as in configs and `--attack pgd:steps=20,eps=8/255`.
struct AttackConfig {
  /// "fgsm", "pgd", "apgd" (Croce & Hein's Auto-PGD) or "apgd_t" (its targeted version); for
  /// evaluations also "square" (Square Attack, gradient-free), "fab" and "fab_t" (FAB and its
  /// targeted version)
  std::string kind = "pgd";
  std::string norm = "linf";       ///< "linf" or "l2"
  double eps = 8.0 / 255.0;        ///< radius in pixel units ([0,1] images)
  double step_size = 2.0 / 255.0;  ///< fgsm, pgd (apgd starts at 2 eps and halves its own)
  int64_t steps = 10;
  int64_t restarts = 1;      ///< random restarts, per-example worst case kept
  bool random_start = true;  ///< PGD: uniform start in the ball; FGSM: the "fast" random init
  /// What the attack ascends: "ce" (cross-entropy), "cw" (Carlini-Wagner margin) or "dlr"
  /// (difference of logits ratio). apgd_t always ascends the targeted DLR.
  std::string loss = "ce";
  int64_t targets = 9;  ///< apgd_t, fab_t: the most likely wrong classes, attacked in turn
  /// apgd, apgd_t: gradients (and losses) averaged over this many forwards at each step, the
  /// expectation over transformation for models with randomness in them (AutoAttack's eot_iter)
  int64_t eot = 1;
};

/// Where the images come from and how they are augmented.
struct DataConfig {
  /// cifar10 | cifar100 | mnist | fashion_mnist | imagenet | image_folder
  std::string dataset = "cifar10";
  std::string dir = "data/cifar-10-batches-bin";
  bool coarse_labels = false;  ///< cifar100: the 20 coarse classes instead of the 100 fine
  int64_t val_size = 1000;     ///< held out from the training set for per-epoch validation
  uint64_t split_seed = 0;
  int64_t crop_padding = 4;  ///< in-memory sets: random crop after zero padding (0 = off)
  bool horizontal_flip = true;
  /// Image folders (imagenet, image_folder): the square input side; training crops a random
  /// part of at least min_crop_scale of the area and resizes it to image_size, evaluation
  /// resizes the shorter side to resize_size and takes the centre (torchvision's pipelines).
  int64_t image_size = 224;
  int64_t resize_size = 256;
  double min_crop_scale = 0.08;
  /// use only the first N training images (0 = all; an image folder: N spread over its classes)
  int64_t train_limit = 0;
  /// auto | device | host: where the uint8 images live while training on a GPU. device: the whole
  /// set on the GPU, batches gathered there; host: in host memory, a background thread fills
  /// page-locked batch buffers that are copied asynchronously; auto: device when the set takes
  /// under a quarter of the GPU's free memory.
  std::string placement = "auto";
};

/// SGD with momentum.
struct OptimizerConfig {
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 5e-4;
};

/// Learning-rate schedule over all training iterations.
struct ScheduleConfig {
  /// slow_start_fast_decay | piecewise | cosine | constant
  std::string kind = "slow_start_fast_decay";
  double start_lr = 0.0;
  double peak_lr = 0.05;  ///< slow_start_fast_decay peak; piecewise/cosine/constant base lr
  double end_lr = 5e-5;
  double warmup = 0.5;                ///< fraction of all iterations spent in the linear warm-up
  std::string decay = "exponential";  ///< exponential | linear | cosine (after the warm-up)
  std::vector<double> milestones = {0.5, 0.75};  ///< piecewise: fractions of all iterations
  double gamma = 0.1;                            ///< piecewise: factor at each milestone
};

/// The training loop.
struct TrainConfig {
  int64_t epochs = 3;
  int64_t batch_size = 128;
  uint64_t seed = 0;
  bool adversarial = true;    ///< train on PGD examples (false: clean training)
  double clean_weight = 0.0;  ///< pgd_at: loss = (1-w)*adv + w*clean
  /// What adversarial training minimizes: "pgd_at" (Madry et al.: cross-entropy on the attack's
  /// examples) or "trades" (Zhang et al. 2019: clean cross-entropy + trades_beta x the KL
  /// divergence between the clean and the attacked outputs, the attack ascending that KL).
  std::string objective = "pgd_at";
  double trades_beta = 6.0;
  std::string init_checkpoint;   ///< pretrained weights (finetune --checkpoint)
  std::string init_key;          ///< torch.save init_checkpoint: key of the state_dict (--key)
  bool init_strict = true;       ///< every init_checkpoint name must fit (false: --non-strict)
  bool init_reset_head = false;  ///< new head when the class count differs (--reset-head)
  int64_t log_every = 50;        ///< steps between metrics.jsonl step records
  AttackConfig val_attack;       ///< per-epoch robust validation
  int64_t val_batch_size = 500;
};

/// Evaluation.
struct EvalConfig {
  int64_t batch_size = 500;
  std::vector<std::string> attacks = {"fgsm", "pgd:steps=20"};  ///< attack specs
  int64_t limit = 0;  ///< evaluate only the first N test images (0 = all)
  /// Each attack only on the images every earlier one left robust, as AutoAttack runs its four:
  /// an attack's row counts what is robust after it and those before.
  bool cascade = false;
};

/// A whole run.
struct RunConfig {
  models::ModelSpec model;
  DataConfig data;
  AttackConfig attack;  ///< the training attack
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainConfig train;
  EvalConfig eval;
  std::string device = "auto";  ///< auto | cpu | cuda | cuda:N
  int64_t threads = 0;          ///< CPU intra-op threads (0 = every core)
  /// auto | fp32 | tf32 | bf16 | fp16 (auto: bf16 on CUDA, fp32 on the CPU); weights stay fp32.
  std::string precision = "auto";
  /// auto | on | off: channels-last weights (auto: on for CUDA, where cuDNN prefers NHWC).
  std::string channels_last = "auto";
  /// auto | on | off: capture the training step and the evaluation attacks as CUDA graphs and
  /// replay them (auto: on for CUDA where the step can be captured; not with fp16 or TorchScript).
  std::string cuda_graphs = "auto";
  /// auto | on | off: advft's fused BatchNorm+ReLU kernels in training (auto: on for CUDA where
  /// this build has them; measured faster than PyTorch's in every AT step of README's
  /// Performance table).
  std::string fused_bn_relu = "auto";
  /// cuDNN's autotuning times at most this many of its candidate algorithms per convolution shape
  /// (PyTorch's torch.backends.cudnn.benchmark_limit, default 10); 0 times every candidate: a
  /// slower first step, possibly faster convolutions after it. (runtime/device.h's
  /// kDefaultCudnnBenchmarkLimit; a literal here keeps this header free of LibTorch.)
  int64_t cudnn_benchmark_limit = 10;
};

}  // namespace advft::config
