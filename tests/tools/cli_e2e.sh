#!/usr/bin/env bash
# End-to-end tests of the nlpkit command line: a tiny train + evaluate + predict, and every error
# path's message and exit code. Usage: cli_e2e.sh path/to/nlpkit (run by CTest).
set -u
nlpkit=$(realpath "$1")
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src"
passed=0 failed=0

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

# expect CODE SUBSTRING -- command...: exit code and a substring of stdout+stderr.
expect() {
  local code=$1 text=$2; shift 3
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [[ $rc -ne $code ]]; then bad "$* -> exit $rc, expected $code; output: $(echo "$out" | tail -3)"; return; fi
  if [[ "$out" != *"$text"* ]]; then bad "$* -> output lacks '$text': $(echo "$out" | tail -3)"; return; fi
  ok
}

run="$tmp/run"
expect 0 "nlpkit" -- "$nlpkit" --help
expect 0 "train a model" -- "$nlpkit" train --help
expect 0 "text_cnn_bilstm_attention" -- "$nlpkit" list
expect 0 "lr: 0.25" -- "$nlpkit" dump-config configs/tiny/classifier.yaml optimizer.lr=0.25
expect 0 "| \`optimizer.lr\` |" -- "$nlpkit" dump-config --reference

# A tiny end-to-end run: train, evaluate, predict.
expect 0 "accuracy" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$run" logging.progress=line
[[ -f "$run/checkpoints/latest" && -f "$run/metrics.jsonl" && -f "$run/config.yaml" ]] && ok || bad "run files missing"
grep -q '"split":"test"' "$run/metrics.jsonl" && ok || bad "no test record in metrics.jsonl"
# A run directory means its best checkpoint (by trainer.metric), as trainer_state.json records it.
best_of() {
  python3 -c "import json,sys; d=sys.argv[1]+'/checkpoints/'; s=json.load(open(d+open(d+'latest').read().strip()+'/trainer_state.json')); print('step_%08d' % s['best_step'])" "$1"
}
best=$(best_of "$run")
expect 0 "test ($run/checkpoints/$best)" -- "$nlpkit" evaluate "$run" --output "$tmp/eval.json"
python3 -c "import json,sys; d=json.load(open('$tmp/eval.json')); sys.exit(0 if 'accuracy' in d else 1)" && ok || bad "eval JSON"
cut -f1 tests/data/tiny_cls/test.tsv | tail -n +2 > "$tmp/texts.txt"
out=$("$nlpkit" predict "$run" "$tmp/texts.txt" 2>/dev/null)
[[ $(echo "$out" | wc -l) -eq 16 && $(echo "$out" | grep -cE $'^(ham|spam)\t(0|1)\\.[0-9]{4}$') -eq 16 ]] && ok || bad "predict output: $out"
# Seeing training: TensorBoard events, PNG charts, attention heatmaps.
compgen -G "$run/events.out.tfevents.*" >/dev/null && ok || bad "no TensorBoard event file in $run"
png_size() { python3 -c "import struct,sys; d=open(sys.argv[1],'rb').read(24); print(*struct.unpack('>II', d[16:24]) if d[:8]==b'\x89PNG\r\n\x1a\n' else 'not a PNG')" "$1"; }
expect 0 "$tmp/plots/accuracy.png" -- "$nlpkit" plot "$run" --output "$tmp/plots" --metrics loss,accuracy
[[ "$(png_size "$tmp/plots/loss.png")" == "800 500" && -f "$tmp/plots/accuracy.png" && ! -e "$tmp/plots/lr.png" ]] && ok || bad "plot files: $(ls "$tmp/plots")"
expect 0 "$run/plots/grad_norm.png" -- "$nlpkit" plot "$run"
expect 0 "wrote 16 attention heatmap(s) to $tmp/explain" -- "$nlpkit" predict --explain "$tmp/explain" "$run" "$tmp/texts.txt"
[[ $(ls "$tmp/explain" | wc -l) -eq 16 && "$(png_size "$tmp/explain/doc_0016.png")" =~ ^[0-9]+\ [0-9]+$ ]] && ok || bad "explain files: $(ls "$tmp/explain" | head -3)"

# Resume: a finished run resumed with more steps continues from its checkpoint.
expect 0 "resumed at step" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$run" trainer.epochs=4 --resume "$run"

