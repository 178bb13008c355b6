#!/usr/bin/env bash
# The real-size experiments of issue #10 on a GPU machine: every config in examples/gpu/ (or
# those named), 3 seeds each, with the CUDA binary in bf16; validation selects the checkpoint,
# the test split is scored once at the end of each run. One JSON summary line per run in
# ${OUT:-runs/gpu}/summaries.jsonl; EXPERIMENTS.md takes mean ± sd over the seeds.
#
#   examples/gpu/run.sh [CONFIG...]        SEEDS="0 1 2" by default
#
# Needs on the GPU machine: dist/mentor-cuda (scripts/build-cuda.sh, carried as .xz), the shared
# reference data (MENTOR_SHARED_DATA; 15 MB, carried) and the student / teacher GGUFs in
# $MENTOR_HOME/models (carried in chunks: scripts/gpu-pack.sh). A run resumes where it stopped,
# so a run longer than one device call goes on in the next.
#
# The results grids at GPU size (issue #32: rows 3 and 4) run through the sweep instead, which
# resumes cell by cell in the same way:
#   MENTOR_DEVICE=cuda MENTOR_DTYPE=bf16 dist/mentor-cuda sweep examples/grids/gpu/minds-mirror-row3-gpu.toml
#   MENTOR_DEVICE=cuda MENTOR_DTYPE=bf16 dist/mentor-cuda sweep examples/grids/gpu/elad-row4-gpu.toml
set -uo pipefail
cd "$(dirname "$0")/../.."
bin="${MENTOR_CUDA_BIN:-dist/mentor-cuda}"
if [ ! -x "$bin" ] && [ -f "$bin.xz" ]; then xz -dkf "$bin.xz" && chmod +x "$bin"; fi
out="${OUT:-runs/gpu}"; mkdir -p "$out"
configs=("$@"); [ ${#configs[@]} -gt 0 ] || configs=(examples/gpu/*.toml)
libs="$(python3 -c 'import glob, os, nvidia; print(":".join(sorted({os.path.dirname(p) for r in nvidia.__path__ for p in glob.glob(os.path.join(r, "**", "lib*.so*"), recursive=True)})))' 2>/dev/null)"
export LD_LIBRARY_PATH="$libs:${LD_LIBRARY_PATH:-}"
for cfg in "${configs[@]}"; do
  for seed in ${SEEDS:-0 1 2}; do
    name="$(basename "$cfg" .toml)-s$seed"
    echo "== $name" >&2
    "$bin" --device cuda --dtype bf16 distill "$cfg" --seed "$seed" --run-dir "runs/gpu/$name" --json \
      2>>"$out/$name.log" | tail -1 >> "$out/summaries.jsonl"
  done
done
