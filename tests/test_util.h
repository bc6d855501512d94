// Helpers shared by the tests: error messages of throwing calls, substring assertions, and a
// fresh temporary folder per test.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace nlpkit {

/// What `module.pretty_print` writes.
inline std::string printed(const torch::nn::Module& module) {
  std::ostringstream out;
  module.pretty_print(out);
  return out.str();
}

/// The names of the module's parameters (recursively, dotted), in registration order.
inline std::vector<std::string> parameter_keys(const torch::nn::Module& module) {
  std::vector<std::string> keys;
  for (const auto& item : module.named_parameters()) keys.push_back(item.key());
  return keys;
}

/// parameter_keys, then the buffers' names.
inline std::vector<std::string> state_keys(const torch::nn::Module& module) {
  std::vector<std::string> keys = parameter_keys(module);
  for (const auto& item : module.named_buffers()) keys.push_back(item.key());
  return keys;
}

/// The message of the exception `f` throws, or "<no exception>".
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no exception>";
}

inline testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

/// EXPECT that `statement` throws and its message contains `text`.
#define EXPECT_ERROR(statement, text) EXPECT_TRUE(::nlpkit::Contains(::nlpkit::error_of([&] { statement; }), text))

/// Runs `statement`, expecting a c10::Error whose message contains `substring`.
#define EXPECT_THROW_WITH(statement, substring)                                        \
  do {                                                                                 \
    try {                                                                              \
      statement;                                                                       \
      ADD_FAILURE() << "expected an exception containing '" << (substring) << "'";     \
    } catch (const c10::Error& e) {                                                    \
      EXPECT_NE(std::string(e.what()).find(substring), std::string::npos) << e.what(); \
    }                                                                                  \
  } while (0)

/// A fresh folder per test (named after the test), removed afterwards, so that tests may run in
/// parallel and leave nothing behind.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           (std::string("nlpkit_") + info->test_suite_name() + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  /// Writes `content` to `name` inside the folder; returns the path.
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  std::filesystem::path dir_;
};

}  // namespace nlpkit
