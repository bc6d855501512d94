// Crash-safe checkpoint directories: atomic file writes, SHA-256 manifests, `latest` pointer.
//
// A checkpoint is a directory `<root>/step_<8-digit step>/` holding any files (model.safetensors,
// optimizer state, trainer_state.json, config.yaml) plus `manifest.json`:
//   {"files": {"model.safetensors": {"sha256": "9f86...", "bytes": 1234}, ...}}
// It is built under `<root>/.tmp-<name>-<pid>/` and renamed into place only once every file and
// the manifest are on disk, so a crash at any point leaves the previous checkpoints and `latest`
// intact; the leftover `.tmp-*` directory is ignored and removed by the next commit.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "datasets/file_io.h"  // write_file_atomic, fsync_path

namespace nlpkit {

/// SHA-256 (FIPS 180-4) of `bytes` as 64 lowercase hex digits.
///   sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
std::string sha256_hex(const std::string& bytes);

/// SHA-256 of a file's contents, read in chunks. Throws std::runtime_error naming the path.
std::string sha256_file(const std::string& path);

/// The directory name of the checkpoint at `step`: checkpoint_name(42) == "step_00000042".
std::string checkpoint_name(int64_t step);

/// Builds checkpoint `<root>/<name>` atomically and points `<root>/latest` at it.
/// `write(tmp_dir)` writes the checkpoint's files into an empty temporary directory; then the
/// manifest is written, everything is fsynced, the directory is renamed to `<root>/<name>`
/// (atomically replacing an existing one), and `latest` is replaced. If `write` throws, the
/// temporary directory is removed and the exception propagates; nothing else changes.
///   commit_checkpoint("runs/x", checkpoint_name(step), [&](const std::string& dir) {
///     save_safetensors(dir + "/model.safetensors", module_state(*model));
///   });
void commit_checkpoint(const std::string& root, const std::string& name,
                       const std::function<void(const std::string& tmp_dir)>& write);

/// Checks every file listed in `<dir>/manifest.json` against its size and SHA-256. Throws
/// std::runtime_error naming the exact file, e.g.
/// "checkpoint file is corrupted: runs/x/step_00000100/model.safetensors (sha256 mismatch)".
void verify_checkpoint(const std::string& dir);

/// Full paths of the `step_<digits>` directories under `root`, in increasing step order.
/// Empty if `root` does not exist.
std::vector<std::string> list_checkpoints(const std::string& root);

/// Full path of the checkpoint named by `<root>/latest`, or nullopt when there is no `latest`.
/// Throws std::runtime_error when `latest` names a directory that does not exist.
std::optional<std::string> latest_checkpoint(const std::string& root);

/// Deletes the `step_*` checkpoints under `root` except the newest `keep_last`, those whose name
/// (e.g. "step_00000100") or full path is in `keep`, and the one `latest` points to.
void prune_checkpoints(const std::string& root, int64_t keep_last,
                       const std::set<std::string>& keep = {});


}  // namespace nlpkit
