#!/usr/bin/env bash
# Keeps what a sweep's finished cells produced, small enough to commit: each finished cell's
# summary.json, cell.json, config.toml, report.html, per-question predictions (RUN/eval/) and
# the training logs with each validation's answers (RUN/student/…), and
# the grid's results.{md,json}. Run directories do not outlive a working session's checkout;
# these do. To continue a grid in a new checkout, copy them back first — the sweep skips a cell
# whose summary.json is there:
#   scripts/save-results.sh runs/svamp-row1 results/svamp-row1      # before stopping
#   mkdir -p runs && cp -r results/svamp-row1 runs/                  # in the next session
#   mentor sweep examples/grids/svamp-row1.toml                      # continues
# A live teacher's replies (hours of an embedded model's time, or money) live in a cell's run
# store, which is not kept by default (a few MB a cell): name the cells whose stores to keep in
# KEEP_STORES, e.g. the first cell of a grid whose other variants start from it (teacher_from):
#   KEEP_STORES="k-cots-self-eval-s0" scripts/save-results.sh runs/minds-mirror-row3 results/minds-mirror-row3
# (kept gzipped as mentor.sqlite.gz; `gunzip -k` it into runs/ to continue without paying again).
set -euo pipefail
src="${1:?usage: save-results.sh GRID_DIR DEST}"
dest="${2:?usage: save-results.sh GRID_DIR DEST}"
mkdir -p "$dest"
for f in results.md results.json sweep.json curves.svg; do
  [ -f "$src/$f" ] && cp "$src/$f" "$dest/"
done
n=0
for cell in "$src"/*/; do
  cell="${cell%/}"
  [ -f "$cell/summary.json" ] || continue
  name="$(basename "$cell")"
  mkdir -p "$dest/$name/eval"
  for f in summary.json cell.json config.toml report.html; do
    [ -f "$cell/$f" ] && cp "$cell/$f" "$dest/$name/"
  done
  cp "$cell"/eval/*.jsonl "$dest/$name/eval/"
  # the training logs and each validation's answers (student/[round-N/]stage-M/log.jsonl and
  # valid/step-K.jsonl): the curve the checkpoint was chosen on, and what the others answered
  (cd "$cell" && find student \( -path '*/valid/step-*.jsonl' -o -name log.jsonl \) 2>/dev/null) | while read -r f; do
    mkdir -p "$dest/$name/$(dirname "$f")"
    cp "$cell/$f" "$dest/$name/$f"
  done
  n=$((n + 1))
done
# the untrained student a grid scored once (`untrained = true`)
if [ -d "$src/untrained/eval" ]; then
  mkdir -p "$dest/untrained/eval"
  cp "$src"/untrained/eval/*.jsonl "$dest/untrained/eval/"
  [ -f "$src/untrained/config.toml" ] && cp "$src/untrained/config.toml" "$dest/untrained/"
fi
for name in ${KEEP_STORES:-}; do
  store="$src/$name/mentor.sqlite"
  [ -f "$store" ] || { echo "KEEP_STORES: no $store" >&2; exit 1; }
  mkdir -p "$dest/$name"
  # a consistent copy even while a run writes to it (WAL): SQLite's own backup
  sqlite3 "$store" ".backup '$dest/$name/mentor.sqlite'"
  gzip -f "$dest/$name/mentor.sqlite"
  echo "kept the run store of $name ($(du -h "$dest/$name/mentor.sqlite.gz" | cut -f1))" >&2
done
echo "kept $n finished cells of $src in $dest" >&2
