#include "modules/word_embeddings.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <queue>
#include <thread>

namespace nlpkit {

// ============================================================================== Word2Vec

Word2VecImpl::Word2VecImpl(Word2VecOptions options_) : options(std::move(options_)) { reset(); }

void Word2VecImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.vocab_size() > 0, "Word2Vec: vocab_size must be > 0, got ", o.vocab_size());
  TORCH_CHECK(o.embedding_dim() > 0, "Word2Vec: embedding_dim must be > 0, got ",
              o.embedding_dim());
  TORCH_CHECK(o.architecture() == "skip_gram" || o.architecture() == "cbow",
              "Word2Vec: architecture must be skip_gram or cbow, got '", o.architecture(), "'");
  TORCH_CHECK(o.loss() == "negative_sampling" || o.loss() == "hierarchical_softmax",
              "Word2Vec: loss must be negative_sampling or hierarchical_softmax, got '", o.loss(),
              "'");
  TORCH_CHECK(o.loss() != "negative_sampling" || o.negative() > 0,
              "Word2Vec: negative must be > 0 for negative_sampling, got ", o.negative());
  TORCH_CHECK(o.window() > 0, "Word2Vec: window must be > 0, got ", o.window());
  input_embeddings =
      register_parameter("input_embeddings", torch::empty({o.vocab_size(), o.embedding_dim()}));
  // Hierarchical softmax: one row per inner node of the tree (V - 1; at least one row so that a
  // one-word vocabulary still has a well-formed matrix).
  const int64_t rows =
      o.loss() == "negative_sampling" ? o.vocab_size() : std::max<int64_t>(o.vocab_size() - 1, 1);
  output_embeddings =
      register_parameter("output_embeddings", torch::empty({rows, o.embedding_dim()}));
  reset_parameters();
}

void Word2VecImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  const double bound = 0.5 / static_cast<double>(options.embedding_dim());
  input_embeddings.uniform_(-bound, bound);
  output_embeddings.zero_();
}

torch::Tensor Word2VecImpl::forward(const torch::Tensor& ids) {
  return torch::embedding(input_embeddings, ids);  // (..., D)
}

void Word2VecImpl::pretty_print(std::ostream& stream) const {
  stream << "nlpkit::Word2Vec(vocab_size=" << options.vocab_size()
         << ", embedding_dim=" << options.embedding_dim()
         << ", architecture=" << options.architecture() << ", loss=" << options.loss();
  if (options.loss() == "negative_sampling") stream << ", negative=" << options.negative();
  stream << ", window=" << options.window() << ")";
}

