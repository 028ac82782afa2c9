#include "advft/train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <optional>
#include <sstream>

#include <spdlog/spdlog.h>

#include "advft/attacks/attack_spec.h"
#include "advft/config/load.h"
#include "advft/data/loader.h"
#include "advft/data/source.h"
#include "advft/dist/device.h"
#include "advft/error.h"
#include "advft/eval/evaluator.h"
#include "advft/io/async_writer.h"
#include "advft/io/atomic_file.h"
#include "advft/io/checkpoint.h"
#include "advft/io/foreign.h"
#include "advft/io/metrics.h"
#include "advft/models/batch_norm_relu.h"
#include "advft/models/factory.h"
#include "advft/runtime/cuda_graph.h"
#include "advft/runtime/device.h"
#include "advft/runtime/memory_format.h"
#include "advft/runtime/precision.h"
#include "advft/runtime/signals.h"
#include "advft/runtime/stream.h"
#include "advft/schedule/lr_schedule.h"
#include "advft/train/loss_scaler.h"
#include "advft/train/sgd.h"
#include "advft/train/train_step.h"

namespace advft::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The model must fit the data it is trained on; say which key to change when it does not.
void check_model_fits_data(const models::ModelSpec& spec, const data::Dataset& train,
                           const std::string& dataset) {
  const std::vector<int64_t> shape = train.image_shape();  // [C, H, W]
  if (shape[0] != spec.in_channels) {
    throw ConfigError("model.in_channels = " + std::to_string(spec.in_channels) + " but " +
                      dataset + " images have " + std::to_string(shape[0]) + " channel(s)");
  }
  if (shape[1] != spec.input_size) {
    const std::string key = train.in_memory() ? "" : " (data.image_size)";
    throw ConfigError("model.input_size = " + std::to_string(spec.input_size) + " but " + dataset +
                      " images are " + std::to_string(shape[1]) + "x" + std::to_string(shape[2]) +
                      key);
  }
  if (spec.num_classes < train.num_classes) {
    throw ConfigError("model.num_classes = " + std::to_string(spec.num_classes) + " but " +
                      dataset + " has " + std::to_string(train.num_classes) + " classes");
  }
  // Trains, but the extra outputs are never a label, and targeted attacks pick them as targets.
  if (spec.num_classes > train.num_classes) {
    spdlog::warn(
        "model.num_classes = {} but {} has {} classes: the other {} outputs are never a label "
        "(targeted attacks still aim at them); set model.num_classes = {} (finetune: with "
        "--reset-head, for a new head)",
        spec.num_classes, dataset, train.num_classes, spec.num_classes - train.num_classes,
        train.num_classes);
  }
}

// The pretrained checkpoint must be the architecture the config asks for.
void check_pretrained_matches(const models::ModelSpec& wanted, const io::LoadedCheckpoint& ckpt) {
  const auto& have = ckpt.spec;
  if (have.kind != wanted.kind || have.arch != wanted.arch ||
      have.num_classes != wanted.num_classes || have.in_channels != wanted.in_channels) {
    throw CheckpointError(ckpt.path + " holds " + models::describe(have) +
                          " but the config asks for " + models::describe(wanted) +
                          "; pick the matching config or set model.* to the checkpoint's");
  }
}

// What the run minimizes, for the start-up log line: "PGD-AT on PGD-10 Linf eps=8/255 ...".
std::string describe_objective(const config::RunConfig& c) {
  if (!c.train.adversarial) return "clean training";
  std::ostringstream out;
  if (c.train.objective == "trades") {
    out << "TRADES (beta " << c.train.trades_beta << ") on ";
  } else {
    out << "PGD-AT on ";
  }
  out << attacks::describe_attack(c.attack);
  if (c.train.objective != "trades" && c.train.clean_weight > 0.0)
    out << " + " << c.train.clean_weight << " clean";
  return out.str();
}

// The steps since the last step record, when a stop saved the run inside a logging window: the
// resumed run folds them into that window's record, so metrics.jsonl reads as if uninterrupted.
struct CarriedWindow {
  int64_t steps = 0;      // this process's steps (every process ran as many)
  int64_t images = 0;     // this process's images
  double loss_sum = 0.0;  // all processes' together
  int64_t correct = 0;    // all processes' together
  double seconds = 0.0;

