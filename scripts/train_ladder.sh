#!/usr/bin/env bash
# Fine-tunes the ssf-small rate ladder from the shipped q3 model (CompressAI's MSE lambdas) and
# exports each to runs/ssf-small-qN/ssf-small-qN.pt. Resumable: rerun after an interruption.
# Usage: scripts/train_ladder.sh [STEPS]   (default 600 fine-tuning steps per rate point)
set -euo pipefail
steps=${1:-600}
vidcodec=".venv/bin/vidcodec"
train() {  # quality lambda init-checkpoint
    local out="runs/ssf-small-q$1"
    "$vidcodec" train --config configs/train/ssf-small.yaml --lmbda "$2" --steps "$steps" \
        --init-from "$3" --out "$out" --export "$out/ssf-small-q$1.pt" --quiet
}
train 4 0.013 vidcodec/weights/ssf-small-q3.pt
train 2 0.0035 vidcodec/weights/ssf-small-q3.pt
train 1 0.0018 runs/ssf-small-q2/ssf-small-q2.pt
