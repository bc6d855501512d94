#include "trainers/registry.h"

#include <cmath>

#include "datasets/sentencepiece.h"
#include "datasets/wordpiece.h"
#include "trainers/fused_adam.h"
#include "trainers/tasks/bert.h"
#include "trainers/tasks/classification.h"
#include "trainers/tasks/frame_prediction.h"
#include "trainers/tasks/language_model.h"
#include "trainers/tasks/seq2seq.h"
#include "trainers/tasks/linear_baseline.h"
#include "trainers/tasks/word2vec.h"

namespace nlpkit {
namespace {

// ---------------------------------------------------------------- model.type

void declare_text_classifier(Section& s, ModelConfig& c) {
  auto& o = c.text_cnn_bilstm_attention;
  s.add("embedding_dim", &o.embedding_dim(), "word embedding size").at_least(1);
  s.add("cnn_hidden_size", &o.cnn_hidden_size(), "convolution channels per kernel size")
      .at_least(1);
  s.add("kernel_sizes", &o.kernel_sizes(), "convolution heights in words, one conv each")
      .at_least(1);
  s.add("hidden_size", &o.hidden_size(), "sentence BiLSTM hidden size per direction").at_least(1);
  s.add("num_layers", &o.num_layers(), "sentence BiLSTM layers").at_least(1);
  s.add("dropout", &o.dropout(), "dropout on embeddings, between LSTM layers and before the FC")
      .at_least(0)
      .at_most(0.99);
}

void declare_recurrent_lm(Section& s, RecurrentLMOptions& o) {
  s.add("embedding_dim", &o.embedding_dim(), "token embedding size").at_least(1);
  s.add("hidden_size", &o.hidden_size(), "recurrent hidden size").at_least(1);
  s.add("num_layers", &o.num_layers(), "recurrent layers").at_least(1);
  s.add("dropout", &o.dropout(), "dropout on embeddings, between layers and before the output")
      .at_least(0)
      .at_most(0.99);
  s.add("tie_embeddings", &o.tie_embeddings(),
        "share the embedding matrix with the output layer (embedding_dim == hidden_size)");
  s.add("implementation", &o.implementation(),
        "fused (at::lstm & co.: oneDNN/cuDNN) or cells (explicit loop over the cells)")
      .one_of({"fused", "cells"});
  s.add("orthogonal_init", &o.orthogonal_init(), "orthogonal initialisation of recurrent weights");
}

void declare_rnn_lm(Section& s, ModelConfig& c) {
  declare_recurrent_lm(s, c.recurrent_lm);
  s.add("nonlinearity", &c.recurrent_lm.nonlinearity(), "tanh or relu").one_of({"tanh", "relu"});
}

void declare_lstm_lm(Section& s, ModelConfig& c) {
  declare_recurrent_lm(s, c.recurrent_lm);
  s.add("forget_bias", &c.recurrent_lm.forget_bias(), "initial forget-gate bias (e.g. 1.0)");
}

void declare_gru_lm(Section& s, ModelConfig& c) { declare_recurrent_lm(s, c.recurrent_lm); }

void declare_convlstm(Section& s, ModelConfig& c) {
  s.add("hidden_sizes", &c.convlstm_hidden_sizes, "hidden channels of each ConvLSTM layer")
      .at_least(1);
  s.add("kernel_size", &c.convlstm_kernel_size, "square, odd convolution kernel of every layer")
      .at_least(1);
}

/// The keys model.type bert and deberta share: initialisation and fine-tuning.
void declare_encoder_training(Section& s, EncoderModelConfig& e) {
  s.add("initializer_range", &e.initializer_range, "std of the N(0, std) initialisation")
      .greater_than(0);
  s.add("classifier_dropout", &e.classifier_dropout,
        "dropout before the classification head; < 0 = dropout");
  s.add("freeze_embeddings", &e.freeze_embeddings, "fine-tuning: do not train the embeddings");
  s.add("freeze_layers", &e.freeze_layers, "fine-tuning: do not train the first N layers")
      .at_least(0);
  s.add("layer_lr_decay", &e.layer_lr_decay,
        "layer-wise lr decay: encoder layer i (0-based) of L gets lr * decay^(L - i), the "
        "embeddings lr * decay^(L + 1), pooler and head lr; 1 = off")
      .greater_than(0)
      .at_most(1);
  s.add("head_lr", &e.head_lr, "learning rate of the task head; 0 = optimizer.lr").at_least(0);
  s.add("l2sp", &e.l2sp,
        "L2-SP: weight of ||w - w_pretrained||^2 (pretrained weights only); 0 = off")
      .at_least(0);
  s.add("lora_rank", &e.lora_rank, "LoRA adapters of this rank; 0 = full fine-tuning").at_least(0);
  s.add("lora_alpha", &e.lora_alpha, "LoRA scaling numerator (scale = alpha / rank)")
      .greater_than(0);
  s.add("lora_dropout", &e.lora_dropout, "dropout on the LoRA branch input")
      .at_least(0)
      .at_most(0.99);
  s.add("lora_targets", &e.lora_targets,
        "regex over module names that get adapters (BERT's attention.self.query/value, "
        "DeBERTa's query_proj/value_proj)");
}

void declare_bert(Section& s, ModelConfig& c) {
  EncoderModelConfig& e = c.encoder;
  BertOptions& o = e.bert;
  s.add("pretrained", &e.pretrained,
        "HuggingFace BERT folder or nlpkit BERT run/checkpoint to start from; its config.json "
        "sets the architecture keys below; empty = from scratch");
  s.add("hidden_size", &o.hidden_size(), "hidden size H").at_least(1);
  s.add("num_layers", &o.num_layers(), "encoder layers").at_least(1);
  s.add("num_heads", &o.num_heads(), "attention heads (must divide hidden_size)").at_least(1);
  s.add("intermediate_size", &o.intermediate_size(), "feed-forward inner size").at_least(1);
  s.add("hidden_act", &o.hidden_act(), "feed-forward activation (gelu = exact erf form)")
      .one_of({"gelu", "gelu_new", "relu"});
  s.add("dropout", &o.dropout(), "dropout on embeddings, attention output and layer output")
      .at_least(0)
      .at_most(0.99);
  s.add("attention_dropout", &o.attention_dropout(), "dropout on attention probabilities")
      .at_least(0)
      .at_most(0.99);
  s.add("max_position_embeddings", &o.max_position_embeddings(), "longest sequence").at_least(1);
  s.add("type_vocab_size", &o.type_vocab_size(), "token types (segments)").at_least(1);
  s.add("layer_norm_eps", &o.layer_norm_eps(), "LayerNorm epsilon").greater_than(0);
  declare_encoder_training(s, e);
}

void declare_deberta(Section& s, ModelConfig& c) {
  EncoderModelConfig& e = c.encoder;
  DebertaOptions& o = e.deberta;
  s.add("pretrained", &e.pretrained,
        "HuggingFace DeBERTa-v2/v3 folder or nlpkit DeBERTa run/checkpoint to start from; its "
        "config.json sets the architecture keys below; empty = from scratch");
  s.add("hidden_size", &o.hidden_size(), "hidden size H").at_least(1);
  s.add("num_layers", &o.num_layers(), "encoder layers").at_least(1);
  s.add("num_heads", &o.num_heads(), "attention heads (must divide hidden_size)").at_least(1);
  s.add("intermediate_size", &o.intermediate_size(), "feed-forward inner size").at_least(1);
  s.add("hidden_act", &o.hidden_act(), "feed-forward activation (gelu = exact erf form)")
      .one_of({"gelu", "gelu_new", "relu"});
  s.add("dropout", &o.dropout(), "dropout on embeddings, attention output and layer output")
      .at_least(0)
      .at_most(0.99);
  s.add("attention_dropout", &o.attention_dropout(), "dropout on attention probabilities")
      .at_least(0)
      .at_most(0.99);
  s.add("max_position_embeddings", &o.max_position_embeddings(), "longest sequence").at_least(1);
  s.add("type_vocab_size", &o.type_vocab_size(), "token types (segments); 0 = none (v3)")
      .at_least(0);
  s.add("layer_norm_eps", &o.layer_norm_eps(), "LayerNorm epsilon").greater_than(0);
  s.add("relative_attention", &o.relative_attention(),
        "disentangled attention over relative positions (false: content attention only)");
  s.add("position_buckets", &o.position_buckets(),
        "log-bucketed relative positions with this many buckets per side; <= 0 = exact "
        "positions up to max_relative_positions");
  s.add("max_relative_positions", &o.max_relative_positions(),
        "largest relative distance; < 1 = max_position_embeddings");
  s.add("pos_att_type", &o.pos_att_type(),
        "position terms of the attention: content-to-position and/or position-to-content")
      .one_of({"p2c|c2p", "c2p|p2c", "c2p", "p2c"});
  s.add("share_att_key", &o.share_att_key(),
        "position projections shared with query_proj/key_proj (v3); false = own pos_*_proj");
  s.add("norm_rel_ebd", &o.norm_rel_ebd(), "LayerNorm on the relative embeddings (v3)")
      .one_of({"layer_norm", "none"});
  s.add("position_biased_input", &o.position_biased_input(),
        "absolute position embeddings added to the input (v1/v2 style)");
  s.add("conv_kernel_size", &o.conv_kernel_size(),
        "nGiE convolution beside the first layer (v2), odd; 0 = none")
      .at_least(0);
  s.add("conv_act", &o.conv_act(), "nGiE activation").one_of({"tanh", "gelu", "gelu_new", "relu"});
  s.add("conv_groups", &o.conv_groups(), "nGiE convolution groups (must divide hidden_size)")
      .at_least(1);
  s.add("pooler_hidden_act", &o.pooler_hidden_act(),
        "classification: activation of the ContextPooler over token 0")
      .one_of({"gelu", "gelu_new", "relu", "tanh"});
  s.add("pooler_dropout", &o.pooler_dropout(), "classification: dropout before the pooler")
      .at_least(0)
      .at_most(0.99);
  s.add("emd", &e.emd,
        "masked_lm: predict through the Enhanced Mask Decoder (absolute positions after the "
        "layers, the last layer applied again; microsoft/DeBERTa parameter names)");
  s.add("generator_width", &e.generator_width,
        "replaced_token_detection: generator hidden and intermediate size as a fraction of the "
        "discriminator's (heads scaled alike)")
      .greater_than(0)
      .at_most(1);
  s.add("generator_depth", &e.generator_depth,
        "replaced_token_detection: generator layers as a fraction of the discriminator's "
        "(at least 2)")
      .greater_than(0)
      .at_most(1);
  s.add("embedding_sharing", &e.embedding_sharing,
        "replaced_token_detection: none (separate), es (one matrix) or gdes (discriminator "
        "embedding = stop_gradient(generator's) + its own residual)")
      .one_of({"none", "es", "gdes"});
  s.add("rtd_lambda", &e.rtd_lambda,
        "replaced_token_detection: loss = generator MLM + rtd_lambda * discriminator RTD")
      .at_least(0);
  declare_encoder_training(s, e);
}

void declare_seq2seq_attention(Section& s, ModelConfig& c) {
  Seq2SeqOptions& o = c.seq2seq_attention;
  s.add("embedding_dim", &o.embedding_dim(), "source and target embedding size").at_least(1);
  s.add("hidden_size", &o.hidden_size(), "decoder size, and encoder size per direction")
      .at_least(1);
  s.add("num_layers", &o.num_layers(), "layers of the encoder and of the decoder").at_least(1);
  s.add("cell", &o.cell(), "recurrent cell").one_of({"gru", "lstm"});
  s.add("bidirectional", &o.bidirectional(), "bidirectional encoder");
  s.add("dropout", &o.dropout(), "dropout on embeddings, between layers and before the output")
      .at_least(0)
      .at_most(0.99);
  s.add("attention_style", &o.attention_style(),
        "bahdanau (attention before the RNN step) or luong (after, with input feeding)")
      .one_of({"bahdanau", "luong"});
  s.add("score", &o.score(), "attention score function").one_of(attention_score_names());
  s.add("attention_mode", &o.attention_mode(),
        "soft (global), local (Luong local-p) or hard (straight-through Gumbel-softmax)")
      .one_of({"soft", "local", "hard"});
  s.add("window", &o.window(), "local attention: D, the window is 2D+1 wide").at_least(0);
  s.add("teacher_forcing", &o.teacher_forcing(),
        "probability of feeding the reference token in training (else the own prediction)")
      .at_least(0)
      .at_most(1);
  s.add("reverse_source", &o.reverse_source(), "read the source backwards (Sutskever et al.)");
}

void declare_transformer(Section& s, ModelConfig& c) {
  TransformerOptions& o = c.transformer;
  s.add("hidden_size", &o.hidden_size(), "model width d_model").at_least(2);
  s.add("num_heads", &o.num_heads(), "attention heads (must divide hidden_size)").at_least(1);
  s.add("num_encoder_layers", &o.num_encoder_layers(), "encoder layers").at_least(1);
  s.add("num_decoder_layers", &o.num_decoder_layers(), "decoder layers").at_least(1);
  s.add("intermediate_size", &o.intermediate_size(), "feed-forward inner size").at_least(1);
  s.add("dropout", &o.dropout(), "dropout on embeddings, attention and sublayer outputs")
      .at_least(0)
      .at_most(0.99);
  s.add("activation", &o.activation(), "feed-forward activation").one_of({"relu", "gelu"});
  s.add("norm_first", &o.norm_first(), "pre-LN layers instead of the paper's post-LN");
  s.add("positions", &o.positions(), "positional encoding").one_of({"sinusoidal", "learned"});
  s.add("max_length", &o.max_length(), "longest source or target sequence (positions)").at_least(1);
  s.add("tie_embeddings", &o.tie_embeddings(),
        "none, decoder (output projection = target embedding) or all (one matrix; needs one "
        "shared vocabulary, so source and target token sets must match)")
      .one_of({"none", "decoder", "all"});
  s.add("layer_norm_eps", &o.layer_norm_eps(), "LayerNorm epsilon").greater_than(0);
}

void declare_word2vec(Section& s, ModelConfig& c) {
  Word2VecModelConfig& w = c.word2vec;
  s.add("embedding_dim", &w.embedding_dim, "word vector size").at_least(1);
  s.add("architecture", &w.architecture,
        "skip_gram (predict the context from the word) or cbow (the word from its context)")
      .one_of({"skip_gram", "cbow"});
  s.add("loss", &w.loss,
        "negative_sampling (unigram^0.75 noise) or hierarchical_softmax (Huffman tree)")
      .one_of({"negative_sampling", "hierarchical_softmax"});
  s.add("negative", &w.negative, "negative_sampling: noise words per positive word").at_least(1);
  s.add("window", &w.window, "largest context distance (each word draws its own 1..window)")
      .at_least(1);
  s.add("sample", &w.sample,
        "subsampling threshold t: a word of frequency f is kept with probability "
        "(sqrt(f/t) + 1) t/f; 0 = off")
      .at_least(0);
  s.add("output_format", &w.output_format,
        "vectors written to the run directory: text (vectors.txt), binary (vectors.bin) or both")
      .one_of({"text", "binary", "both"});
}

void declare_fasttext(Section& s, ModelConfig& c) {
  FastTextModelConfig& f = c.fasttext;
  s.add("embedding_dim", &f.embedding_dim, "word and n-gram embedding size").at_least(1);
  s.add("word_ngrams", &f.word_ngrams, "longest word n-gram (1 = words only; fastText -wordNgrams)")
      .at_least(1);
  s.add("buckets", &f.buckets, "hash buckets shared by the n-grams (fastText -bucket)").at_least(1);
}

void declare_nnlm(Section& s, ModelConfig& c) {
  NNLMModelConfig& n = c.nnlm;
  s.add("context_size", &n.context_size, "previous words each prediction sees (n - 1)")
      .at_least(1);
  s.add("embedding_dim", &n.embedding_dim, "word embedding size").at_least(1);
  s.add("hidden_size", &n.hidden_size, "tanh hidden layer size").at_least(1);
  s.add("direct_connections", &n.direct_connections,
        "add Bengio's direct linear map from the embeddings to the output");
  s.add("dropout", &n.dropout, "dropout on the embeddings and the hidden layer")
      .at_least(0)
      .at_most(0.99);
}

// ---------------------------------------------------------------- optimizer.type

template <class Options>
std::vector<torch::optim::OptimizerParamGroup> groups(const std::vector<ParameterGroup>& in,
                                                      const Options& options) {
  std::vector<torch::optim::OptimizerParamGroup> out;
  for (const auto& g : in) {
    auto o = std::make_unique<Options>(options);
    o->lr(options.lr() * g.lr_scale);
    if (!g.decay) o->weight_decay(0.0);
    out.emplace_back(g.params, std::move(o));
  }
  return out;
}

std::unique_ptr<torch::optim::Optimizer> build_sgd(const std::vector<ParameterGroup>& in,
                                                   const OptimizerConfig& c) {
  if (c.nesterov && c.momentum <= 0) {
    throw ConfigError("optimizer.nesterov: needs optimizer.momentum > 0");
  }
  auto o = torch::optim::SGDOptions(c.lr)
               .momentum(c.momentum)
               .nesterov(c.nesterov)
               .weight_decay(c.weight_decay);
  return std::make_unique<torch::optim::SGD>(groups(in, o), o);
}

std::unique_ptr<torch::optim::Optimizer> build_adam(const std::vector<ParameterGroup>& in,
                                                    const OptimizerConfig& c) {
  auto o = torch::optim::AdamOptions(c.lr)
               .betas({c.beta1, c.beta2})
               .eps(c.eps)
               .weight_decay(c.weight_decay);
  return std::make_unique<FusedAdam>(groups(in, o), o);
}

std::unique_ptr<torch::optim::Optimizer> build_adamw(const std::vector<ParameterGroup>& in,
                                                     const OptimizerConfig& c) {
  auto o = torch::optim::AdamWOptions(c.lr)
               .betas({c.beta1, c.beta2})
               .eps(c.eps)
               .weight_decay(c.weight_decay);
  return std::make_unique<FusedAdamW>(groups(in, o), o);
}

// ---------------------------------------------------------------- scheduler.type

/// Fraction of the post-warmup phase done at `step`, in [0, 1].
double progress(const SchedulerConfig& s, int64_t step, int64_t total) {
  if (step < s.warmup_steps) return 0.0;
  const int64_t span = total - s.warmup_steps;
  if (span <= 0) return 1.0;
  return std::clamp(double(step - s.warmup_steps) / span, 0.0, 1.0);
}

double constant_factor(const SchedulerConfig&, int64_t, int64_t) { return 1.0; }

double linear_factor(const SchedulerConfig& s, int64_t step, int64_t total) {
  return 1.0 - (1.0 - s.min_lr_ratio) * progress(s, step, total);
}

double cosine_factor(const SchedulerConfig& s, int64_t step, int64_t total) {
  return s.min_lr_ratio +
         (1.0 - s.min_lr_ratio) * 0.5 * (1.0 + std::cos(M_PI * progress(s, step, total)));
}

double inverse_sqrt_factor(const SchedulerConfig& s, int64_t step, int64_t) {
  // fairseq's inverse_sqrt: peak at the end of warmup, then lr * sqrt(warmup / step).
  const double warmup = std::max<int64_t>(s.warmup_steps, 1);
  return std::min(1.0, std::sqrt(warmup / double(step + 1)));
}

double step_factor(const SchedulerConfig& s, int64_t step, int64_t) {
  return std::pow(s.gamma, double(step / s.step_size));
}

// ---------------------------------------------------------------- tokenizer.type

std::unique_ptr<Tokenizer> build_whitespace(const TokenizerConfig& c) {
  return std::make_unique<WhitespaceTokenizer>(c.lowercase, c.split_punctuation);
}

std::unique_ptr<Tokenizer> build_char(const TokenizerConfig& c) {
  return std::make_unique<CharTokenizer>(c.lowercase);
}

std::unique_ptr<Tokenizer> build_wordpiece(const TokenizerConfig& c) {
  if (c.vocab.empty()) {
    throw ConfigError(
        "tokenizer.vocab: tokenizer.type wordpiece needs a vocab.txt (nlpkit tokenizer train "
        "--type wordpiece CORPUS.txt --vocab-size N writes one)");
  }
  WordPieceOptions options;
  options.lower_case = c.lowercase;
  return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_file(c.vocab, options));
}

std::unique_ptr<Tokenizer> build_sentencepiece(const TokenizerConfig& c) {
  if (c.model.empty()) {
    throw ConfigError(
        "tokenizer.model: tokenizer.type sentencepiece needs an spm.model (nlpkit tokenizer train "
        "--type sentencepiece CORPUS.txt --vocab-size N writes one)");
  }
  return std::make_unique<SentencePieceTokenizer>(SentencePieceTokenizer::from_file(c.model));
}

}  // namespace

