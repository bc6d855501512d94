#include "trainers/checkpoint.h"
#include "datasets/file_io.h"
#include "datasets/input_error.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>

namespace nlpkit {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void throw_errno(const std::string& what, const std::string& path) {
  throw std::runtime_error(what + ": " + path + ": " + std::strerror(errno));
}

// ---- SHA-256, FIPS 180-4 ----------------------------------------------------------------------

class Sha256 {
 public:
  void update(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    total_bytes_ += size;
    while (size > 0) {
      const size_t n = std::min(size, block_.size() - block_used_);
      std::memcpy(block_.data() + block_used_, p, n);
      block_used_ += n;
      p += n;
      size -= n;
      if (block_used_ == block_.size()) {
        compress();
        block_used_ = 0;
      }
    }
  }

  std::string hex_digest() {
    // Padding: 0x80, zeros up to 56 mod 64, then the message length in bits, big-endian.
    const uint64_t bits = total_bytes_ * 8;
    const uint8_t one = 0x80, zero = 0;
    update(&one, 1);
    while (block_used_ != 56) update(&zero, 1);
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
    update(length, 8);
    static const char* digits = "0123456789abcdef";
    std::string hex;
    for (uint32_t word : h_) {
      for (int shift = 28; shift >= 0; shift -= 4) hex += digits[(word >> shift) & 0xf];
    }
    return hex;
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

  void compress() {
    static constexpr uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      w[i] = uint32_t(block_[4 * i]) << 24 | uint32_t(block_[4 * i + 1]) << 16 |
             uint32_t(block_[4 * i + 2]) << 8 | uint32_t(block_[4 * i + 3]);
    }
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 =
          h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h_[0] += a, h_[1] += b, h_[2] += c, h_[3] += d, h_[4] += e, h_[5] += f, h_[6] += g, h_[7] += h;
  }

  std::array<uint32_t, 8> h_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<uint8_t, 64> block_{};
  size_t block_used_ = 0;
  uint64_t total_bytes_ = 0;
};

// ---- POSIX helpers ----------------------------------------------------------------------------


// Flushes a file's or a directory's contents (a directory's: its entries, i.e. renames) to disk.


std::string pid_suffix() { return std::to_string(::getpid()); }

std::string join(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

// Names this module leaves behind only when a process dies mid-save.
bool is_temporary(const std::string& name) {
  return name.rfind(".tmp-", 0) == 0 || name.rfind("latest.tmp-", 0) == 0;
}

// The step of a `step_<digits>` name, or -1.
int64_t step_of(const std::string& name) {
  if (name.size() <= 5 || name.rfind("step_", 0) != 0 || name.size() > 5 + 18) return -1;
  int64_t step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

// Renames `from` to `to`, atomically swapping them when `to` already exists, so `to` is never
// missing; the old `to` ends up at `from`, for the caller to delete.
void rename_replacing_dir(const std::string& from, const std::string& to) {
  if (!fs::exists(to)) {
    if (std::rename(from.c_str(), to.c_str()) != 0) {
      throw_errno("cannot rename " + from + " to", to);
    }
    return;
  }
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) == 0) return;
  // Filesystems without RENAME_EXCHANGE: move the old directory aside first. A crash in between
  // leaves `to` missing but the new checkpoint complete at `from` (named .tmp-*).
  const std::string aside = from + ".old";
  if (std::rename(to.c_str(), aside.c_str()) != 0) throw_errno("cannot move aside", to);
  if (std::rename(from.c_str(), to.c_str()) != 0) throw_errno("cannot rename " + from + " to", to);
  if (std::rename(aside.c_str(), from.c_str()) != 0) throw_errno("cannot rename", aside);
}

void remove_tree(const std::string& path) {
  std::error_code error;
  fs::remove_all(path, error);
  if (error) throw std::runtime_error("cannot remove " + path + ": " + error.message());
}

}  // namespace

// ---- Public API -------------------------------------------------------------------------------

