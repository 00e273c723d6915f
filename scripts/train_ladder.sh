#!/usr/bin/env bash
# The ssf-small rate ladder by curriculum (README "Training and shipped models"), resumable: rerun
# after an interruption. Exports go to runs/ssf-small-qN/ssf-small-qN.pt.
#   1. stage intra at q3 from the shipped q3 (its intra path trained as an image codec);
#   2. stage chains (2-frame clips) at each rate point's lambda: the qN of the ladder shipped before
#      the curriculum (git 444e767, its inter path) with the new q3 intra path (--init-role intra=...).
# OLD_LADDER is a directory with that ladder's ssf-small-qN.pt (git show 444e767:vidcodec/weights/...).
# Usage: scripts/train_ladder.sh OLD_LADDER [Q3_STEPS] [FINETUNE_STEPS]   (defaults 8000 and 1000)
set -euo pipefail
old_ladder=${1:?usage: scripts/train_ladder.sh OLD_LADDER [Q3_STEPS] [FINETUNE_STEPS]}
q3_steps=${2:-8000}
finetune_steps=${3:-1000}
vidcodec=".venv/bin/vidcodec"
intra_q3="runs/intra-q3/intra-q3.pt"
"$vidcodec" train --config configs/train/ssf-small-intra.yaml --steps "$q3_steps" \
    --init-from "$old_ladder/ssf-small-q3.pt" --out runs/intra-q3 --export "$intra_q3" --quiet
finetune() {  # quality lambda
    local out="runs/ssf-small-q$1"
    "$vidcodec" train --config configs/train/ssf-small-ladder.yaml --lmbda "$2" --steps "$finetune_steps" \
        --init-from "$old_ladder/ssf-small-q$1.pt" --init-role "intra=$intra_q3" \
        --out "$out" --export "$out/ssf-small-q$1.pt" --quiet
}
finetune 3 0.0067
finetune 4 0.013
finetune 2 0.0035
finetune 1 0.0018
