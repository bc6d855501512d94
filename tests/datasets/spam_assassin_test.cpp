#include "datasets/spam_assassin.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "datasets/text_classification.h"
#include "tests/test_util.h"

namespace nlpkit {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(ExtractMessageBodyTest, DropsHeadersAndCollapsesWhitespace) {
  EXPECT_EQ(extract_message_body("From a@b  Thu Aug 22 2002\n"
                                 "Subject: hi\n"
                                 "Received: from x\n"
                                 "\tby y\n"
                                 "\n"
                                 "Hello\tthere,\n\n  world!\n"),
            "Hello there, world!");
  EXPECT_EQ(extract_message_body("Subject: crlf\r\n\r\nLine one\r\nLine two\r\n"),
            "Line one Line two");
  // Only the first empty line ends the headers; later ones are body.
  EXPECT_EQ(extract_message_body("A: b\n\nfirst\n\nSecond: not a header\n"),
            "first Second: not a header");
}

TEST(ExtractMessageBodyTest, EmptyBodiesControlCharactersAndBadBytes) {
  EXPECT_EQ(extract_message_body("Subject: no body at all\nX: y\n"), "");
  EXPECT_EQ(extract_message_body("Subject: blank body\n\n \t\r\n\n"), "");
  EXPECT_EQ(extract_message_body(""), "");
  EXPECT_EQ(extract_message_body("S: x\n\na\x00"
                                 "b\x1B[0mc"s),
            "a b [0mc");
  EXPECT_EQ(extract_message_body("S: x\n\ncaf\xE9 ok"), "caf\xEF\xBF\xBD ok");  // Latin-1 byte
}

class SpamAssassinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / (std::string("nlpkit_spam_") + info->name());
    fs::remove_all(dir_);
    package_ = dir_ / "package";
    out_ = dir_ / "out";
    // 10 ham and 10 spam messages with bodies, spread over the five groups, plus two without
    // a body and a file that is not a message.
    int n = 0;
    auto add = [&](const std::string& group, int count) {
      fs::create_directories(package_ / "data" / group);
      for (int i = 0; i < count; ++i, ++n) {
        message(group, std::to_string(10000 + n) + ".abc.txt",
                "Subject: m" + std::to_string(n) + "\r\nX-Group: " + group + "\r\n\r\n" +
                    "Body\tof\r\nmessage " + std::to_string(n) + " (" + group + ")\r\n");
      }
    };
    add("easy-ham-1", 4);
    add("easy-ham-2", 3);
    add("hard-ham-1", 3);
    add("spam-1", 5);
    add("spam-2", 5);
    message("spam-2", "00000.empty.txt", "Subject: headers only\n");
    message("easy-ham-1", "00000.blank.txt", "Subject: blank\n\n   \n");
    message("easy-ham-1", "00001.abc.json", "{\"not\": \"a message\"}");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void message(const std::string& group, const std::string& name, const std::string& text) {
    std::ofstream(package_ / "data" / group / name, std::ios::binary) << text;
  }

  fs::path dir_, package_, out_;
};

TEST_F(SpamAssassinTest, ConvertsToStratifiedTsvSplits) {
  std::ostringstream log;
  convert_spam_assassin(package_.string(), out_.string(), log);

  std::map<std::string, std::map<std::string, int>> counts;  // split -> label -> count
  std::set<std::string> bodies;
  for (const std::string split : {"train", "valid", "test"}) {
    const fs::path path = out_ / (split + ".tsv");
    ASSERT_TRUE(fs::exists(path)) << path;
    EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
    const std::string text = read(path);
    EXPECT_EQ(text.rfind("text\tlabel\n", 0), 0u) << "header of " << path;
    const ClassificationData data = load_classification_file(path.string());
    for (const TextExample& e : data.examples) {
      ++counts[split][e.label];
      EXPECT_TRUE(bodies.insert(e.text).second) << "twice: " << e.text;
      EXPECT_EQ(e.text.find_first_of("\t\r\n"), std::string::npos);
      EXPECT_EQ(e.text.rfind("Body of message ", 0), 0u) << e.text;  // headers are gone
      const bool spam_group = e.text.find("(spam-") != std::string::npos;
      EXPECT_EQ(e.label, spam_group ? "spam" : "ham") << e.text;
    }
  }
  EXPECT_EQ(bodies.size(), 20u);  // the two bodiless messages are left out
  EXPECT_EQ(counts["train"]["ham"], 8);
  EXPECT_EQ(counts["train"]["spam"], 8);
  EXPECT_EQ(counts["valid"]["ham"], 1);
  EXPECT_EQ(counts["valid"]["spam"], 1);
  EXPECT_EQ(counts["test"]["ham"], 1);
  EXPECT_EQ(counts["test"]["spam"], 1);
  EXPECT_NE(log.str().find("20 messages (2 without a body left out)"), std::string::npos)
      << log.str();
  EXPECT_NE(log.str().find("train.tsv: 16 (ham 8, spam 8)"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("test.tsv: 2 (ham 1, spam 1)"), std::string::npos) << log.str();
}

TEST_F(SpamAssassinTest, OutputIsDeterministic) {
  std::ostringstream log;
  convert_spam_assassin(package_.string(), (dir_ / "a").string(), log);
  convert_spam_assassin(package_.string(), (dir_ / "b").string(), log);
  for (const std::string name : {"train.tsv", "valid.tsv", "test.tsv"}) {
    EXPECT_EQ(read(dir_ / "a" / name), read(dir_ / "b" / name)) << name;
  }
}

TEST_F(SpamAssassinTest, ConvertErrorsNameThePath) {
  std::ostringstream log;
  const std::string not_package = (dir_ / "nothing").string();
  EXPECT_ERROR(convert_spam_assassin(not_package, out_.string(), log),
               "(no data/ folder): " + not_package);
  fs::remove_all(package_ / "data" / "hard-ham-1");
  EXPECT_ERROR(
      convert_spam_assassin(package_.string(), out_.string(), log),
      "SpamAssassin message folder not found: " + (package_ / "data" / "hard-ham-1").string());
  EXPECT_FALSE(fs::exists(out_ / "train.tsv"));  // nothing written on failure
}

TEST_F(SpamAssassinTest, PrepareDoesNothingWhenTheFilesExist) {
  fs::create_directories(out_);
  for (const std::string name : {"train.tsv", "valid.tsv", "test.tsv"}) {
    std::ofstream(out_ / name) << "text\tlabel\nkept\tham\n";
  }
  std::ostringstream log;
  prepare_spam_assassin(out_.string(), log);  // would need npm and the network otherwise
  EXPECT_NE(log.str().find("nothing to do"), std::string::npos) << log.str();
  EXPECT_EQ(read(out_ / "train.tsv"), "text\tlabel\nkept\tham\n");
}

TEST_F(SpamAssassinTest, PrepareWithoutNpmSaysHowToInstallIt) {
  // An empty PATH hides npm; the guard puts PATH back whatever happens.
  struct PathGuard {
    std::string saved = std::getenv("PATH") ? std::getenv("PATH") : "";
    ~PathGuard() { setenv("PATH", saved.c_str(), 1); }
  } guard;
  setenv("PATH", (dir_ / "empty-bin").c_str(), 1);
  std::ostringstream log;
  EXPECT_ERROR(prepare_spam_assassin(out_.string(), log),
               "npm not found: install Node.js/npm (tools/install-deps.sh)");
  EXPECT_FALSE(fs::exists(out_ / "train.tsv"));
}

}  // namespace
}  // namespace nlpkit
