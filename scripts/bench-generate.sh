#!/usr/bin/env bash
# Batched greedy generation of 128 new tokens at batch 1 and 16 on the SmolLM2-135M GGUF weights,
# mentor vs transformers `generate` (float32, same prompts and chat template, same thread count),
# ROUNDS times alternating; each JSON line carries the run's hypervisor steal (scripts/lib/steal.sh).
# Usage: scripts/bench-generate.sh [BATCHES] [THREADS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
batches="${1:-1,16}"; threads="${2:-$(nproc)}"; rounds="${3:-1}"
home="${MENTOR_HOME:-$HOME/.cache/mentor}"
gguf="$home/models/SmolLM2-135M-Instruct.Q4_1.gguf"
cargo build --release --bin mentor
[ -f "$gguf" ] || ./target/release/mentor fetch-assets smollm2-135m
py="$(scripts/setup-torch.sh | tail -1)"
source scripts/lib/steal.sh

for _ in $(seq "$rounds"); do
  with_steal ./target/release/mentor bench generate --model smollm2-135m --batch "$batches" --new-tokens 128 --threads "$threads" --json
  with_steal "$py" benches/generate_torch.py --gguf "$gguf" --batch "$batches" --new-tokens 128 --threads "$threads"
done
