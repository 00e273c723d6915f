#!/usr/bin/env python
"""Seed 000, Figure 2 on synthetic sources: MSE vs entropy of SQ (Z^n), Hex (A2), Oct (A3*), D4, E8.

    python scripts/lattice_rd_synthetic.py --out docs/lattice_rd

For a source X (uniform U(-4,4)^v, or zero-mean Gaussian N(0, sigma^2 I_v)) and a lattice scaled
by a step Delta (cell volume Delta^v), the rate is the entropy of the quantized point per
dimension and the distortion the MSE per dimension. Rates are exact entropies of the cell
probabilities (vidcodec.quant.tables, i.e. the PMFs the codec codes with, unpruned), distortions
Monte Carlo over ``--samples`` source vectors. Writes <out>.png (one panel per source) and
<out>.md (MSE in dB at equal entropy, interpolated, with the gain over SQ).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from vidcodec.quant.lattice import get_lattice
from vidcodec.quant.tables import cell_probabilities

LATTICES = {"SQ": "z1", "Hex": "a2", "Oct": "a3*", "D4": "d4", "E8": "e8"}


def gaussian_point(lattice_key: str, sigma_over_step: float, samples: int, seed: int) -> tuple[float, float]:
    """(entropy bits/dim, MSE/dim) of the unit-volume lattice for N(0, s^2 I), s = sigma/Delta;
    scale the MSE by Delta^2 for the source's units."""
    lattice = get_lattice(lattice_key)
    # Cells beyond sqrt(dim) + 6 standard deviations hold < 1e-8 of the mass in total.
    radius = sigma_over_step * (math.sqrt(lattice.dim) + 6.0) + 1.5
    points = lattice.points_within(radius)
    # 2^10 Sobol points per cell: the entropy changes by < 1e-4 bit against 2^14 (smooth cells).
    probabilities = cell_probabilities(lattice, points, sigma_over_step, qmc_log2_points=10)
    probabilities = probabilities[probabilities > 0]
    entropy = float(-(probabilities * np.log2(probabilities)).sum()) / lattice.dim
    x = torch.randn(samples, lattice.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x * sigma_over_step
    mse = float(((x - lattice.nearest_point(x)) ** 2).sum(-1).mean()) / lattice.dim
    return entropy, mse


def uniform_point(lattice_key: str, step: float, samples: int, seed: int,
                  half_width: float = 4.0) -> tuple[float, float]:
    """(empirical entropy bits/dim, MSE/dim) for U(-half_width, half_width)^v, lattice scaled by step."""
    lattice = get_lattice(lattice_key)
    x = (torch.rand(samples, lattice.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1)
    x = x * half_width
    q = lattice.nearest_point(x / step)
    mse = float(((x - q * step) ** 2).sum(-1).mean()) / lattice.dim
    _, counts = torch.unique(lattice.to_coords(q), dim=0, return_counts=True)
    p = counts.double() / samples
    entropy = float(-(p * torch.log2(p)).sum()) / lattice.dim
    return entropy, mse


def mse_at_rate(curve: list[tuple[float, float]], rate: float) -> float:
    rates, mses = zip(*sorted(curve))
    return float(np.interp(rate, rates, 10 * np.log10(mses)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/lattice_rd"))
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--lattices", nargs="+", default=["SQ", "Hex", "Oct"], choices=list(LATTICES))
    parser.add_argument("--steps", type=int, default=9, help="quantizer step sizes per curve")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = ["uniform"] + [f"gaussian sigma={s:g}" for s in args.sigmas]
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for source in sources:
        curves[source] = {}
        for name in args.lattices:
            points = []
            for step in np.geomspace(0.35, 2.5, args.steps):
                if source == "uniform":
                    points.append(uniform_point(LATTICES[name], step, args.samples, seed=1))
                else:
                    sigma = float(source.split("=")[1])
                    if sigma / step > 3 and name not in ("SQ", "Hex"):
                        continue  # 3-D and larger tables grow as (sigma/step)^dim; keep the run short
                    entropy, mse_unit = gaussian_point(LATTICES[name], sigma / step, args.samples, seed=1)
                    points.append((entropy, mse_unit * step**2))
            curves[source][name] = points
            print(f"{source:>22} {name:>4}: {len(points)} points", file=sys.stderr)

    fig, axes = plt.subplots(1, len(sources), figsize=(4.2 * len(sources), 3.8))
    for ax, source in zip(axes, sources):
        for name, points in curves[source].items():
            rates, mses = zip(*sorted(points))
            ax.plot(rates, 10 * np.log10(mses), "o-", ms=3, label=name)
        ax.set_title(source)
        ax.set_xlabel("entropy (bits / dimension)")
        ax.set_ylabel("MSE (dB)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out.with_suffix(".png"), dpi=110)

    lines = ["| source | rate (bits/dim) | " + " | ".join(f"{n} MSE dB" for n in args.lattices)
             + " | " + " | ".join(f"{n} - SQ dB" for n in args.lattices if n != "SQ") + " |",
             "|---" * (2 + 2 * len(args.lattices) - 1) + "|"]
    for source in sources:
        common_low = max(min(r for r, _ in curves[source][n]) for n in args.lattices)
        common_high = min(max(r for r, _ in curves[source][n]) for n in args.lattices)
        for rate in np.linspace(common_low, common_high, 3):
            values = {n: mse_at_rate(curves[source][n], rate) for n in args.lattices}
            gains = " | ".join(f"{values[n] - values['SQ']:+.3f}" for n in args.lattices if n != "SQ")
            lines.append(f"| {source} | {rate:.2f} | " + " | ".join(f"{values[n]:.3f}" for n in args.lattices)
                         + " | " + gains + " |")
    table = "\n".join(lines)
    args.out.with_suffix(".md").write_text(
        f"MSE at equal entropy (interpolated), {args.samples} samples per point; "
        f"written by scripts/lattice_rd_synthetic.py\n\n{table}\n"
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
