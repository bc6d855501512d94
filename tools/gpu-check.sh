#!/usr/bin/env bash
# GPU check: on a machine with an NVIDIA GPU and a CUDA LibTorch, builds nlpkit against that
# LibTorch, runs the `*_CUDA` tests, then a BERT-base-sized masked-LM training benchmark
# (hidden 768, 12 layers, 12 heads, intermediate 3072, vocabulary 30522, sequence 128, bf16
# autocast, AdamW) through `nlpkit train`, and reports tokens/s and model FLOPs utilisation.
#
#   tools/gpu-check.sh                                  # LibTorch of the python3 torch
#   tools/gpu-check.sh --steps 60 --batch-size 128 --precision bf16
#   TORCH_PREFIX=/opt/libtorch tools/gpu-check.sh --skip-tests
#
# Options: --steps N (40; the first 10 are warm-up and not timed), --batch-size N (64),
# --precision bf16|fp16|fp32 (bf16), --skip-tests, --skip-bench. Environment: PYTHON (python3),
# TORCH_PREFIX (default: torch.utils.cmake_prefix_path of $PYTHON's torch), BUILD_DIR
# (build-cuda), OUT (gpu-check-out): report.md, cuda_tests.txt, bench.log, metrics.jsonl,
# build.log land there. PEAK_TFLOPS overrides the GPU's dense peak used for MFU (known: H100,
# H200 989; A100 312; L40S 362; in bf16/fp16).
#
# Needs the build dependencies of tools/install-deps.sh except libtorch-dev (yaml-cpp, GoogleTest,
# nlohmann-json, CLI11, sentencepiece, libpng, utf8proc) and a LibTorch with the C++11 ABI
# (torch.compiled_with_cxx11_abi(); pip wheels have it from torch 2.7 on), since Debian's C++
# libraries use that ABI.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
BUILD_DIR=${BUILD_DIR:-build-cuda}
OUT=${OUT:-gpu-check-out}
steps=40 batch_size=64 precision=bf16 run_tests=1 run_bench=1
while [[ $# -gt 0 ]]; do
  case $1 in
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --steps) steps=$2; shift ;;
    --batch-size) batch_size=$2; shift ;;
    --precision) precision=$2; shift ;;
    --skip-tests) run_tests=0 ;;
    --skip-bench) run_bench=0 ;;
    *) echo "gpu-check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
report="$OUT/report.md"

say() { echo "$*" | tee -a "$report"; }
fail() { echo "gpu-check: $*" | tee -a "$report" >&2; exit 1; }
: > "$report"

# ---------------------------------------------------------------------------- the machine
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv,noheader > "$OUT/gpu.txt" 2>/dev/null || true
torch_info=$("$PYTHON" - <<'EOF' 2>/dev/null || true
import torch
print(torch.__version__, torch.version.cuda, torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
      torch.compiled_with_cxx11_abi(), torch.cuda.device_count(), sep="|")
EOF
)
[[ -n "$torch_info" ]] || fail "$PYTHON cannot import torch (set PYTHON or TORCH_PREFIX)"
IFS='|' read -r torch_version cuda_version cuda_ok gpu_name cxx11 gpu_count <<< "$torch_info"
say "# nlpkit GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
say ""
say "- GPU: $gpu_name (x$gpu_count); driver $(cut -d, -f3 "$OUT/gpu.txt" 2>/dev/null | head -1 | xargs)"
say "- torch $torch_version, CUDA $cuda_version, C++11 ABI $cxx11"
[[ "$cuda_ok" == True ]] || fail "torch sees no CUDA GPU"
[[ "$cxx11" == True ]] || fail "this LibTorch uses the old C++ ABI; Debian's yaml-cpp/gtest will not link (use torch >= 2.7 or a cxx11-ABI libtorch download via TORCH_PREFIX)"