std::string sha256_hex(const std::string& bytes) {
  Sha256 sha;
  sha.update(bytes.data(), bytes.size());
  return sha.hex_digest();
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open file: " + path);
  Sha256 sha;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    sha.update(buffer.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw std::runtime_error("cannot read file: " + path);
  return sha.hex_digest();
}



std::string checkpoint_name(int64_t step) {
  if (step < 0)
    throw std::invalid_argument("checkpoint step must be >= 0, got " + std::to_string(step));
  char name[32];
  std::snprintf(name, sizeof(name), "step_%08lld", static_cast<long long>(step));
  return name;
}

void commit_checkpoint(const std::string& root, const std::string& name,
                       const std::function<void(const std::string& tmp_dir)>& write) {
  if (name.empty() || name == "." || name == ".." || name == "latest" ||
      name.find('/') != std::string::npos || is_temporary(name)) {
    throw std::invalid_argument("invalid checkpoint name '" + name + "' under " + root);
  }
  std::error_code error;
  fs::create_directories(root, error);
  if (error)
    throw std::runtime_error("cannot create checkpoint root " + root + ": " + error.message());
  // Leftovers of saves that died midway (ours are named after the pid, so no live save owns them).
  for (const auto& entry : fs::directory_iterator(root)) {
    if (is_temporary(entry.path().filename().string())) remove_tree(entry.path().string());
  }

  const std::string tmp_dir = join(root, ".tmp-" + name + "-" + pid_suffix());
  fs::create_directory(tmp_dir, error);
  if (error) throw std::runtime_error("cannot create " + tmp_dir + ": " + error.message());
  try {
    write(tmp_dir);

    // Hash (and fsync) every file the callback wrote, in sorted order for a stable manifest.
    std::vector<std::string> files;
    std::vector<std::string> dirs = {tmp_dir};
    for (const auto& entry : fs::recursive_directory_iterator(tmp_dir)) {
      const std::string relative = fs::relative(entry.path(), tmp_dir).generic_string();
      if (entry.is_directory()) {
        dirs.push_back(entry.path().string());
      } else if (relative != "manifest.json") {
        files.push_back(relative);
      }
    }
    std::sort(files.begin(), files.end());
    nlohmann::ordered_json manifest_files = nlohmann::ordered_json::object();
    for (const std::string& file : files) {
      const std::string path = join(tmp_dir, file);
      fsync_path(path);
      manifest_files[file] = {{"sha256", sha256_file(path)}, {"bytes", fs::file_size(path)}};
    }
    const nlohmann::ordered_json manifest = {{"files", manifest_files}};
    write_file_atomic(join(tmp_dir, "manifest.json"), manifest.dump(2) + "\n");
    for (const std::string& dir : dirs) fsync_path(dir);
  } catch (...) {
    fs::remove_all(tmp_dir, error);
    throw;
  }

  const std::string final_dir = join(root, name);
  rename_replacing_dir(tmp_dir, final_dir);
  fsync_path(root);
  write_file_atomic(join(root, "latest"), name + "\n");
  remove_tree(tmp_dir);  // the replaced checkpoint, if any
}

void verify_checkpoint(const std::string& dir) {
  const std::string manifest_path = join(dir, "manifest.json");
  std::ifstream in(manifest_path, std::ios::binary);
  if (!in) throw InputError("checkpoint manifest is missing: " + manifest_path);
  std::vector<std::pair<std::string, std::pair<std::string, uint64_t>>> expected;
  try {
    const nlohmann::json manifest = nlohmann::json::parse(in);
    for (const auto& [file, info] : manifest.at("files").items()) {
      const fs::path relative(file);
      if (file.empty() || relative.is_absolute() ||
          std::count(relative.begin(), relative.end(), fs::path("..")) > 0) {
        throw InputError("file name '" + file + "' leaves the checkpoint directory");
      }
      expected.push_back(
          {file, {info.at("sha256").get<std::string>(), info.at("bytes").get<uint64_t>()}});
    }
  } catch (const std::exception& e) {
    throw InputError("checkpoint manifest is invalid: " + manifest_path + " (" + e.what() +
                             ")");
  }
  for (const auto& [file, info] : expected) {
    const auto& [sha256, bytes] = info;
    const std::string path = join(dir, file);
    std::error_code error;
    const uint64_t size = fs::file_size(path, error);
    if (error) throw InputError("checkpoint file is missing: " + path);
    if (size < bytes) {
      throw InputError("checkpoint file is truncated: " + path + " (" +
                               std::to_string(size) + " of " + std::to_string(bytes) + " bytes)");
    }
    if (size > bytes) {
      throw InputError("checkpoint file is corrupted: " + path + " (" +
                               std::to_string(size) + " bytes, manifest says " +
                               std::to_string(bytes) + ")");
    }
    if (sha256_file(path) != sha256) {
      throw InputError("checkpoint file is corrupted: " + path + " (sha256 mismatch)");
    }
  }
}

std::vector<std::string> list_checkpoints(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code error;
  if (!fs::is_directory(root, error)) return {};
  for (const auto& entry : fs::directory_iterator(root)) {
    const int64_t step = step_of(entry.path().filename().string());
    if (step >= 0 && entry.is_directory()) found.push_back({step, entry.path().string()});
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (auto& [step, path] : found) paths.push_back(std::move(path));
  return paths;
}

std::optional<std::string> latest_checkpoint(const std::string& root) {
  const std::string latest_path = join(root, "latest");
  std::ifstream in(latest_path);
  if (!in) return std::nullopt;
  std::string name;
  std::getline(in, name);
  const std::string path = join(root, name);
  if (name.empty() || name.find('/') != std::string::npos || !fs::is_directory(path)) {
    throw InputError(latest_path + " names checkpoint '" + name +
                             "', but that directory does not exist");
  }
  return path;
}

void prune_checkpoints(const std::string& root, int64_t keep_last,
                       const std::set<std::string>& keep) {
  if (keep_last < 0) {
    throw std::invalid_argument("prune_checkpoints: keep_last must be >= 0, got " +
                                std::to_string(keep_last));
  }
  const std::vector<std::string> all = list_checkpoints(root);
  const std::optional<std::string> latest = latest_checkpoint(root);
  const std::string latest_name = latest ? fs::path(*latest).filename().string() : "";
  const int64_t prunable = static_cast<int64_t>(all.size()) - keep_last;
  for (int64_t i = 0; i < prunable; ++i) {
    const std::string& path = all[i];
    const std::string name = fs::path(path).filename().string();
    if (keep.count(name) || keep.count(path) || name == latest_name) continue;
    // Renaming first means a crash mid-delete leaves a .tmp-* leftover, not a broken checkpoint.
    const std::string doomed = join(root, ".tmp-prune-" + name + "-" + pid_suffix());
    if (std::rename(path.c_str(), doomed.c_str()) != 0)
      throw_errno("cannot remove checkpoint", path);
    remove_tree(doomed);
  }
}

}  // namespace nlpkit
