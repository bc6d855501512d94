// Small file helpers shared by the data loaders: whole-file reads with path-naming errors and
// atomic writes (temporary file, fsync, rename), so that bad input or a crash never leaves a
// half-written file behind.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nlpkit {

/// Writes `bytes` to `path` atomically: a temporary file named after the process, fsynced, then
/// renamed over `path`, and the directory fsynced. A crash leaves the old file or the new one,
/// never a mix. Throws std::runtime_error naming the path (the temporary file is removed).
void write_file_atomic(const std::string& path, const std::string& bytes);

/// write_file_atomic for data held in several buffers, written in order (no copy of big tensors).
void write_file_atomic_parts(const std::string& path, const std::vector<std::string_view>& parts);

/// fsync of a file or directory. Throws std::runtime_error naming the path.
void fsync_path(const std::string& path);

namespace detail {

/// The bytes of `path`. Throws std::runtime_error "<kind> file not found: PATH" when it is
/// missing and "cannot read <kind> file: PATH" when it cannot be read (e.g. a directory).
std::string read_file(const std::string& path, const std::string& kind);


/// Line `line` (1-based) of `path` as "PATH:LINE", the prefix of every data error.
std::string where(const std::string& path, int64_t line);

/// Calls f(line, line_number) for every line of `text` (numbers from 1), without its '\n' or a
/// trailing '\r'. A final line without '\n' counts; the empty rest after a final '\n' does not.
template <typename F>
void for_each_line(const std::string& text, F&& f) {
  size_t start = 0;
  int64_t number = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    f(line, ++number);
    start = end + 1;
  }
}

}  // namespace detail
}  // namespace nlpkit
