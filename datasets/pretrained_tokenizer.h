// The subword tokenizer of a HuggingFace model folder, as AutoTokenizer.from_pretrained picks it:
// spm.model -> SentencePiece (DeBERTa-v3, DebertaV2Tokenizer), vocab.txt -> WordPiece (BERT,
// BertTokenizer), with do_lower_case from tokenizer_config.json. Writing is each tokenizer's
// save_pretrained (datasets/subword_tokenizer.h).
#pragma once

#include <memory>
#include <string>

#include "datasets/subword_tokenizer.h"

namespace nlpkit {

/// Loads the tokenizer of the model folder `dir`. With both spm.model and vocab.txt present,
/// `prefer` ("wordpiece" or "sentencepiece") decides; with one, that one is used. do_lower_case
/// comes from tokenizer_config.json when present, else `lowercase` for WordPiece and false for
/// SentencePiece (DeBERTa-v3 is cased). Throws InputError naming the folder when it has neither
/// file, and naming the file when one is malformed.
///   auto tok = load_pretrained_tokenizer("deberta-v3-base", /*lowercase=*/true, "sentencepiece");
std::unique_ptr<SubwordTokenizer> load_pretrained_tokenizer(const std::string& dir, bool lowercase,
                                                            const std::string& prefer);

}  // namespace nlpkit
