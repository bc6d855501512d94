#include "trainers/tensorboard.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "tests/test_util.h"
#include "tests/trainers/tfevents_reader.h"

namespace nlpkit {
namespace {
namespace fs = std::filesystem;
namespace tfe = testing_tfevents;

std::vector<std::string> event_files(const fs::path& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(Crc32c, StandardCheckValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  // Continuing a CRC over a second piece equals the CRC of the whole.
  EXPECT_EQ(crc32c("56789", 5, crc32c("1234", 4)), 0xE3069283u);
  // 32 zero bytes: the iSCSI test vector of RFC 3720, B.4.
  const std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c("123456789", 9), tfe::crc32c_bitwise("123456789"));
}

TEST(Crc32c, MaskedAsTfRecordsUseIt) {
  EXPECT_EQ(masked_crc32c(""), 0xa282ead8u);  // crc 0, rotated 0, plus the constant
  const uint32_t c = 0xE3069283u;
  EXPECT_EQ(masked_crc32c("123456789"), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TfRecord, FrameLayout) {
  const std::string frame = tfrecord_frame("abc");
  ASSERT_EQ(frame.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(tfe::little_endian(frame, 0, 8), 3u);
  EXPECT_EQ(tfe::little_endian(frame, 8, 4), tfe::masked(frame.substr(0, 8)));
  EXPECT_EQ(frame.substr(12, 3), "abc");
  EXPECT_EQ(tfe::little_endian(frame, 15, 4), tfe::masked("abc"));
}

TEST(Histogram, EqualBucketsBetweenMinAndMax) {
  // 0..9 in 5 buckets of width 1.8: (0,1.8] gets 0 (min goes in the first bucket) and 1.
  Histogram h = make_histogram(torch::arange(10, torch::kFloat), 5);
  EXPECT_EQ(h.min, 0);
  EXPECT_EQ(h.max, 9);
  EXPECT_EQ(h.num, 10);
  EXPECT_EQ(h.sum, 45);
  EXPECT_EQ(h.sum_squares, 285);
  ASSERT_EQ(h.bucket.size(), 5u);
  EXPECT_EQ(h.bucket, (std::vector<double>{2, 2, 2, 2, 2}));
  EXPECT_NEAR(h.bucket_limit[0], 1.8, 1e-12);
  EXPECT_EQ(h.bucket_limit[4], 9);
  // A value on a limit belongs to the bucket the limit closes.
  Histogram edges = make_histogram(torch::tensor({0.0, 1.0, 2.0}), 2);
  EXPECT_EQ(edges.bucket, (std::vector<double>{2, 1}));
}

TEST(Histogram, ConstantEmptyAndNonFinite) {
  Histogram c = make_histogram(torch::full({4}, 3.0), 10);
  EXPECT_EQ(c.bucket, (std::vector<double>{4}));
  EXPECT_EQ(c.bucket_limit, (std::vector<double>{3}));
  Histogram e = make_histogram(torch::empty({0}), 10);
  EXPECT_EQ(e.num, 0);
  EXPECT_TRUE(e.bucket.empty());
  Histogram n = make_histogram(torch::tensor({1.0, double(NAN), double(INFINITY), 3.0}), 2);
  EXPECT_EQ(n.num, 2);
  EXPECT_EQ(n.max, 3);
  EXPECT_THROW_WITH(make_histogram(torch::ones({2}), 0), "buckets (0) must be positive");
}

class EventWriterTest : public TempDirTest {};

TEST_F(EventWriterTest, RoundTripOfEveryKindOfEvent) {
  std::string path;
  {
    EventWriter w(dir_.string(), 1700000000.25);
    path = w.path();
    w.add_scalars({{"train/loss", 0.6931}, {"train/lr", 3e-4}}, 10, 1700000001.5);
    w.add_scalar("valid/accuracy", 0.875, 20);
    w.add_text("config", "    a: 1\n    b: \"x\"\n", 0);
    Histogram h = make_histogram(torch::arange(10, torch::kFloat), 5);
    w.add_histograms({{"weights/w", h}, {"gradients/w", h}}, 1234567890123);
    w.add_session_start(11);
    w.add_scalar("train/loss", -1e30, -3);  // negative steps are varints of 10 bytes
  }
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  EXPECT_EQ(fs::path(path).filename().string(),
            std::string("events.out.tfevents.1700000000.") + host);

  const std::vector<tfe::Event> events = tfe::read_events(path);
  ASSERT_EQ(events.size(), 7u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_EQ(events[0].wall_time, 1700000000.25);
  EXPECT_EQ(events[0].step, 0);

  EXPECT_EQ(events[1].wall_time, 1700000001.5);
  EXPECT_EQ(events[1].step, 10);
  ASSERT_EQ(events[1].values.size(), 2u);
  EXPECT_EQ(events[1].values[0].tag, "train/loss");
  EXPECT_EQ(events[1].values[0].simple, 0.6931f);
  EXPECT_EQ(events[1].values[1].tag, "train/lr");
  EXPECT_EQ(events[1].values[1].simple, 3e-4f);
  EXPECT_GT(events[2].wall_time, 1.6e9);  // now
  EXPECT_EQ(events[2].step, 20);

  const tfe::Value& text = events[3].values.at(0);
  EXPECT_EQ(text.tag, "config");
  EXPECT_EQ(text.plugin, "text");
  EXPECT_EQ(text.dtype, 7u);  // DT_STRING
  EXPECT_EQ(text.rank, 0);
  EXPECT_EQ(text.strings, (std::vector<std::string>{"    a: 1\n    b: \"x\"\n"}));

  EXPECT_EQ(events[4].step, 1234567890123);
  ASSERT_EQ(events[4].values.size(), 2u);
  const tfe::Value& histo = events[4].values[0];
  EXPECT_EQ(histo.tag, "weights/w");
  EXPECT_TRUE(histo.has_histo);
  EXPECT_EQ(histo.min, 0);
  EXPECT_EQ(histo.max, 9);
  EXPECT_EQ(histo.num, 10);
  EXPECT_EQ(histo.sum, 45);
  EXPECT_EQ(histo.sum_squares, 285);
  EXPECT_EQ(histo.bucket, (std::vector<double>{2, 2, 2, 2, 2}));
  EXPECT_EQ(histo.bucket_limit.size(), 5u);

  EXPECT_TRUE(events[5].session_start);
  EXPECT_EQ(events[5].step, 11);
  EXPECT_EQ(events[6].step, -3);
  EXPECT_EQ(events[6].values.at(0).simple, -1e30f);
}

TEST_F(EventWriterTest, TwoWritersInOneSecondGetTwoFiles) {
  EventWriter a(dir_.string(), 1700000000);
  EventWriter b(dir_.string(), 1700000000);
  EXPECT_NE(a.path(), b.path());
  EXPECT_EQ(b.path(), a.path() + ".1");
  EXPECT_EQ(event_files(dir_).size(), 2u);
}

TEST_F(EventWriterTest, UnwritableDirectoryNamesThePath) {
  write("file", "x");
  EXPECT_ERROR(EventWriter((dir_ / "file").string()), (dir_ / "file").string());
}

}  // namespace
}  // namespace nlpkit
