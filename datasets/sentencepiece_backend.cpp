// libnlpkit_sentencepiece.so: the only code that links Google's sentencepiece library (see
// datasets/sentencepiece_backend.h for why it is a shared object of its own). Built without
// LibTorch; exports nlpkit_sentencepiece_backend() alone.
#include "datasets/sentencepiece_backend.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <memory>

// Not in the installed headers (src/common.h), exported by libsentencepiece.so.0.
namespace sentencepiece::logging {
void SetMinLogLevel(int v);
}  // namespace sentencepiece::logging

namespace nlpkit::detail {
namespace {

class Model : public SpmModel {
 public:
  int piece_size() const override { return sp_.GetPieceSize(); }
  const std::string& id_to_piece(int id) const override { return sp_.IdToPiece(id); }
  int piece_to_id(std::string_view piece) const override { return sp_.PieceToId(piece); }
  float score(int id) const override { return sp_.GetScore(id); }
  bool is_control(int id) const override { return sp_.IsControl(id); }
  bool is_unknown(int id) const override { return sp_.IsUnknown(id); }
  int unk_id() const override { return sp_.unk_id(); }
  void encode_ids(std::string_view text, std::vector<int>* ids) const override {
    sp_.Encode(text, ids).IgnoreError();
  }
  void encode_pieces(std::string_view text, std::vector<std::string>* pieces) const override {
    sp_.Encode(text, pieces).IgnoreError();
  }
  void decode(const std::vector<int>& ids, std::string* text) const override {
    sp_.Decode(ids, text).IgnoreError();
  }

  sentencepiece::SentencePieceProcessor sp_;
};

/// The lines of a training corpus, one at a time.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::vector<std::string>& lines) : lines_(lines) {}
  bool done() const override { return i_ >= lines_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return lines_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& lines_;
  size_t i_ = 0;
};

/// Above ERROR: the library logs nothing. Besides keeping stderr clean, this is needed: loaded
/// with RTLD_DEEPBIND, the library's std::cerr is libstdc++'s own, never initialised, since the
/// executable holds the (copy-relocated) std::cerr that is; writing to it crashes.
constexpr int kQuiet = 3;

class Backend : public SpmBackend {
 public:
  Backend() { sentencepiece::logging::SetMinLogLevel(kQuiet); }

  SpmModel* load(const std::string& bytes, std::string* error) const override {
    auto model = std::make_unique<Model>();
    const auto status = model->sp_.LoadFromSerializedProto(bytes);
    if (!status.ok()) {
      *error = status.error_message();
      return nullptr;
    }
    return model.release();
  }

  bool train(const std::unordered_map<std::string, std::string>& args,
             const std::vector<std::string>& lines, std::string* model,
             std::string* error) const override {
    LineIterator it(lines);
    const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, model);
    if (!status.ok()) *error = status.error_message();
    return status.ok();
  }
};

}  // namespace
}  // namespace nlpkit::detail

extern "C" __attribute__((visibility("default"))) const nlpkit::detail::SpmBackend*
nlpkit_sentencepiece_backend() {
  static const nlpkit::detail::Backend backend;
  return &backend;
}
