#!/usr/bin/env bash
# Keeps what a sweep's finished cells produced, small enough to commit: each finished cell's
# summary.json, cell.json, config.toml, report.html and per-question predictions (RUN/eval/), and
# the grid's results.{md,json}. Run directories do not outlive a working session's checkout;
# these do. To continue a grid in a new checkout, copy them back first — the sweep skips a cell
# whose summary.json is there:
#   scripts/save-results.sh runs/svamp-row1 results/svamp-row1      # before stopping
#   mkdir -p runs && cp -r results/svamp-row1 runs/                  # in the next session
#   mentor sweep examples/grids/svamp-row1.toml                      # continues
set -euo pipefail
src="${1:?usage: save-results.sh GRID_DIR DEST}"
dest="${2:?usage: save-results.sh GRID_DIR DEST}"
mkdir -p "$dest"
for f in results.md results.json sweep.json; do
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
  n=$((n + 1))
done
echo "kept $n finished cells of $src in $dest" >&2
