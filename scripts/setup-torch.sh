#!/usr/bin/env bash
# Installs the reference stack (PyTorch + transformers + gguf) from PyPI into a venv, for the
# comparison scripts in benches/ (logits, tokenizer, training-step and generation benchmarks).
# PyPI's Linux torch wheel brings its CUDA libraries (~3 GB); they are unused on CPU.
# Usage: scripts/setup-torch.sh   (prints the venv's python path last)
set -euo pipefail
home="${MENTOR_HOME:-$HOME/.cache/mentor}"
venv="$home/torch-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, transformers, gguf, accelerate' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "torch==2.11.*" "transformers==4.57.*" "gguf>=0.17" "tokenizers" "psutil" "numpy" "sentencepiece" "accelerate"
fi
echo "$venv/bin/python"
