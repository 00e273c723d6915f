#!/usr/bin/env bash
# The ssf-small rate ladder by curriculum (README "Training and shipped models"), resumable: rerun
# after an interruption. Exports go to runs/ssf-small-qN/ssf-small-qN.pt.
#   1. stage intra at q3 from the shipped q3 (its intra path trained as an image codec);
#   2. stage intra at q1, q2, q4: each old qN keeps its inter path and takes the new q3 intra path
#      (--init-role intra=...), fine-tuned at its own lambda.
# Usage: scripts/train_ladder.sh [Q3_STEPS] [FINETUNE_STEPS]   (defaults 8000 and 1500)
set -euo pipefail
q3_steps=${1:-8000}
finetune_steps=${2:-1500}
vidcodec=".venv/bin/vidcodec"
config=configs/train/ssf-small-intra.yaml
intra_q3="runs/ssf-small-q3/ssf-small-q3.pt"
"$vidcodec" train --config "$config" --steps "$q3_steps" --init-from vidcodec/weights/ssf-small-q3.pt \
    --out runs/ssf-small-q3 --export "$intra_q3" --quiet
finetune() {  # quality lambda
    local out="runs/ssf-small-q$1"
    "$vidcodec" train --config "$config" --lmbda "$2" --steps "$finetune_steps" \
        --init-from "vidcodec/weights/ssf-small-q$1.pt" --init-role "intra=$intra_q3" \
        --out "$out" --export "$out/ssf-small-q$1.pt" --quiet
}
finetune 4 0.013
finetune 2 0.0035
finetune 1 0.0018
