#include "trainers/tasks/frame_prediction.h"

#include <filesystem>

#include "datasets/frames.h"
#include "datasets/png.h"
#include "modules/conv_recurrent.h"
#include "trainers/device.h"

namespace nlpkit {
namespace {

/// A seed for batch `batch` of epoch `epoch` (splitmix64 of the three), so that every batch of
/// every epoch has its own sequences and a resumed run regenerates the same ones.
uint64_t batch_seed(uint64_t seed, int64_t epoch, int64_t batch) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + uint64_t(epoch) * 0xBF58476D1CE4E5B9ull +
               uint64_t(batch) * 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class FramePredictionTask : public Task {
 public:
  FramePredictionTask(const ExperimentConfig& config, const std::string& artifacts_dir,
                      torch::Device device)
      : config_(config), device_(device), frames_(config.frames) {
    if (config.model.type != "convlstm") {
      throw ConfigError("model.type: '" + config.model.type +
                        "' is not a frame predictor; task frame_prediction takes convlstm");
    }
    if (config.data.train.empty()) {
      throw ConfigError("data.train: give the Moving MNIST folder (nlpkit data prepare moving_mnist)");
    }
    const int64_t k = config.model.convlstm_kernel_size;
    if (k % 2 == 0) throw ConfigError("model.kernel_size: must be odd, found " + std::to_string(k));
    if (frames_.input_frames + frames_.future_frames > kMovingMnistFrames) {
      throw ConfigError("frames: input_frames + future_frames must be <= " +
                        std::to_string(kMovingMnistFrames) + " (the sequence length)");
    }
    // Evaluating or predicting from a checkpoint needs the data only when it is used.
    if (artifacts_dir.empty()) data();
    if (kMovingMnistSize % frames_.patch_size != 0) {
      throw ConfigError("frames.patch_size: must divide the frame size " +
                        std::to_string(kMovingMnistSize) + ", found " +
                        std::to_string(frames_.patch_size));
    }
    const int64_t p = frames_.patch_size;
    model_ = ConvLSTMEncoderForecaster(ConvLSTMEncoderForecasterOptions(
        p * p, config.model.convlstm_hidden_sizes, {KernelSize2d{k, k}}));
    model_->to(device_);
  }

  std::shared_ptr<torch::nn::Module> model() override { return model_.ptr(); }

  int64_t batches_per_epoch() override {
    return (frames_.train_sequences + config_.data.batch_size - 1) / config_.data.batch_size;
  }

  StepOutput train_step(int64_t epoch, int64_t batch) override {
    const int64_t b = std::min(config_.data.batch_size,
                               frames_.train_sequences - batch * config_.data.batch_size);
    torch::Tensor seqs = data().sample_train_batch(
        b, batch_seed(static_cast<uint64_t>(config_.seed), epoch, batch));  // (B, 20, 1, H, W)
    seqs = to_device(seqs, device_);
    torch::Tensor x = seqs.narrow(1, 0, frames_.input_frames);
    torch::Tensor y = seqs.narrow(1, frames_.input_frames, frames_.future_frames);
    StepOutput out;
    out.loss = loss(forward(x), y);
    out.examples = b;
    out.tokens = b * (frames_.input_frames + frames_.future_frames);  // frames
    return out;
  }

  bool has_split(Split s) const override {
    return s == Split::kTrain || (s == Split::kValid && frames_.valid_sequences > 0) ||
           (s == Split::kTest && frames_.test_sequences > 0);
  }

  Evaluation evaluate(Split s) override {
    const torch::Tensor seqs = sequences(s);  // (N, 20, 1, H, W) float, CPU
    torch::NoGradGuard no_grad;
    model_->eval();
    const int64_t n = seqs.size(0), in = frames_.input_frames, future = frames_.future_frames;
    double loss_sum = 0, mse = 0, mae = 0, base_mse = 0, base_mae = 0, ssim_sum = 0,
           base_ssim = 0;
    for (int64_t begin = 0; begin < n; begin += config_.data.eval_batch_size) {
      const int64_t b = std::min(config_.data.eval_batch_size, n - begin);
      torch::Tensor batch = to_device(seqs.narrow(0, begin, b), device_);
      torch::Tensor x = batch.narrow(1, 0, in), y = batch.narrow(1, in, future);
      torch::Tensor logits = forward(x);
      loss_sum += loss(logits, y).item<double>() * b;
      torch::Tensor pred = torch::sigmoid(logits).cpu(), truth = y.cpu();
      torch::Tensor last = x.narrow(1, in - 1, 1).expand_as(y).cpu();
      // Per frame: summed over the frame's pixels; accumulated over frames and sequences.
      mse += (pred - truth).pow(2).sum().item<double>();
      mae += (pred - truth).abs().sum().item<double>();
      base_mse += (last - truth).pow(2).sum().item<double>();
      base_mae += (last - truth).abs().sum().item<double>();
      ssim_sum += ssim(pred, truth) * b;
      base_ssim += ssim(last.contiguous(), truth) * b;
    }
    const double frames = double(n * future);
    Evaluation e;
    e.metrics = {{"loss", loss_sum / n},
                 {"mse", mse / frames},
                 {"mae", mae / frames},
                 {"ssim", ssim_sum / n},
                 {"baseline_mse", base_mse / frames},
                 {"baseline_mae", base_mae / frames},
                 {"baseline_ssim", base_ssim / n}};
    e.report = e.metrics;
    e.report["sequences"] = n;
    char table[512];
    std::snprintf(table, sizeof table,
                  "%-28s %10s %10s %8s\n%-28s %10.2f %10.2f %8.4f\n%-28s %10.2f %10.2f %8.4f\n",
                  "", "MSE/frame", "MAE/frame", "SSIM", "ConvLSTM", e.metrics["mse"],
                  e.metrics["mae"], e.metrics["ssim"], "repeat last input frame",
                  e.metrics["baseline_mse"], e.metrics["baseline_mae"], e.metrics["baseline_ssim"]);
    e.table = std::string(table) + "(" + std::to_string(n) + " sequences)\n";
    return e;
  }

  /// Each input line is a test-sequence index; writes its PNG strip and returns the path.
  std::vector<std::string> predict(const std::vector<std::string>& lines) override {
    torch::NoGradGuard no_grad;
    model_->eval();
    std::filesystem::create_directories(frames_.predictions_dir);
    std::vector<std::string> out;
    for (const auto& line : lines) {
      int64_t index = -1;
      try {
        size_t used = 0;
        index = std::stoll(line, &used);
        if (used != line.size()) index = -1;
      } catch (const std::exception&) {
      }
      if (index < 0 || index >= data().num_test_sequences()) {
        throw InputError("predict: expected a test-sequence index in [0, " +
                         std::to_string(data().num_test_sequences()) + "), found '" + line + "'");
      }
      torch::Tensor seq = data().test_sequences(index, index + 1).to(device_);  // (1, 20, 1, H, W)
      torch::Tensor x = seq.narrow(1, 0, frames_.input_frames);
      torch::Tensor y = seq.narrow(1, frames_.input_frames, frames_.future_frames);
      torch::Tensor pred = torch::sigmoid(forward(x));
      const std::string path =
          frames_.predictions_dir + "/test_" + std::to_string(index) + ".png";
      write_png(path, frame_strip(x[0].cpu(), y[0].cpu(), pred[0].cpu()));
      out.push_back(path);
    }
    return out;
  }

  std::string summary() const override {
    return "data: " + config_.data.train + " | train " + std::to_string(frames_.train_sequences) +
           " generated sequences/epoch, valid " + std::to_string(frames_.valid_sequences) +
           ", test " + std::to_string(frames_.test_sequences);
  }

  void save_artifacts(const std::string& dir) const override {}

 private:
  const MovingMnist& data() {
    if (!data_) data_ = std::make_unique<MovingMnist>(config_.data.train);
    return *data_;
  }

  /// The model on frames (B, T, 1, H, W) -> logits (B, future, 1, H, W), through patches
  /// (B, T, p*p, H/p, W/p) as Shi et al. do.
  torch::Tensor forward(const torch::Tensor& frames) {
    const int64_t p = frames_.patch_size;
    const auto sizes = frames.sizes();
    torch::Tensor x = torch::pixel_unshuffle(frames.flatten(0, 1), p);  // (B*T, p*p, H/p, W/p)
    x = x.view({sizes[0], sizes[1], p * p, sizes[3] / p, sizes[4] / p});
    torch::Tensor y = model_->forward(x, frames_.future_frames);  // (B, F, p*p, H/p, W/p)
    y = torch::pixel_shuffle(y.flatten(0, 1), p);                 // (B*F, 1, H, W)
    return y.view({sizes[0], frames_.future_frames, 1, sizes[3], sizes[4]});
  }

  torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& target) const {
    if (frames_.loss == "mse") return torch::mse_loss(torch::sigmoid(logits), target);
    return torch::binary_cross_entropy_with_logits(logits, target);
  }

  torch::Tensor sequences(Split s) {
    if (s == Split::kTest) {
      const int64_t n = std::min(frames_.test_sequences, data().num_test_sequences());
      return data().test_sequences(0, n);
    }
    if (s == Split::kValid) {
      if (!valid_.defined()) {
        valid_ = data().sample_train_batch(frames_.valid_sequences,
                                           batch_seed(static_cast<uint64_t>(config_.seed), -1, 0));
      }
      return valid_;
    }
    throw ConfigError("frame_prediction: the training split is generated; evaluate valid or test");
  }

  ExperimentConfig config_;
  torch::Device device_;
  FramesConfig frames_;
  std::unique_ptr<MovingMnist> data_;
  ConvLSTMEncoderForecaster model_{nullptr};
  torch::Tensor valid_;
};

}  // namespace

std::unique_ptr<Task> make_frame_prediction_task(const ExperimentConfig& config,
                                                 const std::string& artifacts_dir,
                                                 torch::Device device) {
  return std::make_unique<FramePredictionTask>(config, artifacts_dir, device);
}

}  // namespace nlpkit
