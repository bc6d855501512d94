#include "trainers/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "trainers/safetensors.h"

#include "tests/test_util.h"

namespace nlpkit {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::vector<std::string> entries_of(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Sha256Test, MatchesFips180Vectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, HandlesPaddingBoundaries) {
  // Lengths around the 56-byte point where the length field spills into a second block
  // (expected values from Python's hashlib).
  EXPECT_EQ(sha256_hex(std::string(55, 'x')),
            "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072");
  EXPECT_EQ(sha256_hex(std::string(56, 'x')),
            "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e");
  EXPECT_EQ(sha256_hex(std::string(63, 'x')),
            "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2");
  EXPECT_EQ(sha256_hex(std::string(64, 'x')),
            "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c");
  EXPECT_EQ(sha256_hex(std::string(65, 'x')),
            "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9");
}

class CheckpointTest : public testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::path(testing::TempDir()) /
             ("nlpkit_checkpoint_" +
              std::string(testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
              std::to_string(::getpid())))
                .string();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Commits a checkpoint holding a small model file and a text file naming the step.
  void commit_step(int64_t step) {
    commit_checkpoint(root_, checkpoint_name(step), [&](const std::string& dir) {
      save_safetensors(dir + "/model.safetensors",
                       {{"w", torch::full({4, 4}, static_cast<float>(step))}});
      write_file(dir + "/trainer_state.json", "{\"step\": " + std::to_string(step) + "}");
    });
  }
  std::string step_dir(int64_t step) const { return root_ + "/" + checkpoint_name(step); }

  std::string root_;
};

TEST_F(CheckpointTest, Sha256FileMatchesInMemoryHashAcrossChunks) {
  std::string bytes(1500000, '\0');  // more than one 1 MiB read
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 31 % 251);
  write_file(root_ + "/big.bin", bytes);
  EXPECT_EQ(sha256_file(root_ + "/big.bin"), sha256_hex(bytes));
  EXPECT_EQ(error_of([&] { sha256_file(root_ + "/missing.bin"); }),
            "cannot open file: " + root_ + "/missing.bin");
}

TEST_F(CheckpointTest, WriteFileAtomicReplacesAndLeavesNoTemporaries) {
  write_file_atomic(root_ + "/a.txt", "first");
  write_file_atomic(root_ + "/a.txt", "second");
  EXPECT_EQ(read_file(root_ + "/a.txt"), "second");
  EXPECT_EQ(entries_of(root_), std::vector<std::string>{"a.txt"});
  EXPECT_TRUE(Contains(error_of([&] { write_file_atomic(root_ + "/no/dir/a.txt", "x"); }),
                       root_ + "/no/dir/a.txt"));
}

TEST_F(CheckpointTest, CheckpointNamesHaveEightDigits) {
  EXPECT_EQ(checkpoint_name(0), "step_00000000");
  EXPECT_EQ(checkpoint_name(1234), "step_00001234");
  EXPECT_EQ(checkpoint_name(123456789), "step_123456789");
}

TEST_F(CheckpointTest, CommitWritesManifestAndLatest) {
  EXPECT_EQ(latest_checkpoint(root_), std::nullopt);
  commit_checkpoint(root_, "step_00000001", [](const std::string& dir) {
    write_file(dir + "/a.txt", "abc");
    fs::create_directory(dir + "/sub");
    write_file(dir + "/sub/b.txt", "");
  });
  const std::string dir = root_ + "/step_00000001";
  EXPECT_EQ(entries_of(dir), (std::vector<std::string>{"a.txt", "manifest.json", "sub"}));
  const nlohmann::json manifest = nlohmann::json::parse(read_file(dir + "/manifest.json"));
  const std::string sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  const std::string sha_empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  EXPECT_EQ(manifest, nlohmann::json::parse(R"({"files": {
      "a.txt": {"bytes": 3, "sha256": ")" + sha_abc +
                                            R"("},
      "sub/b.txt": {"bytes": 0, "sha256": ")" +
                                            sha_empty + R"("}}})"));
  EXPECT_NO_THROW(verify_checkpoint(dir));
  EXPECT_EQ(read_file(root_ + "/latest"), "step_00000001\n");
  EXPECT_EQ(latest_checkpoint(root_), dir);

  commit_step(2);
  EXPECT_EQ(latest_checkpoint(root_), step_dir(2));
  EXPECT_EQ(list_checkpoints(root_), (std::vector<std::string>{dir, step_dir(2)}));
  EXPECT_EQ(entries_of(root_),
            (std::vector<std::string>{"latest", "step_00000001", "step_00000002"}));
}

TEST_F(CheckpointTest, VerifyNamesTheDamagedFile) {
  commit_step(3);
  const std::string model = step_dir(3) + "/model.safetensors";
  const std::string good = read_file(model);

  std::string flipped = good;
  flipped[flipped.size() - 5] ^= 0x01;
  write_file(model, flipped);
  EXPECT_EQ(error_of([&] { verify_checkpoint(step_dir(3)); }),
            "checkpoint file is corrupted: " + model + " (sha256 mismatch)");

  write_file(model, good.substr(0, good.size() - 10));
  EXPECT_EQ(error_of([&] { verify_checkpoint(step_dir(3)); }),
            "checkpoint file is truncated: " + model + " (" + std::to_string(good.size() - 10) +
                " of " + std::to_string(good.size()) + " bytes)");

  write_file(model, good + "x");
  EXPECT_TRUE(Contains(error_of([&] { verify_checkpoint(step_dir(3)); }),
                       "checkpoint file is corrupted: " + model + " ("));

  fs::remove(model);
  EXPECT_EQ(error_of([&] { verify_checkpoint(step_dir(3)); }),
            "checkpoint file is missing: " + model);

  write_file(model, good);
  EXPECT_NO_THROW(verify_checkpoint(step_dir(3)));

  const std::string manifest = step_dir(3) + "/manifest.json";
  write_file(manifest, "{\"files\": ");
  EXPECT_TRUE(Contains(error_of([&] { verify_checkpoint(step_dir(3)); }),
                       "checkpoint manifest is invalid: " + manifest));
  write_file(manifest, R"({"files": {"../latest": {"sha256": "", "bytes": 0}}})");
  EXPECT_TRUE(Contains(error_of([&] { verify_checkpoint(step_dir(3)); }),
                       "checkpoint manifest is invalid: " + manifest +
                           " (file name '../latest' leaves the checkpoint directory)"));
  fs::remove(manifest);
  EXPECT_EQ(error_of([&] { verify_checkpoint(step_dir(3)); }),
            "checkpoint manifest is missing: " + manifest);
}

