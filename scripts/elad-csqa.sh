#!/usr/bin/env bash
# ELAD and its baselines at equal teacher budget on a CommonsenseQA slice (EXPERIMENTS.md,
# Recipes III): the same config with selection = elad / random, and revision vs writing from
# scratch; then one report with the three accuracy-per-teacher-token curves.
# Usage: scripts/elad-csqa.sh [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${1:-0}"
cargo build --release --bin mentor
m=./target/release/mentor
cfg=examples/elad-csqa.toml
mkdir -p runs/elad-variants
sed 's/^selection = "elad" .*/selection = "random"/' "$cfg" > runs/elad-variants/random.toml
sed 's/^revise = true .*/revise = false/' "$cfg" > runs/elad-variants/scratch.toml
$m distill "$cfg" --seed "$seed" --run-dir "runs/elad-$seed" --json > "runs/elad-$seed.json"
$m distill runs/elad-variants/random.toml --seed "$seed" --run-dir "runs/elad-random-$seed" --json > "runs/elad-random-$seed.json"
$m distill runs/elad-variants/scratch.toml --seed "$seed" --run-dir "runs/elad-scratch-$seed" --json > "runs/elad-scratch-$seed.json"
$m report "runs/elad-$seed" --compare "runs/elad-random-$seed" "runs/elad-scratch-$seed"
