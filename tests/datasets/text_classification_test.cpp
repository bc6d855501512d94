#include "datasets/text_classification.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

namespace fs = std::filesystem;


class ClassificationFileTest : public TempDirTest {
 protected:
  static ClassificationFileOptions skip() {
    ClassificationFileOptions options;
    options.on_error = "skip";
    return options;
  }
};

void expect_examples(const ClassificationData& data, const std::vector<TextExample>& expected) {
  ASSERT_EQ(data.examples.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(data.examples[i].text, expected[i].text) << "example " << i;
    EXPECT_EQ(data.examples[i].label, expected[i].label) << "example " << i;
  }
}

TEST_F(ClassificationFileTest, Tsv) {
  // Columns in any order, extra columns ignored, CRLF and blank lines accepted.
  const std::string path = write("a.tsv",
                                 "id\tlabel\ttext\r\n"
                                 "1\tham\thello there\r\n"
                                 "\r\n"
                                 "2\tspam\tbuy now, \"cheap\"\r\n");
  const ClassificationData data = load_classification_file(path);
  expect_examples(data, {{"hello there", "ham"}, {"buy now, \"cheap\"", "spam"}});
  EXPECT_EQ(data.skipped, 0);
}

TEST_F(ClassificationFileTest, TsvErrorsNameLine) {
  const std::string path = write("x.tsv",
                                 "text\tlabel\n"
                                 "good\tham\n"
                                 "one\ttoo\tmany\n"
                                 "missing label\n"
                                 "empty label\t\n"
                                 "fine\tspam\n");
  EXPECT_ERROR(load_classification_file(path),
               path + ":3: expected 2 tab-separated fields, found 3");
  const ClassificationData data = load_classification_file(path, skip());
  expect_examples(data, {{"good", "ham"}, {"fine", "spam"}});
  EXPECT_EQ(data.skipped, 3);

  const std::string empty_label = write("e.tsv", "text\tlabel\nx\t\n");
  EXPECT_ERROR(load_classification_file(empty_label),
               empty_label + ":2: empty label (column 'label')");
}

TEST_F(ClassificationFileTest, HeaderErrors) {
  const std::string path = write("h.tsv", "sentence\tclass\nx\ty\n");
  EXPECT_ERROR(load_classification_file(path),
               path + ":1: no column 'text' in the header (columns: sentence, class)");
  // Skipping bad records does not skip a bad header.
  EXPECT_ERROR(load_classification_file(path, skip()), path + ":1: no column 'text'");
  ClassificationFileOptions options;
  options.text_field = "sentence";
  options.label_field = "class";
  expect_examples(load_classification_file(path, options), {{"x", "y"}});
  const std::string empty = write("empty.tsv", "");
  EXPECT_ERROR(load_classification_file(empty), empty + ": empty file; expected a header row");
}

TEST_F(ClassificationFileTest, CsvQuoting) {
  const std::string path = write("q.csv",
                                 "\xEF\xBB\xBFtext,label\r\n"  // Excel's byte order mark
                                 "plain,ham\r\n"
                                 "\"with, comma\",spam\r\n"
                                 "\"say \"\"hi\"\"\",ham\n"
                                 "\"two\nlines\",\"spam\"\n"
                                 "\n"
                                 "5\" screen,ham\n"
                                 ",ham");  // empty text is allowed; no final newline
  const ClassificationData data = load_classification_file(path);
  expect_examples(data, {{"plain", "ham"},
                         {"with, comma", "spam"},
                         {"say \"hi\"", "ham"},
                         {"two\nlines", "spam"},
                         {"5\" screen", "ham"},
                         {"", "ham"}});
}

TEST_F(ClassificationFileTest, CsvErrorsNameTheLineTheRecordStartsOn) {
  const std::string path = write("x.csv",
                                 "text,label\n"
                                 "\"multi\nline\",ham\n"  // lines 2-3
                                 "a,b,c\n"                // line 4: three fields
                                 "\"closed\"junk,ham\n"   // line 5
                                 "ok,spam\n"              // line 6
                                 "\"never closed,ham\n"   // line 7 to the end
                                 "more,ham\n");
  EXPECT_ERROR(load_classification_file(path),
               path + ":4: expected 2 comma-separated fields, found 3");
  const ClassificationData data = load_classification_file(path, skip());
  expect_examples(data, {{"multi\nline", "ham"}, {"ok", "spam"}});
  EXPECT_EQ(data.skipped, 3);

  const std::string junk = write("j.csv", "text,label\n\"closed\"junk,ham\n");
  EXPECT_ERROR(load_classification_file(junk), junk + ":2: unexpected 'j' after a closing quote");
  const std::string open = write("o.csv", "text,label\nok,ham\n\"never closed,ham\nx,y\n");
  EXPECT_ERROR(load_classification_file(open), open + ":3: unterminated quoted field");
  const std::string label = write("l.csv", "text,label\nx,\"\"\n");
  EXPECT_ERROR(load_classification_file(label), label + ":2: empty label");
}

TEST_F(ClassificationFileTest, Jsonl) {
  const std::string path = write("a.jsonl",
                                 "{\"text\": \"héllo\", \"label\": \"pos\"}\n"
                                 "\n"
                                 "{\"label\": 3, \"text\": \"multi\\nline\", \"extra\": [1]}\n");
  expect_examples(load_classification_file(path), {{"héllo", "pos"}, {"multi\nline", "3"}});
}

