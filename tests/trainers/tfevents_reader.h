// A reader of TensorBoard event files for tests, written apart from trainers/tensorboard.cpp so
// that it checks the writer rather than repeating it: a bitwise CRC-32C, and a generic protobuf
// wire decoder (any field order, unknown fields skipped) with the field numbers of TensorBoard's
// event.proto, summary.proto, tensor.proto and histogram.proto.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace nlpkit::testing_tfevents {

/// CRC-32C one bit at a time (no table).
inline uint32_t crc32c_bitwise(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

inline uint32_t masked(const std::string& bytes) {
  const uint32_t c = crc32c_bitwise(bytes);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

inline uint64_t little_endian(const std::string& bytes, size_t at, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i)
    v |= uint64_t(static_cast<unsigned char>(bytes.at(at + i))) << (8 * i);
  return v;
}

/// One decoded field: wire type 0 -> `integer`, 1 -> `fixed` (8 bytes), 5 -> `fixed` (4 bytes),
/// 2 -> `bytes`.
struct Field {
  int number = 0;
  int wire = 0;
  uint64_t integer = 0;
  uint64_t fixed = 0;
  std::string bytes;
  double as_double() const {
    double d;
    std::memcpy(&d, &fixed, 8);
    return d;
  }
  float as_float() const {
    const uint32_t bits = static_cast<uint32_t>(fixed);
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
};

inline std::vector<Field> decode(const std::string& message) {
  std::vector<Field> fields;
  size_t pos = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      if (pos >= message.size() || shift > 63) throw std::runtime_error("bad varint");
      const auto b = static_cast<unsigned char>(message[pos++]);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (pos < message.size()) {
    const uint64_t key = varint();
    Field f;
    f.number = static_cast<int>(key >> 3);
    f.wire = static_cast<int>(key & 7);
    if (f.wire == 0) {
      f.integer = varint();
    } else if (f.wire == 1 || f.wire == 5) {
      const int n = f.wire == 1 ? 8 : 4;
      if (pos + n > message.size()) throw std::runtime_error("truncated fixed field");
      f.fixed = little_endian(message, pos, n);
      pos += n;
    } else if (f.wire == 2) {
      const uint64_t n = varint();
      if (pos + n > message.size()) throw std::runtime_error("truncated bytes field");
      f.bytes = message.substr(pos, n);
      pos += n;
    } else {
      throw std::runtime_error("unexpected wire type " + std::to_string(f.wire));
    }
    fields.push_back(std::move(f));
  }
  return fields;
}

/// The fields numbered `number`.
inline std::vector<Field> all(const std::vector<Field>& fields, int number) {
  std::vector<Field> out;
  for (const auto& f : fields) {
    if (f.number == number) out.push_back(f);
  }
  return out;
}

inline const Field* first(const std::vector<Field>& fields, int number) {
  for (const auto& f : fields) {
    if (f.number == number) return &f;
  }
  return nullptr;
}

inline std::vector<double> packed_doubles(const std::string& bytes) {
  std::vector<double> out;
  for (size_t i = 0; i + 8 <= bytes.size(); i += 8) {
    const uint64_t bits = little_endian(bytes, i, 8);
    double d;
    std::memcpy(&d, &bits, 8);
    out.push_back(d);
  }
  return out;
}

/// One Summary.Value.
struct Value {
  std::string tag;
  bool has_simple = false;
  float simple = 0;
  std::string plugin;  // metadata.plugin_data.plugin_name
  // tensor
  uint64_t dtype = 0;
  int64_t rank = -1;  // -1: no tensor
  std::vector<std::string> strings;
  // histo
  bool has_histo = false;
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> bucket_limit, bucket;
};

/// One Event.
struct Event {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  bool session_start = false;
  std::vector<Value> values;
};

/// Reads every record of an event file, checking its framing and both CRCs (ADD_FAILURE on a
/// mismatch), and decodes the events.
inline std::vector<Event> read_events(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  std::vector<Event> events;
  size_t pos = 0;
  while (pos < data.size()) {
    if (pos + 12 > data.size()) {
      ADD_FAILURE() << path << ": truncated record header at byte " << pos;
      break;
    }
    const std::string length_bytes = data.substr(pos, 8);
    const uint64_t length = little_endian(data, pos, 8);
    EXPECT_EQ(little_endian(data, pos + 8, 4), masked(length_bytes))
        << path << ": length CRC of record " << events.size();
    if (pos + 16 + length > data.size()) {
      ADD_FAILURE() << path << ": truncated record " << events.size();
      break;
    }
    const std::string payload = data.substr(pos + 12, length);
    EXPECT_EQ(little_endian(data, pos + 12 + length, 4), masked(payload))
        << path << ": payload CRC of record " << events.size();
    pos += 16 + length;

    Event e;
    const std::vector<Field> fields = decode(payload);
    if (const Field* f = first(fields, 1)) e.wall_time = f->as_double();
    if (const Field* f = first(fields, 2)) e.step = static_cast<int64_t>(f->integer);
    if (const Field* f = first(fields, 3)) e.file_version = f->bytes;
    if (const Field* f = first(fields, 7)) {
      const std::vector<Field> log = decode(f->bytes);
      e.session_start = first(log, 1) && first(log, 1)->integer == 1;
    }
    if (const Field* summary = first(fields, 5)) {
      for (const Field& vf : all(decode(summary->bytes), 1)) {
        const std::vector<Field> vfields = decode(vf.bytes);
        Value v;
        if (const Field* f = first(vfields, 1)) v.tag = f->bytes;
        if (const Field* f = first(vfields, 2)) {
          EXPECT_EQ(f->wire, 5) << "simple_value is a float";
          v.has_simple = true;
          v.simple = f->as_float();
        }
        if (const Field* f = first(vfields, 9)) {
          if (const Field* plugin = first(decode(f->bytes), 1)) {
            if (const Field* name = first(decode(plugin->bytes), 1)) v.plugin = name->bytes;
          }
        }
        if (const Field* f = first(vfields, 8)) {
          const std::vector<Field> t = decode(f->bytes);
          if (const Field* d = first(t, 1)) v.dtype = d->integer;
          v.rank =
              first(t, 2) ? static_cast<int64_t>(all(decode(first(t, 2)->bytes), 2).size()) : 0;
          for (const Field& s : all(t, 8)) v.strings.push_back(s.bytes);
        }
        if (const Field* f = first(vfields, 5)) {
          const std::vector<Field> h = decode(f->bytes);
          v.has_histo = true;
          if (const Field* x = first(h, 1)) v.min = x->as_double();
          if (const Field* x = first(h, 2)) v.max = x->as_double();
          if (const Field* x = first(h, 3)) v.num = x->as_double();
          if (const Field* x = first(h, 4)) v.sum = x->as_double();
          if (const Field* x = first(h, 5)) v.sum_squares = x->as_double();
          if (const Field* x = first(h, 6)) v.bucket_limit = packed_doubles(x->bytes);
          if (const Field* x = first(h, 7)) v.bucket = packed_doubles(x->bytes);
        }
        e.values.push_back(std::move(v));
      }
    }
    events.push_back(std::move(e));
  }
  return events;
}

/// Every scalar of the events: tag -> step -> value.
inline std::map<std::string, std::map<int64_t, float>> scalars(const std::vector<Event>& events) {
  std::map<std::string, std::map<int64_t, float>> out;
  for (const auto& e : events) {
    for (const auto& v : e.values) {
      if (v.has_simple) out[v.tag][e.step] = v.simple;
    }
  }
  return out;
}

}  // namespace nlpkit::testing_tfevents