# ---------------------------------------------------------------------------- build
prefix=${TORCH_PREFIX:-$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if ! cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix" -DNLPKIT_SOURCE_FILTER= > "$OUT/build.log" 2>&1 ||
   ! cmake --build "$BUILD_DIR" -j "$(nproc)" --target nlpkit nlpkit_tests >> "$OUT/build.log" 2>&1; then
  tail -20 "$OUT/build.log" >&2
  fail "build failed (see $OUT/build.log)"
fi
say "- built against $prefix"

# ---------------------------------------------------------------------------- *_CUDA tests
if ((run_tests)); then
  set +e
  "$BUILD_DIR/nlpkit_tests" --gtest_filter='*_CUDA*' --gtest_brief=1 > "$OUT/cuda_tests.txt" 2>&1
  rc=$?
  set -e
  summary=$(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/cuda_tests.txt" | tr '\n' ' ')
  say "- *_CUDA tests: exit $rc; $summary"
  ((rc == 0)) || tail -30 "$OUT/cuda_tests.txt" >&2
fi

# ---------------------------------------------------------------------------- benchmark
if ((run_bench)); then
  work="$BUILD_DIR/gpu-bench"
  rm -rf "$work"
  mkdir -p "$work"
  # Synthetic corpus of made-up whole words and a vocab.txt holding them: no tokenizer training,
  # every line fills the 128 positions.
  "$PYTHON" - "$work" "$batch_size" "$steps" <<'EOF'
import random, sys
work, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(0)
specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
words = sorted({"".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 9)))
                for _ in range(40000)})[: 30522 - len(specials) - 1]
with open(f"{work}/vocab.txt", "w") as f:
    f.write("\n".join(specials + ["."] + words) + "\n")
with open(f"{work}/train.txt", "w") as f:
    for _ in range(batch * (steps + 2)):  # one document a line, ten sentences of 13 words
        f.write(" ".join(" ".join(rng.choice(words) for _ in range(13)) + "." for _ in range(10))
                + "\n")
EOF
  cat > "$work/bert_base.yaml" <<EOF
name: gpu_bench_bert_base
task: masked_lm
seed: 1
device: cuda
precision: $precision
cudnn_benchmark: true
output_dir: $work/run
model:
  type: bert
  hidden_size: 768
  num_layers: 12
  num_heads: 12
  intermediate_size: 3072
  max_position_embeddings: 512
tokenizer:
  type: wordpiece
  vocab: $work/vocab.txt
data:
  train: $work/train.txt
  batch_size: $batch_size
  max_length: 128
  next_sentence: false
optimizer:
  type: adamw
  lr: 0.0001
trainer:
  max_steps: $steps
  eval_each_epoch: false
  keep_last: 1
logging:
  every: 1
  progress: line
  tensorboard: false
EOF
  if ! "$BUILD_DIR/nlpkit" train "$work/bert_base.yaml" > "$OUT/bench.log" 2>&1; then
    tail -20 "$OUT/bench.log" >&2
    fail "benchmark run failed (see $OUT/bench.log)"
  fi
  cp "$work/run/metrics.jsonl" "$OUT/metrics.jsonl"
  params=$(grep -oE '\| [0-9]+ parameters' "$OUT/bench.log" | grep -oE '[0-9]+' | head -1)
  "$PYTHON" - "$OUT/metrics.jsonl" "$params" "$gpu_name" "${PEAK_TFLOPS:-}" "$batch_size" \
      "$precision" <<'EOF' | tee -a "$report"
import json, statistics, sys
path, params, gpu, peak, batch, precision = sys.argv[1:7]
params = int(params)
rows = [json.loads(l) for l in open(path)]
train = [r for r in rows if r.get("split") == "train" and r["step"] > 10]  # after warm-up
tps = statistics.median(r["tokens_per_second"] for r in train)
ms = statistics.median(r["ms_per_step"] for r in train)
layers, hidden, seq = 12, 768, 128
# Training FLOPs per token: 6 per parameter (forward 2, backward 4) plus attention's
# score and value products, 12 * layers * hidden * seq (PaLM's appendix B).
flops_per_token = 6 * params + 12 * layers * hidden * seq
known = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
peak_tflops = float(peak) if peak else next((v for k, v in known.items() if k in gpu), None)
achieved = tps * flops_per_token / 1e12
print(f"- BERT-base MLM ({params / 1e6:.1f} M parameters), batch {batch} x seq 128, {precision}: "
      f"{tps:,.0f} tokens/s, {ms:.1f} ms/step (median of {len(train)} steps after 10 warm-up)")
if peak_tflops:
    print(f"- model FLOPs: {achieved:.1f} TFLOP/s = MFU {100 * achieved / peak_tflops:.1f}% "
          f"of {peak_tflops:.0f} TFLOP/s dense peak")
else:
    print(f"- model FLOPs: {achieved:.1f} TFLOP/s (set PEAK_TFLOPS for MFU)")
EOF
fi
echo "gpu-check: report in $report"
