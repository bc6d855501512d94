#include "modules/search.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace nlpkit {

double length_penalty(int64_t length, double alpha) {
  if (alpha == 0.0) return 1.0;
  return std::pow((5.0 + static_cast<double>(length)) / 6.0, alpha);
}

namespace {

void check_options(const SearchOptions& options) {
  TORCH_CHECK(options.beam_size() >= 1, "search: beam_size must be >= 1, got ",
              options.beam_size());
  TORCH_CHECK(options.max_length() >= 1, "search: max_length must be >= 1, got ",
              options.max_length());
}

}  // namespace

std::vector<Hypothesis> greedy_search(StepDecoder& decoder, int64_t batch,
                                      const SearchOptions& options) {
  check_options(options);
  torch::NoGradGuard no_grad;
  std::vector<Hypothesis> out(batch);
  std::vector<bool> done(batch, false);
  std::vector<std::vector<torch::Tensor>> attention(batch);
  torch::Tensor tokens = torch::full({batch}, options.bos_id(), torch::kLong);
  int64_t remaining = batch;
  for (int64_t t = 0; t < options.max_length() && remaining > 0; ++t) {
    StepScores scores = decoder.step(tokens);
    const torch::Tensor log_probs = scores.log_probs.to(torch::kCPU, torch::kFloat);
    auto [best, next] = log_probs.max(-1);
    const auto best_a = best.accessor<float, 1>();
    const auto next_a = next.accessor<int64_t, 1>();
    const torch::Tensor att = scores.attention.defined()
                                  ? scores.attention.to(torch::kCPU, torch::kFloat)
                                  : torch::Tensor();
    for (int64_t b = 0; b < batch; ++b) {
      if (done[b]) continue;
      out[b].score += best_a[b];
      if (att.defined()) attention[b].push_back(att[b]);
      if (next_a[b] == options.eos_id()) {
        done[b] = true;
        --remaining;
      } else {
        out[b].tokens.push_back(next_a[b]);
      }
    }
    tokens = next.to(tokens.device());
  }
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t steps = static_cast<int64_t>(out[b].tokens.size()) + (done[b] ? 1 : 0);
    out[b].score /= length_penalty(steps, options.length_penalty());
    if (!attention[b].empty()) out[b].attention = torch::stack(attention[b]);
  }
  return out;
}