namespace detail {

namespace {
std::array<float, kExpTableSize> make_sigmoid_table() {
  std::array<float, kExpTableSize> table{};
  for (int i = 0; i < kExpTableSize; ++i) {
    const double e = std::exp((i / double(kExpTableSize) * 2 - 1) * kMaxExp);
    table[i] = static_cast<float>(e / (e + 1));
  }
  return table;
}
const std::array<float, kExpTableSize> kSigmoidTable = make_sigmoid_table();
}  // namespace

float table_sigmoid(float x) {
  int i = static_cast<int>((x + kMaxExp) * (kExpTableSize / kMaxExp / 2));
  i = std::clamp(i, 0, kExpTableSize - 1);
  return kSigmoidTable[i];
}

HuffmanTree build_huffman_tree(const std::vector<int64_t>& counts) {
  const auto v = static_cast<int64_t>(counts.size());
  HuffmanTree tree;
  tree.points.resize(v);
  tree.codes.resize(v);
  if (v < 2) return tree;
  // Nodes 0..v-1 are the words, v..2v-2 the inner nodes in creation order (root last). Ties
  // go to the smaller node id, so equal counts always build the same tree.
  std::vector<int64_t> weight(counts.begin(), counts.end());
  weight.resize(2 * v - 1, 0);
  std::vector<int64_t> parent(2 * v - 1, -1);
  std::vector<uint8_t> branch(2 * v - 1, 0);
  using Item = std::pair<int64_t, int64_t>;  // (weight, node)
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue;
  for (int64_t w = 0; w < v; ++w) queue.push({counts[w], w});
  for (int64_t inner = v; inner < 2 * v - 1; ++inner) {
    const Item a = queue.top();
    queue.pop();
    const Item b = queue.top();
    queue.pop();
    weight[inner] = a.first + b.first;
    parent[a.second] = inner;
    parent[b.second] = inner;
    branch[b.second] = 1;  // the heavier child is branch 1, as in word2vec.c
    queue.push({weight[inner], inner});
  }
  for (int64_t w = 0; w < v; ++w) {
    std::vector<int32_t>& points = tree.points[w];
    std::vector<uint8_t>& codes = tree.codes[w];
    for (int64_t node = w; parent[node] != -1; node = parent[node]) {
      codes.push_back(branch[node]);
      points.push_back(static_cast<int32_t>(parent[node] - v));
    }
    // Collected leaf-to-root; the model walks root-to-leaf.
    std::reverse(points.begin(), points.end());
    std::reverse(codes.begin(), codes.end());
  }
  return tree;
}

NoiseSampler build_noise_sampler(const std::vector<int64_t>& counts, double power) {
  TORCH_CHECK(!counts.empty(), "build_noise_sampler: no words");
  const auto v = static_cast<int64_t>(counts.size());
  std::vector<double> scaled(v);
  double total = 0;
  for (int64_t w = 0; w < v; ++w)
    total += scaled[w] = std::pow(static_cast<double>(counts[w]), power);
  TORCH_CHECK(total > 0, "build_noise_sampler: every count is zero");
  // Vose's construction: slots below the mean are topped up by one word above it.
  std::vector<int32_t> small, large;
  for (int64_t w = 0; w < v; ++w) {
    scaled[w] *= static_cast<double>(v) / total;
    (scaled[w] < 1 ? small : large).push_back(static_cast<int32_t>(w));
  }
  NoiseSampler s;
  s.keep.assign(v, 1.0f);
  s.alias.resize(v);
  for (int64_t w = 0; w < v; ++w) s.alias[w] = static_cast<int32_t>(w);
  while (!small.empty() && !large.empty()) {
    const int32_t lo = small.back(), hi = large.back();
    small.pop_back();
    s.keep[lo] = static_cast<float>(scaled[lo]);
    s.alias[lo] = hi;
    scaled[hi] -= 1 - scaled[lo];
    if (scaled[hi] < 1) {
      large.pop_back();
      small.push_back(hi);
    }
  }
  // What is left is 1 up to rounding: those slots keep their own word.
  return s;
}

std::vector<double> NoiseSampler::probabilities() const {
  const auto v = static_cast<int64_t>(keep.size());
  std::vector<double> p(v, 0);
  for (int64_t i = 0; i < v; ++i) {
    // The coin's 24 bits: P(coin < keep) = ceil(keep * 2^24) / 2^24.
    const double stay =
        std::min(1.0, std::ceil(static_cast<double>(keep[i]) * 16777216.0) / 16777216.0);
    p[i] += stay / static_cast<double>(v);
    p[alias[i]] += (1 - stay) / static_cast<double>(v);
  }
  return p;
}

double keep_probability(int64_t count, int64_t total, double sample) {
  if (sample <= 0 || count <= 0) return 1.0;
  const double threshold = sample * static_cast<double>(total);
  return (std::sqrt(count / threshold) + 1) * threshold / static_cast<double>(count);
}

namespace {

/// word2vec.c's linear congruential generator: cheap, and each thread owns one.
struct Lcg {
  uint64_t state;
  uint64_t next() {
    state = state * 25214903917ULL + 11;
    return state;
  }
};

// The hot loop (train_thread and what it inlines) is compiled twice on x86-64: for AVX2 + FMA
// and for the baseline, chosen at load time by the CPU (GCC's target_clones). The helpers are
// always inlined so that each copy gets them in its own instruction set.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NLPKIT_W2V_HOT __attribute__((always_inline)) inline
#define NLPKIT_W2V_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define NLPKIT_W2V_HOT inline
#define NLPKIT_W2V_CLONES
#endif

/// Eight partial sums, so that the compiler keeps them in SIMD lanes: one running sum is a
/// serial chain it may not reorder (no -ffast-math). This is what BLAS's sdot does, which
/// gensim's inner loop calls.
NLPKIT_W2V_HOT float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int64_t j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

NLPKIT_W2V_HOT void axpy(float g, const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += g * x[i];
}

/// Everything the worker threads share. The float arrays are updated without locks.
struct Shared {
  float* syn0;  // (V, D) input vectors
  float* syn1;  // output vectors (negative sampling or hierarchical softmax)
  int64_t dim;
  int64_t window;
  int64_t negative;
  bool cbow;
  bool hs;
  const Word2VecCorpus* corpus;
  std::vector<float> keep;  // subsampling keep probability per word
  NoiseSampler noise;
  HuffmanTree tree;
  double lr;
  double min_lr;
  int64_t words_total;
  std::atomic<int64_t> words_done{0};
  std::atomic<float> current_lr{0};
};

/// Updates `hidden`'s gradient `grad` and the output rows for predicting `target` from
/// `hidden` (a word vector for skip-gram, the context mean for CBOW).
NLPKIT_W2V_HOT void output_update(Shared& s, int32_t target, const float* hidden, float* grad,
                                  float alpha, Lcg& rng) {
  const int64_t d = s.dim;
  if (s.hs) {
    const std::vector<int32_t>& points = s.tree.points[target];
    const std::vector<uint8_t>& codes = s.tree.codes[target];
    for (size_t k = 0; k < points.size(); ++k) {
      float* out = s.syn1 + static_cast<int64_t>(points[k]) * d;
      const float f = dot(hidden, out, d);
      // Outside the table the sigmoid is saturated: word2vec.c skips the node.
      if (f <= -kMaxExp || f >= kMaxExp) continue;
      const float g = (1.0f - codes[k] - table_sigmoid(f)) * alpha;
      axpy(g, out, grad, d);
      axpy(g, hidden, out, d);
    }
    return;
  }
  for (int64_t k = 0; k <= s.negative; ++k) {
    int32_t word;
    float label;
    if (k == 0) {
      word = target;
      label = 1;
    } else {
      const auto slot = static_cast<uint32_t>(rng.next() >> 32);
      word = s.noise.sample(slot, static_cast<uint32_t>(rng.next() >> 32));
      if (word == target) continue;
      label = 0;
    }
    float* out = s.syn1 + static_cast<int64_t>(word) * d;
    const float f = dot(hidden, out, d);
    float g;
    if (f > kMaxExp) {
      g = (label - 1) * alpha;
    } else if (f < -kMaxExp) {
      g = label * alpha;
    } else {
      g = (label - table_sigmoid(f)) * alpha;
    }
    axpy(g, out, grad, d);
    axpy(g, hidden, out, d);
  }
}

NLPKIT_W2V_CLONES void train_thread(Shared& s, int64_t thread, int64_t threads, int64_t epochs,
                                    uint64_t seed) {
  const Word2VecCorpus& corpus = *s.corpus;
  const int64_t d = s.dim;
  // A contiguous share of the sentences, balanced by words.
  const int64_t n_words = static_cast<int64_t>(corpus.ids.size());
  const auto first_sentence = [&](int64_t t) {
    const int64_t target = n_words * t / threads;
    return static_cast<int64_t>(
        std::lower_bound(corpus.offsets.begin(), corpus.offsets.end() - 1, target) -
        corpus.offsets.begin());
  };
  const int64_t begin = first_sentence(thread);
  const int64_t end = thread + 1 == threads ? corpus.sentences() : first_sentence(thread + 1);
  Lcg rng{seed + static_cast<uint64_t>(thread)};
  std::vector<float> hidden(d), grad(d);
  std::vector<int32_t> sentence;
  int64_t unreported = 0;
  float alpha = static_cast<float>(s.lr);
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    for (int64_t si = begin; si < end; ++si) {
      sentence.clear();
      for (int64_t i = corpus.offsets[si]; i < corpus.offsets[si + 1]; ++i) {
        const int32_t w = corpus.ids[i];
        ++unreported;
        if (s.keep[w] < 1.0f && s.keep[w] < (rng.next() & 0xFFFF) / 65536.0f) continue;
        sentence.push_back(w);
      }
      // The learning rate follows the words read by all threads (word2vec.c: every 10k words).
      if (unreported >= 10000 || si + 1 == end) {
        const int64_t done = s.words_done.fetch_add(unreported) + unreported;
        unreported = 0;
        alpha = static_cast<float>(
            std::max(s.min_lr, s.lr * (1.0 - done / static_cast<double>(s.words_total + 1))));
        s.current_lr.store(alpha, std::memory_order_relaxed);
      }
      const auto len = static_cast<int64_t>(sentence.size());
      for (int64_t pos = 0; pos < len; ++pos) {
        const int32_t word = sentence[pos];
        // Dynamic window: an effective size drawn from 1..window, so near words weigh more.
        const int64_t shrink = static_cast<int64_t>(rng.next() % s.window);
        const int64_t lo = std::max<int64_t>(0, pos - s.window + shrink);
        const int64_t hi = std::min<int64_t>(len - 1, pos + s.window - shrink);
        if (s.cbow) {
          std::fill(hidden.begin(), hidden.end(), 0.0f);
          int64_t context = 0;
          for (int64_t c = lo; c <= hi; ++c) {
            if (c == pos) continue;
            axpy(1.0f, s.syn0 + static_cast<int64_t>(sentence[c]) * d, hidden.data(), d);
            ++context;
          }
          if (context == 0) continue;
          const float inv = 1.0f / static_cast<float>(context);
          for (auto& h : hidden) h *= inv;
          std::fill(grad.begin(), grad.end(), 0.0f);
          output_update(s, word, hidden.data(), grad.data(), alpha, rng);
          for (int64_t c = lo; c <= hi; ++c) {
            if (c == pos) continue;
            axpy(1.0f, grad.data(), s.syn0 + static_cast<int64_t>(sentence[c]) * d, d);
          }
        } else {
          for (int64_t c = lo; c <= hi; ++c) {
            if (c == pos) continue;
            float* in = s.syn0 + static_cast<int64_t>(sentence[c]) * d;
            std::fill(grad.begin(), grad.end(), 0.0f);
            output_update(s, word, in, grad.data(), alpha, rng);
            axpy(1.0f, grad.data(), in, d);
          }
        }
      }
    }
  }
  s.words_done.fetch_add(unreported);
}

}  // namespace
}  // namespace detail

