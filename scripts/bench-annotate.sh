#!/usr/bin/env bash
# Side by side, in one run, against one loopback server process: mentor's teacher call path vs the
# official `openai` Python client (asyncio), bare and with a per-reply SQLite commit.
# Usage: scripts/bench-annotate.sh [REQUESTS] [LEVELS]     (defaults: 2000 1,64,512)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}; levels=${2:-1,64,512}
python3 -c 'import openai' 2>/dev/null || python3 -m pip install -q openai
cargo build --release --bin mentor >&2
out=$(mktemp -d)
./target/release/mentor bench loopback > "$out/url" &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 50); do [ -s "$out/url" ] && break; sleep 0.1; done
url=$(head -1 "$out/url")
echo "server: $url" >&2
echo "== mentor (call path = cache + budget + limiter + retry + ledger; bare = HTTP backend only)"
./target/release/mentor bench annotate --server "$url" --in-flight "$levels" --requests "$n"
echo "== openai-python $(python3 -c 'import openai; print(openai.__version__)') (asyncio)"
python3 benches/annotate_openai.py --server "$url" --in-flight "$levels" --requests "$n"