# Bagging: K models on bootstrap samples; evaluate/predict of the bagging folder average them.
expect 0 "bagging: 2 models in $tmp/bag/bag_*" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/bag" trainer.max_steps=4 data.train_examples=48 --bagging 2
grep -q "^seed: 8" "$tmp/bag/bag_2/config.yaml" && grep -q "bootstrap: true" "$tmp/bag/bag_2/config.yaml" && ok || bad "bag_2 config: $(grep -E 'seed|bootstrap' "$tmp/bag/bag_2/config.yaml")"
expect 0 "ensemble of 2" -- "$nlpkit" evaluate "$tmp/bag" --output "$tmp/bag_eval.json"
out=$("$nlpkit" predict "$tmp/bag" "$tmp/texts.txt" 2>/dev/null)
[[ $(echo "$out" | grep -cE $'^(ham|spam)\t(0|1)\.[0-9]{4}$') -eq 16 ]] && ok || bad "ensemble predict output: $out"
out3=$("$nlpkit" predict "$tmp/bag" "$tmp/texts.txt" --ensemble "$run" 2>/dev/null)
[[ $(echo "$out3" | wc -l) -eq 16 && "$out3" != "$out" ]] && ok || bad "predict --ensemble did not change the average: $out3"
expect 2 "train --bagging: only task classification can be bagged" -- "$nlpkit" train configs/tiny/lstm_lm.yaml output_dir="$tmp/badbag" --bagging 2
expect 2 "data.train_examples: 100000 asked for" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/badbag" data.train_examples=100000
expect 2 "predict --explain: draws one model's attention" -- "$nlpkit" predict "$tmp/bag" "$tmp/texts.txt" --explain "$tmp/bag_explain"
[[ ! -e "$tmp/badbag" ]] && ok || bad "a refused bagging run left $tmp/badbag behind"

# Exact resume with the real classifier: 16 steps straight == 8 steps + resume + 8 steps.
common=(configs/tiny/classifier.yaml trainer.max_steps=16 logging.every=1 trainer.save_every=8 trainer.keep_last=5)
"$nlpkit" train "${common[@]}" output_dir="$tmp/straight" >/dev/null 2>&1
"$nlpkit" train "${common[@]}" output_dir="$tmp/resumed" --resume "$tmp/straight/checkpoints/step_00000008" >/dev/null 2>&1
losses() { python3 -c "import json,sys; print([r['loss'] for r in map(json.loads, open(sys.argv[1])) if r['split']=='train' and r['step']>8])" "$1"; }
if [[ -n "$(losses "$tmp/straight/metrics.jsonl")" && "$(losses "$tmp/straight/metrics.jsonl")" == "$(losses "$tmp/resumed/metrics.jsonl")" ]] &&
   cmp -s "$tmp/straight/checkpoints/step_00000016/model.safetensors" "$tmp/resumed/checkpoints/step_00000016/model.safetensors"; then ok; else bad "resume is not exact"; fi

# data.on_error: skip counts malformed lines instead of stopping.
{ cat tests/data/tiny_cls/train.tsv; printf 'a line with\ttoo many\tfields\n'; } > "$tmp/skip.tsv"
expect 0 "train 64 (1 malformed lines skipped)" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/skip" data.train="$tmp/skip.tsv" data.on_error=skip trainer.max_steps=2

# Fixed pretrained vectors (word2vec text format) added to the trained embedding.
{ echo "3 16"; for w in win meeting free; do printf '%s' "$w"; for i in $(seq 16); do printf ' 0.%d' "$i"; done; echo; done; } > "$tmp/w2v.txt"
expect 0 "accuracy" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/w2v" data.pretrained_embeddings="$tmp/w2v.txt" trainer.epochs=1
{ echo "1 16"; echo "win 0.1 0.2"; } > "$tmp/w2v_bad.txt"
expect 2 "$tmp/w2v_bad.txt:2:" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/w2v_bad" data.pretrained_embeddings="$tmp/w2v_bad.txt"

# SIGINT saves a checkpoint and exits with 130; the run resumes from it.
"$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/sig" trainer.epochs=100000 logging.progress=line logging.every=100000 >"$tmp/sig.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "^device" "$tmp/sig.log" && break; sleep 0.1; done
sleep 1
kill -INT "$pid"; wait "$pid"; rc=$?
[[ $rc -eq 130 && -f "$tmp/sig/checkpoints/latest" ]] && grep -q "interrupted by signal 2: checkpoint saved" "$tmp/sig.log" && ok || bad "SIGINT: exit $rc; $(tail -2 "$tmp/sig.log")"
expect 0 "resumed at step" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/sig" trainer.max_steps=1 --resume auto

# Language model: train, evaluate (perplexity), sample, and resume exactly with the carried state.
expect 0 "perplexity" -- "$nlpkit" train configs/tiny/lstm_lm.yaml output_dir="$tmp/lm"
expect 0 "perplexity" -- "$nlpkit" evaluate "$tmp/lm" --split valid
out=$(printf 'the cat\n\n' | "$nlpkit" predict "$tmp/lm" - generation.max_tokens=4 2>/dev/null)
[[ $(echo "$out" | wc -l) -eq 2 && "$out" == "the cat"* ]] && ok || bad "lm predict: $out"
lm=(configs/tiny/lstm_lm.yaml trainer.max_steps=20 logging.every=1 trainer.save_every=7 trainer.keep_last=5)
"$nlpkit" train "${lm[@]}" output_dir="$tmp/lm_straight" >/dev/null 2>&1
"$nlpkit" train "${lm[@]}" output_dir="$tmp/lm_resumed" --resume "$tmp/lm_straight/checkpoints/step_00000007" >/dev/null 2>&1
lm_losses() { python3 -c "import json,sys; print([r['loss'] for r in map(json.loads, open(sys.argv[1])) if r['split']=='train' and r['step']>7])" "$1"; }
[[ -f "$tmp/lm_straight/checkpoints/step_00000007/task_state.safetensors" && "$(lm_losses "$tmp/lm_straight/metrics.jsonl")" == "$(lm_losses "$tmp/lm_resumed/metrics.jsonl")" ]] &&
  cmp -s "$tmp/lm_straight/checkpoints/step_00000020/model.safetensors" "$tmp/lm_resumed/checkpoints/step_00000020/model.safetensors" && ok || bad "lm resume is not exact"
