#!/usr/bin/env bash
# Mind's Mirror with a live (embedded) teacher: one teacher run (K = 3 CoTs, M = 1
# self-evaluations each), then three students from it — 1 CoT, K CoTs, K CoTs + self-evaluation —
# each scored on the test slice with CoT inference and with self-evaluation-weighted voting.
# Usage: scripts/minds-mirror-live.sh [MENTOR_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
mentor=${1:-target/release/mentor}
$mentor annotate examples/svamp-minds-mirror-live.toml --run-dir runs/mm-teacher --json > runs/mm-teacher.annotate.json
for v in 1cot kcot live; do
  dir=runs/mm-$v
  mkdir -p "$dir"
  # The variants reuse the teacher's outputs: the same store, so nothing is asked twice.
  [ -f "$dir/mentor.sqlite" ] || cp runs/mm-teacher/mentor.sqlite* "$dir/"
  $mentor distill examples/svamp-minds-mirror-$v.toml --run-dir "$dir" --no-before --json > "$dir.distill.json"
  $mentor eval examples/svamp-minds-mirror-$v.toml --run-dir "$dir" --split test --mode self-eval-vote --json > "$dir.sevote.json"
done