Word2VecProgress train_word2vec(Word2Vec& model, const Word2VecCorpus& corpus,
                                const std::vector<int64_t>& counts,
                                const Word2VecTrainOptions& options,
                                const std::function<void(const Word2VecProgress&)>& progress) {
  const Word2VecOptions& o = model->options;
  const int64_t v = o.vocab_size();
  TORCH_CHECK(static_cast<int64_t>(counts.size()) == v, "train_word2vec: ", counts.size(),
              " counts for a vocabulary of ", v);
  TORCH_CHECK(model->input_embeddings.device().is_cpu() &&
                  model->input_embeddings.scalar_type() == torch::kFloat &&
                  model->input_embeddings.is_contiguous() &&
                  model->output_embeddings.is_contiguous(),
              "train_word2vec: the parameters must be contiguous float32 CPU tensors");
  TORCH_CHECK(options.epochs() > 0 && options.threads() > 0 && options.lr() > 0,
              "train_word2vec: epochs, threads and lr must be > 0");
  TORCH_CHECK(corpus.offsets.size() >= 1 &&
                  corpus.offsets.back() == static_cast<int64_t>(corpus.ids.size()),
              "train_word2vec: corpus offsets do not cover its ids");
  for (int32_t id : corpus.ids) {
    TORCH_CHECK(id >= 0 && id < v, "train_word2vec: word id ", id, " outside the vocabulary (", v,
                ")");
  }
  torch::NoGradGuard no_grad;
  detail::Shared s;
  s.syn0 = model->input_embeddings.data_ptr<float>();
  s.syn1 = model->output_embeddings.data_ptr<float>();
  s.dim = o.embedding_dim();
  s.window = o.window();
  s.negative = o.negative();
  s.cbow = o.architecture() == "cbow";
  s.hs = o.loss() == "hierarchical_softmax";
  s.corpus = &corpus;
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  s.keep.resize(v);
  for (int64_t w = 0; w < v; ++w) {
    s.keep[w] = static_cast<float>(detail::keep_probability(counts[w], total, options.sample()));
  }
  if (s.hs) {
    s.tree = detail::build_huffman_tree(counts);
  } else {
    s.noise = detail::build_noise_sampler(counts);
  }
  s.lr = options.lr();
  s.min_lr = options.lr() * options.min_lr_ratio();
  s.words_total = options.epochs() * static_cast<int64_t>(corpus.ids.size());
  s.current_lr = static_cast<float>(s.lr);

  const int64_t threads = std::max<int64_t>(
      1, std::min<int64_t>(options.threads(), std::max<int64_t>(corpus.sentences(), 1)));
  const auto start = std::chrono::steady_clock::now();
  auto snapshot = [&] {
    Word2VecProgress p;
    p.words_done = s.words_done.load();
    p.words_total = s.words_total;
    p.lr = s.current_lr.load();
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    p.words_per_second = p.seconds > 0 ? p.words_done / p.seconds : 0;
    p.words_per_second_per_thread = p.words_per_second / threads;
    return p;
  };
  std::atomic<int64_t> running{threads};
  std::vector<std::thread> workers;
  for (int64_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      detail::train_thread(s, t, threads, options.epochs(), options.seed());
      running.fetch_sub(1);
    });
  }
  auto last_report = start;
  while (running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto now = std::chrono::steady_clock::now();
    if (progress &&
        std::chrono::duration<double>(now - last_report).count() >= options.progress_every()) {
      last_report = now;
      progress(snapshot());
    }
  }
  for (auto& w : workers) w.join();
  const Word2VecProgress done = snapshot();
  if (progress) progress(done);
  return done;
}