  nlohmann::json to_json() const {
    return {{"steps", steps},
            {"images", images},
            {"loss_sum", loss_sum},
            {"correct", correct},
            {"seconds", seconds}};
  }
  static CarriedWindow from_json(const nlohmann::json& j) {
    CarriedWindow w;
    if (!j.is_object()) return w;  // none carried, or a checkpoint from before it was kept
    w.steps = j.at("steps").get<int64_t>();
    w.images = j.at("images").get<int64_t>();
    w.loss_sum = j.at("loss_sum").get<double>();
    w.correct = j.at("correct").get<int64_t>();
    w.seconds = j.at("seconds").get<double>();
    return w;
  }
};

struct TrainState {
  int64_t next_step = 0;
  double best_val_score = -1.0;
  int64_t best_epoch = 0;
  double train_seconds = 0.0;  // without the carried window's, which its record adds
  nlohmann::json last_epoch;   // the latest epoch record
  CarriedWindow window;

  static TrainState from_json(const nlohmann::json& j, const std::string& source) {
    TrainState s;
    try {
      s.next_step = j.at("next_step").get<int64_t>();
      s.best_val_score = j.at("best_val_score").get<double>();
      s.best_epoch = j.at("best_epoch").get<int64_t>();
      s.train_seconds = j.value("train_seconds", 0.0);
      s.last_epoch = j.value("last_epoch", nlohmann::json());
      s.window = CarriedWindow::from_json(j.value("log_window", nlohmann::json()));
    } catch (const nlohmann::json::exception& e) {
      throw CheckpointError(source + ": training state is incomplete (" + e.what() + ")");
    }
    return s;
  }
};

class Trainer {
 public:
  explicit Trainer(const RunRequest& request)
      : request_(request),
        config_(request.config),
        paths_(request.paths),
        group_(request.group != nullptr && request.group->size() > 1 ? request.group : nullptr),
        writes_(group_ == nullptr || group_->rank() == 0),
        draw_seed_(group_ ? dist::process_seed(config_.train.seed, group_->world())
                          : config_.train.seed),
        device_(runtime::resolve_device(
            group_ ? dist::process_device(config_.device, group_->world()) : config_.device)),
        precision_(runtime::resolve_precision(config_.precision, device_, "precision")),
        scaler_(precision_ == runtime::Precision::kFp16) {}

  nlohmann::json run();

 private:
  void build();
  void build_step();
  void record_model_in_config() const;
  void forget_records_after_checkpoint();
  void train_step(int64_t step);
  void end_of_epoch(int64_t epoch);
  void record_input_wait(int64_t epoch, nlohmann::json& record);
  /// The run stopped at an epoch's end before that epoch's validation and record.
  bool epoch_end_pending() const;
  void save_last(int64_t next_step, bool also_best);
  /// Data-parallel runs: BatchNorm's running statistics averaged over the processes (each saw
  /// only its shard), before they are validated or saved.
  void average_buffers();
  /// Data-parallel runs: a DistError unless every process holds rank 0's weights.
  void check_weights_agree(int64_t epoch) const;
  /// Whether any process was asked to stop (a vote, so that all stop at the same step).
  int stop_vote() const;
  void check_finite(int64_t step) const;
  [[noreturn]] void throw_diverged(int64_t step, const std::string& what) const;
  void flush_step_record(int64_t step, int64_t epoch);
  /// The logging window's sums over every process (a collective), and an empty window after;
  /// a DivergedError when its loss is not finite.
  CarriedWindow close_window(int64_t step);
  /// A resumed run's window goes on from the stopped run's.
  void reopen_window(const CarriedWindow& carried);
  nlohmann::json results() const;
  nlohmann::json state_json(int64_t epoch) const;

  const RunRequest& request_;
  config::RunConfig config_;
  io::RunPaths paths_;
  dist::ProcessGroup* group_;  // null unless several processes train together
  bool writes_;                // rank 0 (or the only process): the one that writes the run dir
  uint64_t draw_seed_;         // this process's seed for augmentation and attack draws
  torch::Device device_;
  runtime::Precision precision_;
  LossScaler scaler_;  // fp16 only: scales the loss so small gradients survive

  data::DataSplits data_;
  models::ClassifierPtr model_;
  std::optional<data::BatchLoader> loader_;
  data::Placement placement_ = data::Placement::kDevice;
  std::unique_ptr<schedule::LrSchedule> schedule_;
  std::unique_ptr<Sgd> optimizer_;
  std::unique_ptr<TrainStep> step_;
  runtime::GraphMode graphs_ = runtime::GraphMode::kOff;       // the training step
  runtime::GraphMode eval_graphs_ = runtime::GraphMode::kOff;  // per-epoch validation
  std::optional<io::MetricsWriter> metrics_;
  int64_t val_images_ = 0;  // all processes' together
  int64_t steps_per_epoch_ = 0;
  int64_t total_steps_ = 0;
  TrainState state_;

