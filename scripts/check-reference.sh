#!/usr/bin/env bash
# Our SmolLM2-135M against the references, on the same GGUF: logits and greedy tokens vs Hugging
# Face transformers (PyTorch, float32), tokenizer ids vs llama.cpp (llama-cpp-python, vocab only).
# Installs the reference stack from PyPI on first use (scripts/setup-torch.sh).
# Usage: scripts/check-reference.sh [GGUF]
set -euo pipefail
cd "$(dirname "$0")/.."
home="${MENTOR_HOME:-$HOME/.cache/mentor}"
gguf="${1:-$home/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
[ -f "$gguf" ] || cargo run --release --bin mentor -- fetch-assets smollm2-135m
py="$(scripts/setup-torch.sh | tail -1)"
"$py" -c 'import llama_cpp' 2>/dev/null || "$(dirname "$py")/pip" install --quiet "llama-cpp-python==0.3.*"
out="$home/reference/$(basename "$gguf" .gguf)"
"$py" benches/reference_dump.py --gguf "$gguf" --out "$out"
MENTOR_REFERENCE_DIR="$out" MENTOR_REFERENCE_GGUF="$gguf" \
  cargo test --release -p mentor-model --test reference -- --ignored --nocapture