// ============================================================================== FastText

FastTextImpl::FastTextImpl(FastTextOptions options_) : options(std::move(options_)) { reset(); }

void FastTextImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.vocab_size() > 0, "FastText: vocab_size must be > 0, got ", o.vocab_size());
  TORCH_CHECK(o.num_classes() > 1, "FastText: num_classes must be > 1, got ", o.num_classes());
  TORCH_CHECK(o.embedding_dim() > 0, "FastText: embedding_dim must be > 0");
  TORCH_CHECK(o.word_ngrams() >= 1, "FastText: word_ngrams must be >= 1, got ", o.word_ngrams());
  TORCH_CHECK(o.buckets() >= 0 && (o.word_ngrams() == 1 || o.buckets() > 0),
              "FastText: word_ngrams > 1 needs buckets > 0, got ", o.buckets());
  embedding = register_module(
      "embedding", torch::nn::EmbeddingBag(torch::nn::EmbeddingBagOptions(
                                               o.vocab_size() + o.buckets(), o.embedding_dim())
                                               .mode(torch::kMean)));
  fc = register_module("fc", torch::nn::Linear(o.embedding_dim(), o.num_classes()));
  reset_parameters();
}

void FastTextImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  const double bound = 1.0 / static_cast<double>(options.embedding_dim());
  embedding->weight.uniform_(-bound, bound);
  fc->weight.zero_();
  fc->bias.zero_();
}

