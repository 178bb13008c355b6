#!/usr/bin/env bash
# libFuzzer harnesses for every parser of model and user text (fuzz/fuzz_targets/): each runs
# RUNS inputs (default 1,000,000) or SECONDS seconds, whichever comes first; a crash leaves its
# input in fuzz/artifacts/<target>/ — keep it as a regression case in the parser's tests.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#   scripts/fuzz-harnesses.sh                  # every target, 10^6 inputs each
#   RUNS=100000 scripts/fuzz-harnesses.sh extract equation
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
runs="${RUNS:-1000000}"
secs="${SECONDS_EACH:-3600}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  # cheapest first, so a short session gets the most harnesses done
  targets=(equation verdict_review rationale_text elad extract serve_request chat_template rows)
fi
cargo +nightly fuzz build -O "${targets[@]/#/}" >/dev/null 2>&1 || cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  start=$(date +%s)
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- -runs="$runs" -max_total_time="$secs" \
    -max_len=4096 -timeout=10 -rss_limit_mb=2048 2>&1 | grep -E "Done [0-9]+ runs|ERROR|panicked|SUMMARY|DONE" | tail -3 || true
  echo "$t: $runs inputs, $(( $(date +%s) - start )) s"
done
