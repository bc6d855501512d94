#include "trainers/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace nlpkit {
namespace detail {

// ------------------------------------------------------------------------------ protobuf wire

/// Just enough of the protobuf wire format (developers.google.com/protocol-buffers/docs/encoding)
/// to write Event messages: a tag is (field << 3 | wire type); proto3 leaves default values out.
class ProtoWriter {
 public:
  enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

  void varint(int field, uint64_t v) {
    tag(field, kVarint);
    raw_varint(v);
  }
  void int64(int field, int64_t v) { varint(field, static_cast<uint64_t>(v)); }
  void double_(int field, double v) {
    tag(field, kFixed64);
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    for (int i = 0; i < 8; ++i) bytes_ += static_cast<char>(bits >> (8 * i));
  }
  void float_(int field, float v) {
    tag(field, kFixed32);
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int i = 0; i < 4; ++i) bytes_ += static_cast<char>(bits >> (8 * i));
  }
  /// string, bytes and embedded messages alike.
  void bytes(int field, const std::string& b) {
    tag(field, kLengthDelimited);
    raw_varint(b.size());
    bytes_ += b;
  }
  /// `repeated double x = n [packed = true]`.
  void packed_doubles(int field, const std::vector<double>& values) {
    std::string packed;
    for (double v : values) {
      uint64_t bits;
      std::memcpy(&bits, &v, 8);
      for (int i = 0; i < 8; ++i) packed += static_cast<char>(bits >> (8 * i));
    }
    bytes(field, packed);
  }
  const std::string& str() const { return bytes_; }

 private:
  void tag(int field, WireType type) { raw_varint(static_cast<uint64_t>(field) << 3 | type); }
  void raw_varint(uint64_t v) {
    while (v >= 0x80) {
      bytes_ += static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    bytes_ += static_cast<char>(v);
  }
  std::string bytes_;
};

// Field numbers, from TensorBoard's tensorboard/compat/proto/*.proto (the same as TensorFlow's).
namespace event {  // message Event
constexpr int kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5, kSessionLog = 7;
}
namespace session_log {  // message SessionLog
constexpr int kStatus = 1;
constexpr uint64_t kStart = 1;
}  // namespace session_log
namespace summary {  // message Summary
constexpr int kValue = 1;
}
namespace value {  // message Summary.Value
constexpr int kTag = 1, kSimpleValue = 2, kHisto = 5, kTensor = 8, kMetadata = 9;
}
namespace metadata {  // message SummaryMetadata, SummaryMetadata.PluginData
constexpr int kPluginData = 1, kPluginName = 1;
}
namespace tensor {  // message TensorProto (types.proto: DT_STRING = 7), TensorShapeProto
constexpr int kDtype = 1, kTensorShape = 2, kStringVal = 8;
constexpr uint64_t kDtString = 7;
}  // namespace tensor
namespace histo {  // message HistogramProto
constexpr int kMin = 1, kMax = 2, kNum = 3, kSum = 4, kSumSquares = 5, kBucketLimit = 6,
              kBucket = 7;
}

std::string event_header(double wall_time, int64_t step) {
  ProtoWriter e;
  e.double_(event::kWallTime, wall_time);
  if (step != 0) e.int64(event::kStep, step);
  return e.str();
}

std::string summary_event(double wall_time, int64_t step, const std::vector<std::string>& values) {
  ProtoWriter s;
  for (const auto& v : values) s.bytes(summary::kValue, v);
  ProtoWriter e;
  e.bytes(event::kSummary, s.str());
  return event_header(wall_time, step) + e.str();
}

std::string histogram_proto(const Histogram& h) {
  ProtoWriter p;
  p.double_(histo::kMin, h.min);
  p.double_(histo::kMax, h.max);
  p.double_(histo::kNum, h.num);
  p.double_(histo::kSum, h.sum);
  p.double_(histo::kSumSquares, h.sum_squares);
  if (!h.bucket_limit.empty()) p.packed_doubles(histo::kBucketLimit, h.bucket_limit);
  if (!h.bucket.empty()) p.packed_doubles(histo::kBucket, h.bucket);
  return p.str();
}

}  // namespace detail

// ------------------------------------------------------------------------------ CRC-32C

namespace {

std::array<uint32_t, 256> crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}