const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> table = {
      {"bert", "BERT, HuggingFace-compatible (tasks: masked_lm, classification)", declare_bert},
      {"convlstm", "ConvLSTM encoder-forecaster (Shi et al. 2015; task: frame_prediction)",
       declare_convlstm},
      {"deberta",
       "DeBERTa-v2/v3, HuggingFace-compatible (tasks: classification, masked_lm, "
       "replaced_token_detection)",
       declare_deberta},
      {"fasttext",
       "FastText: averaged word + hashed n-gram embeddings -> linear (task: classification)",
       declare_fasttext},
      {"gru", "GRU language model (task: language_model)", declare_gru_lm},
      {"lstm", "LSTM language model (task: language_model)", declare_lstm_lm},
      {"nnlm",
       "Bengio et al. 2003 feed-forward n-gram language model (task: language_model)",
       declare_nnlm},
      {"rnn", "Elman RNN language model (task: language_model)", declare_rnn_lm},
      {"seq2seq_attention",
       "recurrent encoder-decoder with Bahdanau/Luong attention (task: seq2seq)",
       declare_seq2seq_attention},
      {"text_cnn_bilstm_attention",
       "TextCNN-BiLSTM-Attention hierarchical document classifier (task: classification)",
       declare_text_classifier},
      {"transformer", "Transformer encoder-decoder (Vaswani et al. 2017; task: seq2seq)",
       declare_transformer},
      {"word2vec",
       "Word2Vec skip-gram/CBOW word vectors, lock-free multi-threaded CPU training (task: "
       "word2vec)",
       declare_word2vec},
  };
  return table;
}

