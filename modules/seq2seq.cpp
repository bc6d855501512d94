#include "modules/seq2seq.h"

#include <utility>

namespace nlpkit {

torch::Tensor reverse_within_lengths(const torch::Tensor& src, const torch::Tensor& lengths) {
  const int64_t steps = src.size(1);
  const torch::Tensor positions = torch::arange(steps, torch::kLong).unsqueeze(0);      // (1, S)
  const torch::Tensor len = lengths.to(torch::kLong).cpu().unsqueeze(1);                // (B, 1)
  torch::Tensor index = torch::where(positions < len, len - 1 - positions, positions);  // (B, S)
  index = index.to(src.device());
  for (int64_t d = 2; d < src.dim(); ++d) index = index.unsqueeze(-1);
  return src.gather(1, index.expand(src.sizes()));
}

Seq2SeqImpl::Seq2SeqImpl(Seq2SeqOptions options_) : options(std::move(options_)) { reset(); }

void Seq2SeqImpl::reset() {
  const Seq2SeqOptions& o = options;
  TORCH_CHECK(o.cell() == "gru" || o.cell() == "lstm", "Seq2Seq: cell must be gru or lstm, got '",
              o.cell(), "'");
  TORCH_CHECK(o.attention_style() == "bahdanau" || o.attention_style() == "luong",
              "Seq2Seq: attention_style must be bahdanau or luong, got '", o.attention_style(),
              "'");
  TORCH_CHECK(o.teacher_forcing() >= 0 && o.teacher_forcing() <= 1,
              "Seq2Seq: teacher_forcing must be in [0, 1], got ", o.teacher_forcing());
  TORCH_CHECK(o.src_vocab_size() > 0 && o.tgt_vocab_size() > 0 && o.hidden_size() > 0 &&
                  o.embedding_dim() > 0 && o.num_layers() >= 1,
              "Seq2Seq: sizes must be positive");
  lstm_ = o.cell() == "lstm";
  luong_ = o.attention_style() == "luong";
  const int64_t h = o.hidden_size();
  // Dropout between stacked layers only: one layer has none (PyTorch warns otherwise).
  const double between_layers = o.num_layers() > 1 ? o.dropout() : 0.0;
  const int64_t directions = o.bidirectional() ? 2 : 1;
  src_embedding = register_module(
      "src_embedding",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(o.src_vocab_size(), o.embedding_dim())
                               .padding_idx(o.pad_id())));
  if (lstm_) {
    encoder_lstm = register_module("encoder", LSTM(LSTMOptions(o.embedding_dim(), h)
                                                       .num_layers(o.num_layers())
                                                       .bidirectional(o.bidirectional())
                                                       .dropout(between_layers)));
  } else {
    encoder_gru = register_module("encoder", GRU(GRUOptions(o.embedding_dim(), h)
                                                     .num_layers(o.num_layers())
                                                     .bidirectional(o.bidirectional())
                                                     .dropout(between_layers)));
  }
  if (directions * h != h) {
    encoder_proj = register_module(
        "encoder_proj", torch::nn::Linear(torch::nn::LinearOptions(directions * h, h).bias(false)));
  }
  bridge = register_module("bridge", torch::nn::Linear(directions * h, h));
  tgt_embedding = register_module(
      "tgt_embedding",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(o.tgt_vocab_size(), o.embedding_dim())
                               .padding_idx(o.pad_id())));
  // Both styles feed [emb(y); a vector of width H]: c_t (Bahdanau) or o_{t-1} (Luong).
  const int64_t decoder_input = o.embedding_dim() + h;
  if (lstm_) {
    decoder_lstm = register_module(
        "decoder",
        LSTM(LSTMOptions(decoder_input, h).num_layers(o.num_layers()).dropout(between_layers)));
  } else {
    decoder_gru = register_module(
        "decoder",
        GRU(GRUOptions(decoder_input, h).num_layers(o.num_layers()).dropout(between_layers)));
  }
  attention = register_module(
      "attention",
      Attention(
          AttentionOptions(h, h).score(o.score()).mode(o.attention_mode()).window(o.window())));
  combine = register_module("combine", torch::nn::Linear(2 * h, h));
  output_proj = register_module("output_proj", torch::nn::Linear(h, o.tgt_vocab_size()));
}