void put_le(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) *out += static_cast<char>(v >> (8 * i));
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = crc32c_table();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const std::string& bytes) {
  const uint32_t c = crc32c(bytes.data(), bytes.size());
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord_frame(const std::string& payload) {
  std::string length;
  put_le(&length, payload.size(), 8);
  std::string out = length;
  put_le(&out, masked_crc32c(length), 4);
  out += payload;
  put_le(&out, masked_crc32c(payload), 4);
  return out;
}

// ------------------------------------------------------------------------------ histograms

Histogram make_histogram(const torch::Tensor& values, int64_t buckets) {
  TORCH_CHECK(buckets > 0, "make_histogram: buckets (", buckets, ") must be positive");
  torch::Tensor v = values.detach().to(torch::kCPU, torch::kDouble).flatten();
  v = v.masked_select(torch::isfinite(v));
  Histogram h;
  h.num = static_cast<double>(v.numel());
  if (v.numel() == 0) return h;
  h.min = v.min().item<double>();
  h.max = v.max().item<double>();
  h.sum = v.sum().item<double>();
  h.sum_squares = v.pow(2).sum().item<double>();
  if (h.max == h.min) {
    h.bucket_limit = {h.max};
    h.bucket = {h.num};
    return h;
  }
  const double width = (h.max - h.min) / static_cast<double>(buckets);
  // Bucket of each value: ceil((v - min) / width) - 1, so that a value on a limit falls in the
  // bucket the limit closes, as HistogramProto says; min itself goes in the first bucket.
  torch::Tensor index = ((v - h.min) / width)
                            .ceil()
                            .sub(1)
                            .clamp(0, static_cast<double>(buckets - 1))
                            .to(torch::kLong);
  torch::Tensor counts = torch::bincount(index, /*weights=*/{}, buckets).to(torch::kDouble);
  h.bucket.resize(buckets);
  h.bucket_limit.resize(buckets);
  for (int64_t i = 0; i < buckets; ++i) {
    h.bucket[i] = counts[i].item<double>();
    h.bucket_limit[i] = i + 1 == buckets ? h.max : h.min + width * static_cast<double>(i + 1);
  }
  return h;
}

// ------------------------------------------------------------------------------ EventWriter

double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

EventWriter::EventWriter(const std::string& dir, double wall_time) {
  if (wall_time < 0) wall_time = unix_time();
  char host[256] = "localhost";
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  host[sizeof host - 1] = '\0';
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    throw std::runtime_error("cannot create the directory for TensorBoard events: " + dir + ": " +
                             error.message());
  }
  const std::string base =
      dir + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(wall_time)) + "." + host;
  path_ = base;
  for (int n = 1; std::filesystem::exists(path_); ++n) path_ = base + "." + std::to_string(n);
  out_.open(path_, std::ios::binary);
  if (!out_) throw std::runtime_error("cannot open TensorBoard event file for writing: " + path_);
  detail::ProtoWriter e;
  e.bytes(detail::event::kFileVersion, "brain.Event:2");
  write_event(detail::event_header(wall_time, 0) + e.str());
}

void EventWriter::write_event(const std::string& event) {
  out_ << tfrecord_frame(event);
  out_.flush();
  if (!out_) throw std::runtime_error("cannot write TensorBoard event file: " + path_);
}

void EventWriter::add_scalars(const std::vector<std::pair<std::string, double>>& values,
                              int64_t step, double wall_time) {
  std::vector<std::string> encoded;
  for (const auto& [tag, v] : values) {
    detail::ProtoWriter value;
    value.bytes(detail::value::kTag, tag);
    value.float_(detail::value::kSimpleValue, static_cast<float>(v));
    encoded.push_back(value.str());
  }
  write_event(detail::summary_event(wall_time < 0 ? unix_time() : wall_time, step, encoded));
}

void EventWriter::add_scalar(const std::string& tag, double value, int64_t step, double wall_time) {
  add_scalars({{tag, value}}, step, wall_time);
}

void EventWriter::add_text(const std::string& tag, const std::string& markdown, int64_t step,
                           double wall_time) {
  namespace d = detail;
  // What TensorBoard's text plugin reads: metadata.plugin_data.plugin_name "text" (its content,
  // a TextPluginData at version 0, serializes to nothing) and a scalar DT_STRING tensor.
  d::ProtoWriter plugin;
  plugin.bytes(d::metadata::kPluginName, "text");
  d::ProtoWriter meta;
  meta.bytes(d::metadata::kPluginData, plugin.str());
  d::ProtoWriter tensor;
  tensor.varint(d::tensor::kDtype, d::tensor::kDtString);
  tensor.bytes(d::tensor::kTensorShape, "");  // rank 0
  tensor.bytes(d::tensor::kStringVal, markdown);
  d::ProtoWriter value;
  value.bytes(d::value::kTag, tag);
  value.bytes(d::value::kTensor, tensor.str());
  value.bytes(d::value::kMetadata, meta.str());
  write_event(d::summary_event(wall_time < 0 ? unix_time() : wall_time, step, {value.str()}));
}

void EventWriter::add_histograms(const std::vector<std::pair<std::string, Histogram>>& histograms,
                                 int64_t step, double wall_time) {
  std::vector<std::string> encoded;
  for (const auto& [tag, h] : histograms) {
    detail::ProtoWriter value;
    value.bytes(detail::value::kTag, tag);
    value.bytes(detail::value::kHisto, detail::histogram_proto(h));
    encoded.push_back(value.str());
  }
  write_event(detail::summary_event(wall_time < 0 ? unix_time() : wall_time, step, encoded));
}

void EventWriter::add_session_start(int64_t step, double wall_time) {
  detail::ProtoWriter log;
  log.varint(detail::session_log::kStatus, detail::session_log::kStart);
  detail::ProtoWriter e;
  e.bytes(detail::event::kSessionLog, log.str());
  write_event(detail::event_header(wall_time < 0 ? unix_time() : wall_time, step) + e.str());
}

}  // namespace nlpkit
