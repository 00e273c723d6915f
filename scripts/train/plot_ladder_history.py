#!/usr/bin/env python
"""Learning curve of a shipped rate ladder: BD-rate against x264 (measured at each ladder a commit
shipped) against the training that ladder had, and what a power-law fit of the two predicts.

    python scripts/train/plot_ladder_history.py --history docs/eval/dcvc-small-ladder-history.csv \
        --out docs/eval/dcvc-small-ladder-history.png

The CSV holds one measured ladder per row: commit (whose vidcodec/weights/MODEL-q1..q4.pt were coded),
bd_vs_x264_pct, a label, and optionally model (default --model; a ladder warm-started from another
model's, e.g. dcvc-small-detail from dcvc-small, carries its curriculum and continues the curve). The
training is read from those checkpoints' provenance at that commit: the distinct curriculum entries
over the four rate points (rate points fine-tuned from one another share their ancestors' entries, which
count once), in coded frame-pixels (steps x batch x frames x crop^2). The fit is log(1 + BD/100) linear
in log(frame-pixels): the factor by which each doubling of the ladder's training divides the bits over
x264's.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import subprocess
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]


def ladder_training(commit: str, model: str) -> dict:
    """Steps, frame-pixels and wall seconds of the distinct training runs behind MODEL-q1..q4 at commit."""
    runs = {}
    for quality in range(1, 5):
        blob = subprocess.run(["git", "show", f"{commit}:vidcodec/weights/{model}-q{quality}.pt"], cwd=REPO,
                              capture_output=True, check=True).stdout
        provenance = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)["provenance"]
        for entry in provenance["curriculum"]:
            runs[(entry["stage"], entry["steps"], entry["wall_s"], entry["lmbda"])] = entry
    return {
        "steps": sum(e["steps"] for e in runs.values()),
        "frame_pixels": sum(e["steps"] * e["batch_size"] * e["clip_frames"] * e["crop"] ** 2 for e in runs.values()),
        "wall_h": sum(e["wall_s"] for e in runs.values()) / 3600.0,
    }


def power_law_fit(frame_pixels: list[float], bd_pct: list[float],
                  target_pct: float) -> tuple[float, float, float, float]:
    """Least-squares line log(1 + BD/100) = intercept + slope * log(frame_pixels): (slope, intercept,
    the factor on (1 + BD/100) per doubling of training, the frame-pixels at which BD reaches target_pct;
    inf when the fit does not fall)."""
    slope, intercept = np.polyfit(np.log(frame_pixels), np.log1p(np.asarray(bd_pct) / 100.0), 1)
    per_doubling = math.exp(slope * math.log(2.0))
    needed = math.exp((math.log1p(target_pct / 100.0) - intercept) / slope) if slope < 0 else math.inf
    return float(slope), float(intercept), per_doubling, needed


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=Path, required=True, help="CSV: commit, bd_vs_x264_pct, label[, model]")
    parser.add_argument("--model", default="dcvc-small")
    parser.add_argument("--target", type=float, default=100.0, help="BD-rate vs x264 to predict the training for")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = list(csv.DictReader(args.history.open()))
    if len(rows) < 2:
        raise SystemExit(f"error: {args.history} has {len(rows)} ladders; a fit needs at least 2")
    for row in rows:
        row.update(ladder_training(row["commit"], row.get("model") or args.model))
        print(f"{row['commit']}  {row['steps']:>7} steps  {row['frame_pixels'] / 1e9:6.1f} G frame-px  "
              f"{row['wall_h']:5.1f} h  {float(row['bd_vs_x264_pct']):+7.1f}%  {row['label']}")
    slope, intercept, per_doubling, needed_px = power_law_fit(
        [row["frame_pixels"] for row in rows], [float(row["bd_vs_x264_pct"]) for row in rows], args.target)
    print(f"fit: each doubling of training multiplies (1 + BD/100) by {per_doubling:.3f}; "
          f"{args.target:+.0f}% predicted at {needed_px / 1e9:.0f} G frame-px "
          f"({needed_px / rows[-1]['frame_pixels']:.1f}x the last ladder's)")

    fig, ax = plt.subplots(figsize=(6.5, 4))
    px = np.array([row["frame_pixels"] for row in rows]) / 1e9
    ax.plot(px, [float(row["bd_vs_x264_pct"]) for row in rows], "o", color="C0", label="measured")
    for row, x in zip(rows, px):
        ax.annotate(row["label"], (x, float(row["bd_vs_x264_pct"])), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    span = np.geomspace(px[0], max(px[-1], needed_px / 1e9 if math.isfinite(needed_px) else px[-1]) * 1.1, 50)
    ax.plot(span, 100.0 * (np.exp(intercept + slope * np.log(span * 1e9)) - 1.0), "--", color="C1",
            label=f"fit: x{per_doubling:.3f} bits per doubling")
    ax.axhline(args.target, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("training of the ladder (G coded frame-pixels, distinct runs over q1..q4)")
    ax.set_ylabel("BD-rate vs x264, stand-ins (%)")
    ax.set_title(f"{args.model}: shipped ladders (PSNR-RGB, pchip, 17 frames, intra period 8)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
