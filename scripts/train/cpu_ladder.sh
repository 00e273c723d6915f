#!/usr/bin/env bash
# Train the ssf-small ladder on the CPU in turns: each round gives each rate point MINUTES of
# training (resumed from its run directory, optimizer state kept), then exports it. Stop it at any
# time; rerunning resumes. Starting weights: START_DIR/ssf-small-qN.pt (the shipped ladder).
# Usage: scripts/train/cpu_ladder.sh START_DIR RUNS_DIR [MINUTES] [ROUNDS]
set -euo pipefail
start=${1:?usage: scripts/train/cpu_ladder.sh START_DIR RUNS_DIR [MINUTES] [ROUNDS]}
runs=${2:?usage: scripts/train/cpu_ladder.sh START_DIR RUNS_DIR [MINUTES] [ROUNDS]}
minutes=${3:-10}
rounds=${4:-100}
lambdas=(0.0018 0.0035 0.0067 0.013)  # q1..q4, as scripts/train/train_ladder.sh
vidcodec=${VIDCODEC:-.venv/bin/vidcodec}
for round in $(seq 1 "$rounds"); do
    for q in 3 4 2 1; do
        echo "== round $round q$q $(date -u +%FT%TZ)"
        "$vidcodec" train --config configs/train/ssf-small-chains-cpu.yaml --lmbda "${lambdas[q-1]}" \
            --init-from "$start/ssf-small-q$q.pt" --max-minutes "$minutes" --out "$runs/q$q" \
            --export "$runs/q$q/ssf-small-q$q.pt" --quiet
    done
done
