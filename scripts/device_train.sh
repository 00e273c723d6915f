#!/usr/bin/env bash
# One chunk of training of a rate ladder on a lent GPU machine (the `device` tool; README "Training
# on a lent GPU"): q1..q4 of MODEL (default ssf-small) side by side on the one GPU, each for MINUTES
# of wall time, each starting from START_DIR/MODEL-qN.pt (START_DIR "-": from scratch), at the
# curriculum stage STAGE (configs/train/MODEL-STAGE.yaml). Exports come back under $OUT as
# MODEL-qN.pt (float16, < 10 MiB: the 16 MiB a file that $OUT brings back holds no optimizer state,
# so each chunk starts a fresh Adam), logs in $OUT/logs.tgz.
#
# The machine has Python 3.12 with torch but no registry: compressai and pytorch-msssim travel as
# wheels in .whl (carry: [".whl"]). PyAV does not: its wheel (34 MiB) and the shipped weights exceed
# what a call carries, so clips come from photographs and dead leaves only (--clip-mix, recorded in
# each export's provenance), in the ratio of synthetic.CLIP_MIX.
#
# Usage, on the device: [MODEL=dcvc-small] bash scripts/device_train.sh STAGE MINUTES START_DIR
set -euo pipefail
stage=${1:?usage: device_train.sh STAGE MINUTES START_DIR}
minutes=${2:?usage: device_train.sh STAGE MINUTES START_DIR}
start=${3:?usage: device_train.sh STAGE MINUTES START_DIR}
out=${OUT:?OUT is not set: run this through the device tool, which sets it}
model=${MODEL:-ssf-small}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
lambdas=(0.0018 0.0035 0.0067 0.013)  # q1..q4, as scripts/train_ladder.sh
# Clip making is the bottleneck on a GPU: share the cores among the four runs, one left for each trainer.
workers=$(( ($(nproc) - 4) / 4 ))
workers=$(( workers < 1 ? 1 : workers ))
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
rm -rf /tmp/runs && mkdir -p /tmp/runs  # a warm machine keeps the last chunk's runs: start clean
for q in 1 2 3 4; do
    init=()
    [ "$start" != "-" ] && init=(--init-from "$start/$model-q$q.pt")
    python3 -m vidcodec.cli train --config "configs/train/$model-$stage.yaml" --lmbda "${lambdas[q-1]}" \
        "${init[@]}" --clip-mix photo=0.65,dead_leaves=0.35 --data-workers "$workers" \
        --max-minutes "$minutes" --out "/tmp/runs/q$q" --export "$out/$model-q$q.pt" --quiet \
        > "/tmp/runs/q$q.out" 2>&1 &
done
status=0
wait || status=$?
for q in 1 2 3 4; do echo "== q$q"; tail -n 3 "/tmp/runs/q$q.out"; tail -n 1 "/tmp/runs/q$q/train_log.jsonl" || true; done
tar czf "$out/logs.tgz" --exclude "*.pt" -C /tmp runs
exit $status