const std::vector<TaskEntry>& task_registry() {
  static const std::vector<TaskEntry> table = {
      {"classification", "text -> label from TSV/CSV/JSONL; accuracy, F1, ROC-AUC",
       make_classification_task},
      {"frame_prediction", "video frames in, future frames out (Moving MNIST); MSE, MAE, SSIM",
       make_frame_prediction_task},
      {"language_model", "next-token prediction on a text corpus; perplexity; sampling",
       make_language_model_task},
      {"linear_baseline",
       "logistic regression on TF-IDF / bag-of-n-gram features; k-fold grid search",
       make_linear_baseline_task},
      {"masked_lm",
       "BERT/DeBERTa pretraining: masked tokens (+ BERT's next sentence, DeBERTa's EMD); MLM "
       "accuracy, perplexity",
       make_masked_lm_task},
      {"replaced_token_detection",
       "DeBERTa-v3/ELECTRA pretraining: generator MLM + discriminator replaced-token detection; "
       "generator accuracy, replaced-token F1",
       make_replaced_token_detection_task},
      {"seq2seq",
       "source -> target sequences from TSV; token/sequence accuracy, WER, PER, BLEU; beam search",
       make_seq2seq_task},
      {"word2vec",
       "word vectors from a corpus (vectors.txt/.bin in the run directory); no Trainer steps",
       make_word2vec_task},
  };
  return table;
}