void Seq2SeqImpl::reset_parameters() {
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<torch::nn::LinearImpl>()) linear->reset_parameters();
    if (auto* embedding = module->as<torch::nn::EmbeddingImpl>()) embedding->reset_parameters();
  }
  attention->reset_parameters();
}

std::pair<Seq2SeqMemory, Seq2SeqState> Seq2SeqImpl::encode(const torch::Tensor& src,
                                                           const torch::Tensor& src_lengths) {
  TORCH_CHECK(src.dim() == 2, "Seq2Seq: src must be (B, S), got ", src.sizes());
  const int64_t batch = src.size(0);
  const int64_t steps = src.size(1);
  const torch::Tensor lengths = src_lengths.defined() ? src_lengths.to(torch::kLong).cpu()
                                                      : torch::full({batch}, steps, torch::kLong);
  const torch::Tensor ids = options.reverse_source() ? reverse_within_lengths(src, lengths) : src;
  const torch::Tensor embedded =
      torch::dropout(src_embedding(ids), options.dropout(), is_training());  // (B, S, E)
  RecurrentOutput encoded =
      lstm_ ? encoder_lstm(embedded, lengths) : encoder_gru(embedded, lengths);
  torch::Tensor outputs = encoded.output;  // (B, S, D*H)
  // Attention weights are reported over source positions in reading order of the input.
  if (options.reverse_source()) outputs = reverse_within_lengths(outputs, lengths);
  Seq2SeqMemory memory;
  memory.memory = encoder_proj ? encoder_proj(outputs) : outputs;  // (B, S, H)
  memory.mask = lengths_to_mask(lengths, steps).to(src.device());
  // Final states (L*D, B, H) -> per layer, directions concatenated (L, B, D*H) -> bridge.
  const int64_t layers = options.num_layers();
  const int64_t directions = options.bidirectional() ? 2 : 1;
  const auto to_decoder = [&](const torch::Tensor& final_state) {
    return bridge(final_state.view({layers, directions, batch, options.hidden_size()})
                      .permute({0, 2, 1, 3})
                      .reshape({layers, batch, directions * options.hidden_size()}));
  };
  Seq2SeqState state;
  state.h = torch::tanh(to_decoder(encoded.h_n));  // (L, B, H)
  if (lstm_) state.c = to_decoder(encoded.c_n);
  state.feed = torch::zeros({batch, options.hidden_size()}, memory.memory.options());
  return {memory, state};
}

std::pair<torch::Tensor, torch::Tensor> Seq2SeqImpl::step(const torch::Tensor& tokens,
                                                          const Seq2SeqMemory& memory,
                                                          Seq2SeqState& state) {
  const torch::Tensor embedded =
      torch::dropout(tgt_embedding(tokens), options.dropout(), is_training());  // (N, E)
  torch::Tensor context, weights, top;
  const auto run_rnn = [&](const torch::Tensor& extra) {
    const torch::Tensor input = torch::cat({embedded, extra}, -1).unsqueeze(1);  // (N, 1, E+H)
    RecurrentOutput out = lstm_ ? decoder_lstm(input, torch::Tensor(), state.h, state.c)
                                : decoder_gru(input, torch::Tensor(), state.h);
    state.h = out.h_n;
    if (lstm_) state.c = out.c_n;
    return out.output.squeeze(1);  // (N, H)
  };
  if (luong_) {
    top = run_rnn(state.feed);
    AttentionOutput a = attention(top, memory.memory, memory.memory, memory.mask);
    context = a.context;
    weights = a.weights;
  } else {
    AttentionOutput a =
        attention(state.h[options.num_layers() - 1], memory.memory, memory.memory, memory.mask);
    context = a.context;
    weights = a.weights;
    top = run_rnn(context);
  }
  const torch::Tensor attentional = torch::tanh(combine(torch::cat({top, context}, -1)));  // (N,H)
  state.feed = attentional;
  state.context = context;
  const torch::Tensor logits =
      output_proj(torch::dropout(attentional, options.dropout(), is_training()));  // (N, V)
  return {logits, weights};
}