torch::Tensor FastTextImpl::forward(const torch::Tensor& ids, const torch::Tensor& offsets) {
  TORCH_CHECK(ids.dim() == 1 && offsets.dim() == 1, "FastText: ids and offsets must be 1-d, got ",
              ids.sizes(), " and ", offsets.sizes());
  const torch::Tensor bag = embedding->forward(ids, offsets);  // (B, D)
  return fc->forward(bag);                                     // (B, C)
}

void FastTextImpl::pretty_print(std::ostream& stream) const {
  stream << "nlpkit::FastText(vocab_size=" << options.vocab_size()
         << ", num_classes=" << options.num_classes()
         << ", embedding_dim=" << options.embedding_dim()
         << ", word_ngrams=" << options.word_ngrams() << ", buckets=" << options.buckets() << ")";
}

std::vector<int64_t> fasttext_input_ids(const std::vector<int64_t>& word_ids, int64_t vocab_size,
                                        int64_t word_ngrams, int64_t buckets) {
  std::vector<int64_t> out;
  out.reserve(word_ids.size() * static_cast<size_t>(word_ngrams));
  for (int64_t id : word_ids) {
    if (id >= 0) out.push_back(id);
  }
  if (buckets <= 0) return out;
  const auto n = static_cast<int64_t>(word_ids.size());
  for (int64_t i = 0; i < n; ++i) {
    if (word_ids[i] < 0) continue;
    uint64_t h = static_cast<uint64_t>(word_ids[i]);
    for (int64_t j = i + 1; j < n && j < i + word_ngrams; ++j) {
      if (word_ids[j] < 0) break;
      h = h * 116049371ULL + static_cast<uint64_t>(word_ids[j]);
      out.push_back(vocab_size + static_cast<int64_t>(h % static_cast<uint64_t>(buckets)));
    }
  }
  return out;
}