TEST_F(ClassificationFileTest, JsonlErrorsNameLine) {
  const std::string path = write("x.jsonl",
                                 "{\"text\": \"a\", \"label\": \"x\"}\n"
                                 "{\"text\": \"b\", \"label\": \n"
                                 "[1, 2]\n"
                                 "{\"text\": \"c\"}\n"
                                 "{\"label\": \"x\"}\n"
                                 "{\"text\": 5, \"label\": \"x\"}\n"
                                 "{\"text\": \"d\", \"label\": 1.5}\n"
                                 "{\"text\": \"e\", \"label\": \"\"}\n"
                                 "{\"text\": \"f\", \"label\": \"y\"}\n");
  EXPECT_ERROR(load_classification_file(path), path + ":2: bad JSON: parse error");
  const ClassificationData data = load_classification_file(path, skip());
  expect_examples(data, {{"a", "x"}, {"f", "y"}});
  EXPECT_EQ(data.skipped, 7);

  auto first_error = [&](const std::string& line) {
    const std::string p = write("one.jsonl", line + "\n");
    return error_of([&] { load_classification_file(p); });
  };
  const std::string one = (dir_ / "one.jsonl").string();
  EXPECT_NE(first_error("[1, 2]").find(one + ":1: expected a JSON object, found array"),
            std::string::npos);
  EXPECT_NE(first_error("{\"text\": \"c\"}").find(one + ":1: missing field 'label'"),
            std::string::npos);
  EXPECT_NE(first_error("{\"label\": \"c\"}").find(one + ":1: missing field 'text'"),
            std::string::npos);
  EXPECT_NE(first_error("{\"text\": 5, \"label\": \"x\"}")
                .find(one + ":1: field 'text' must be a string, found number"),
            std::string::npos);
  EXPECT_NE(first_error("{\"text\": \"d\", \"label\": 1.5}")
                .find(one + ":1: field 'label' must be a string or an integer, found number"),
            std::string::npos);
  EXPECT_NE(first_error("{\"text\": \"e\", \"label\": \"\"}").find(one + ":1: empty label"),
            std::string::npos);
}

TEST_F(ClassificationFileTest, FormatAndOptionErrors) {
  const std::string txt = write("data.txt", "text\tlabel\na\tb\n");
  EXPECT_ERROR(load_classification_file(txt), "cannot tell the format of " + txt);
  ClassificationFileOptions options;
  options.format = "tsv";  // an explicit format overrides the extension
  expect_examples(load_classification_file(txt, options), {{"a", "b"}});
  options.format = "xml";
  EXPECT_ERROR(load_classification_file(txt, options), "unknown data format 'xml'");
  options.format = "auto";
  options.on_error = "ignore";
  EXPECT_ERROR(load_classification_file(txt, options), "unknown on_error 'ignore'");
  const std::string missing = (dir_ / "nope.tsv").string();
  EXPECT_ERROR(load_classification_file(missing), "data file not found: " + missing);
  const std::string upper = write("UP.CSV", "text,label\na,b\n");
  expect_examples(load_classification_file(upper), {{"a", "b"}});
}

TEST(LabelMapTest, SortedDistinctLabels) {
  const LabelMap map =
      LabelMap::from_examples({{"t1", "spam"}, {"t2", "ham"}, {"t3", "spam"}, {"t4", "eggs"}});
  EXPECT_EQ(map.names(), (std::vector<std::string>{"eggs", "ham", "spam"}));
  EXPECT_EQ(map.size(), 3);
  EXPECT_EQ(map.id("ham"), 1);
  EXPECT_EQ(map.name(2), "spam");
  EXPECT_TRUE(map.contains("eggs"));
  EXPECT_EQ(map.ids({{"x", "spam"}, {"y", "eggs"}}), (std::vector<int64_t>{2, 0}));
  EXPECT_ERROR(map.id("bacon"), "unknown label 'bacon' (known labels: eggs, ham, spam)");
  EXPECT_ERROR(map.name(3), "LabelMap: id 3 out of range [0, 3)");
}

TEST(LabelMapTest, JsonKeepsTheSavedOrder) {
  const LabelMap map({"pos", "neg"});
  EXPECT_EQ(map.to_json().dump(), "[\"pos\",\"neg\"]");
  const LabelMap back = LabelMap::from_json(map.to_json());
  EXPECT_EQ(back.names(), map.names());
  EXPECT_EQ(back.id("neg"), 1);
  EXPECT_ERROR(LabelMap::from_json(nlohmann::json::object()),
               "expected a JSON array of label names, found object");
  EXPECT_ERROR(LabelMap::from_json(nlohmann::json::parse("[\"a\", 1]")),
               "expected label names to be strings, found number");
  EXPECT_ERROR(LabelMap::from_json(nlohmann::json::parse("[\"a\", \"a\"]")),
               "label 'a' appears twice");
  EXPECT_ERROR(LabelMap({"a", ""}), "label 1 is empty");
}

TEST_F(ClassificationFileTest, LabelMapSaveLoad) {
  const LabelMap map({"b", "a"});
  const std::string path = (dir_ / "labels.json").string();
  map.save(path);
  EXPECT_EQ(LabelMap::load(path).names(), map.names());
  const std::string bad = write("bad.json", "{\"a\": 1}");
  EXPECT_ERROR(LabelMap::load(bad), bad + ": LabelMap: expected a JSON array");
  const std::string broken = write("broken.json", "[\"a\"");
  EXPECT_ERROR(LabelMap::load(broken), broken + ": ");
  EXPECT_ERROR(LabelMap::load((dir_ / "none.json").string()), "label map file not found: ");
}

}  // namespace
}  // namespace nlpkit
