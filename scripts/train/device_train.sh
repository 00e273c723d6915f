#!/usr/bin/env bash
# One chunk of training of a rate ladder on a lent GPU machine (the `device` tool; README "Training
# on a lent GPU"): q1..q4 of MODEL (default ssf-small) side by side on the one GPU, each for MINUTES
# of wall time, each starting from START_DIR/MODEL-qN.pt (START_DIR "-": from scratch), at the
# curriculum stage STAGE. Exports come back under $OUT as MODEL-qN.pt (float16, < 10 MiB: the 16 MiB a
# file that $OUT brings back holds no optimizer state, so each chunk starts a fresh Adam), logs in
# $OUT/logs.tgz.
#
# The machine has Python 3.12 with torch but no registry: compressai and pytorch-msssim travel as
# wheels in .whl (carry: [".whl"]), installed when the python lacks either. PyAV does not: its
# wheel (34 MiB) and the shipped weights exceed what a call carries, so clips come from the sources
# that need no PyAV (CLIP_MIX; default: data recipe 4 without lavfi, in the ratio of synthetic.CLIP_MIX;
# recorded in each export's provenance).
#
# Environment (all optional):
#   MODEL            registry id (default ssf-small)
#   CONFIG           training config (default configs/train/MODEL-STAGE.yaml); --stage STAGE overrides its stage
#   REFERENCE_CODEC  pairs / p-chains: frame 0 as the shipped vidcodec/weights/REFERENCE_CODEC-qN.pt of the
#                    same rate point decodes it (the default ladder's recipe: mbt2018-mean-small)
#   CLIP_MIX         --clip-mix (default photo=0.47,tripod=0.18,dead_leaves=0.35)
#   STEPS            --steps: the run length the learning-rate drops (at 80% and 95%) are placed in; the
#                    configs' 100000 is never reached in a chunk, so set it to what the chunks will reach
#   MAX_STEPS        --max-steps: stop after this many steps even if MINUTES are left (a smoke run)
#   PYTHON           interpreter (default python3)
#   RUNS_DIR         the four run directories, an absolute path (default /tmp/runs, emptied first)
#
# Usage, on the device: [MODEL=dcvc-small] bash scripts/train/device_train.sh STAGE MINUTES START_DIR
# The default ladder's recipe (README "dcvc-small-detail round 2"), from the shipped weights:
#   MODEL=dcvc-small-detail CONFIG=configs/train/dcvc-small-detail-chains.yaml STEPS=3000 \
#   REFERENCE_CODEC=mbt2018-mean-small bash scripts/train/device_train.sh p-chains 8 vidcodec/weights
set -euo pipefail
stage=${1:?usage: device_train.sh STAGE MINUTES START_DIR}
minutes=${2:?usage: device_train.sh STAGE MINUTES START_DIR}
start=${3:?usage: device_train.sh STAGE MINUTES START_DIR}
out=${OUT:?OUT is not set: run this through the device tool, which sets it}
model=${MODEL:-ssf-small}
config=${CONFIG:-configs/train/$model-$stage.yaml}
clip_mix=${CLIP_MIX:-photo=0.47,tripod=0.18,dead_leaves=0.35}
python=${PYTHON:-python3}
runs=${RUNS_DIR:-/tmp/runs}
case "$runs" in
    /?*) ;;
    *) echo "error: RUNS_DIR=$runs: give an absolute path other than / (it is emptied first)" >&2; exit 2 ;;
esac
[ -f "$config" ] || { echo "error: no training config $config: set CONFIG" >&2; exit 2; }
if [ -n "${REFERENCE_CODEC:-}" ]; then
    for q in 1 2 3 4; do
        [ -f "vidcodec/weights/$REFERENCE_CODEC-q$q.pt" ] || {
            echo "error: REFERENCE_CODEC=$REFERENCE_CODEC has no vidcodec/weights/$REFERENCE_CODEC-q$q.pt" >&2; exit 2; }
    done
fi
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
# find_spec, not import: compressai imports only through vidcodec.compat where torchvision is missing.
if ! "$python" -c "import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, ('compressai', 'pytorch_msssim'))))"; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
lambdas=(0.0018 0.0035 0.0067 0.013)  # q1..q4, as scripts/train/train_ladder.sh
# Clip making is the bottleneck on a GPU: share the cores among the four runs, one left for each trainer.
workers=$(( ($(nproc) - 4) / 4 ))
workers=$(( workers < 1 ? 1 : workers ))
if command -v nvidia-smi > /dev/null; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true; fi
rm -rf "$runs" && mkdir -p "$runs"  # a warm machine keeps the last chunk's runs: start clean
pids=()
for q in 1 2 3 4; do
    options=()
    [ "$start" != "-" ] && options=(--init-from "$start/$model-q$q.pt")
    [ -n "${REFERENCE_CODEC:-}" ] && options+=(--reference-codec "vidcodec/weights/$REFERENCE_CODEC-q$q.pt")
    [ -n "${STEPS:-}" ] && options+=(--steps "$STEPS")
    [ -n "${MAX_STEPS:-}" ] && options+=(--max-steps "$MAX_STEPS")
    "$python" -m vidcodec.cli train --config "$config" --stage "$stage" --lmbda "${lambdas[q-1]}" \
        "${options[@]}" --clip-mix "$clip_mix" --data-workers "$workers" \
        --max-minutes "$minutes" --out "$runs/q$q" --export "$out/$model-q$q.pt" --quiet \
        > "$runs/q$q.out" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done  # a bare `wait` would return 0 whatever failed
for q in 1 2 3 4; do echo "== q$q"; tail -n 3 "$runs/q$q.out"; tail -n 1 "$runs/q$q/train_log.jsonl" || true; done
tar czf "$out/logs.tgz" --exclude "*.pt" -C "$(dirname "$runs")" "$(basename "$runs")"
exit $status
