#include "datasets/subword_tokenizer.h"

#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "datasets/input_error.h"

namespace nlpkit {

bool SubwordTokenizer::is_special_id(int64_t id) const {
  return id == pad_id_ || id == unk_id_ || id == cls_id_ || id == sep_id_ || id == mask_id_;
}

void truncate_longest_first(std::vector<int64_t>& a, std::vector<int64_t>* b, int64_t max_tokens) {
  const auto size = [](const std::vector<int64_t>* v) {
    return v ? static_cast<int64_t>(v->size()) : 0;
  };
  max_tokens = std::max<int64_t>(max_tokens, 0);
  int64_t excess = size(&a) + size(b) - max_tokens;
  if (excess <= 0) return;
  // One token at a time from the longer side, b on a tie: equalise, then alternate from b.
  const int64_t diff = std::abs(size(&a) - size(b));
  const int64_t first = std::min(diff, excess);
  int64_t cut_a = 0, cut_b = 0;
  (size(&a) > size(b) ? cut_a : cut_b) = first;
  const int64_t rest = excess - first;
  cut_b += rest - rest / 2;
  cut_a += rest / 2;
  a.resize(a.size() - cut_a);
  if (b) b->resize(b->size() - cut_b);
}

Encoding SubwordTokenizer::encode_ids_pair(std::vector<int64_t> a, const std::vector<int64_t>* b,
                                           int64_t max_length, bool pad) const {
  std::vector<int64_t> second = b ? *b : std::vector<int64_t>{};
  for (const auto* ids : {&a, &second}) {
    for (int64_t id : *ids) id_to_token(id);  // throws for an id outside the vocabulary
  }
  const int64_t specials = b ? 3 : 2;
  if (max_length < 0) {
    throw InputError("max_length must be >= 0 (0 = no limit), found " + std::to_string(max_length));
  }
  if (max_length > 0) {
    if (max_length < specials) {
      throw InputError("max_length " + std::to_string(max_length) + " leaves no room for " +
                       (b ? "[CLS] a [SEP] b [SEP]" : "[CLS] a [SEP]") + " (needs at least " +
                       std::to_string(specials) + ")");
    }
    truncate_longest_first(a, b ? &second : nullptr, max_length - specials);
  }
  Encoding e;
  auto push = [&](int64_t id, int64_t type) {
    e.input_ids.push_back(id);
    e.token_type_ids.push_back(type);
    e.attention_mask.push_back(1);
  };
  push(cls_id_, 0);
  for (int64_t id : a) push(id, 0);
  push(sep_id_, 0);
  if (b) {
    for (int64_t id : second) push(id, 1);
    push(sep_id_, 1);
  }
  if (pad) {
    while (static_cast<int64_t>(e.input_ids.size()) < max_length) {
      e.input_ids.push_back(pad_id_);
      e.token_type_ids.push_back(0);
      e.attention_mask.push_back(0);
    }
  }
  e.tokens.reserve(e.input_ids.size());
  for (int64_t id : e.input_ids) e.tokens.push_back(id_to_token(id));
  return e;
}

Encoding SubwordTokenizer::encode_pair(const std::string& a, const std::string* b,
                                       int64_t max_length, bool pad) const {
  if (!b) return encode_ids_pair(encode(a), nullptr, max_length, pad);
  const std::vector<int64_t> second = encode(*b);
  return encode_ids_pair(encode(a), &second, max_length, pad);
}

namespace detail {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

void clean_up_tokenization(std::string& text) {
  static constexpr std::pair<std::string_view, std::string_view> kCleanUp[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kCleanUp) replace_all(text, from, to);
}

}  // namespace detail
}  // namespace nlpkit
