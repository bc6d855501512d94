// WordPiece tokenization throughput, one thread: nlpkit's WordPieceTokenizer (datasets/wordpiece.h)
// on the texts of TSV files with a header and a `text` column (the SpamAssassin bodies that
// `nlpkit data prepare spam_assassin` writes). The Python half, a pure-Python port of
// HuggingFace's BertTokenizer, is tools/bench/wordpiece_bench.py; tools/bench/run_wordpiece.sh
// runs both on the same files and compares their tokens. The same loop times the SentencePiece
// tokenizer (datasets/sentencepiece.h; tools/bench/run_sentencepiece.sh).
//
//   nlpkit_bench wordpiece --vocab VOCAB [--no-lowercase] [--repeat 5] [--dump TOKENS.txt] FILE...
//   nlpkit_bench sentencepiece --model spm.model [--repeat 5] [--dump TOKENS.txt] FILE...
//
// Prints one JSON line: texts, tokens, and per pass seconds and tokens/s of tokenize() (token
// strings, as BertTokenizer.tokenize returns) and encode() (ids only); the median pass counts.
// tokens/cpu_s divides by the thread's CPU time instead of wall time (robust to a busy machine).
#include "tools/bench/wordpiece_bench.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "datasets/file_io.h"
#include "datasets/input_error.h"
#include "datasets/sentencepiece.h"
#include "datasets/wordpiece.h"

namespace nlpkit::bench {
namespace {

constexpr const char* kUsage =
    "usage: nlpkit_bench wordpiece --vocab VOCAB [--no-lowercase] [--repeat N] [--dump PATH] "
    "FILE.tsv...\n"
    "       nlpkit_bench sentencepiece --model spm.model [--repeat N] [--dump PATH] FILE.tsv...\n";

std::vector<std::string> read_texts(const std::string& path) {
  const std::string bytes = detail::read_file(path, "data");
  std::vector<std::string> texts;
  int64_t column = -1;
  detail::for_each_line(bytes, [&](std::string_view line, int64_t number) {
    std::vector<std::string_view> fields;
    for (size_t start = 0;;) {
      const size_t tab = line.find('\t', start);
      fields.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    if (number == 1) {
      const auto it = std::find(fields.begin(), fields.end(), "text");
      if (it == fields.end()) throw InputError(path + ":1: no 'text' column in the header");
      column = it - fields.begin();
    } else if (column < static_cast<int64_t>(fields.size())) {
      texts.emplace_back(fields[column]);
    }
  });
  return texts;
}

/// CPU time of this thread: unlike wall time, it does not count time the thread waited for a
/// core, so it holds on a shared machine.
double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

int run(int argc, char** argv, bool sentencepiece) {
  std::string vocab, model, dump;
  bool lower_case = true;
  int64_t repeat = 5;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--vocab" && !sentencepiece) {
      vocab = value();
    } else if (flag == "--model" && sentencepiece) {
      model = value();
    } else if (flag == "--dump") {
      dump = value();
    } else if (flag == "--repeat") {
      repeat = std::stoll(value());
    } else if (flag == "--lowercase" && !sentencepiece) {
      lower_case = true;
    } else if (flag == "--no-lowercase" && !sentencepiece) {
      lower_case = false;
    } else if (flag.rfind("--", 0) == 0) {
      throw std::invalid_argument("unknown option " + flag);
    } else {
      files.push_back(flag);
    }
  }
  if ((sentencepiece ? model : vocab).empty() || files.empty() || repeat < 1) {
    throw std::invalid_argument(std::string("give ") + (sentencepiece ? "--model" : "--vocab") +
                                ", at least one file, and --repeat >= 1");
  }
  std::unique_ptr<SubwordTokenizer> owned;
  if (sentencepiece) {
    lower_case = false;
    owned = std::make_unique<SentencePieceTokenizer>(SentencePieceTokenizer::from_file(model));
  } else {
    owned = std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_file(vocab, {lower_case}));
  }
  const SubwordTokenizer& tokenizer = *owned;
  std::vector<std::string> texts;
  int64_t bytes = 0;
  for (const auto& f : files) {
    for (auto& t : read_texts(f)) {
      bytes += static_cast<int64_t>(t.size());
      texts.push_back(std::move(t));
    }
  }

  using Clock = std::chrono::steady_clock;
  int64_t tokens = 0;
  std::vector<double> tokenize_s, encode_s, tokenize_cpu_s;
  for (int64_t pass = 0; pass < repeat; ++pass) {
    int64_t n = 0;
    const double cpu0 = thread_cpu_seconds();
    auto t0 = Clock::now();
    for (const auto& text : texts) n += static_cast<int64_t>(tokenizer.tokenize(text).size());
    auto t1 = Clock::now();
    tokenize_cpu_s.push_back(thread_cpu_seconds() - cpu0);
    int64_t m = 0;
    for (const auto& text : texts) m += static_cast<int64_t>(tokenizer.encode(text).size());
    auto t2 = Clock::now();
    if (n != m) throw std::runtime_error("tokenize and encode disagree on the token count");
    tokens = n;
    tokenize_s.push_back(std::chrono::duration<double>(t1 - t0).count());
    encode_s.push_back(std::chrono::duration<double>(t2 - t1).count());
  }
  if (!dump.empty()) {
    std::string out;
    for (const auto& text : texts) {
      const auto t = tokenizer.tokenize(text);
      for (size_t i = 0; i < t.size(); ++i) out += (i ? " " : "") + t[i];
      out += "\n";
    }
    write_file_atomic(dump, out);
  }
  const double tok_s = median(tokenize_s), enc_s = median(encode_s);
  nlohmann::json result = {
      {"impl", "nlpkit"},
      {"tokenizer", tokenizer.type()},
      {"lower_case", lower_case},
      {"texts", texts.size()},
      {"bytes", bytes},
      {"tokens", tokens},
      {"tokenize_seconds", tokenize_s},
      {"encode_seconds", encode_s},
      {"tokenize_cpu_seconds", tokenize_cpu_s},
      {"tokenize_tokens_per_s", std::llround(tokens / tok_s)},
      {"tokenize_tokens_per_cpu_s", std::llround(tokens / median(tokenize_cpu_s))},
      {"encode_tokens_per_s", std::llround(tokens / enc_s)}};
  std::cout << result.dump() << std::endl;
  return 0;
}

int main_of(int argc, char** argv, bool sentencepiece) {
  const char* name = sentencepiece ? "sentencepiece" : "wordpiece";
  try {
    return run(argc, argv, sentencepiece);
  } catch (const std::invalid_argument& e) {
    std::cerr << "nlpkit_bench " << name << ": " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const InputError& e) {
    std::cerr << "nlpkit_bench " << name << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "nlpkit_bench " << name << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

int wordpiece_main(int argc, char** argv) { return main_of(argc, argv, false); }

int sentencepiece_main(int argc, char** argv) { return main_of(argc, argv, true); }

}  // namespace nlpkit::bench