  // Running sums over the steps since the last step record. Loss and accuracy stay on the device
  // until the record is written: a host read every step would drain the GPU's queue.
  torch::Tensor window_loss_;     // fp64 scalar
  torch::Tensor window_correct_;  // int64 scalar
  int64_t window_images_ = 0;
  int64_t window_steps_ = 0;
  Clock::time_point window_start_ = Clock::now();
  double last_lr_ = 0.0;
  // Where the epoch now running started, for its input-wait share (this process only).
  double epoch_start_train_seconds_ = 0.0;
  double epoch_start_input_wait_ = 0.0;

  // Checkpoints reach the disk while the next steps run; mutable: reporting a divergence
  // (const) first lets the write in flight finish, so that it can name the last good file.
  mutable io::AsyncWriter writer_;
};

void Trainer::build() {
  if (group_ && config_.train.batch_size % group_->size() != 0) {
    throw ConfigError("train.batch_size = " + std::to_string(config_.train.batch_size) +
                      " does not split over the run's " + std::to_string(group_->size()) +
                      " processes; make it a multiple of " + std::to_string(group_->size()) +
                      " (it is the batch of all processes together)");
  }
  runtime::BackgroundJob device_warmup = runtime::warm_up_device(device_);
  data_ = data::load_splits(config_.data);
  check_model_fits_data(config_.model, data_.train, config_.data.dataset);

  models::ModelSpec spec = config_.model;
  std::optional<io::LoadedCheckpoint> init;
  if (request_.resume) {
    init = io::load_checkpoint(paths_.last);
    // The other command would go on with the same steps but record itself as the run's.
    const nlohmann::json& state = init->train_state;
    const std::string started_by =
        state.is_object() ? state.value("command", request_.command) : request_.command;
    if (started_by != request_.command) {
      throw UsageError(paths_.dir + " is a run of advft " + started_by + "; continue it with " +
                       "advft " + started_by + " --resume " + paths_.dir);
    }
  } else if (!config_.train.init_checkpoint.empty()) {
    io::ForeignOptions options;
    options.key = config_.train.init_key;
    options.spec = spec;
    options.strict = config_.train.init_strict;
    options.reset_head = config_.train.init_reset_head;
    options.mean = request_.given_mean;
    options.std = request_.given_std;
    init = io::load_any_checkpoint(config_.train.init_checkpoint, options);
    // A foreign file has no spec of its own: load_any_checkpoint checked its layout instead.
    if (!init->foreign()) check_pretrained_matches(spec, *init);
  }
  if (init) {
    // The pretrained model's own normalization travels with its weights.
    spec.mean = init->spec.mean;
    spec.std = init->spec.std;
    // A TorchScript model given as --checkpoint is its own architecture.
    if (spec.kind == init->spec.kind && spec.path.empty()) spec.path = init->spec.path;
  }
  config_.model = spec;
  record_model_in_config();
  torch::manual_seed(config_.train.seed);  // the initial weights are part of a reproducible run
  model_ = models::make_model(spec);
  if (init) {
    const bool strict = request_.resume || config_.train.init_strict;
    io::load_checkpoint_weights(*model_, *init, strict, models::describe(spec));
  }
  device_warmup.wait();
  model_->to(device_);
  if (group_) {
    // Every process built the same weights; copying rank 0's makes sure of it, as
    // DistributedDataParallel does when it wraps a model.
    std::vector<torch::Tensor> state = model_->parameters();
    for (const torch::Tensor& b : model_->buffers())
      state.push_back(b);
    group_->broadcast(state, 0);
  }
  if (runtime::resolve_channels_last(config_.channels_last, device_, "channels_last"))
    runtime::to_channels_last(*model_);
  runtime::configure_matmul_precision(precision_);
  runtime::set_cudnn_benchmark_limit(config_.cudnn_benchmark_limit, device_);
  const bool fused =
      models::resolve_fused_batch_norm_relu(config_.fused_bn_relu, device_, "fused_bn_relu");
  models::set_fused_batch_norm_relu(fused);
  if (fused) spdlog::info("BatchNorm+ReLU in training: advft's fused kernels (bf16, fp16)");

  placement_ = data::resolve_placement(config_.data.placement, data_.train, device_);
  data::Shard shard;
  if (group_) shard = {group_->rank(), group_->size()};
  loader_.emplace(data_.train, config_.train.batch_size, /*shuffle=*/true, /*drop_last=*/true,
                  config_.train.seed, device_, placement_, shard);
  val_images_ = data_.val.size();
  if (group_ && val_images_ > 0) data_.val = data::shard_of(data_.val, shard);
  steps_per_epoch_ = loader_->batches_per_epoch();
  if (steps_per_epoch_ == 0) {
    throw ConfigError("train.batch_size = " + std::to_string(config_.train.batch_size) +
                      " is larger than the training set (" + std::to_string(data_.train.size()) +
                      " images)");
  }
  total_steps_ = steps_per_epoch_ * config_.train.epochs;
  schedule_ = schedule::make_schedule(config_.schedule, total_steps_);
  optimizer_ = std::make_unique<Sgd>(*model_, config_.optimizer);
  build_step();

  if (request_.resume) {
    state_ = TrainState::from_json(init->train_state, init->path);
    auto [tensors, meta] = io::load_tensor_state(paths_.last_state);
    if (meta.value("next_step", int64_t{-1}) != state_.next_step) {
      throw CheckpointError(paths_.last_state + " belongs to step " +
                            std::to_string(meta.value("next_step", int64_t{-1})) + " but " +
                            paths_.last + " to step " + std::to_string(state_.next_step) +
                            "; the run directory is inconsistent");
    }
    optimizer_->load_state(tensors, paths_.last_state);
    scaler_.load_state(meta.value("loss_scale", nlohmann::json()));
  }
  if (writes_ && request_.resume) forget_records_after_checkpoint();
  if (writes_) metrics_.emplace(paths_.metrics, /*append=*/request_.resume);
  epoch_start_train_seconds_ = state_.train_seconds;
}

