#!/usr/bin/env bash
# Row 3's tables (EXPERIMENTS.md, Results II, row 3) from its saved cells, into DIR/results.md:
# the variants in `cot` beside the untrained student, then in `vote`, then each student in its
# inference modes against its own `cot`.
#   scripts/minds-mirror-row3-tables.sh [DIR]        DIR: results/minds-mirror-row3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
R="${1:-results/minds-mirror-row3}"
m="${MENTOR:-target/release/mentor}"
tmp="$(mktemp)"
{
  "$m" compare "$R"/untrained/eval/*.jsonl "$R"/*-s[0-9] --baseline one-cot --markdown
  printf '\n## In `vote` (3 samples at T = 0.7)\n\n'
  "$m" compare "$R"/*-s[0-9] --baseline one-cot --mode vote --markdown
  printf '\n## Each student in its modes, against its own `cot` (`self-eval-vote` judges the samples `vote` drew)\n\n'
  "$m" compare "$R"/k-cots-self-eval-s[0-9] --mode cot,vote,self-eval-vote --baseline @cot --markdown
  echo
  "$m" compare "$R"/k-cots-s[0-9] "$R"/one-cot-s[0-9] --mode cot,vote --baseline @cot --markdown
} > "$tmp"
mv "$tmp" "$R/results.md"
echo "wrote $R/results.md" >&2
