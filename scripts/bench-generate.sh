#!/usr/bin/env bash
# Batched greedy generation of 128 new tokens at batch 1 and 16 on the SmolLM2-135M GGUF weights,
# mentor vs transformers `generate` (float32, same prompts and chat template, same thread count).
# Usage: scripts/bench-generate.sh [BATCHES] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
batches="${1:-1,16}"; threads="${2:-$(nproc)}"
home="${MENTOR_HOME:-$HOME/.cache/mentor}"
gguf="$home/models/SmolLM2-135M-Instruct.Q4_1.gguf"
cargo build --release --bin mentor
[ -f "$gguf" ] || ./target/release/mentor fetch-assets smollm2-135m
py="$(scripts/setup-torch.sh | tail -1)"
./target/release/mentor bench generate --model smollm2-135m --batch "$batches" --new-tokens 128 --threads "$threads" --json
"$py" benches/generate_torch.py --gguf "$gguf" --batch "$batches" --new-tokens 128 --threads "$threads"
