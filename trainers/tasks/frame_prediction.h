// Task `frame_prediction`: frames.input_frames frames of a sequence in, frames.future_frames out,
// on Moving MNIST (`nlpkit data prepare moving_mnist`; data.train names its folder). Training
// sequences are generated afresh for every batch from the training digits (seeded by seed, epoch
// and batch, so a resumed run sees the same ones); validation uses a fixed set from the training
// digits, test the fixed test set written by `data prepare`. Loss: BCE on logits or MSE on
// sigmoid outputs. Metrics: MSE and MAE per frame (summed over the frame's pixels, averaged over
// frames, as the Moving MNIST literature reports them), SSIM, and the same three for the
// "repeat the last input frame" baseline. `nlpkit predict` takes test-sequence indices and writes
// PNG strips (inputs | truth | prediction) to frames.predictions_dir.
#pragma once

#include "trainers/task.h"

namespace nlpkit {

std::unique_ptr<Task> make_frame_prediction_task(const ExperimentConfig& config,
                                                 const std::string& artifacts_dir,
                                                 torch::Device device);

}  // namespace nlpkit