# Run comparison: every run above, the config keys that differ between them as columns.
out=$("$nlpkit" runs list "$tmp" 2>&1)
[[ $? -eq 0 && "$out" == run* && "$out" == *language_model* && "$out" == *data.on_error* && "$out" == *"straight "* ]] && ok || bad "runs list: $out"
expect 2 "predict --explain: this task's model has no attention weights to draw" -- "$nlpkit" predict --explain "$tmp/lm_explain" "$tmp/lm" "$tmp/texts.txt"
[[ ! -e "$tmp/lm_explain" ]] && ok || bad "a failed --explain left $tmp/lm_explain behind"
expect 2 "model.type: 'lstm' is not a classifier" -- "$nlpkit" train configs/tiny/lstm_lm.yaml task=classification output_dir="$tmp/badrun"
expect 2 "model.type: 'text_cnn_bilstm_attention' is not a language model" -- "$nlpkit" train configs/tiny/classifier.yaml task=language_model output_dir="$tmp/badrun"
expect 2 "model.nonlinearity: unknown key" -- "$nlpkit" train configs/tiny/lstm_lm.yaml model.nonlinearity=relu

# WordPiece: learn a vocab.txt, encode standard input (one JSON object per line), bad input.
printf 'the cat sat on the mat\nthe dog sat on the log\nthe cat and the dog\n' > "$tmp/corpus.txt"
expect 0 "wrote $tmp/vocab.txt (33 tokens)" -- "$nlpkit" tokenizer train --type wordpiece "$tmp/corpus.txt" --vocab-size 33 --min-frequency 1 --output "$tmp/vocab.txt"
[[ "$(head -5 "$tmp/vocab.txt" | tr '\n' ' ')" == "[PAD] [UNK] [CLS] [SEP] [MASK] " && $(wc -l < "$tmp/vocab.txt") -eq 33 ]] && ok || bad "tokenizer train: $(head -8 "$tmp/vocab.txt" | tr '\n' ' ')"
out=$(printf 'the cat\n' | "$nlpkit" tokenizer encode --type wordpiece --vocab "$tmp/vocab.txt" 2>&1)
[[ "$out" == '{"tokens":["the","cat"],"ids":['*']}' ]] && ok || bad "encode with a learnt vocab: $out"
golden=tests/data/golden/wordpiece_basic/vocab.txt
out=$(printf 'Hello, World!\n[MASK]ed Café\n' | "$nlpkit" tokenizer encode --type wordpiece --vocab "$golden" 2>&1)
[[ "$out" == '{"tokens":["he","##ll","##o",",","world","!"],"ids":[419,2365,205,16,461,5]}
{"tokens":["[MASK]","ed","ca","##f","##e"],"ids":[4,1145,531,196,195]}' ]] && ok || bad "tokenizer encode: $out"
out=$(printf 'Hello\n' | "$nlpkit" tokenizer encode --type wordpiece --vocab "$golden" --no-lowercase --add-special-tokens 2>&1)
[[ "$out" == '{"tokens":["[CLS]","He","##ll","##o","[SEP]"],"ids":[2,2145,2365,205,3]}' ]] && ok || bad "tokenizer encode --no-lowercase --add-special-tokens: $out"
expect 2 "error: corpus file not found: $tmp/none.txt" -- "$nlpkit" tokenizer train --type wordpiece "$tmp/none.txt" --vocab-size 100
expect 2 "error: tokenizer: unknown --type 'bpe'; supported: sentencepiece, wordpiece" -- "$nlpkit" tokenizer train --type bpe "$tmp/corpus.txt" --vocab-size 100
expect 2 "error: WordPiece vocab_size must be at least 6" -- "$nlpkit" tokenizer train --type wordpiece "$tmp/corpus.txt" --vocab-size 3 --output "$tmp/small.txt"
[[ ! -e "$tmp/small.txt" ]] && ok || bad "a failed tokenizer train left $tmp/small.txt behind"
expect 2 "error: vocab file not found: $tmp/none.txt" -- "$nlpkit" tokenizer encode --type wordpiece --vocab "$tmp/none.txt"
printf '[PAD]\n[CLS]\n[SEP]\n[MASK]\nhello\n' > "$tmp/no_unk.txt"
expect 2 "error: $tmp/no_unk.txt: WordPiece vocabulary lacks [UNK]" -- "$nlpkit" tokenizer encode --type wordpiece --vocab "$tmp/no_unk.txt"
expect 2 "error: tokenizer: unknown --type 'char'; supported: sentencepiece, wordpiece" -- "$nlpkit" tokenizer encode --type char --vocab "$golden"
expect 2 "nlpkit --help" -- "$nlpkit" tokenizer encode --vocab "$golden"
expect 2 "tokenizer.vocab: tokenizer.type wordpiece needs a vocab.txt" -- "$nlpkit" train configs/tiny/classifier.yaml tokenizer.type=wordpiece output_dir="$tmp/badrun"

# SentencePiece: learn an spm.model (+ spm.vocab), encode standard input, bad input.
for r in 1 2 3 4 5 6 7 8; do printf 'the cat sat on the mat\nthe dog sat on the log\nthe cat and the dog\n'; done > "$tmp/spm_corpus.txt"
expect 0 "wrote $tmp/spm.model and $tmp/spm.vocab (30 pieces" -- "$nlpkit" tokenizer train --type sentencepiece "$tmp/spm_corpus.txt" --vocab-size 30 --model-type bpe --output "$tmp/spm.model"
[[ "$(head -5 "$tmp/spm.vocab" | cut -f1 | tr '\n' ' ')" == "[PAD] [CLS] [SEP] [UNK] [MASK] " && $(wc -l < "$tmp/spm.vocab") -eq 30 ]] && ok || bad "spm.vocab: $(head -6 "$tmp/spm.vocab" | tr '\n' ' ')"
out=$(printf 'the cat\nthe [MASK] dog\n' | "$nlpkit" tokenizer encode --type sentencepiece --model "$tmp/spm.model" --add-special-tokens 2>&1)
[[ "$out" == '{"tokens":["[CLS]","▁the","▁cat","[SEP]"],"ids":[1,'*',2]}
{"tokens":["[CLS]","▁the","[MASK]",'*'"[SEP]"],"ids":[1,'*',4,'*',2]}' ]] && ok || bad "sentencepiece encode: $out"
expect 2 "error: SentencePiece model file not found: $tmp/none.model" -- "$nlpkit" tokenizer encode --type sentencepiece --model "$tmp/none.model"
printf 'not a model' > "$tmp/bad.model"
expect 2 "error: $tmp/bad.model: not a SentencePiece model" -- "$nlpkit" tokenizer encode --type sentencepiece --model "$tmp/bad.model"
expect 2 "error: tokenizer encode: --type sentencepiece needs --model spm.model" -- "$nlpkit" tokenizer encode --type sentencepiece --vocab "$golden"
expect 2 "error: SentencePiece training failed: Vocabulary size too high" -- "$nlpkit" tokenizer train --type sentencepiece "$tmp/spm_corpus.txt" --vocab-size 5000 --output "$tmp/big.model"
[[ ! -e "$tmp/big.model" ]] && ok || bad "a failed tokenizer train left $tmp/big.model behind"
expect 2 "error: SentencePiece model_type must be unigram or bpe, found 'word'" -- "$nlpkit" tokenizer train --type sentencepiece "$tmp/spm_corpus.txt" --vocab-size 30 --model-type word --output "$tmp/word.model"
expect 2 "tokenizer.model: tokenizer.type sentencepiece needs an spm.model" -- "$nlpkit" train configs/tiny/classifier.yaml tokenizer.type=sentencepiece output_dir="$tmp/badrun"
expect 2 "SentencePiece model file not found: $tmp/none.model" -- "$nlpkit" train configs/tiny/bert_classifier.yaml tokenizer.type=sentencepiece tokenizer.model="$tmp/none.model" output_dir="$tmp/badrun"

# BERT: pretrain, fine-tune from that checkpoint, predict, export for HuggingFace, forward.
bert="$tmp/bert"
expect 0 "perplexity" -- "$nlpkit" train configs/tiny/bert_mlm.yaml output_dir="$bert/mlm"
expect 0 "loaded 40 tensors; 2 newly initialised" -- "$nlpkit" train configs/tiny/bert_classifier.yaml model.pretrained="$bert/mlm" output_dir="$bert/cls" trainer.epochs=1
out=$("$nlpkit" predict "$bert/cls" "$tmp/texts.txt" 2>/dev/null)
[[ $(echo "$out" | grep -cE $'^(ham|spam)\t(0|1)\\.[0-9]{4}$') -eq 16 ]] && ok || bad "bert predict output: $out"
expect 0 "wrote $bert/hf" -- "$nlpkit" export "$bert/cls" "$bert/hf"
for f in config.json model.safetensors vocab.txt tokenizer_config.json special_tokens_map.json; do
  [[ -f "$bert/hf/$f" ]] && ok || bad "export lacks $f"
done
expect 2 "output folder already exists: $bert/hf" -- "$nlpkit" export "$bert/cls" "$bert/hf"
expect 2 "export --format hf: only BERT and DeBERTa models have a HuggingFace format" -- "$nlpkit" export "$run" "$tmp/hf_lstm"
[[ ! -e "$tmp/hf_lstm" ]] && ok || bad "a failed export left $tmp/hf_lstm behind"
inputs=tests/data/golden/bert_pretraining_tiny_inputs.safetensors
expect 0 "wrote $tmp/out.safetensors (9 tensors)" -- "$nlpkit" forward tests/data/golden/bert_pretraining_tiny --inputs "$inputs" --output "$tmp/out.safetensors"
expect 0 "wrote $tmp/cls_out.safetensors" -- "$nlpkit" forward "$bert/hf" --inputs "$inputs" --output "$tmp/cls_out.safetensors"
expect 2 "has no config.json" -- "$nlpkit" forward "$tmp" --inputs "$inputs" --output "$tmp/x.safetensors"
printf '{"model_type": "gpt2"}' > "$tmp/config.json"
expect 2 "model_type is 'gpt2', expected 'bert'" -- "$nlpkit" forward "$tmp" --inputs "$inputs" --output "$tmp/x.safetensors"
rm "$tmp/config.json"
expect 2 "cannot open safetensors file: $tmp/none.safetensors" -- "$nlpkit" forward "$bert/hf" --inputs "$tmp/none.safetensors" --output "$tmp/x.safetensors"
[[ ! -e "$tmp/x.safetensors" ]] && ok || bad "a failed forward left $tmp/x.safetensors behind"
# DeBERTa: forward on a HuggingFace DeBERTa-v3 folder (3 hidden states, 2 attentions, MLM logits).
expect 0 "wrote $tmp/deberta_out.safetensors (7 tensors)" -- "$nlpkit" forward tests/data/golden/deberta_v3_tiny --inputs "$inputs" --output "$tmp/deberta_out.safetensors"
printf '{"model_type": "deberta-v2", "relative_attention": true, "pos_att_type": "c2p|p2p"}' > "$tmp/config.json"
expect 2 "config.json: pos_att_type: unknown term 'p2p' (supported: c2p, p2c)" -- "$nlpkit" forward "$tmp" --inputs "$inputs" --output "$tmp/x.safetensors"
rm "$tmp/config.json"
printf '{"model_type": "deberta-v2", "relative_attention": true, "position_buckets": 1024}' > "$tmp/config.json"
expect 2 "config.json: position_buckets: must not exceed max_position_embeddings (512), got 1024" -- "$nlpkit" forward "$tmp" --inputs "$inputs" --output "$tmp/x.safetensors"
rm "$tmp/config.json"
mkdir "$tmp/v3"
cp tests/data/golden/deberta_v3_tiny/model.safetensors "$tmp/v3/"
sed 's/"position_buckets": 256/"position_buckets": 128/' tests/data/golden/deberta_v3_tiny/config.json > "$tmp/v3/config.json"
expect 2 "deberta.encoder.rel_embeddings.weight: checkpoint [512, 32], model [256, 32]" -- "$nlpkit" forward "$tmp/v3" --inputs "$inputs" --output "$tmp/x.safetensors"
[[ ! -e "$tmp/x.safetensors" ]] && ok || bad "a failed forward left $tmp/x.safetensors behind"
# DeBERTa: RTD pretraining, fine-tuning its discriminator, export, forward; config errors.
deb="$tmp/deberta"
expect 0 "replaced_f1" -- "$nlpkit" train configs/tiny/deberta_rtd.yaml output_dir="$deb/rtd" trainer.epochs=1
expect 0 "newly initialised (not in the checkpoint): pooler.dense.weight, pooler.dense.bias, classifier.weight, classifier.bias" -- "$nlpkit" train configs/tiny/deberta_classifier.yaml model.pretrained="$deb/rtd" output_dir="$deb/cls" trainer.epochs=1
expect 0 "wrote $deb/hf" -- "$nlpkit" export "$deb/cls" "$deb/hf"
grep -q '"DebertaV2ForSequenceClassification"' "$deb/hf/config.json" && ok || bad "DeBERTa export: architectures"
expect 0 "wrote $tmp/deb_out.safetensors (11 tensors)" -- "$nlpkit" forward "$deb/hf" --inputs "$inputs" --output "$tmp/deb_out.safetensors"
expect 2 "command line: model.position_buckets: 128 must not exceed model.max_position_embeddings (64)" -- "$nlpkit" train configs/tiny/deberta_classifier.yaml model.position_buckets=128 output_dir="$tmp/badrun"
expect 2 "model.pos_att_type: unknown value 'c2p|p2p'" -- "$nlpkit" train configs/tiny/deberta_classifier.yaml 'model.pos_att_type=c2p|p2p' output_dir="$tmp/badrun"
expect 2 "model.type: task replaced_token_detection takes deberta, got 'bert'" -- "$nlpkit" train configs/tiny/bert_mlm.yaml task=replaced_token_detection output_dir="$tmp/badrun"
[[ ! -e "$tmp/badrun" ]] && ok || bad "a failed run left $tmp/badrun behind"

# Seq2Seq and Transformer (grapheme-to-phoneme on tests/data/tiny_g2p): train, predict, heatmaps,
# and their bad input.
for model in seq2seq transformer; do
  expect 0 "wer" -- "$nlpkit" train configs/tiny/$model.yaml output_dir="$tmp/$model" trainer.max_steps=4 data.test=\"\"
  # One line per input (empty after so few steps, hence wc rather than $(...)).
  lines=$(printf 'cat\ndog\n' | "$nlpkit" predict "$tmp/$model" - 2>/dev/null | wc -l)
  [[ $lines -eq 2 ]] && ok || bad "$model predict: $lines lines"
  expect 0 "wrote 2 attention heatmap(s) to $tmp/${model}_explain" -- "$nlpkit" predict --explain "$tmp/${model}_explain" "$tmp/$model" <(printf 'cat\ndog\n')
  [[ -f "$tmp/${model}_explain/seq_0002.png" ]] && ok || bad "$model explain files: $(ls "$tmp/${model}_explain")"
done
expect 0 "wrote $tmp/cat.png" -- "$nlpkit" predict --attention-png "$tmp/cat.png" "$tmp/transformer" <(printf 'cat\n')
[[ "$(png_size "$tmp/cat.png")" =~ ^[0-9]+\ [0-9]+$ && ! -e "$tmp/cat.png.nlpkit-tmp" ]] && ok || bad "attention-png: $(ls "$tmp" | grep cat)"
expect 2 "predict --attention-png: draws one input's attention, /dev/fd/" -- "$nlpkit" predict --attention-png "$tmp/two.png" "$tmp/seq2seq" <(printf 'cat\ndog\n')
[[ ! -e "$tmp/two.png" ]] && ok || bad "a failed --attention-png left $tmp/two.png behind"
expect 2 "seq2seq.beam_size: must be >= 1" -- "$nlpkit" predict "$tmp/seq2seq" <(printf 'cat\n') seq2seq.beam_size=0
expect 2 "predict: input line 2 has an empty source" -- "$nlpkit" predict "$tmp/seq2seq" <(printf 'cat\n \n')
printf 'cat\tK AE1 T\n\tD AO1 G\n' > "$tmp/g2p_bad.tsv"
expect 2 "$tmp/g2p_bad.tsv:2: empty source" -- "$nlpkit" train configs/tiny/seq2seq.yaml data.train="$tmp/g2p_bad.tsv" output_dir="$tmp/badrun"
printf 'cat\tK AE1 T\nabcdefghijklmnopq\tEY1\n' > "$tmp/g2p_long.tsv"
expect 2 "$tmp/g2p_long.tsv:2: source has 17 tokens, more than seq2seq.max_source_length 12" -- "$nlpkit" train configs/tiny/seq2seq.yaml data.train="$tmp/g2p_long.tsv" seq2seq.on_too_long=error output_dir="$tmp/badrun"
expect 2 "data file not found: $tmp/none.tsv" -- "$nlpkit" train configs/tiny/transformer.yaml data.valid="$tmp/none.tsv" output_dir="$tmp/badrun"
expect 2 "model.type: 'lstm' is not a sequence-to-sequence model; task seq2seq takes seq2seq_attention or transformer" -- "$nlpkit" train configs/tiny/lstm_lm.yaml task=seq2seq output_dir="$tmp/badrun"
expect 2 "--strip-stress is an option of cmudict only" -- "$nlpkit" data prepare spam_assassin --strip-stress
[[ ! -e "$tmp/badrun" ]] && ok || bad "a failed run left $tmp/badrun behind"

# Word2Vec: train vectors (text + binary), query them, feed them to the classifier; bad input.
w2v="$tmp/w2v_run"
expect 0 "words/s/thread" -- "$nlpkit" train configs/tiny/word2vec.yaml output_dir="$w2v"
[[ -f "$w2v/vectors.txt" && -f "$w2v/vectors.bin" && "$(head -1 "$w2v/vectors.txt")" =~ ^[0-9]+\ 16$ ]] && ok || bad "word2vec outputs: $(ls "$w2v")"
out=$("$nlpkit" embeddings neighbors "$w2v/vectors.bin" dog -k 3 2>&1)
[[ $? -eq 0 && $(echo "$out" | grep -cE $'^[^\t]+\t-?[01]\.[0-9]{4}$') -eq 3 ]] && ok || bad "embeddings neighbors: $out"
expect 0 "" -- "$nlpkit" embeddings analogy "$w2v/vectors.txt" cat dog the -k 2
expect 2 "error: unknown word 'unicorn' (not among the" -- "$nlpkit" embeddings neighbors "$w2v/vectors.txt" dog unicorn
expect 2 "embeddings analogy: give three words A B C" -- "$nlpkit" embeddings analogy "$w2v/vectors.txt" cat dog
{ echo "2 3"; echo "a 1 2 3"; echo "b 1 2"; } > "$tmp/vec_bad.txt"
expect 2 "error: $tmp/vec_bad.txt:3: 'b' has 2 values, expected 3" -- "$nlpkit" embeddings neighbors "$tmp/vec_bad.txt" a
expect 2 "word vectors file not found: $tmp/none.txt" -- "$nlpkit" embeddings neighbors "$tmp/none.txt" a
expect 0 "accuracy" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/w2v_cls" data.pretrained_embeddings="$w2v/vectors.txt" trainer.epochs=1
printf '\n\n' > "$tmp/empty.txt"
expect 2 "data file has no text: $tmp/empty.txt" -- "$nlpkit" train configs/tiny/word2vec.yaml data.train="$tmp/empty.txt" output_dir="$tmp/badrun"
printf '\x01\x02\n' > "$tmp/controls.txt"  # a line, but no token: tokenizers drop control characters
expect 2 "holds no words (empty corpus)" -- "$nlpkit" train configs/tiny/word2vec.yaml data.train="$tmp/controls.txt" output_dir="$tmp/badrun"
expect 2 "data.min_freq 100000 removes every word of tests/data/tiny_lm/train.txt" -- "$nlpkit" train configs/tiny/word2vec.yaml data.min_freq=100000 output_dir="$tmp/badrun"
expect 2 "model.architecture: unknown value 'glove'" -- "$nlpkit" train configs/tiny/word2vec.yaml model.architecture=glove output_dir="$tmp/badrun"
[[ ! -e "$tmp/badrun" ]] && ok || bad "a failed word2vec run left $tmp/badrun behind"
# FastText, NNLM and the TF-IDF baseline.
expect 0 "accuracy" -- "$nlpkit" train configs/tiny/fasttext.yaml output_dir="$tmp/fasttext"
out=$("$nlpkit" predict "$tmp/fasttext" "$tmp/texts.txt" 2>/dev/null)
[[ $(echo "$out" | grep -cE $'^(ham|spam)\t(0|1)\.[0-9]{4}$') -eq 16 ]] && ok || bad "fasttext predict output: $out"
expect 0 "perplexity" -- "$nlpkit" train configs/tiny/nnlm.yaml output_dir="$tmp/nnlm"
out=$(printf 'the cat\n' | "$nlpkit" predict "$tmp/nnlm" - generation.max_tokens=4 2>/dev/null)
[[ "$out" == "the cat"* ]] && ok || bad "nnlm predict: $out"
expect 0 "macro avg" -- "$nlpkit" train configs/tiny/linear_baseline.yaml output_dir="$tmp/linear"
[[ -f "$tmp/linear/linear_baseline.json" ]] && ok || bad "no linear_baseline.json"
expect 2 "no features left" -- "$nlpkit" train configs/tiny/linear_baseline.yaml data.min_freq=100000 output_dir="$tmp/badrun"
[[ ! -e "$tmp/badrun" ]] && ok || bad "a failed linear_baseline run left $tmp/badrun behind"

# Errors: one line, exit 2 for bad config or input.
expect 2 "config file not found: nope.yaml" -- "$nlpkit" train nope.yaml
printf 'model:\n  hiden_size: 3\n' > "$tmp/typo.yaml"
expect 2 "$tmp/typo.yaml:2:3: model.hiden_size: unknown key; did you mean 'hidden_size'?" -- "$nlpkit" train "$tmp/typo.yaml"
expect 2 "command line: optimizer.lr: expected a number, found 'fast'" -- "$nlpkit" train configs/tiny/classifier.yaml optimizer.lr=fast
expect 2 "optimizer.type: unknown value 'lion'; expected one of: adam, adamw, sgd" -- "$nlpkit" dump-config configs/tiny/classifier.yaml optimizer.type=lion
printf 'text\tlabel\nhello world\tham\tEXTRA\n' > "$tmp/bad.tsv"
expect 2 "$tmp/bad.tsv:2:" -- "$nlpkit" train configs/tiny/classifier.yaml data.train="$tmp/bad.tsv" output_dir="$tmp/badrun"
[[ ! -e "$tmp/badrun" ]] && ok || bad "a failed run left $tmp/badrun behind"
expect 2 "data file not found: $tmp/none.tsv" -- "$nlpkit" train configs/tiny/classifier.yaml data.valid="$tmp/none.tsv" output_dir="$tmp/badrun"
printf 'text\tlabel\nhello world\tunknown_label\n' > "$tmp/odd.tsv"
expect 2 "label 'unknown_label' does not occur in the training data" -- "$nlpkit" train configs/tiny/classifier.yaml data.test="$tmp/odd.tsv" output_dir="$tmp/badrun"
expect 2 "input file not found: $tmp/missing.txt" -- "$nlpkit" predict "$run" "$tmp/missing.txt"
expect 2 "no checkpoint found at $tmp/nowhere" -- "$nlpkit" evaluate "$tmp/nowhere"
cp -r "$run" "$tmp/broken"
best=$(best_of "$tmp/broken")
printf 'garbage' >> "$tmp/broken/checkpoints/$best/model.safetensors"
expect 2 "$tmp/broken/checkpoints/$best/model.safetensors" -- "$nlpkit" evaluate "$tmp/broken"
expect 2 "trainer.log_every: unknown key; it moved to 'logging.every'" -- "$nlpkit" train configs/tiny/classifier.yaml trainer.log_every=3
expect 2 "run directory not found: $tmp/nope" -- "$nlpkit" plot "$tmp/nope"
mkdir -p "$tmp/not_a_run"
expect 2 "no metrics.jsonl in $tmp/not_a_run" -- "$nlpkit" plot "$tmp/not_a_run"
[[ ! -e "$tmp/not_a_run/plots" ]] && ok || bad "a failed plot left $tmp/not_a_run/plots behind"
expect 2 "plot: no run logged the metric 'acc'; logged: loss, accuracy" -- "$nlpkit" plot "$run" --metrics acc
expect 2 "runs directory not found: $tmp/nope" -- "$nlpkit" runs list "$tmp/nope"
expect 2 "no runs under $tmp/not_a_run" -- "$nlpkit" runs list "$tmp/not_a_run"
expect 2 "nlpkit --help" -- "$nlpkit" runs
expect 2 "unknown data set 'imagenet'" -- "$nlpkit" data prepare imagenet
expect 2 "nlpkit --help" -- "$nlpkit" frobnicate
expect 2 "nlpkit --help" -- "$nlpkit" train
# Regularizers and EDA: a few steps each, and their bad input.
expect 0 "step 2/2" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/rdrop" trainer.max_steps=2 logging.every=1 logging.progress=line data.test=\"\" regularization.rdrop.alpha=1
expect 0 "step 2/2" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/eda" trainer.max_steps=2 logging.every=1 logging.progress=line data.test=\"\" augmentation.eda.copies=2 augmentation.eda.wordnet="$src/tests/data/wordnet_tiny"
expect 2 "regularization.rdrop.alpha: must be >= 0" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/badrun" regularization.rdrop.alpha=-1
expect 2 "augmentation.eda.swap_rate: must be <= 1" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/badrun" augmentation.eda.swap_rate=1.5
expect 2 "install the Debian package wordnet-base" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/badrun" augmentation.eda.copies=1 augmentation.eda.wordnet="$tmp/no_wordnet"
printf 'good\tfine\nlonely\n' > "$tmp/syn.tsv"
expect 2 "$tmp/syn.tsv:2: expected a word and at least one synonym" -- "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/badrun" augmentation.eda.copies=1 augmentation.eda.wordnet=\"\" augmentation.eda.synonyms="$tmp/syn.tsv"
[[ ! -e "$tmp/badrun" ]] && ok || bad "a failed run left $tmp/badrun behind"
command -v nvidia-smi >/dev/null || expect 2 "device: 'cuda:0' asked for, but CUDA is not available" -- "$nlpkit" train configs/tiny/classifier.yaml device=cuda:0 output_dir="$tmp/badrun"
# Distributed: 2 local ranks over Gloo; rank 0 alone writes.
expect 0 "2 ranks (gloo, torchrun)" -- "$nlpkit" launch --nproc 2 train configs/tiny/classifier.yaml output_dir="$tmp/drun" trainer.max_steps=3 logging.every=1 logging.progress=line data.test=\"\"
[[ -f "$tmp/drun/checkpoints/latest" && -f "$tmp/drun/metrics.jsonl" ]] && ok || bad "distributed run: no checkpoint or metrics"
expect 2 "launch: --nproc must be >= 1" -- "$nlpkit" launch --nproc 0 train configs/tiny/classifier.yaml
expect 2 "launch: no command given" -- "$nlpkit" launch --nproc 2
expect 2 "task language_model does not shard its data" -- "$nlpkit" launch --nproc 2 train configs/tiny/lstm_lm.yaml output_dir="$tmp/dlm"
expect 2 "RANK and WORLD_SIZE are set but MASTER_ADDR is not" -- env RANK=0 WORLD_SIZE=2 "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/badrun"
expect 2 "environment variable RANK='x' is not an integer" -- env RANK=x WORLD_SIZE=2 "$nlpkit" train configs/tiny/classifier.yaml output_dir="$tmp/badrun"
# A rank killed mid-run: the launcher stops the other one and fails with the dead rank's status.
"$nlpkit" launch --nproc 2 train configs/tiny/classifier.yaml output_dir="$tmp/dkill" trainer.epochs=100000 logging.every=1 logging.progress=line distributed.timeout_s=20 > "$tmp/dkill.log" 2>&1 &
launcher=$!
for _ in $(seq 300); do grep -q "^step " "$tmp/dkill.log" 2>/dev/null && break; sleep 0.1; done
rank1=''
for p in $(pgrep -P "$launcher"); do tr '\0' '\n' < "/proc/$p/environ" | grep -qx RANK=1 && rank1=$p; done
if [[ -n "$rank1" ]]; then kill -9 "$rank1"; fi
start=$SECONDS
wait "$launcher"; rc=$?
if [[ $rc -ne 0 && $((SECONDS - start)) -lt 30 ]] && grep -q "launch: rank 1 was killed by signal 9" "$tmp/dkill.log"; then ok; else bad "killed rank: launcher exit $rc after $((SECONDS - start)) s: $(tail -3 "$tmp/dkill.log")"; fi

echo "cli_e2e: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
