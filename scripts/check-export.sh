#!/usr/bin/env bash
# Exports a run's trained student as an HF directory and as GGUF, then checks that transformers
# and llama.cpp generate the same greedy tokens as mentor (benches/check_export.py).
# Usage: scripts/check-export.sh [RUN] [GGUF_TYPE]   (default runs/quickstart, f32)
# Needs the reference venv (scripts/setup-llamacpp.sh installs torch, transformers, llama-cpp-python).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
run="${1:-runs/quickstart}"
ty="${2:-f32}"
[ -f "$run/mentor.sqlite" ] || { echo "no run at $run: run the README's first command, or pass a run directory" >&2; exit 1; }
python="$("$root/scripts/setup-llamacpp.sh" | tail -1)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p mentor
mentor="$root/target/release/mentor"
out="$(mktemp -d)"
"$mentor" export "$run" --format hf --out "$out/hf" --quiet
"$mentor" export "$run" --format gguf --gguf-type "$ty" --out "$out/gguf" --quiet
gguf="$(ls "$out"/gguf/*.gguf)"
cat > "$out/prompts.jsonl" <<'P'
{"id": "sum", "prompt": "Question: Tom has 3 apples and buys 5 more. How many apples does he have?\nAnswer:"}
{"id": "csqa", "prompt": "Where would you put a plate after washing it? Choices: (A) cupboard (B) table (C) floor\nAnswer:"}
{"id": "explain", "prompt": "explain: A train travels 60 km in 1.5 hours. What is its speed?\n"}
{"id": "chatml", "prompt": "<|im_start|>user\nWhat is 7 times 8?<|im_end|>\n<|im_start|>assistant\n"}
P
"$mentor" generate --model "$out/hf" --prompts "$out/prompts.jsonl" --raw --max-tokens 32 --json --quiet > "$out/mentor.json"
"$python" "$root/benches/check_export.py" "$out/hf" "$gguf" "$out/mentor.json" 32 \
  $([ "$ty" = f32 ] && echo --exact-gguf)
echo "exports kept in $out"
