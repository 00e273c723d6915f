#!/usr/bin/env bash
# The ssf-small rate ladder by curriculum, as the shipped q1..q4 were made (README "Shipped models");
# resumable: rerun after an interruption.
#   1a. stage intra at q3 on 128 x 128 crops (configs/train/ssf-small-intra.yaml), from the old q3;
#   1b. stage intra at q3 on 256 x 256 crops (configs/train/ssf-small-intra-256.yaml): the hyperprior
#       refit to real frame sizes. Its export is the new q3 (inter path: the old q3's);
#   2.  q1, q2, q4: the old qN (its inter path) with the new q3 intra path (--init-role intra=...),
#       the intra path fine-tuned at the rate point's lambda (stage 1b config, 200 steps).
# OLD_LADDER: a directory with the ladder shipped before the curriculum (git 444e767), e.g.
#   mkdir old; for q in 1 2 3 4; do git show 444e767:vidcodec/weights/ssf-small-q$q.pt > old/ssf-small-q$q.pt; done
# Usage: scripts/train/train_ladder.sh OLD_LADDER   (exports in runs/ssf-small-qN/ssf-small-qN.pt)
set -euo pipefail
old_ladder=${1:?usage: scripts/train/train_ladder.sh OLD_LADDER}
vidcodec=".venv/bin/vidcodec"
"$vidcodec" train --config configs/train/ssf-small-intra.yaml --init-from "$old_ladder/ssf-small-q3.pt" \
    --out runs/intra-q3-128 --export runs/intra-q3-128/model.pt --quiet
"$vidcodec" train --config configs/train/ssf-small-intra-256.yaml --init-from runs/intra-q3-128/model.pt \
    --out runs/ssf-small-q3 --export runs/ssf-small-q3/ssf-small-q3.pt --quiet
finetune() {  # quality lambda
    local out="runs/ssf-small-q$1"
    "$vidcodec" train --config configs/train/ssf-small-intra-256.yaml --lmbda "$2" --steps 200 \
        --init-from "$old_ladder/ssf-small-q$1.pt" --init-role "intra=runs/ssf-small-q3/ssf-small-q3.pt" \
        --out "$out" --export "$out/ssf-small-q$1.pt" --quiet
}
finetune 4 0.013
finetune 2 0.0035
finetune 1 0.0018
