#!/usr/bin/env bash
# One training step (forward + backward + AdamW, float32) of SmolLM2-135M at batch 8 × 256,
# mentor vs PyTorch (transformers LlamaForCausalLM, same config and thread count), one after the
# other on this machine, ROUNDS times alternating. Prints each JSON line with the share of CPU
# time the hypervisor stole from this VM while it ran (`"steal_pct"`, scripts/lib/steal.sh).
# With MENTOR_MKL set (scripts/setup-mkl.sh), each round also runs mentor with MKL's sgemm.
# Usage: scripts/bench-train.sh [STEPS] [THREADS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-3}"; threads="${2:-$(nproc)}"; rounds="${3:-1}"
home="${MENTOR_HOME:-$HOME/.cache/mentor}"
gguf="$home/models/SmolLM2-135M-Instruct.Q4_1.gguf"
cargo build --release --bin mentor
[ -f "$gguf" ] || ./target/release/mentor fetch-assets smollm2-135m
py="$(scripts/setup-torch.sh | tail -1)"

source scripts/lib/steal.sh

for _ in $(seq "$rounds"); do
  MENTOR_MKL= with_steal ./target/release/mentor bench train --model smollm2-135m --batch 8 --seq 256 --steps "$steps" --threads "$threads" --json
  if [ -n "${MENTOR_MKL:-}" ]; then
    with_steal ./target/release/mentor bench train --model smollm2-135m --batch 8 --seq 256 --steps "$steps" --threads "$threads" --json
  fi
  with_steal "$py" benches/train_step_torch.py --gguf "$gguf" --batch 8 --seq 256 --steps "$steps" --threads "$threads"
done
