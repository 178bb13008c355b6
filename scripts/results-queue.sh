#!/usr/bin/env bash
# The results grids, one after another, each resumable: start it at the beginning of a working
# session and it continues where the last one stopped (a finished grid is skipped in seconds).
#   MENTOR_SHARED_DATA=…/shared/data nohup scripts/results-queue.sh > runs/queue.log 2>&1 &
# Each grid runs the binary copied at its own first start (runs/<grid>/.bin/mentor); MENTOR, if
# set, is the binary that starts a grid not yet begun (default: target/release/mentor).
# Where the checkout lives on between sessions, let it run until the session ends: the cell it
# cuts resumes from its last checkpoint when the queue is relaunched. Where a run directory does
# not outlive the session (a fresh clone each time), a cell still training at its end is lost:
# MENTOR_QUEUE_UNTIL (unix seconds) starts no cell that would not finish by then (`mentor sweep
# --until`) and ends the queue there, leaving the machine to the session's end:
#   MENTOR_QUEUE_UNTIL=$(date -d '+150 min' +%s) MENTOR_SHARED_DATA=… nohup scripts/results-queue.sh …
set -uo pipefail
cd "$(dirname "$0")/.."
mentor="${MENTOR:-target/release/mentor}"
export MENTOR_PROGRESS_SECS="${MENTOR_PROGRESS_SECS:-60}"
until_args=()
if [ -n "${MENTOR_QUEUE_UNTIL:-}" ]; then until_args=(--until "@$MENTOR_QUEUE_UNTIL"); fi
for grid in \
  examples/grids/svamp-row1.toml \
  examples/grids/fair-mapd-row2.toml \
  examples/grids/kd-sciq.toml \
  examples/grids/minds-mirror-row3.toml \
  examples/grids/elad-row4.toml \
  examples/grids/minds-mirror-row3-gold.toml \
  examples/grids/kd-sciq-followups.toml \
  examples/grids/fair-mapd-row2-token.toml \
  examples/grids/fair-mapd-row2-followups.toml \
  examples/grids/svamp-row1-followups.toml \
  examples/grids/fair-mapd-row2-teachers.toml; do
  name="$(basename "$grid" .toml)"
  echo "== $(date -u +%FT%TZ) $grid" >&2
  # a grid stopped by a signal ends the queue (the session is ending); a failed cell does not
  "$mentor" sweep "$grid" "${until_args[@]}" >> "runs/$name.log" 2>&1
  rc=$?
  if [ "$rc" -gt 128 ]; then exit "$rc"; fi
  if [ "$rc" -eq 75 ]; then
    echo "== $(date -u +%FT%TZ) $grid: its next cell would not finish by MENTOR_QUEUE_UNTIL; the queue stops (see runs/$name.log)" >&2
    exit 0
  fi
  echo "== $grid exited with $rc (see runs/$name.log)" >&2
done
