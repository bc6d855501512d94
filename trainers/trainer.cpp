#include "trainers/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "trainers/checkpoint.h"
#include "trainers/logging.h"
#include "trainers/optim.h"
#include "trainers/safetensors.h"
#include "trainers/tensorboard.h"

namespace nlpkit {
namespace fs = std::filesystem;

// ------------------------------------------------------------------------------ device, seeds

torch::Device resolve_device(const std::string& device) {
  if (device == "auto") return torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;
  if (device == "cpu") return torch::kCPU;
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw ConfigError("device: '" + device + "' asked for, but CUDA is not available " +
                        "(this LibTorch has no CUDA, or no GPU is visible); use device: auto");
    }
    try {
      torch::Device d(device);
      if (d.has_index() && d.index() >= static_cast<int>(torch::cuda::device_count())) {
        throw ConfigError("device: '" + device + "': only " +
                          std::to_string(torch::cuda::device_count()) + " CUDA device(s)");
      }
      return d;
    } catch (const c10::Error&) {
    }
  }
  throw ConfigError("device: unknown device '" + device + "'; expected auto, cpu, cuda or cuda:N");
}

void seed_everything(int64_t seed) { torch::manual_seed(static_cast<uint64_t>(seed)); }

namespace {

std::string to_hex(const torch::Tensor& bytes) {
  static const char* digits = "0123456789abcdef";
  auto t = bytes.contiguous();
  const uint8_t* p = t.data_ptr<uint8_t>();
  std::string out;
  for (int64_t i = 0; i < t.numel(); ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

torch::Tensor from_hex(const std::string& hex, const std::string& source) {
  if (hex.size() % 2) throw InputError(source + ": rng_state: odd-length hex string");
  auto t = torch::empty({int64_t(hex.size() / 2)}, torch::kUInt8);
  uint8_t* p = t.data_ptr<uint8_t>();
  for (size_t i = 0; i < hex.size(); i += 2) {
    p[i / 2] = static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return t;
}

torch::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

bool is_better(double value, double best, const TrainerConfig& t) {
  if (std::isnan(best)) return true;
  return t.metric_mode == "max" ? value > best + t.min_delta : value < best - t.min_delta;
}

// Signals set a flag; the loop checks it between steps, saves and leaves cleanly.
std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal = sig; }

struct SignalScope {
  using Handler = void (*)(int);
  Handler old_int, old_term;
  SignalScope() {
    g_signal = 0;
    old_int = std::signal(SIGINT, on_signal);
    old_term = std::signal(SIGTERM, on_signal);
  }
  ~SignalScope() {
    std::signal(SIGINT, old_int);
    std::signal(SIGTERM, old_term);
  }
};

}  // namespace

// ------------------------------------------------------------------------------ state

nlohmann::json TrainerState::to_json() const {
  return {{"step", step},
          {"epoch", epoch},
          {"batch", batch},
          {"nonfinite_steps", nonfinite_steps},
          {"consecutive_nonfinite", consecutive_nonfinite},
          {"best_metric",
           std::isnan(best_metric) ? nlohmann::json(nullptr) : nlohmann::json(best_metric)},
          {"best_step", best_step},
          {"evals_without_improvement", evals_without_improvement},
          {"elapsed_seconds", elapsed_seconds},
          {"world_size", world_size},
          {"batch_size", batch_size}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& source) {
  TrainerState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.epoch = j.at("epoch").get<int64_t>();
    s.batch = j.at("batch").get<int64_t>();
    s.nonfinite_steps = j.at("nonfinite_steps").get<int64_t>();
    s.consecutive_nonfinite = j.at("consecutive_nonfinite").get<int64_t>();
    s.best_metric = j.at("best_metric").is_null() ? NAN : j.at("best_metric").get<double>();
    s.best_step = j.at("best_step").get<int64_t>();
    s.evals_without_improvement = j.at("evals_without_improvement").get<int64_t>();
    s.elapsed_seconds = j.value("elapsed_seconds", 0.0);  // absent before nlpkit 0.1 kept it
    s.world_size = j.value("world_size", int64_t{1});     // absent before distributed training
    s.batch_size = j.value("batch_size", int64_t{0});
  } catch (const nlohmann::json::exception& e) {
    throw InputError(source + ": bad trainer state: " + e.what());
  }
  return s;
}

// ------------------------------------------------------------------------------ checkpoints

namespace {

/// A checkpoint's trainer_state.json, parsed.
nlohmann::json read_trainer_state(const std::string& state_file) {
  std::ifstream in(state_file);
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(state_file + ": invalid JSON: " + e.what());
  }
  return j;
}

}  // namespace

std::string find_checkpoint(const std::string& path) {
  if (fs::exists(fs::path(path) / "manifest.json")) return path;
  for (const std::string& root : {path, path + "/checkpoints"}) {
    if (fs::exists(fs::path(root) / "latest")) {
      if (auto latest = latest_checkpoint(root)) return *latest;
    }
  }
  throw InputError("no checkpoint found at " + path +
                           " (expected a checkpoint directory or a run directory)");
}

std::string find_best_checkpoint(const std::string& path) {
  const std::string latest = find_checkpoint(path);
  if (latest == path) return latest;  // a checkpoint directory names itself
  const std::string state_file = latest + "/trainer_state.json";
  const nlohmann::json j = read_trainer_state(state_file);
  const int64_t best_step = TrainerState::from_json(j, state_file).best_step;
  if (best_step < 0) return latest;
  const fs::path best = fs::path(latest).parent_path() / checkpoint_name(best_step);
  return fs::exists(best / "manifest.json") ? best.string() : latest;
}

void load_weights(Task& task, const std::string& dir) {
  verify_checkpoint(dir);
  const std::string file = dir + "/model.safetensors";
  load_module_state(*task.model(), load_safetensors(file).tensors, file);
}

Trainer::Trainer(ExperimentConfig config, Task& task, torch::Device device,
                 std::shared_ptr<Communicator> comm)
    : config_(std::move(config)),
      task_(task),
      device_(device),
      comm_(comm ? std::move(comm) : std::make_shared<Communicator>()),
      precision_(parse_precision(config_.precision)),
      scaler_(precision_ == Precision::kFp16),
      model_(task.model()),
      groups_(parameter_groups(*model_, [&task](const std::string& name) {
        return task.lr_scale(name);
      })),
      optimizer_(make_optimizer(groups_, config_.optimizer)),
      run_dir_(config_.run_dir()),
      checkpoint_root_(run_dir_ + "/checkpoints") {}

int64_t Trainer::display_epoch() const {
  // The epoch being trained, 1-based; right after an epoch ends, that epoch.
  return state_.epoch + (state_.batch > 0 ? 1 : 0);
}

int64_t Trainer::total_steps() {
  if (config_.trainer.max_steps > 0) return config_.trainer.max_steps;
  const int64_t per_epoch =
      (task_.batches_per_epoch() + config_.trainer.grad_accum_steps - 1) /
      config_.trainer.grad_accum_steps;
  return per_epoch * config_.trainer.epochs;
}

void Trainer::save_checkpoint() {
  const std::string name = checkpoint_name(state_.step);
  state_.elapsed_seconds =
      elapsed_base_ +
      std::chrono::duration<double>(std::chrono::steady_clock::now() - session_start_).count();
  state_.world_size = comm_->world_size();
  state_.batch_size = config_.data.batch_size;
  saved_step_ = state_.step;
  // Every rank holds the same weights and optimizer state: rank 0 writes them, the others wait
  // so that nobody reads a checkpoint (the best weights, a resume) before it exists.
  if (comm_->is_main()) {
    nlohmann::json trainer_state = state_.to_json();
    trainer_state["rng_state"] = to_hex(cpu_rng_state());
    if (scaler_.enabled()) trainer_state["loss_scaler"] = scaler_.state();
    commit_checkpoint(checkpoint_root_, name, [&](const std::string& dir) {
      save_safetensors(dir + "/model.safetensors", module_state(*model_));
      torch::save(*optimizer_, dir + "/optimizer.pt");
      write_file_atomic(dir + "/trainer_state.json", trainer_state.dump(2) + "\n");
      write_file_atomic(dir + "/config.yaml", dump_config(config_));
      task_.save_artifacts(dir);
      const NamedTensors task_state = task_.state();
      if (!task_state.empty()) save_safetensors(dir + "/task_state.safetensors", task_state);
    });
    std::set<std::string> keep;
    if (config_.trainer.keep_best && state_.best_step >= 0) {
      keep.insert(checkpoint_name(state_.best_step));
    }
    prune_checkpoints(checkpoint_root_, config_.trainer.keep_last, keep);
  }
  comm_->barrier();

}

void Trainer::resume_from(const std::string& dir) {
  verify_checkpoint(dir);
  load_weights(task_, dir);
  torch::load(*optimizer_, dir + "/optimizer.pt");
  const std::string state_file = dir + "/trainer_state.json";
  const nlohmann::json j = read_trainer_state(state_file);
  state_ = TrainerState::from_json(j, state_file);
  if (state_.batch_size == 0) state_.batch_size = config_.data.batch_size;
  // (A single process that changes batch_size keeps its batch index, as before distributed
  // training: `batch` need not count examples, e.g. a language model's bptt windows.)
  if (state_.world_size != comm_->world_size() ||
      (state_.world_size > 1 && state_.batch_size != config_.data.batch_size)) {
    // `batch` counts one rank's batches; the ranks together have gone through
    // batch * batch_size * world_size examples of the epoch's order (data sharded like
    // EpochBatches), which another world size or batch size continues from if it divides them.
    const int64_t done = state_.batch * state_.batch_size * state_.world_size;
    const int64_t per_batch = config_.data.batch_size * comm_->world_size();
    if (done % per_batch != 0) {
      throw InputError(state_file + ": saved by " + std::to_string(state_.world_size) +
                       " rank(s) after " + std::to_string(done) + " examples of epoch " +
                       std::to_string(state_.epoch) + ", which " +
                       std::to_string(comm_->world_size()) + " ranks of batch_size " +
                       std::to_string(config_.data.batch_size) +
                       " cannot continue from; resume with a world size that divides it");
    }
    state_.batch = done / per_batch;
    state_.world_size = comm_->world_size();
    state_.batch_size = config_.data.batch_size;
  }
  const std::string task_state = dir + "/task_state.safetensors";
  if (std::filesystem::exists(task_state)) {
    task_.load_state(load_safetensors(task_state).tensors, task_state);
  }
  set_cpu_rng_state(from_hex(j.at("rng_state").get<std::string>(), state_file));
  // A run resumed in another precision starts its scaler afresh.
  if (scaler_.enabled() && j.contains("loss_scaler")) {
    scaler_.load_state(j.at("loss_scaler"), state_file);
  }
}

bool Trainer::validate(ProgressReporter& progress, RunLog& log) {
  if (!task_.has_split(Split::kValid) || validated_step_ == state_.step) return false;
  validated_step_ = state_.step;
  Evaluation eval = task_.evaluate(Split::kValid);
  // Every rank evaluates; averaging makes the decisions below (best, early stopping) the same
  // on all of them, which they must be for the ranks to stay in step.
  eval.metrics = comm_->average(eval.metrics);
  auto it = eval.metrics.find(config_.trainer.metric);
  if (it == eval.metrics.end()) {
    std::string known;
    for (const auto& kv : eval.metrics) known += (known.empty() ? "" : ", ") + kv.first;
    throw ConfigError("trainer.metric: '" + config_.trainer.metric +
                      "' is not computed by this task; available: " + known);
  }
  nlohmann::json record = {{"split", "valid"}, {"step", state_.step}, {"epoch", display_epoch()}};
  std::string line = "valid step " + std::to_string(state_.step);
  for (const auto& [name, value] : eval.metrics) {
    record[name] = value;
    char buf[64];
    std::snprintf(buf, sizeof buf, " | %s %.4f", name.c_str(), value);
    line += buf;
  }
  log.write(record);
  const TrainerConfig& t = config_.trainer;
  const bool improved = is_better(it->second, state_.best_metric, t);
  if (improved) {
    state_.best_metric = it->second;
    state_.best_step = state_.step;
    state_.evals_without_improvement = 0;
    line += " | best";
  } else {
    ++state_.evals_without_improvement;
  }
  progress.message(line);
  // The best weights must exist on disk to be kept: save them now.
  if (improved && t.keep_best) save_checkpoint();
  return t.patience > 0 && state_.evals_without_improvement >= t.patience;
}

void Trainer::log_histograms(RunLog& log) {
  EventWriter* events = log.events();
  if (!events) return;
  std::vector<std::pair<std::string, Histogram>> histograms;
  for (const auto& p : model_->named_parameters()) {
    histograms.emplace_back("weights/" + p.key(), make_histogram(p.value()));
    if (p.value().grad().defined()) {
      histograms.emplace_back("gradients/" + p.key(), make_histogram(p.value().grad()));
    }
  }
  events->add_histograms(histograms, state_.step);
}

FitResult Trainer::fit() {
  const TrainerConfig& t = config_.trainer;
  const bool main = comm_->is_main();
  if (main) {
    fs::create_directories(run_dir_);
    write_file_atomic(run_dir_ + "/config.yaml", dump_config(config_));
  }
  if (t.resume == "auto") {
    if (fs::exists(checkpoint_root_ + "/latest")) resume_from(*latest_checkpoint(checkpoint_root_));
  } else if (t.resume != "none") {
    resume_from(find_checkpoint(t.resume));
  }
  elapsed_base_ = state_.elapsed_seconds;
  session_start_ = std::chrono::steady_clock::now();
  const LoggingConfig& logging = config_.logging;
  RunLog log(run_dir_, main && logging.jsonl, main && logging.tensorboard);
  if (EventWriter* events = log.events()) {
    // A resumed run redraws the steps after its checkpoint: TensorBoard drops the old ones.
    if (state_.step > 0) events->add_session_start(state_.step + 1);
    std::string text;  // indented: a Markdown code block in TensorBoard's Text tab
    std::istringstream lines(dump_config(config_));
    for (std::string line; std::getline(lines, line);) text += "    " + line + "\n";
    events->add_text("config", text, state_.step);
  }
  ProgressReporter progress(main ? logging.progress : "none");
  SignalScope signals;
  FitResult result;
  const int64_t total = total_steps();
  const int64_t per_epoch = task_.batches_per_epoch();
  if (precision_ != Precision::kFp32 && !autocast_supported(precision_, device_)) {
    progress.message("precision " + config_.precision + ": no " + config_.precision +
                     " autocast on " + device_.str() +
                     " in this LibTorch; the forward pass runs in fp32 (use bf16 on CPU)");
  }
  if (state_.step > 0) {
    progress.message("resumed at step " + std::to_string(state_.step) + " (epoch " +
                     std::to_string(state_.epoch) + ", batch " + std::to_string(state_.batch) +
                     ")");
  }
  std::vector<torch::Tensor> params;  // the optimizer's: shared tensors once
  for (const auto& g : groups_) params.insert(params.end(), g.params.begin(), g.params.end());
  // All ranks start from rank 0's weights (also after a resume, where they already agree).
  broadcast_module(*comm_, *model_);
  const bool distributed = comm_->distributed();
  GradientSync sync(comm_, params,
                    static_cast<int64_t>(config_.distributed.bucket_mb * 1024 * 1024));
  std::vector<torch::Tensor> penalized;  // L1/L2 apply to the decayed weights only
  for (const auto& g : groups_) {
    if (g.decay) penalized.insert(penalized.end(), g.params.begin(), g.params.end());
  }

  // Totals since the last log line, for the averaged loss and the throughput.
  double loss_sum = 0, grad_norm = 0;
  int64_t loss_count = 0, tokens = 0, examples = 0;
  auto window_start = std::chrono::steady_clock::now();
  bool stop = false;

  // Validation at the end of an epoch happens once the position already points at the next
  // epoch, so that a checkpoint written then resumes cleanly.
  auto end_epoch = [&] {
    ++state_.epoch;
    state_.batch = 0;
    if (t.eval_each_epoch) stop = validate(progress, log) || stop;
  };
  while (state_.step < total && !stop) {
    if (state_.batch >= per_epoch) {
      end_epoch();
      if (stop) break;
    }
    // One optimizer step over up to grad_accum_steps batches (fewer at the end of an epoch).
    model_->train();
    release_gradients(*optimizer_);
    const int64_t k = std::min(t.grad_accum_steps, per_epoch - state_.batch);
    double step_loss = 0;
    int64_t step_tokens = 0, step_examples = 0;
    bool finite = true;
    for (int64_t i = 0; i < k; ++i) {
      sync.require_sync(i == k - 1);  // the earlier micro-steps only accumulate
      StepOutput out;
      {
        AutocastScope autocast(precision_, device_);  // the forward pass only
        out = task_.train_step(state_.epoch, state_.batch++);
      }
      torch::Tensor loss = out.loss.to(torch::kFloat) / static_cast<double>(k);
      if (t.l1 > 0 || t.l2 > 0) {
        torch::Tensor penalty = torch::zeros({}, loss.options());
        for (const auto& w : penalized) {
          if (t.l1 > 0) penalty = penalty + t.l1 * w.abs().sum();
          if (t.l2 > 0) penalty = penalty + t.l2 * w.pow(2).sum();
        }
        loss = loss + penalty / static_cast<double>(k);
      }
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        finite = false;
        // Alone, stop at once; in a group every rank runs the same backward passes and
        // collectives, and the ranks agree below to skip the step.
        if (!distributed) break;
      }
      scaler_.scale_loss(loss).backward();
      step_loss += value;
      step_tokens += out.tokens;
      step_examples += out.examples;
    }
    sync.finish();
    bool signalled = g_signal != 0;
    if (distributed) {
      // One small all-reduce per step: the mean loss and the global throughput for the log, and
      // the decisions every rank must share (skip a non-finite step, stop on a signal).
      torch::Tensor shared =
          torch::tensor({step_loss, finite ? 0.0 : 1.0, signalled ? 1.0 : 0.0,
                         static_cast<double>(step_tokens), static_cast<double>(step_examples)},
                        torch::kFloat64);
      comm_->all_reduce(shared);
      const double world = static_cast<double>(comm_->world_size());
      step_loss = shared[0].item<double>() / world;
      finite = shared[1].item<double>() == 0;
      signalled = shared[2].item<double>() > 0;
      step_tokens = static_cast<int64_t>(shared[3].item<double>());
      step_examples = static_cast<int64_t>(shared[4].item<double>());
    }
    tokens += step_tokens;
    examples += step_examples;
    // fp16: gradients overflowed at this loss scale. GradScaler's answer: skip the step, halve
    // the scale, go on; not a sign of divergence. (Averaged gradients: every rank agrees.)
    if (finite && !scaler_.unscale(params)) {
      scaler_.update(false);
      ++state_.nonfinite_steps;
      char scale[32];
      std::snprintf(scale, sizeof scale, "%g", scaler_.scale());
      progress.message("step " + std::to_string(state_.step) +
                       ": fp16 gradient overflow, step skipped, loss scale now " + scale);
      if (scaler_.scale() < 1e-30) {
        throw std::runtime_error("training diverged: fp16 loss scale fell to " +
                                 std::string(scale) + " at step " + std::to_string(state_.step) +
                                 " (gradients are inf/NaN at any scale; try bf16 or a lower lr)");
      }
      continue;
    }
    if (finite) {
      if (t.clip_grad_value > 0) torch::nn::utils::clip_grad_value_(params, t.clip_grad_value);
      const double max_norm = t.clip_grad_norm > 0 ? t.clip_grad_norm : INFINITY;
      grad_norm = torch::nn::utils::clip_grad_norm_(params, max_norm);
      finite = std::isfinite(grad_norm);
    }
    if (!finite) {  // skip the step, count it, give up after too many in a row
      ++state_.nonfinite_steps;
      if (++state_.consecutive_nonfinite >= t.max_nonfinite_steps) {
        throw std::runtime_error("training diverged: " +
                                 std::to_string(state_.consecutive_nonfinite) +
                                 " non-finite losses or gradients in a row at step " +
                                 std::to_string(state_.step) +
                                 " (lower optimizer.lr or set trainer.clip_grad_norm)");
      }
      progress.message("step " + std::to_string(state_.step) +
                       ": non-finite loss or gradient, step skipped");
      continue;
    }
    state_.consecutive_nonfinite = 0;
    const double lr = lr_at(config_.optimizer, config_.scheduler, state_.step, total);
    set_lr(*optimizer_, lr, groups_);
    optimizer_->step();
    scaler_.update(true);
    ++state_.step;
    result.losses.push_back(step_loss);
    loss_sum += step_loss;
    ++loss_count;

    const bool log_now = state_.step % logging.every == 0 || state_.step == total;
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - window_start).count();
    TrainProgress p{state_.step,           total,           display_epoch(), loss_sum / loss_count, lr,
                    tokens / seconds,      examples / seconds, 1000 * seconds / loss_count,
                    grad_norm};
    progress.update(p, log_now);
    if (log_now) {
      log.write({{"split", "train"},    {"step", state_.step},     {"epoch", p.epoch},
                 {"loss", p.loss},      {"lr", lr},                {"grad_norm", grad_norm},
                 {"tokens_per_second", p.tokens_per_second},
                 {"examples_per_second", p.examples_per_second},
                 {"ms_per_step", p.ms_per_step}});
      loss_sum = 0, loss_count = 0, tokens = 0, examples = 0;
      window_start = now;
    }
    if (main && logging.histograms_every > 0 && state_.step % logging.histograms_every == 0) {
      log_histograms(log);
    }
    if (t.eval_every > 0 && state_.step % t.eval_every == 0) stop = validate(progress, log);
    if (t.save_every > 0 && state_.step % t.save_every == 0 && saved_step_ != state_.step) {
      save_checkpoint();
    }
    if (signalled) {
      result.interrupted = true;
      result.signal = g_signal != 0 ? g_signal.load() : SIGTERM;  // another rank's signal
      break;
    }
  }
  // The epoch that ended with the last step still gets its end-of-epoch validation; a run that
  // stops mid-epoch (max_steps) is validated at its last step.
  if (!stop && !result.interrupted) {
    if (state_.batch >= per_epoch) {
      end_epoch();
    } else if (t.eval_each_epoch || t.eval_every > 0) {
      validate(progress, log);
    }
  }
  result.early_stopped = stop;
  if (stop) {
    progress.message("early stopping: no improvement in " + std::to_string(t.patience) +
                     " evaluations");
  }
  if (saved_step_ != state_.step) save_checkpoint();
  result.last_checkpoint = checkpoint_root_ + "/" + checkpoint_name(state_.step);
  progress.finish();
  if (result.interrupted) {
    progress.message("interrupted by signal " + std::to_string(result.signal) +
                     ": checkpoint saved to " + result.last_checkpoint +
                     "; continue with --resume " + result.last_checkpoint);
  }
  if (state_.best_step >= 0) {
    result.best_checkpoint = checkpoint_root_ + "/" + checkpoint_name(state_.best_step);
  }
  if (!result.interrupted && task_.has_split(Split::kTest)) {
    if (t.keep_best && !result.best_checkpoint.empty()) load_weights(task_, result.best_checkpoint);
    result.test = task_.evaluate(Split::kTest);
    result.test->metrics = comm_->average(result.test->metrics);
    nlohmann::json record = {{"split", "test"}, {"step", state_.step}};
    for (const auto& [name, value] : result.test->metrics) record[name] = value;
    log.write(record);
  }
  result.state = state_;
  return result;
}

}  // namespace nlpkit