Seq2SeqOutput Seq2SeqImpl::forward(const torch::Tensor& src, const torch::Tensor& src_lengths,
                                   const torch::Tensor& tgt_in) {
  TORCH_CHECK(tgt_in.dim() == 2 && tgt_in.size(0) == src.size(0), "Seq2Seq: tgt_in must be (",
              src.size(0), ", T), got ", tgt_in.sizes());
  auto [memory, state] = encode(src, src_lengths);
  const int64_t steps = tgt_in.size(1);
  std::vector<torch::Tensor> logits, weights;
  torch::Tensor tokens = tgt_in.select(1, 0);
  const bool sample = is_training() && options.teacher_forcing() < 1.0;
  for (int64_t t = 0; t < steps; ++t) {
    auto [step_logits, step_weights] = step(tokens, memory, state);
    logits.push_back(step_logits);
    weights.push_back(step_weights);
    if (t + 1 < steps) {
      const bool forced = !sample || torch::rand({1}).item<double>() < options.teacher_forcing();
      tokens = forced ? tgt_in.select(1, t + 1) : step_logits.argmax(-1).detach();
    }
  }
  return {torch::stack(logits, 1), torch::stack(weights, 1)};  // (B, T, V), (B, T, S)
}

namespace {

class Seq2SeqStepDecoder : public StepDecoder {
 public:
  Seq2SeqStepDecoder(Seq2SeqImpl& model, Seq2SeqMemory memory, Seq2SeqState state)
      : model_(model), memory_(std::move(memory)), state_(std::move(state)) {}

  StepScores step(const torch::Tensor& tokens) override {
    auto [logits, weights] = model_.step(tokens.to(memory_.memory.device()), memory_, state_);
    return {torch::log_softmax(logits.to(torch::kFloat), -1), weights};
  }

  void select(const torch::Tensor& index) override {
    const torch::Tensor i = index.to(memory_.memory.device());
    memory_.memory = memory_.memory.index_select(0, i);
    memory_.mask = memory_.mask.index_select(0, i);
    state_.h = state_.h.index_select(1, i);
    if (state_.c.defined()) state_.c = state_.c.index_select(1, i);
    state_.feed = state_.feed.index_select(0, i);
  }

 private:
  Seq2SeqImpl& model_;
  Seq2SeqMemory memory_;
  Seq2SeqState state_;
};

}  // namespace

std::unique_ptr<StepDecoder> Seq2SeqImpl::step_decoder(const torch::Tensor& src,
                                                       const torch::Tensor& src_lengths) {
  torch::NoGradGuard no_grad;
  auto [memory, state] = encode(src, src_lengths);
  return std::make_unique<Seq2SeqStepDecoder>(*this, std::move(memory), std::move(state));
}

void Seq2SeqImpl::pretty_print(std::ostream& stream) const {
  const Seq2SeqOptions& o = options;
  stream << "Seq2Seq(src_vocab_size=" << o.src_vocab_size()
         << ", tgt_vocab_size=" << o.tgt_vocab_size() << ", embedding_dim=" << o.embedding_dim()
         << ", hidden_size=" << o.hidden_size() << ", num_layers=" << o.num_layers()
         << ", cell=" << o.cell() << ", bidirectional=" << (o.bidirectional() ? "true" : "false")
         << ", dropout=" << o.dropout() << ", attention_style=" << o.attention_style()
         << ", score=" << o.score() << ", attention_mode=" << o.attention_mode()
         << ", teacher_forcing=" << o.teacher_forcing()
         << ", reverse_source=" << (o.reverse_source() ? "true" : "false") << ")";
}

}  // namespace nlpkit
