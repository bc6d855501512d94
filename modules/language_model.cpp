#include "modules/language_model.h"

namespace nlpkit {

RecurrentLanguageModelImpl::RecurrentLanguageModelImpl(RecurrentLMOptions options_)
    : options(std::move(options_)) {
  reset();
}

void RecurrentLanguageModelImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.vocab_size() > 0, "RecurrentLanguageModel: vocab_size must be > 0, got ",
              o.vocab_size());
  TORCH_CHECK(o.cell() == "rnn" || o.cell() == "lstm" || o.cell() == "gru",
              "RecurrentLanguageModel: cell must be rnn, lstm or gru, got '", o.cell(), "'");
  TORCH_CHECK(o.dropout() >= 0 && o.dropout() < 1,
              "RecurrentLanguageModel: dropout must be in [0, 1), got ", o.dropout());
  TORCH_CHECK(!o.tie_embeddings() || o.embedding_dim() == o.hidden_size(),
              "RecurrentLanguageModel: tie_embeddings needs embedding_dim (", o.embedding_dim(),
              ") == hidden_size (", o.hidden_size(), ")");
  embedding = register_module(
      "embedding", torch::nn::Embedding(o.vocab_size(), o.embedding_dim()));
  dropout = register_module("dropout", Dropout(o.dropout()));
  const double between = o.num_layers() > 1 ? o.dropout() : 0.0;
  // One of the three stacks, always under the name `rnn` (PyTorch's key names).
  if (o.cell() == "lstm") {
    rnn_lstm = register_module(
        "rnn", LSTM(LSTMOptions(o.embedding_dim(), o.hidden_size())
                        .num_layers(o.num_layers())
                        .dropout(between)
                        .forget_bias(o.forget_bias())
                        .orthogonal_init(o.orthogonal_init())
                        .implementation(o.implementation())));
  } else if (o.cell() == "gru") {
    rnn_gru = register_module("rnn", GRU(GRUOptions(o.embedding_dim(), o.hidden_size())
                                             .num_layers(o.num_layers())
                                             .dropout(between)
                                             .orthogonal_init(o.orthogonal_init())
                                             .implementation(o.implementation())));
  } else {
    rnn_plain = register_module("rnn", RNN(RNNOptions(o.embedding_dim(), o.hidden_size())
                                               .num_layers(o.num_layers())
                                               .nonlinearity(o.nonlinearity())
                                               .dropout(between)
                                               .orthogonal_init(o.orthogonal_init())
                                               .implementation(o.implementation())));
  }
  if (o.tie_embeddings()) {
    output_bias = register_parameter("output_bias", torch::zeros({o.vocab_size()}));
  } else {
    decoder = register_module("decoder", torch::nn::Linear(o.hidden_size(), o.vocab_size()));
  }
  reset_parameters();
}

void RecurrentLanguageModelImpl::reset_parameters() {
  // As PyTorch's word_language_model: small uniform embedding and output weights, zero bias.
  torch::NoGradGuard no_grad;
  embedding->weight.uniform_(-0.1, 0.1);
  if (decoder) {
    decoder->weight.uniform_(-0.1, 0.1);
    decoder->bias.zero_();
  } else {
    output_bias.zero_();
  }
}

LMOutput RecurrentLanguageModelImpl::forward(const torch::Tensor& ids, const torch::Tensor& h0,
                                             const torch::Tensor& c0) {
  TORCH_CHECK(ids.dim() == 2, "RecurrentLanguageModel: expected ids of shape (B, T), got ",
              ids.sizes());
  TORCH_CHECK(ids.scalar_type() == torch::kInt64,
              "RecurrentLanguageModel: expected int64 ids, got ", ids.scalar_type());
  torch::Tensor x = dropout(embedding(ids));  // (B, T, E)
  const torch::Tensor no_lengths;
  RecurrentOutput r = rnn_lstm  ? rnn_lstm->forward(x, no_lengths, h0, c0)
                      : rnn_gru ? rnn_gru->forward(x, no_lengths, h0)
                                : rnn_plain->forward(x, no_lengths, h0);
  torch::Tensor h = dropout(r.output);  // (B, T, H)
  LMOutput out;
  out.logits = decoder ? decoder(h) : torch::linear(h, embedding->weight, output_bias);  // (B,T,V)
  out.h_n = r.h_n;
  out.c_n = r.c_n;
  return out;
}

void RecurrentLanguageModelImpl::pretty_print(std::ostream& stream) const {
  stream << "RecurrentLanguageModel(vocab_size=" << options.vocab_size()
         << ", cell=" << options.cell() << ", embedding_dim=" << options.embedding_dim()
         << ", hidden_size=" << options.hidden_size() << ", num_layers=" << options.num_layers()
         << ", dropout=" << options.dropout()
         << ", tie_embeddings=" << (options.tie_embeddings() ? "true" : "false") << ")";
}

}  // namespace nlpkit
