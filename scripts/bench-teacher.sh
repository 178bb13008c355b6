#!/usr/bin/env bash
# The embedded teacher's decode, side by side in one run: mentor's quantised path and its f32
# path vs llama.cpp (llama-cpp-python, same GGUF, prompts, chat template, greedy, a fixed number
# of new tokens, same thread count). Results go to BENCHMARKS.md.
# Usage: scripts/bench-teacher.sh [MODEL] [BATCHES] [NEW_TOKENS] [THREADS]
#   MODEL: an asset name (default qwen2.5-coder-0.5b)
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-qwen2.5-coder-0.5b}"; batches="${2:-1,8}"; new="${3:-64}"; threads="${4:-$(nproc)}"
cargo build --release --bin mentor
./target/release/mentor fetch-assets "$model" >/dev/null
gguf="$(./target/release/mentor fetch-assets --list --json | python3 -c "import json,sys; print([a['path'] for a in json.loads(sys.stdin.read().splitlines()[-1])['assets'] if a['name']=='$model'][0])")"
py="$(scripts/setup-llamacpp.sh | tail -1)"
./target/release/mentor bench generate --model "$model" --quantized \
  --batch "$batches" --new-tokens "$new" --threads "$threads" --json
./target/release/mentor bench generate --model "$model" --batch "$batches" --new-tokens "$new" \
  --threads "$threads" --json
"$py" benches/generate_llamacpp.py --gguf "$gguf" --batch "$batches" --new-tokens "$new" --threads "$threads"
