"""Training throughput: coded frame-pixels per second of optimizer steps and of clip generation.

For each variant: the time of one optimizer step (forward + backward + both optimizers) on a fixed
batch, the time to make that batch (batches.training_batch, in line), and the throughput of the
whole loop (Trainer with its data workers) over --loop-steps steps. Frame-pixels are those of the
*coded* frames (a pairs step codes one frame of two).

    python scripts/bench/bench_training.py --out docs/bench_training.md
    python scripts/bench/bench_training.py --variants chains-3x256-b4 intra-1x256-b8 --steps 5

Run it on an idle machine: it reports what it measures and nothing else.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

import vidcodec  # noqa: F401  (compressai import shim)
from vidcodec.train.batches import BatchPrefetcher, training_batch
from vidcodec.train.trainer import TrainConfig, Trainer, batch_spec, frames_from_clips

BASE = TrainConfig(model="ssf-small", model_config={"mid_planes": 48, "latent_planes": 64, "flow_in_pixels": True},
                   steps=10**6, log_every=10**6, validate_every=10**6, validation_clips=1,
                   checkpoint_every_s=10**9, num_threads=2)
# name -> (config overrides, channels_last, compile)
VARIANTS: dict[str, tuple[dict, bool, bool]] = {
    # The recipe of the shipped q1..q4 before the curriculum: chains of 3 frames, 256 crops, batch 4.
    "chains-3x256-b4": ({"stage": "chains", "clip_frames": 3, "crop": 256, "batch_size": 4}, False, False),
    "chains-3x256-b4-channels_last": ({"stage": "chains", "clip_frames": 3, "crop": 256, "batch_size": 4}, True, False),
    "chains-3x128-b16": ({"stage": "chains", "clip_frames": 3, "crop": 128, "batch_size": 16}, False, False),
    "pairs-2x256-b4": ({"stage": "pairs", "clip_frames": 2, "crop": 256, "batch_size": 4}, False, False),
    "pairs-2x128-b16": ({"stage": "pairs", "clip_frames": 2, "crop": 128, "batch_size": 16}, False, False),
    "intra-1x256-b8": ({"stage": "intra", "clip_frames": 1, "crop": 256, "batch_size": 8}, False, False),
    "intra-1x128-b8": ({"stage": "intra", "clip_frames": 1, "crop": 128, "batch_size": 8}, False, False),
    "intra-1x128-b8-compile": ({"stage": "intra", "clip_frames": 1, "crop": 128, "batch_size": 8}, False, True),
    "chains-2x128-b8": ({"stage": "chains", "clip_frames": 2, "crop": 128, "batch_size": 8}, False, False),
    "intra-1x128-b32": ({"stage": "intra", "clip_frames": 1, "crop": 128, "batch_size": 32}, False, False),
    "intra-1x256-b8-channels_last": ({"stage": "intra", "clip_frames": 1, "crop": 256, "batch_size": 8}, True, False),
    "intra-1x256-b8-1thread": ({"stage": "intra", "clip_frames": 1, "crop": 256, "batch_size": 8, "num_threads": 1},
                               False, False),
}


def coded_pixels(config: TrainConfig) -> int:
    coded_frames = 1 if config.stage == "pairs" else config.clip_frames
    return coded_frames * config.batch_size * config.crop**2


def bench_variant(name: str, steps: int, loop_steps: int, workdir: Path) -> dict:
    overrides, channels_last, compiled = VARIANTS[name]
    config = replace(BASE, **overrides).validate()
    torch.set_num_threads(config.num_threads)
    start = time.perf_counter()
    clips = training_batch(batch_spec(config), rank=0, step=0)
    data_s = time.perf_counter() - start
    trainer = Trainer(replace(config, data_workers=0), workdir / f"{name}-step")
    if channels_last:
        trainer.model.to(memory_format=torch.channels_last)

    def prepare(frames: list[torch.Tensor]) -> list[torch.Tensor]:
        return [x.contiguous(memory_format=torch.channels_last) for x in frames] if channels_last else frames

    frames = prepare(frames_from_clips(clips))
    if compiled:
        trainer.forward_model = torch.compile(trainer.forward_model)
    warmup_start = time.perf_counter()
    trainer.optimize(frames)  # warm-up (and compilation)
    warmup_s = time.perf_counter() - warmup_start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.optimize(frames)
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    result = {"variant": name, "stage": config.stage, "clip_frames": config.clip_frames, "crop": config.crop,
              "batch_size": config.batch_size, "threads": config.num_threads, "channels_last": channels_last,
              "compile": compiled, "step_s": step_s, "warmup_s": warmup_s, "data_s": data_s,
              "step_px_per_s": coded_pixels(config) / step_s}
    for workers in ([0, 1] if loop_steps else []):
        # Steady state: the workers' start-up and the first batch are not timed.
        prefetcher = BatchPrefetcher(batch_spec(config), rank=0, workers=workers)
        try:
            trainer.optimize(prepare(frames_from_clips(prefetcher.get(0))))
            start = time.perf_counter()
            for step in range(1, loop_steps + 1):
                trainer.optimize(prepare(frames_from_clips(prefetcher.get(step))))
            elapsed = time.perf_counter() - start
        finally:
            prefetcher.close()
        result[f"loop_px_per_s_workers{workers}"] = coded_pixels(config) * loop_steps / elapsed
    return result


def markdown(results: list[dict], args: argparse.Namespace) -> str:
    first = results[0]
    baseline = first["loop_px_per_s_workers0"] if "loop_px_per_s_workers0" in first else first["step_px_per_s"]
    lines = [
        "# Training throughput (scripts/bench/bench_training.py)", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}. Command: `python scripts/bench/bench_training.py {' '.join(args.argv)}`.", "",
        "Frame-pixels = pixels of the coded frames per step. step = median of the timed optimizer steps on one "
        "batch; data = making that batch in line; loop = steady-state steps with the batches made in line (0 "
        "workers) or in a worker process (1; its start-up not timed). 'vs first' compares the loop (or step) "
        "throughput with the first row.", "",
        "| variant | step s | data s | step Mpx/s | loop Mpx/s, 0 workers | loop Mpx/s, 1 worker | vs first |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(v: float | None) -> str:
        return f"{v / 1e6:.3f}" if v is not None else "n/a"

    for r in results:
        loop0 = r.get("loop_px_per_s_workers0")
        loop1 = r.get("loop_px_per_s_workers1")
        best = max(v for v in (loop0, loop1, r["step_px_per_s"] if loop0 is None else None) if v is not None)
        lines.append(f"| {r['variant']} | {r['step_s']:.3f} | {r['data_s']:.3f} | {fmt(r['step_px_per_s'])} | "
                     f"{fmt(loop0)} | {fmt(loop1)} | {best / baseline:.2f}x |")
    compiled = [r for r in results if r["compile"]]
    for r in compiled:
        lines.append("")
        lines.append(f"torch.compile warm-up (compilation + first step) of {r['variant']}: {r['warmup_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps per variant (after one warm-up)")
    parser.add_argument("--loop-steps", type=int, default=10, help="steps of the whole training loop (0: skip)")
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.variants:
            result = bench_variant(name, args.steps, args.loop_steps, Path(workdir))
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}, flush=True)
            results.append(result)
    table = markdown(results, args)
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
