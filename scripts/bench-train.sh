#!/usr/bin/env bash
# One training step (forward + backward + AdamW, float32) of SmolLM2-135M at batch 8 × 256,
# mentor vs PyTorch (transformers LlamaForCausalLM, same config and thread count), one after the
# other on this machine, ROUNDS times alternating. Prints each JSON line with the share of CPU
# time the hypervisor stole from this VM while it ran (`"steal_pct"`): on a shared VM a run with
# high steal is slower for reasons outside the program, so compare rounds with low steal.
# Usage: scripts/bench-train.sh [STEPS] [THREADS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-3}"; threads="${2:-$(nproc)}"; rounds="${3:-1}"
home="${MENTOR_HOME:-$HOME/.cache/mentor}"
gguf="$home/models/SmolLM2-135M-Instruct.Q4_1.gguf"
cargo build --release --bin mentor
[ -f "$gguf" ] || ./target/release/mentor fetch-assets smollm2-135m
py="$(scripts/setup-torch.sh | tail -1)"

# total and steal jiffies of all CPUs, from /proc/stat
cpu_ticks() { awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $9}' /proc/stat; }
# runs "$@", then appends the steal share of its wall time to its JSON line
with_steal() {
  local before after line
  before=$(cpu_ticks)
  line=$("$@" | tail -1)
  after=$(cpu_ticks)
  read -r t0 s0 <<<"$before"; read -r t1 s1 <<<"$after"
  local pct; pct=$(awk -v t="$((t1 - t0))" -v s="$((s1 - s0))" 'BEGIN{printf "%.1f", t ? 100*s/t : 0}')
  echo "${line%\}}, \"steal_pct\": $pct}"
}

for _ in $(seq "$rounds"); do
  with_steal ./target/release/mentor bench train --model smollm2-135m --batch 8 --seq 256 --steps "$steps" --threads "$threads" --json
  with_steal "$py" benches/train_step_torch.py --gguf "$gguf" --batch 8 --seq 256 --steps "$steps" --threads "$threads"
done