// A resumed run starts from its last checkpoint, which may be older than the last records: the
// process was killed between checkpoints, or a checkpoint failed to write. It writes those steps'
// and epochs' records again, so the ones after the checkpoint go; so does a finished run's
// "done", which finishing again rewrites. metrics.jsonl then reads as an uninterrupted run's.
void Trainer::forget_records_after_checkpoint() {
  if (!std::filesystem::exists(paths_.metrics)) return;
  const int64_t resumed_at = state_.next_step;
  const size_t dropped = io::drop_records(paths_.metrics, [&](const nlohmann::json& r) {
    const std::string type = r.value("type", "");
    if (type == "step") return r.value("step", int64_t{0}) <= resumed_at;
    if (type == "epoch") return r.value("epoch", int64_t{0}) * steps_per_epoch_ <= resumed_at;
    return type != "done";
  });
  if (dropped > 0) {
    spdlog::info(
        "{}: dropped {} records written after the checkpoint at step {}; this run "
        "writes them again",
        paths_.metrics, dropped, resumed_at);
  }
}

// prepare_run wrote config.json before the pretrained model was read, with the config's
// normalization; the run uses the pretrained model's own (and a TorchScript file's path), so the
// record is brought up to date: config.json says how the run's model sees its images.
void Trainer::record_model_in_config() const {
  const models::ModelSpec& written = request_.config.model;
  const models::ModelSpec& used = config_.model;
  if (!writes_ || request_.resume) return;
  const bool normalization_differs = used.mean != written.mean || used.std != written.std;
  if (!normalization_differs && used.path == written.path) return;
  if (normalization_differs) {
    spdlog::info(
        "normalization: the pretrained model's own, mean {} std {} (not the config's; "
        "config.json records it)",
        nlohmann::json(used.mean).dump(), nlohmann::json(used.std).dump());
  }
  io::write_json_atomic(paths_.config, config::to_json(config_));
}

void Trainer::build_step() {
  StepOptions options;
  options.adversarial = config_.train.adversarial;
  options.attack = config_.attack;
  options.clean_weight = config_.train.clean_weight;
  options.objective = config_.train.objective;
  options.trades_beta = config_.train.trades_beta;
  options.precision = precision_;
  options.device = device_;
  const std::string eval_hazard = eval::eval_not_capturable(config_.model.kind);
  const std::string step_hazard = step_not_capturable(precision_, config_.model.kind);
  eval_graphs_ =
      runtime::resolve_graph_mode(config_.cuda_graphs, device_, "cuda_graphs", eval_hazard);
  graphs_ = step_hazard == eval_hazard ? eval_graphs_
                                       : runtime::resolve_graph_mode(config_.cuda_graphs, device_,
                                                                     "cuda_graphs", step_hazard);
  if (group_ && graphs_ != runtime::GraphMode::kOff) {
    spdlog::info(
        "the training step runs without CUDA graphs: its gradient average over the {} "
        "processes is a collective between backward and the update; validation keeps "
        "them",
        group_->size());
    graphs_ = runtime::GraphMode::kOff;
  }
  options.graphs = graphs_;
  options.group = group_;
  step_ = std::make_unique<TrainStep>(*model_, *optimizer_, scaler_, options);
  const auto sum_options = torch::TensorOptions().device(device_);
  window_loss_ = torch::zeros({}, sum_options.dtype(torch::kDouble));
  window_correct_ = torch::zeros({}, sum_options.dtype(torch::kLong));
}

