#!/usr/bin/env bash
# Every GPU measurement of issue #10 in one command, on a GPU machine with PyTorch and
# transformers installed (no Rust, no network): the CUDA binary from scripts/build-cuda.sh
# against the CPU path and against PyTorch on the same card.
#
#   scripts/gpu-bench.sh [STAGE...]     STAGE: smoke parity train generate teacher (default: all but smoke)
#
# Models are the shapes in benches/configs/, randomly initialised from a seed on both sides:
# weights change neither a step's time nor its memory, and a config travels where a weights
# file cannot (the GPU machines reach nothing). Where the real SmolLM2-135M GGUF is present in
# $MENTOR_HOME/models (or as chunks from scripts/gpu-pack.sh under .gpu/), parity also runs on
# its real weights.
#
# Results: one JSON line per measurement in ${OUT:-/tmp}/gpu-bench.jsonl; logs beside it.
# Environment: MENTOR_CUDA_BIN (default dist/mentor-cuda or its .xz), PEAK_TFLOPS (default 989,
# H100/H200 SXM dense bf16), TRAIN_BATCH (default 32), TRAIN_SEQ (default 512).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}"; mkdir -p "$out"
results="$out/gpu-bench.jsonl"; log="$out/gpu-bench.log"
py="${PYTHON:-python3}"
peak="${PEAK_TFLOPS:-989}"; tb="${TRAIN_BATCH:-32}"; ts="${TRAIN_SEQ:-512}"
stages=("$@"); [ ${#stages[@]} -gt 0 ] || stages=(parity train generate teacher)
export MENTOR_HOME="${MENTOR_HOME:-$PWD/.gpu/home}"

bin="${MENTOR_CUDA_BIN:-dist/mentor-cuda}"
if [ ! -x "$bin" ] && [ -f "$bin.xz" ]; then xz -dkf "$bin.xz" && chmod +x "$bin"; fi
[ -x "$bin" ] || { echo "no $bin: run scripts/build-cuda.sh on the build machine and carry dist/" >&2; exit 1; }

# the CUDA libraries PyTorch's wheels brought (cudarc loads them at run time)
libs="$("$py" - <<'EOF'
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
print(":".join(sorted({os.path.dirname(p) for r in roots for p in glob.glob(os.path.join(r, "**", "lib*.so*"), recursive=True)})))
EOF
)"
export LD_LIBRARY_PATH="$libs:${LD_LIBRARY_PATH:-}"

# a GGUF moved in chunks (scripts/gpu-pack.sh): put it back together
for first in .gpu/parts/*.part-aa; do
  [ -e "$first" ] || continue
  name="$(basename "$first" .part-aa)"
  mkdir -p "$MENTOR_HOME/models"
  cat ".gpu/parts/$name".part-* > "$MENTOR_HOME/models/$name"
  (cd "$MENTOR_HOME/models" && sha256sum "$name" | cut -d' ' -f1 > "$name.sha256")
done

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$log"
run() {  # run LABEL CMD...: append the command's JSON line to the results, its stderr to the log
  echo "== $1: ${*:2}" | tee -a "$log" >&2
  local line
  line="$("${@:2}" 2>>"$log" | tail -1)"
  echo "$line" | tee -a "$results"
}
m="$bin"; smol=benches/configs/smollm2-135m.json; qwen05=benches/configs/qwen2.5-0.5b.json
qwen15=benches/configs/qwen2.5-1.5b.json

for stage in "${stages[@]}"; do
  case "$stage" in
  smoke)  # does the binary find the GPU and its libraries at all
    run smoke "$m" --device cuda --dtype bf16 bench parity --model "$smol" --batch 1 --seq 16 --steps 2 --json ;;
  parity)
    for dt in f32 bf16; do
      run "parity $dt" "$m" --device cuda --dtype "$dt" bench parity --model "$smol" --batch 4 --seq 128 --steps 10 --json
    done
    if [ -f "$MENTOR_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
      for dt in f32 bf16; do
        run "parity real $dt" "$m" --device cuda --dtype "$dt" bench parity --model smollm2-135m --batch 4 --seq 128 --steps 10 --json
      done
    fi ;;
  train)
    for cfg in "$smol" "$qwen05"; do
      run "train mentor $cfg" "$m" --device cuda --dtype bf16 bench train --model "$cfg" --batch "$tb" --seq "$ts" --steps 5 --warmup 2 --peak-tflops "$peak" --json
      run "train torch $cfg" "$py" benches/train_step_torch.py --config "$cfg" --device cuda --dtype bf16 --batch "$tb" --seq "$ts" --steps 5 --warmup 2 --peak-tflops "$peak"
    done ;;
  generate)
    run "generate mentor" "$m" --device cuda --dtype bf16 bench generate --model "$smol" --batch 1,32,128 --new-tokens 128 --json
    run "generate torch" "$py" benches/generate_torch.py --config "$smol" --device cuda --dtype bf16 --batch 1,32,128 --new-tokens 128 ;;
  teacher)  # the embedded teacher's path: Q4_K projections, f32 activations
    run "teacher mentor" "$m" --device cuda bench generate --model "$qwen15" --quantized --batch 1,16,64 --new-tokens 128 --json ;;
  *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
echo "results: $results" >&2