const std::vector<OptimizerEntry>& optimizer_registry() {
  static const std::vector<OptimizerEntry> table = {
      {"adam", "Adam (Kingma & Ba); weight_decay is an L2 term in the gradient", build_adam},
      {"adamw", "AdamW (Loshchilov & Hutter); decoupled weight decay", build_adamw},
      {"sgd", "SGD with optional momentum and Nesterov momentum", build_sgd},
  };
  return table;
}

const std::vector<SchedulerEntry>& scheduler_registry() {
  static const std::vector<SchedulerEntry> table = {
      {"constant", "lr after warmup", constant_factor},
      {"cosine", "cosine decay from lr to min_lr_ratio * lr after warmup", cosine_factor},
      {"inverse_sqrt", "lr * sqrt(warmup_steps / step) after warmup (Transformer)",
       inverse_sqrt_factor},
      {"linear", "linear decay from lr to min_lr_ratio * lr after warmup", linear_factor},
      {"step", "lr * gamma^(step / step_size)", step_factor},
  };
  return table;
}

const std::vector<TokenizerEntry>& tokenizer_registry() {
  static const std::vector<TokenizerEntry> table = {
      {"char", "one token per Unicode character, whitespace dropped", build_char},
      {"sentencepiece",
       "SentencePiece subwords (unigram or BPE) over tokenizer.model, as HuggingFace's "
       "DebertaV2Tokenizer (DeBERTa-v3)",
       build_sentencepiece},
      {"whitespace",
       "words split on whitespace; CJK characters and (optionally) punctuation "
       "become tokens of their own",
       build_whitespace},
      {"wordpiece",
       "BERT's WordPiece subwords over tokenizer.vocab, as HuggingFace's BertTokenizer",
       build_wordpiece},
  };
  return table;
}

