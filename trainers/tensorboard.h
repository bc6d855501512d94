// TensorBoard event files, written without protobuf or TensorFlow: `tensorboard --logdir runs/`
// reads them.
//
// An event file is a sequence of TFRecords (tensorflow/core/lib/io/record_writer.cc):
//   uint64 length (little-endian) | uint32 masked_crc32c(length) | payload | uint32
//   masked_crc32c(payload)
// with masked_crc(c) = ((c >> 15) | (c << 17)) + 0xa282ead8. Each payload is a serialized
// tensorboard.Event (event.proto): the first carries file_version "brain.Event:2", the others a
// Summary (summary.proto) of scalars (simple_value), a text (a DT_STRING tensor for the "text"
// plugin) or histograms (histogram.proto's HistogramProto). The protobuf wire format is written
// by hand here, field numbers from those .proto files; a test decodes the file independently.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace nlpkit {

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of TFRecord frames;
/// `crc` continues a previous call. crc32c("123456789", 9) == 0xE3069283.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

/// TFRecord's masked CRC-32C of `bytes` (a CRC of data that holds CRCs is less error-prone
/// masked, says TensorFlow's crc32c.h).
uint32_t masked_crc32c(const std::string& bytes);

/// One TFRecord: length, masked CRC of the length, `payload`, masked CRC of the payload.
std::string tfrecord_frame(const std::string& payload);

/// A histogram of values as TensorBoard's HistogramProto holds it: bucket i counts the values in
/// (bucket_limit[i-1], bucket_limit[i]]; the first bucket starts at `min`.
struct Histogram {
  double min = 0;
  double max = 0;
  double num = 0;
  double sum = 0;
  double sum_squares = 0;
  std::vector<double> bucket_limit;
  std::vector<double> bucket;
};

/// `buckets` equal-width buckets between the smallest and the largest finite value of `values`
/// (any shape, any floating dtype, any device); non-finite values are left out. An empty (or
/// all non-finite) tensor gives num 0 and no buckets; a constant one gives a single bucket.
///   Histogram h = make_histogram(param.detach(), 30);
Histogram make_histogram(const torch::Tensor& values, int64_t buckets = 30);

/// Writes `<dir>/events.out.tfevents.<unix seconds>.<hostname>` (a `.N` suffix when that name is
/// taken): the file_version event at construction, then one event per call, flushed each time
/// so that TensorBoard sees a running job. Throws std::runtime_error naming the path on I/O
/// errors.
///   EventWriter events("runs/x");
///   events.add_scalars({{"train/loss", 0.71}, {"train/lr", 1e-3}}, /*step=*/10);
class EventWriter {
 public:
  /// `wall_time`: seconds since the epoch for the file name and the first event (now when < 0).
  explicit EventWriter(const std::string& dir, double wall_time = -1);

  /// One event holding one simple_value per (tag, value); values are stored as float32, as
  /// TensorBoard's scalars are. Non-finite values are written as they are (TensorBoard shows
  /// NaN and inf).
  void add_scalars(const std::vector<std::pair<std::string, double>>& values, int64_t step,
                   double wall_time = -1);
  void add_scalar(const std::string& tag, double value, int64_t step, double wall_time = -1);

  /// A text summary shown by TensorBoard's Text tab (rendered as Markdown: indent by 4 spaces
  /// for a code block).
  void add_text(const std::string& tag, const std::string& markdown, int64_t step,
                double wall_time = -1);

  /// One event with one histogram per (tag, histogram).
  void add_histograms(const std::vector<std::pair<std::string, Histogram>>& histograms,
                      int64_t step, double wall_time = -1);

  /// SessionLog START at `step`: TensorBoard discards the events of earlier files at steps >=
  /// `step`, so that a resumed run does not draw the steps after its checkpoint twice.
  void add_session_start(int64_t step, double wall_time = -1);

  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& event);

  std::string path_;
  std::ofstream out_;
};

/// Seconds since the Unix epoch, with sub-second precision.
double unix_time();

}  // namespace nlpkit
