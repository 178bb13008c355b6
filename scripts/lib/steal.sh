# Sourced by the side-by-side benchmark scripts. `with_steal CMD…` runs CMD and prints its last
# line (a JSON object) with `"steal_pct"` appended: the share of CPU time the hypervisor stole
# from this VM while it ran. On a shared VM a run with high steal is slower for reasons outside
# the program, so compare rounds with low steal.

# total and steal jiffies of all CPUs, from /proc/stat
cpu_ticks() { awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $9}' /proc/stat; }

with_steal() {
  local before after line
  before=$(cpu_ticks)
  line=$("$@" | tail -1)
  after=$(cpu_ticks)
  read -r t0 s0 <<<"$before"; read -r t1 s1 <<<"$after"
  local pct; pct=$(awk -v t="$((t1 - t0))" -v s="$((s1 - s0))" 'BEGIN{printf "%.1f", t ? 100*s/t : 0}')
  echo "${line%\}}, \"steal_pct\": $pct}"
}