void Trainer::train_step(int64_t step) {
  const int64_t epoch = step / steps_per_epoch_;
  torch::manual_seed(step_seed(draw_seed_, step));
  data::Batch batch = loader_->batch(epoch, step % steps_per_epoch_);
  // Image folders were cropped and flipped as they were decoded.
  const torch::Tensor x =
      data_.train.in_memory()
          ? data::augment(batch.images, data::AugmentOptions{config_.data.crop_padding,
                                                             config_.data.horizontal_flip})
          : batch.images;

  if (window_steps_ == 0) window_start_ = Clock::now();
  last_lr_ = schedule_->lr(step);
  const StepResult result = step_->run(x, batch.labels, last_lr_);
  window_loss_.add_(result.loss);
  window_correct_.add_(result.correct);
  window_images_ += batch.labels.size(0);
  ++window_steps_;
}

CarriedWindow Trainer::close_window(int64_t step) {
  CarriedWindow window;
  window.steps = window_steps_;
  window.images = window_images_;
  window.seconds = seconds_since(window_start_);
  // Every process decides on the same loss whether the run diverged.
  if (group_) {
    std::vector<torch::Tensor> sums{window_loss_, window_correct_};
    group_->all_reduce_sum(sums);
  }
  window.loss_sum = window_loss_.item<double>();  // waits for the window's steps
  window.correct = window_correct_.item<int64_t>();
  window_loss_.zero_();
  window_correct_.zero_();
  window_images_ = window_steps_ = 0;
  if (!std::isfinite(window.loss_sum)) {
    const int64_t first = step + 2 - window.steps;
    const std::string steps = window.steps > 1 ? "steps " + std::to_string(first) + "-" : "step ";
    throw_diverged(step, "the loss of " + steps + std::to_string(step + 1) + " is " +
                             (std::isnan(window.loss_sum) ? "NaN" : "infinite"));
  }
  return window;
}

void Trainer::reopen_window(const CarriedWindow& carried) {
  window_steps_ = carried.steps;
  window_images_ = carried.images;
  // The sums are of all processes: one of them holds them, the others add their own steps.
  if (writes_) {
    window_loss_.fill_(carried.loss_sum);
    window_correct_.fill_(carried.correct);
  }
  window_start_ = Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(carried.seconds));
}

void Trainer::flush_step_record(int64_t step, int64_t epoch) {
  if (window_steps_ == 0) return;
  const CarriedWindow window = close_window(step);
  state_.train_seconds += window.seconds;
  // The record is of the whole batch.
  const int64_t processes = group_ ? group_->size() : 1;
  const int64_t images = window.images * processes;
  const int64_t loss_terms = window.steps * processes;
  const double seconds = window.seconds;
  const double images_per_s = seconds > 0 ? static_cast<double>(images) / seconds : 0.0;
  const double loss = window.loss_sum / static_cast<double>(loss_terms);
  const double accuracy = 100.0 * static_cast<double>(window.correct) / static_cast<double>(images);
  if (metrics_)
    metrics_->write(
        {{"type", "step"},
         {"step", step + 1},
         {"epoch", epoch + 1},
         {"lr", last_lr_},
         {"loss", loss},
         {config_.train.adversarial ? "train_adv_accuracy" : "train_accuracy", accuracy},
         {"images_per_s", images_per_s}});
  spdlog::info("epoch {}/{} step {}/{} lr {:.5f} loss {:.4f} {} acc {:.2f}% {:.0f} img/s",
               epoch + 1, config_.train.epochs, step + 1, total_steps_, last_lr_, loss,
               config_.train.adversarial ? "adv" : "train", accuracy, images_per_s);
}