std::unique_ptr<Task> make_task(const ExperimentConfig& config, const std::string& artifacts_dir,
                                torch::Device device) {
  const auto& entry = find_entry(task_registry(), config.task, "task");
  // These tasks read a continuous stream or generate their data: sharding them per rank is not
  // written yet, and silently training every rank on the same batches would waste the ranks.
  if (config.data.shard_count > 1 &&
      (config.task == "language_model" || config.task == "frame_prediction")) {
    throw ConfigError("task " + config.task +
                      " does not shard its data across ranks yet; distributed training supports "
                      "tasks classification and masked_lm");
  }
  return entry.build(config, artifacts_dir, device);
}

namespace {
template <class Entry>
void format_table(const std::string& title, const std::vector<Entry>& table, std::string* out) {
  *out += title + "\n";
  for (const auto& e : table) {
    std::string name = e.name;
    name.resize(std::max<size_t>(name.size() + 2, 28), ' ');
    *out += "  " + name + e.doc + "\n";
  }
}
}  // namespace

std::string format_registries() {
  std::string out;
  format_table("model.type", model_registry(), &out);
  format_table("task", task_registry(), &out);
  format_table("optimizer.type", optimizer_registry(), &out);
  format_table("scheduler.type", scheduler_registry(), &out);
  format_table("tokenizer.type", tokenizer_registry(), &out);
  return out;
}

}  // namespace nlpkit
