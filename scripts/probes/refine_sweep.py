"""How much encoder-side latent refinement lowers the RD cost, by learning rate and iteration count.

Codes the first frames of a sequence once per learning rate with ``--iterations`` refinement steps
per latent, and reports for each iteration budget k (--budgets) the mean cost of the best iterate
among the first k against the analysis transform's (with a fixed learning rate, a run of k steps is
the first k steps of the longer run), for I- and P-frame latents apart, and the seconds per step:

    .venv/bin/python scripts/probes/refine_sweep.py sequences/generated/HeldoutCoffee_416x240_30fps_420_8bit_YUV.yuv \
        --quality 3 --frames 4 --learning-rates 0.002,0.005,0.01 --iterations 60

The costs are the refinement's own estimates (bits of the rate model + lambda-weighted MSE); the
coded sizes are measured by `vidcodec eval --configs baseline,refine`. P-frames are coded against
the refined frames before them, as the encoder does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vidcodec.config import CodecConfig
from vidcodec.encoder import Encoder
from vidcodec.io.color import yuv420_to_rgb
from vidcodec.io.yuv import YuvReader
from vidcodec.pipeline import load_models, sequence_header


def sweep(models, sequence: Path, quality: int, frames: int, intra_period: int, learning_rate: float,
          iterations: int) -> tuple[list[tuple[str, tuple[float, ...]]], float]:
    """[(frame type, costs of every iterate)] of each refined latent, and the seconds per step; ``models``
    from pipeline.load_models (loaded once for all learning rates)."""
    config = CodecConfig(quality=quality, intra_period=intra_period, refine_iterations=iterations,
                         refine_learning_rate=learning_rate).with_resolved_intra().validate()
    models.attach_tools(config.coding_tools())
    traces, start = [], time.perf_counter()
    with YuvReader(sequence) as reader:
        header = sequence_header(config, models, reader.geometry, frames)
        encoder = Encoder(models.intra.codec, models.inter.codec, header)
        for poc in range(frames):
            packet = encoder.encode(poc, yuv420_to_rgb(reader.read_frame(poc), reader.geometry.bit_depth))
            traces += [(packet.frame_type, report.costs) for report in packet.refine.values()]
    steps = sum(len(costs) for _, costs in traces)
    return traces, (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sequence", type=Path)
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--intra-period", type=int, default=8)
    parser.add_argument("--learning-rates", default="0.002,0.005,0.01")
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--budgets", default="5,10,20,30,45,60")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    budgets = [int(b) for b in args.budgets.split(",") if int(b) <= args.iterations]
    rows = []
    models = load_models(CodecConfig(quality=args.quality).with_resolved_intra().validate())
    print(f"{args.sequence.name}, q{args.quality}, {args.frames} frames: mean best cost / cost of the analysis "
          "latent, by steps")
    print(f"{'lr':>7} {'type':>4} " + " ".join(f"{b:>6}" for b in budgets) + "   s/step")
    for learning_rate in [float(v) for v in args.learning_rates.split(",")]:
        traces, seconds = sweep(models, args.sequence, args.quality, args.frames, args.intra_period, learning_rate,
                                args.iterations)
        for frame_type in ("I", "P"):
            mine = [costs for kind, costs in traces if kind == frame_type]
            if not mine:
                continue
            ratios = [sum(min(costs[:budget + 1]) / costs[0] for costs in mine) / len(mine) for budget in budgets]
            rows.append({"learning_rate": learning_rate, "frame_type": frame_type, "latents": len(mine),
                         "budgets": budgets, "cost_ratio": ratios, "s_per_step": seconds})
            print(f"{learning_rate:>7} {frame_type:>4} " + " ".join(f"{r:6.4f}" for r in ratios) + f"   {seconds:.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