// The loss can stay finite while BatchNorm statistics have already overflowed (BN renormalizes
// huge activations), so a checkpoint is only written when every tensor in it is finite.
void Trainer::check_finite(int64_t step) const {
  torch::NoGradGuard no_grad;
  for (const auto& item : model_->named_parameters()) {
    if (!item.value().isfinite().all().item<bool>())
      throw_diverged(step, item.key() + " is not finite after step " + std::to_string(step + 1));
  }
  for (const auto& item : model_->named_buffers()) {
    if (item.value().is_floating_point() && !item.value().isfinite().all().item<bool>()) {
      throw_diverged(step, item.key() + " is not finite after step " + std::to_string(step + 1));
    }
  }
}

void Trainer::throw_diverged(int64_t step, const std::string& what) const {
  try {
    writer_.wait();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());  // the divergence is the error to report; this one is logged
  }
  std::ostringstream message;
  message << "training diverged: " << what << " (epoch " << step / steps_per_epoch_ + 1 << ", lr "
          << last_lr_ << "); the last good checkpoint is "
          << (std::filesystem::exists(paths_.last) ? paths_.last : std::string("(none yet)"))
          << "; lower schedule.peak_lr and start again";
  throw DivergedError(message.str());
}

void Trainer::save_last(int64_t next_step, bool also_best) {
  average_buffers();
  check_finite(next_step - 1);
  state_.next_step = next_step;
  if (!writes_) return;
  const int64_t epoch = next_step / steps_per_epoch_;
  // Copies taken now, written while training goes on. Optimizer state first: a crash between
  // the two writes leaves a model file that is older than its state file, which resume detects
  // by the step they each record. "best" is then a second name of the same bytes.
  std::vector<io::NamedTensor> optimizer_state = io::snapshot_tensors(optimizer_->state());
  const nlohmann::json optimizer_meta = {{"next_step", next_step}, {"loss_scale", scaler_.state()}};
  io::CheckpointImage model = io::checkpoint_image(*model_, config_.model, state_json(epoch));
  writer_.submit([paths = paths_, optimizer_state = std::move(optimizer_state), optimizer_meta,
                  model = std::move(model), also_best] {
    io::save_tensor_state(paths.last_state, optimizer_state, optimizer_meta);
    io::write_checkpoint_image(paths.last, model);
    if (also_best) io::link_file_atomic(paths.last, paths.best);
  });
}

void Trainer::average_buffers() {
  if (!group_) return;
  std::vector<torch::Tensor> statistics;
  for (const torch::Tensor& b : model_->buffers()) {
    if (b.is_floating_point()) statistics.push_back(b);  // not num_batches_tracked: equal anyway
  }
  group_->average(statistics);
}

void Trainer::check_weights_agree(int64_t epoch) const {
  if (!group_) return;
  torch::NoGradGuard no_grad;
  // A sum of every weight, and of every weight times its position in the model, in fp64: two
  // numbers that any difference between the processes' weights changes.
  double plain = 0.0;
  double weighted = 0.0;
  int64_t position = 0;
  for (const torch::Tensor& p : model_->parameters()) {
    const double sum = p.to(torch::kDouble).sum().item<double>();
    plain += sum;
    weighted += sum * static_cast<double>(++position);
  }
  const torch::Tensor mine = torch::tensor({plain, weighted}, torch::kDouble);
  const torch::Tensor rank0 = mine.clone();
  group_->broadcast({rank0}, 0);
  const int64_t differ = group_->max(torch::equal(mine, rank0) ? 0 : 1);
  if (differ != 0) {
    throw DistError("after epoch " + std::to_string(epoch + 1) +
                    " the processes' weights differ from rank 0's; the gradient average did not "
                    "keep them together (a bug: please report it with the log)");
  }
}

int Trainer::stop_vote() const {
  const int signal = runtime::stop_signal();
  return group_ ? static_cast<int>(group_->max(signal)) : signal;
}

bool Trainer::epoch_end_pending() const {
  const int64_t step = state_.next_step;
  if (step == 0 || step % steps_per_epoch_ != 0) return false;
  const int64_t recorded =
      state_.last_epoch.is_object() ? state_.last_epoch.value("epoch", int64_t{0}) : 0;
  return recorded != step / steps_per_epoch_;
}

