#!/usr/bin/env bash
# mentor serve against llama.cpp's OpenAI server (llama-cpp-python[server]) on the same GGUF,
# one after the other on loopback, driven by the official OpenAI client (benches/serve_openai.py):
# first a functional check of mentor, then the same bounded load test on both.
# Usage: scripts/bench-serve.sh [MODEL_ASSET] [REQUESTS] [CONCURRENCY] [MAX_TOKENS]
#        (default smollm2-135m 32 8 32)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
asset="${1:-smollm2-135m}"; n="${2:-32}"; conc="${3:-8}"; max_tokens="${4:-32}"
python="$("$root/scripts/setup-llamacpp.sh" | tail -1)"
pip="$(dirname "$python")/pip"
"$python" -c 'import openai, fastapi, uvicorn, sse_starlette, starlette_context, pydantic_settings' 2>/dev/null \
  || "$pip" install --quiet openai fastapi uvicorn sse-starlette starlette-context pydantic-settings
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p mentor
mentor="$root/target/release/mentor"
"$mentor" fetch-assets "$asset" --quiet >/dev/null
gguf="$("$mentor" fetch-assets "$asset" --json --quiet | "$python" -c 'import json,sys; print(json.load(sys.stdin)["assets"][0]["path"])')"

wait_up() { for _ in $(seq 600); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done; echo "server at $1 never came up" >&2; return 1; }

echo "== mentor serve ($asset, max-batch $conc) ==" >&2
"$mentor" serve --model "$asset" --port 18080 --max-batch "$conc" --threads 2 >/dev/null 2>/tmp/mentor-serve.log &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_up http://127.0.0.1:18080/health
"$python" "$root/benches/serve_openai.py" check http://127.0.0.1:18080/v1 "$asset"
echo "mentor: $("$python" "$root/benches/serve_openai.py" load http://127.0.0.1:18080/v1 "$asset" "$n" "$conc" "$max_tokens")"
kill -TERM $pid; wait $pid || true

echo "== llama.cpp server (llama-cpp-python $("$python" -c 'import llama_cpp; print(llama_cpp.__version__)')) ==" >&2
"$python" -m llama_cpp.server --model "$gguf" --model_alias "$asset" --port 18081 --n_threads 2 \
  --n_ctx 2048 >/dev/null 2>/tmp/llamacpp-serve.log &
pid=$!
wait_up http://127.0.0.1:18081/v1/models
echo "llama.cpp: $("$python" "$root/benches/serve_openai.py" load http://127.0.0.1:18081/v1 "$asset" "$n" "$conc" "$max_tokens")"
kill -TERM $pid; wait $pid || true