// ============================================================================== NNLM

NNLMImpl::NNLMImpl(NNLMOptions options_) : options(std::move(options_)) { reset(); }

void NNLMImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.vocab_size() > 0, "NNLM: vocab_size must be > 0, got ", o.vocab_size());
  TORCH_CHECK(o.context_size() > 0, "NNLM: context_size must be > 0, got ", o.context_size());
  TORCH_CHECK(o.embedding_dim() > 0 && o.hidden_size() > 0,
              "NNLM: embedding_dim and hidden_size must be > 0");
  TORCH_CHECK(o.dropout() >= 0 && o.dropout() < 1, "NNLM: dropout must be in [0, 1), got ",
              o.dropout());
  TORCH_CHECK(o.pad_id() >= 0 && o.pad_id() < o.vocab_size(), "NNLM: pad_id ", o.pad_id(),
              " outside the vocabulary (", o.vocab_size(), ")");
  const int64_t in = o.context_size() * o.embedding_dim();
  embedding = register_module("embedding", torch::nn::Embedding(o.vocab_size(), o.embedding_dim()));
  hidden = register_module("hidden", torch::nn::Linear(in, o.hidden_size()));
  output = register_module("output", torch::nn::Linear(o.hidden_size(), o.vocab_size()));
  if (o.direct_connections()) {
    direct = register_module(
        "direct", torch::nn::Linear(torch::nn::LinearOptions(in, o.vocab_size()).bias(false)));
  }
  dropout = register_module("dropout", torch::nn::Dropout(o.dropout()));
  reset_parameters();
}

void NNLMImpl::reset_parameters() {
  // LibTorch's defaults (N(0, 1) embeddings, Kaiming-uniform linears); the zero direct map
  // starts the model as the plain tanh network.
  torch::NoGradGuard no_grad;
  embedding->reset_parameters();
  hidden->reset_parameters();
  output->reset_parameters();
  if (direct) direct->weight.zero_();
}

LMOutput NNLMImpl::forward(const torch::Tensor& ids, const torch::Tensor& history) {
  TORCH_CHECK(ids.dim() == 2, "NNLM: ids must be (B, T), got ", ids.sizes());
  const int64_t b = ids.size(0), t = ids.size(1), n = options.context_size();
  torch::Tensor before = history;
  if (!before.defined()) before = torch::full({b, n}, options.pad_id(), ids.options());
  TORCH_CHECK(before.dim() == 2 && before.size(0) == b && before.size(1) == n,
              "NNLM: history must be (", b, ", ", n, "), got ", before.sizes());
  const torch::Tensor stream = torch::cat({before, ids}, 1);  // (B, n + T)
  // Prediction i (the word after ids[:, i]) sees stream[:, i+1 .. i+n].
  const torch::Tensor contexts = stream.narrow(1, 1, n + t - 1).unfold(1, n, 1);  // (B, T, n)
  torch::Tensor x = embedding->forward(contexts).reshape({b, t, -1});             // (B, T, nE)
  x = dropout->forward(x);
  torch::Tensor logits = output->forward(dropout->forward(torch::tanh(hidden->forward(x))));
  if (direct) logits = logits + direct->forward(x);  // (B, T, V)
  LMOutput out;
  out.logits = logits;
  out.h_n = stream.narrow(1, t, n);  // (B, n): the last n words
  return out;
}

void NNLMImpl::pretty_print(std::ostream& stream) const {
  stream << "nlpkit::NNLM(vocab_size=" << options.vocab_size()
         << ", context_size=" << options.context_size()
         << ", embedding_dim=" << options.embedding_dim()
         << ", hidden_size=" << options.hidden_size()
         << ", direct_connections=" << (options.direct_connections() ? "true" : "false")
         << ", dropout=" << options.dropout() << ")";
}

}  // namespace nlpkit