void Trainer::end_of_epoch(int64_t epoch) {
  average_buffers();
  check_finite((epoch + 1) * steps_per_epoch_ - 1);  // before validating a broken model
  check_weights_agree(epoch);
  nlohmann::json record = {{"type", "epoch"},
                           {"epoch", epoch + 1},
                           {"lr", last_lr_},
                           {"train_seconds", state_.train_seconds}};
  if (placement_ == data::Placement::kHost) record_input_wait(epoch, record);
  if (val_images_ > 0) {
    attacks::NamedAttack attack{attacks::describe_attack(config_.train.val_attack),
                                config_.train.val_attack};
    eval::EvalOptions options;
    options.batch_size = config_.train.val_batch_size;
    options.seed = draw_seed_;
    options.precision = precision_;
    options.graphs = eval_graphs_;
    options.placement = placement_;
    options.stop_on_signal = group_ == nullptr;
    eval::EvalReport report = eval::evaluate(*model_, data_.val, {attack}, options, device_);
    if (group_) report = eval::combine_over(report, *group_);
    record["val_clean_accuracy"] = report.clean_accuracy;
    record["val_robust_accuracy"] = report.attacks[0].accuracy;
    record["val_attack"] = attack.name;
    record["val_seconds"] = report.seconds;
    spdlog::info("epoch {}/{} validation ({} images): clean {:.2f}%, {} {:.2f}%", epoch + 1,
                 config_.train.epochs, report.total, report.clean_accuracy, attack.name,
                 report.attacks[0].accuracy);
    // "Best" is by robust accuracy, except for clean training, where robust accuracy is ~0.
    const double score =
        config_.train.adversarial ? report.attacks[0].accuracy : report.clean_accuracy;
    if (score > state_.best_val_score) {
      state_.best_val_score = score;
      state_.best_epoch = epoch + 1;
      record["best"] = true;
    }
  } else {
    state_.best_epoch = epoch + 1;  // with nothing to compare, the latest epoch is the one kept
  }
  state_.last_epoch = record;
  if (metrics_) metrics_->write(record);
  save_last((epoch + 1) * steps_per_epoch_, /*also_best=*/state_.best_epoch == epoch + 1);
}

// With the data read through the prefetcher, how long the steps waited for their batches: the
// first thing to look at when an ImageNet run is slower than its model should be.
void Trainer::record_input_wait(int64_t epoch, nlohmann::json& record) {
  const double waited = loader_->input_wait_seconds() - epoch_start_input_wait_;
  const double seconds = state_.train_seconds - epoch_start_train_seconds_;
  epoch_start_input_wait_ = loader_->input_wait_seconds();
  epoch_start_train_seconds_ = state_.train_seconds;
  record["input_wait_seconds"] = waited;
  const double share = seconds > 0 ? 100.0 * waited / seconds : 0.0;
  if (share > 10.0 && waited > 1.0) {
    spdlog::warn(
        "epoch {}/{}: the training steps waited {:.1f} s ({:.0f}% of {:.1f} s) for input; the "
        "data pipeline is the bottleneck: give it more cores (threads), or faster storage",
        epoch + 1, config_.train.epochs, waited, share, seconds);
  } else {
    spdlog::info("epoch {}/{}: the training steps waited {:.1f} s ({:.1f}%) for input", epoch + 1,
                 config_.train.epochs, waited, share);
  }
}

// Besides what resume needs, the data set and training attack: `advft eval --checkpoint` uses
// them as defaults, so a checkpoint evaluates with no config.
nlohmann::json Trainer::state_json(int64_t epoch) const {
  nlohmann::json attack = config::attack_to_json(config_.attack);
  attack["adversarial"] = config_.train.adversarial;
  return {{"command", request_.command},
          {"next_step", state_.next_step},
          {"total_steps", total_steps_},
          {"epoch", epoch},
          {"best_val_score", state_.best_val_score},
          {"best_epoch", state_.best_epoch},
          {"train_seconds", state_.train_seconds},
          {"last_epoch", state_.last_epoch},
          {"log_window", state_.window.steps > 0 ? state_.window.to_json() : nlohmann::json()},
          {"data",
           {{"dataset", config_.data.dataset},
            {"dir", config_.data.dir},
            {"coarse_labels", config_.data.coarse_labels},
            {"image_size", config_.data.image_size},
            {"resize_size", config_.data.resize_size}}},
          {"attack", attack}};
}

nlohmann::json Trainer::results() const {
  return {{"command", request_.command},
          {"run_dir", paths_.dir},
          {"epochs", config_.train.epochs},
          {"steps", total_steps_},
          {"train_images", data_.train.size()},
          {"val_images", val_images_},
          {"train_seconds", state_.train_seconds},
          {"best_epoch", state_.best_epoch},
          {"best_val_accuracy",
           val_images_ > 0 ? nlohmann::json(state_.best_val_score) : nlohmann::json(nullptr)},
          {"best_by", val_images_ == 0            ? "last epoch (no validation set)"
                      : config_.train.adversarial ? "robust validation accuracy"
                                                  : "clean validation accuracy"},

          {"final", state_.last_epoch},
          {"checkpoints", {{"last", paths_.last}, {"best", paths_.best}}},
          {"model", models::describe(config_.model)}};
}