TEST_F(CheckpointTest, FailedWriteLeavesThePreviousCheckpointAndLatest) {
  commit_step(1);
  const std::string message = error_of([&] {
    commit_checkpoint(root_, checkpoint_name(2), [](const std::string& dir) {
      write_file(dir + "/model.safetensors", "half a mod");
      throw std::runtime_error("disk full");
    });
  });
  EXPECT_EQ(message, "disk full");
  EXPECT_EQ(entries_of(root_), (std::vector<std::string>{"latest", "step_00000001"}));
  EXPECT_EQ(latest_checkpoint(root_), step_dir(1));
  EXPECT_NO_THROW(verify_checkpoint(step_dir(1)));
  const SafetensorsFile file = load_safetensors(step_dir(1) + "/model.safetensors");
  EXPECT_TRUE(torch::equal(file.tensors.at(0).second, torch::full({4, 4}, 1.0f)));
}

TEST_F(CheckpointTest, StaleTemporariesAreIgnoredThenRemoved) {
  // What a process killed mid-save leaves behind.
  fs::create_directories(root_ + "/.tmp-step_00000009-99999");
  write_file(root_ + "/.tmp-step_00000009-99999/model.safetensors", "partial");
  write_file(root_ + "/latest.tmp-99999", "step_000");
  EXPECT_TRUE(list_checkpoints(root_).empty());
  EXPECT_EQ(latest_checkpoint(root_), std::nullopt);

  commit_step(1);
  EXPECT_EQ(entries_of(root_), (std::vector<std::string>{"latest", "step_00000001"}));
}

TEST_F(CheckpointTest, RecommittingANameReplacesIt) {
  for (const std::string content : {"old", "new"}) {
    commit_checkpoint(root_, "best", [&](const std::string& dir) {
      write_file(dir + "/" + content + ".txt", content);
    });
  }
  EXPECT_EQ(entries_of(root_ + "/best"), (std::vector<std::string>{"manifest.json", "new.txt"}));
  EXPECT_NO_THROW(verify_checkpoint(root_ + "/best"));
  EXPECT_EQ(entries_of(root_), (std::vector<std::string>{"best", "latest"}));
  EXPECT_EQ(latest_checkpoint(root_), root_ + "/best");
  EXPECT_TRUE(list_checkpoints(root_).empty());  // only step_* directories are listed
}

TEST_F(CheckpointTest, RejectsNamesOutsideTheRoot) {
  for (const std::string name : {"", "..", "a/b", "latest", ".tmp-x"}) {
    EXPECT_EQ(error_of([&] { commit_checkpoint(root_, name, [](const std::string&) {}); }),
              "invalid checkpoint name '" + name + "' under " + root_);
  }
  EXPECT_TRUE(fs::is_empty(root_));
}

TEST_F(CheckpointTest, ListSortsByStepAndSkipsOtherEntries) {
  fs::create_directories(root_ + "/step_123456789");
  fs::create_directories(root_ + "/step_00000002");
  fs::create_directories(root_ + "/step_0000001x");
  fs::create_directories(root_ + "/steps");
  write_file(root_ + "/step_00000003", "a file, not a checkpoint");
  EXPECT_EQ(list_checkpoints(root_),
            (std::vector<std::string>{root_ + "/step_00000002", root_ + "/step_123456789"}));
  EXPECT_TRUE(list_checkpoints(root_ + "/missing").empty());
}

TEST_F(CheckpointTest, LatestNamingAMissingDirectoryIsAnError) {
  write_file(root_ + "/latest", "step_00000042\n");
  EXPECT_EQ(error_of([&] { latest_checkpoint(root_); }),
            root_ + "/latest names checkpoint 'step_00000042', but that directory does not exist");
}

TEST_F(CheckpointTest, PruneKeepsNewestRequestedAndLatest) {
  for (int64_t step = 1; step <= 5; ++step) commit_step(step);
  commit_step(2);  // re-saved, so `latest` now points at an older step
  prune_checkpoints(root_, /*keep_last=*/1, {checkpoint_name(1)});
  EXPECT_EQ(list_checkpoints(root_),
            (std::vector<std::string>{step_dir(1), step_dir(2), step_dir(5)}));
  EXPECT_EQ(latest_checkpoint(root_), step_dir(2));

  prune_checkpoints(root_, /*keep_last=*/0, {step_dir(5)});  // full paths work too
  EXPECT_EQ(list_checkpoints(root_), (std::vector<std::string>{step_dir(2), step_dir(5)}));
  EXPECT_EQ(entries_of(root_),
            (std::vector<std::string>{"latest", "step_00000002", "step_00000005"}));

  EXPECT_EQ(error_of([&] { prune_checkpoints(root_, -1); }),
            "prune_checkpoints: keep_last must be >= 0, got -1");
}

}  // namespace
}  // namespace nlpkit
