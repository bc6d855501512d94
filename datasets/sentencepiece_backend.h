// What nlpkit uses of Google's sentencepiece library, behind a vtable, so that the library lives
// in a shared object of its own (libnlpkit_sentencepiece.so) loaded with dlopen on first use.
//
// Why: Debian's libsentencepiece.so.0 carries its own copy of protobuf-lite (3.14) and exports
// its symbols; LibTorch pulls in libprotobuf.so.32 (3.21) through ONNX. Linked into one process,
// the first library in the lookup order serves both, and the other crashes (libprotobuf's static
// initialisers segfault inside libsentencepiece's MergeFromImpl before main). Loaded with
// RTLD_LOCAL | RTLD_DEEPBIND, libsentencepiece binds to its own protobuf and stays invisible to
// libprotobuf. Calls cross the boundary through virtual functions only, never by symbol name.
// Internal to datasets/sentencepiece.cpp; the backend is datasets/sentencepiece_backend.cpp.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace nlpkit::detail {

/// A loaded spm.model (sentencepiece::SentencePieceProcessor). Thread-safe: every method is
/// const.
class SpmModel {
 public:
  virtual ~SpmModel() = default;
  virtual int piece_size() const = 0;
  virtual const std::string& id_to_piece(int id) const = 0;
  /// The unknown piece's id for a piece not in the model.
  virtual int piece_to_id(std::string_view piece) const = 0;
  virtual float score(int id) const = 0;
  virtual bool is_control(int id) const = 0;
  virtual bool is_unknown(int id) const = 0;
  virtual int unk_id() const = 0;
  virtual void encode_ids(std::string_view text, std::vector<int>* ids) const = 0;
  virtual void encode_pieces(std::string_view text, std::vector<std::string>* pieces) const = 0;
  virtual void decode(const std::vector<int>& ids, std::string* text) const = 0;
};

/// The library's entry points.
class SpmBackend {
 public:
  virtual ~SpmBackend() = default;
  /// A model from the bytes of an spm.model; nullptr and *error (the library's message) when
  /// they are not one. The caller owns the model.
  virtual SpmModel* load(const std::string& bytes, std::string* error) const = 0;
  /// SentencePieceTrainer::Train with `args` (spm_train's flags without "--") over `lines`; true
  /// and the serialized model in *model, or false and the library's message in *error.
  virtual bool train(const std::unordered_map<std::string, std::string>& args,
                     const std::vector<std::string>& lines, std::string* model,
                     std::string* error) const = 0;
};

/// The backend of libnlpkit_sentencepiece.so, loaded on the first call: from the folder of the
/// running executable, else from the build folder it was built in. Throws std::runtime_error
/// when it cannot be loaded.
const SpmBackend& sentencepiece_backend();

}  // namespace nlpkit::detail

/// The one symbol libnlpkit_sentencepiece.so exports: its backend (a static object).
extern "C" const nlpkit::detail::SpmBackend* nlpkit_sentencepiece_backend();