nlohmann::json Trainer::run() {
  // The whole run on one side stream of the GPU: graphs are captured there, and eager steps,
  // replays, validation and checkpoint reads stay in order without extra syncs.
  const runtime::StreamScope stream(device_);
  build();
  spdlog::info(
      "{} {} on {}: {} training / {} validation images, {} epochs x {} steps, {}, device {}, "
      "{}{}",
      request_.command, models::describe(config_.model), config_.data.dataset, data_.train.size(),
      val_images_, config_.train.epochs, steps_per_epoch_, describe_objective(config_),
      device_.str(), runtime::precision_name(precision_),
      graphs_ == runtime::GraphMode::kCuda ? ", CUDA graphs" : "");
  if (request_.resume) spdlog::info("resuming at step {} of {}", state_.next_step, total_steps_);
  if (group_) {
    spdlog::info("data-parallel over {} processes: {} images of each batch of {} per process",
                 group_->size(), loader_->local_batch_size(), config_.train.batch_size);
  }

  const int64_t first_step = state_.next_step;
  int64_t completed = first_step;
  try {
    // A stop that came during an epoch's validation (the evaluator polls for it too) saved the
    // epoch's last step without the epoch's record: validate that epoch first, as the run would
    // have, so that its record, best checkpoint and final accuracy are not skipped.
    if (first_step > 0) last_lr_ = schedule_->lr(first_step - 1);  // the saved step's
    if (epoch_end_pending()) end_of_epoch(first_step / steps_per_epoch_ - 1);
    reopen_window(state_.window);
    state_.window = {};
    for (int64_t step = first_step; step < total_steps_; ++step) {
      // Checked before the step, not after: a stop asked for while the run was starting (Ctrl-C
      // during the data loading) saves nothing, so a forced run gives back the run it replaced.
      if (int signal = stop_vote()) {
        throw InterruptedError("stopped by signal " + std::to_string(signal), 128 + signal);
      }
      train_step(step);
      completed = step + 1;
      const int64_t epoch = step / steps_per_epoch_;
      const bool epoch_done = completed % steps_per_epoch_ == 0;
      if (completed % config_.train.log_every == 0 || epoch_done) flush_step_record(step, epoch);
      if (epoch_done) end_of_epoch(epoch);
    }
  } catch (const InterruptedError& e) {
    // The model is consistent after every completed step: keep it so --resume continues here.
    if (completed > first_step) {
      // The window's record is written when the resumed run completes the window.
      if (window_steps_ > 0) state_.window = close_window(completed - 1);
      save_last(completed, /*also_best=*/false);
    }
    writer_.wait();
    std::string outcome = "; no step was completed, nothing to resume";
    if (completed > first_step) {
      outcome = "; saved " + paths_.last + "; continue with --resume " + paths_.dir;
    } else if (std::filesystem::exists(paths_.last)) {  // a resumed run stopped at once
      outcome = "; nothing new to save; continue with --resume " + paths_.dir;
    }
    // Said afresh: the evaluator's own message ("nothing was written") is for eval's users.
    throw InterruptedError("stopped by signal " + std::to_string(e.exit_code() - 128) +
                               " at step " + std::to_string(completed) + " of " +
                               std::to_string(total_steps_) + outcome,
                           e.exit_code());
  }
  writer_.wait();  // results.json names the checkpoints: they are on disk first
  nlohmann::json out = results();
  if (!writes_) return out;
  io::write_json_atomic(paths_.results, out);
  metrics_->write(
      {{"type", "done"}, {"steps", total_steps_}, {"train_seconds", state_.train_seconds}});
  return out;
}

}  // namespace

uint64_t step_seed(uint64_t run_seed, int64_t step) {
  // splitmix64 of (seed, step): well-mixed, cheap, the same everywhere.
  uint64_t z =
      run_seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(step) + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return (z ^ (z >> 31)) >> 1;  // manual_seed wants a value that fits in int64 for some backends
}

nlohmann::json run_training(const RunRequest& request) {
  Trainer trainer(request);
  return trainer.run();
}

}  // namespace advft::train