std::vector<std::vector<Hypothesis>> beam_search(StepDecoder& decoder, int64_t batch,
                                                 const SearchOptions& options) {
  check_options(options);
  torch::NoGradGuard no_grad;
  const int64_t beam = options.beam_size();
  const int64_t eos = options.eos_id();
  const float neg_inf = -std::numeric_limits<float>::infinity();
  decoder.select(torch::arange(batch).repeat_interleave(beam));  // (B*K)
  // Only the first beam of each example is live at the start, so that the first step does not
  // pick the same token K times.
  torch::Tensor beam_scores = torch::full({batch, beam}, neg_inf);
  beam_scores.select(1, 0).fill_(0.0);
  torch::Tensor history = torch::empty({batch * beam, 0}, torch::kLong);  // tokens so far
  torch::Tensor attention_history;                                        // (B*K, t, S)
  torch::Tensor tokens = torch::full({batch * beam}, options.bos_id(), torch::kLong);
  std::vector<std::vector<Hypothesis>> finished(batch);
  std::vector<bool> done(batch, false);

  // A hypothesis from live row `row` (tokens in `history`), plus this step's attention when it
  // ends with EOS now.
  const auto make_hypothesis = [&](int64_t row, double score, int64_t steps,
                                   const torch::Tensor& step_attention) {
    Hypothesis h;
    const torch::Tensor row_tokens = history[row].contiguous();
    h.tokens.assign(row_tokens.data_ptr<int64_t>(),
                    row_tokens.data_ptr<int64_t>() + row_tokens.numel());
    h.score = score / length_penalty(steps, options.length_penalty());
    std::vector<torch::Tensor> parts;
    if (attention_history.defined()) parts.push_back(attention_history[row]);
    if (step_attention.defined()) parts.push_back(step_attention.unsqueeze(0));
    if (!parts.empty()) h.attention = torch::cat(parts);
    return h;
  };

  for (int64_t t = 0; t < options.max_length(); ++t) {
    StepScores step = decoder.step(tokens);
    const torch::Tensor log_probs = step.log_probs.to(torch::kCPU, torch::kFloat);  // (B*K, V)
    const torch::Tensor att =
        step.attention.defined() ? step.attention.to(torch::kCPU, torch::kFloat) : torch::Tensor();
    const int64_t vocab = log_probs.size(1);
    const bool last_step = t + 1 == options.max_length();
    // (B, K*V) total scores of every continuation.
    const torch::Tensor total = (beam_scores.unsqueeze(2) + log_probs.view({batch, beam, vocab}))
                                    .view({batch, beam * vocab});
    const int64_t candidates = std::min<int64_t>(2 * beam, beam * vocab);
    auto [top_scores, top_index] = total.topk(candidates, 1);  // (B, 2K)
    const auto top_scores_a = top_scores.accessor<float, 2>();
    const auto top_index_a = top_index.accessor<int64_t, 2>();

    torch::Tensor next_rows = torch::empty({batch * beam}, torch::kLong);
    torch::Tensor next_tokens = torch::full({batch * beam}, eos, torch::kLong);
    torch::Tensor next_scores = torch::full({batch, beam}, neg_inf);
    auto rows_a = next_rows.accessor<int64_t, 1>();
    auto tokens_a = next_tokens.accessor<int64_t, 1>();
    auto scores_a = next_scores.accessor<float, 2>();
    for (int64_t b = 0; b < batch; ++b) {
      int64_t filled = 0;
      for (int64_t c = 0; c < candidates && filled < beam; ++c) {
        const float score = top_scores_a[b][c];
        const int64_t row = b * beam + top_index_a[b][c] / vocab;
        const int64_t token = top_index_a[b][c] % vocab;
        if (done[b] || score == neg_inf) break;
        if (token == eos) {
          // An EOS among the first K candidates finishes a hypothesis.
          if (c < beam) {
            finished[b].push_back(
                make_hypothesis(row, score, t + 1, att.defined() ? att[row] : torch::Tensor()));
          }
          continue;
        }
        rows_a[b * beam + filled] = row;
        tokens_a[b * beam + filled] = token;
        scores_a[b][filled] = score;
        ++filled;
      }
      // Rows left empty (a finished example, or fewer live candidates) copy the first beam,
      // with a score of -inf so that they never win.
      for (int64_t k = filled; k < beam; ++k) {
        rows_a[b * beam + k] = b * beam;
        scores_a[b][k] = neg_inf;
      }
      if (!done[b] && static_cast<int64_t>(finished[b].size()) >= beam) done[b] = true;
    }
    // Move the live hypotheses forward.
    history = torch::cat({history.index_select(0, next_rows), next_tokens.unsqueeze(1)}, 1);
    if (att.defined()) {
      const torch::Tensor step_att = att.index_select(0, next_rows).unsqueeze(1);  // (B*K, 1, S)
      attention_history =
          attention_history.defined()
              ? torch::cat({attention_history.index_select(0, next_rows), step_att}, 1)
              : step_att;
    }
    beam_scores = next_scores;
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    if (last_step) {
      // Out of length: the live hypotheses end here, without EOS.
      const auto live_a = beam_scores.accessor<float, 2>();
      for (int64_t b = 0; b < batch; ++b) {
        if (done[b]) continue;
        for (int64_t k = 0; k < beam; ++k) {
          if (live_a[b][k] == neg_inf) continue;
          finished[b].push_back(
              make_hypothesis(b * beam + k, live_a[b][k], t + 1, torch::Tensor()));
        }
      }
      break;
    }
    decoder.select(next_rows.to(torch::kLong));
    tokens = next_tokens;
  }
  for (auto& list : finished) {
    std::stable_sort(list.begin(), list.end(),
                     [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; });
    if (static_cast<int64_t>(list.size()) > beam) list.resize(beam);
  }
  return finished;
}

}  // namespace nlpkit
