#!/usr/bin/env python
"""Seed 000, Figure 2 on synthetic sources: MSE vs entropy of SQ (Z^n), Hex (A2), Oct (A3*), D4, E8, Leech.

    nice -n 10 python scripts/probes/lattice_rd_synthetic.py --parts steps --out docs/lattice_rd
    nice -n 10 python scripts/probes/lattice_rd_synthetic.py --parts unit --unit-out docs/lattice_rd_gaussian

Part "unit" (Figure 2c extended to D4, E8 and the Leech lattice): unit-volume lattices Z, A2, A3*,
D4, E8, Leech on N(0, sigma^2 I) for sigma from 0.5 to 4 per dimension. The entropy of the lattice
point cannot be tabulated in 8 or 24 dimensions, and the plug-in entropy of samples is biased
there, so it is estimated as -E[log2 P(cell)] with P(cell) integrated by quasi-Monte Carlo over
the sampled point's own cell and the exact h(X) as control variate (quant/cell_mass.py); Z's entropy
and MSE are exact (erf sums). The script checks the estimator against exact tables where those
exist (A2, A3*, D4 at small sigma) and its Jensen bias by doubling the cell points twice, and
writes both into <unit-out>.md with the curves (D/sigma^2 vs entropy), the gain over Z at equal
entropy and the high-rate theory 10 log10(G_Z / G) (<unit-out>.png).

Part "steps" (Figure 2a-b). For a source X (uniform U(-4,4)^v, or zero-mean Gaussian
N(0, sigma^2 I_v)) and a lattice scaled by a step Delta (cell volume Delta^v), the rate is the
entropy of the quantized point per dimension and the distortion the MSE per dimension. Rates are
exact entropies of the cell probabilities (vidcodec.quant.tables, i.e. the PMFs the codec codes
with, unpruned), distortions Monte Carlo over ``--samples`` source vectors. Writes <out>.png (one
panel per source) and <out>.md (MSE in dB at equal entropy, interpolated, with the gain over SQ).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.special import ndtr

from vidcodec.quant.cell_mass import cell_offsets, gaussian_entropy
from vidcodec.quant.lattice import NSM_THEORY, NearestPointLattice, get_lattice
from vidcodec.quant.leech import leech_lattice
from vidcodec.quant.tables import cell_probabilities

LATTICES = {"SQ": "z1", "Hex": "a2", "Oct": "a3*", "D4": "d4", "E8": "e8"}
UNIT_LATTICES = {"Z": "z1", "A2": "a2", "A3*": "a3*", "D4": "d4", "E8": "e8", "Leech": "leech"}
# Exact-table checks of the estimator: (lattice, sigma) pairs whose tables take seconds.
VALIDATION = [("A2", 0.5), ("A2", 1.0), ("A2", 2.0), ("A3*", 0.5), ("A3*", 1.0), ("D4", 0.5)]


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


def unit_lattice(name: str) -> NearestPointLattice:
    key = UNIT_LATTICES[name]
    return leech_lattice() if key == "leech" else get_lattice(key)


def z1_exact(sigma: float) -> tuple[float, float]:
    """(entropy bits, MSE) of rounding N(0, sigma^2), in closed form per cell [k - 1/2, k + 1/2]:
    P = Phi(b/s) - Phi(a/s), E[(X - k)^2; cell] = E[X^2; cell] - 2k E[X; cell] + k^2 P."""
    k = np.arange(-int(12 * sigma) - 2, int(12 * sigma) + 3, dtype=np.float64)
    a, b = k - 0.5, k + 0.5
    # Upper-tail differences for k > 0 (no cancellation), lower-tail ones for k <= 0.
    p = np.where(k > 0, ndtr(-a / sigma) - ndtr(-b / sigma), ndtr(b / sigma) - ndtr(a / sigma))
    density = lambda t: np.exp(-0.5 * (t / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))  # noqa: E731
    first = sigma**2 * (density(a) - density(b))
    second = sigma**2 * p + sigma**2 * (a * density(a) - b * density(b))
    mse = float((second - 2 * k * first + k**2 * p).sum())
    nonzero = p[p > 0]
    return float(-(nonzero * np.log2(nonzero)).sum()), mse


def table_entropy(name: str, sigma: float) -> float:
    """Entropy bits/dim from the exact PMF table (quant/tables.py) over all cells near the mean."""
    lattice = unit_lattice(name)
    points = lattice.points_within(sigma * (math.sqrt(lattice.dim) + 7.0) + 1.5)
    p = cell_probabilities(lattice, points, sigma, qmc_log2_points=14)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) / lattice.dim


class UnitSweep:
    """Entropy and MSE per dimension of the unit-volume lattices over sigma (cell offsets cached)."""

    def __init__(self, samples: int, leech_samples: int, log2_cell_points: int, leech_log2_cell_points: int) -> None:
        self.samples, self.leech_samples = samples, leech_samples
        self.log2_cell_points, self.leech_log2_cell_points = log2_cell_points, leech_log2_cell_points
        self._offsets: dict[tuple[str, int], torch.Tensor] = {}

    def point(self, name: str, sigma: float, log2_cell_points: int | None = None) -> tuple[float, float, float, float]:
        """(bits, bits standard error, MSE, MSE standard error), all per dimension."""
        if name == "Z":
            bits, mse = z1_exact(sigma)
            return bits, 0.0, mse, 0.0
        lattice = unit_lattice(name)
        k = log2_cell_points or (self.leech_log2_cell_points if name == "Leech" else self.log2_cell_points)
        if (name, k) not in self._offsets:
            self._offsets[(name, k)] = cell_offsets(lattice, k, seed=1)
        samples = self.leech_samples if name == "Leech" else self.samples
        e = gaussian_entropy(lattice, sigma, samples, seed=0, offsets=self._offsets[(name, k)])
        return e.bits, e.bits_error, e.mse, e.mse_error


@functools.cache
def z1_curve() -> tuple[np.ndarray, np.ndarray]:
    """Z's exact (entropy bits, D/sigma^2 dB) on a dense sigma grid, increasing in entropy."""
    sigmas = np.geomspace(0.05, 40.0, 2000)
    z = np.array([z1_exact(s) for s in sigmas])
    return z[:, 0], 10 * np.log10(z[:, 1] / sigmas**2)


def gain_over_z_db(bits: float, mse: float, sigma: float) -> float:
    """10 log10 of Z's D/sigma^2 over the lattice's at the same entropy (exact Z curve, dense)."""
    z_bits, z_db = z1_curve()
    return float(np.interp(bits, z_bits, z_db)) - 10 * math.log10(mse / sigma**2)


def run_unit_sweep(args: argparse.Namespace, plt) -> None:
    sweep = UnitSweep(args.samples_unit, args.leech_samples, args.log2_cell_points, args.leech_log2_cell_points)
    sigmas = np.geomspace(0.5, 4.0, args.unit_sigmas)
    rows = {}
    for name in args.unit_lattices:
        rows[name] = []
        for sigma in sigmas:
            bits, bits_err, mse, mse_err = sweep.point(name, float(sigma))
            gain = gain_over_z_db(bits, mse, float(sigma))
            # d(10 log10 D)/dH ~ -6.02 dB/bit near the curves: entropy error moves the gain too.
            gain_err = math.hypot(10 / math.log(10) * mse_err / mse, 6.02 * bits_err)
            rows[name].append((float(sigma), bits, bits_err, mse, mse_err, gain, gain_err))
        print(f"unit sweep {name:>5}: done", file=sys.stderr, flush=True)

    validation = []
    for name, sigma in VALIDATION:
        if name in args.unit_lattices:
            estimate = sweep.point(name, sigma)
            validation.append((name, sigma, estimate[0], estimate[1], table_entropy(name, sigma)))
    jensen = []
    for name in args.unit_lattices:
        if name != "Z":
            fine_k = args.leech_log2_cell_points if name == "Leech" else args.log2_cell_points
            coarse = sweep.point(name, 0.5, fine_k - 2)[0]
            fine = sweep.point(name, 0.5)[0]
            jensen.append((name, coarse, fine))

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for name, data in rows.items():
        sig, bits, _, mse, _, gain, gain_err = map(np.array, zip(*data))
        line = axes[0].plot(bits, 10 * np.log10(mse), "o-", ms=3, label=name)[0]
        axes[1].plot(bits, 10 * np.log10(mse / sig**2), "o-", ms=3, color=line.get_color(), label=name)
        if name != "Z":
            axes[2].errorbar(bits, gain, yerr=gain_err, fmt="o-", ms=3, color=line.get_color(), label=name)
            theory = 10 * math.log10(NSM_THEORY["Z"] / unit_lattice(name).nsm_theory)
            axes[2].axhline(theory, ls="--", lw=0.8, color=line.get_color())
        rate = np.linspace(bits.min(), bits.max(), 50)
        g = unit_lattice(name).nsm_theory
        axes[1].plot(rate, 10 * np.log10(g * 2 * math.pi * math.e) - 6.0206 * rate, ":", lw=0.8,
                     color=line.get_color())
    axes[0].set_title("Fig. 2c: unit-volume lattices, sigma 0.5-4")
    axes[0].set_ylabel("MSE per dimension (dB)")
    axes[1].set_title("D / sigma^2 (dotted: high-rate theory G 2 pi e 2^-2H)")
    axes[1].set_ylabel("D / sigma^2 (dB)")
    axes[2].set_title("gain over Z at equal entropy (dashed: 10 log10 G_Z/G)")
    axes[2].set_ylabel("gain (dB)")
    for ax in axes:
        ax.set_xlabel("entropy (bits / dimension)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    args.unit_out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.unit_out.with_suffix(".png"), dpi=110)

    lines = [f"Unit-volume lattices on N(0, sigma^2 I), sigma 0.5-4 per dimension; written by "
             f"`scripts/probes/lattice_rd_synthetic.py --parts unit` ({args.samples_unit} Sobol samples per point, "
             f"Leech {args.leech_samples}; 2^{args.log2_cell_points} cell points, Leech "
             f"2^{args.leech_log2_cell_points}). Entropy and MSE per dimension; "
             "gain = Z's D/sigma^2 minus the lattice's at equal entropy (Z exact); +- one standard error "
             "(i.i.d. Monte Carlo formula, conservative for QMC).", "",
             "| lattice | sigma | entropy (bits) | MSE | D/sigma^2 (dB) | gain over Z (dB) | high-rate theory (dB) |",
             "|---|---|---|---|---|---|---|"]
    for name, data in rows.items():
        theory = 10 * math.log10(NSM_THEORY["Z"] / unit_lattice(name).nsm_theory)
        for sigma, bits, bits_err, mse, _, gain, gain_err in data:
            err = f" +- {bits_err:.4f}" if bits_err else " (exact)"
            snr_db = 10 * math.log10(mse / sigma**2)
            lines.append(f"| {name} | {sigma:.3f} | {bits:.4f}{err} | {mse:.5f} | {snr_db:.3f} "
                         f"| {gain:+.3f} +- {gain_err:.3f} | {theory:+.3f} |")
    lines += ["", "Estimator against exact tables (quant/tables.py, all cells within sigma (sqrt(dim) + 7) + 1.5):",
              "", "| lattice | sigma | estimate (bits/dim) | exact table (bits/dim) | difference |",
              "|---|---|---|---|---|"]
    for name, sigma, bits, bits_err, exact in validation:
        lines.append(f"| {name} | {sigma:g} | {bits:.5f} +- {bits_err:.5f} | {exact:.5f} | {bits - exact:+.5f} |")
    lines += ["", "Jensen bias (-log of an estimated P) at sigma 0.5: a quarter of the cell points against "
              "all of them (same samples):", "",
              "| lattice | coarse (bits/dim) | fine (bits/dim) | coarse - fine |", "|---|---|---|---|"]
    for name, coarse, fine in jensen:
        lines.append(f"| {name} | {coarse:.5f} | {fine:.5f} | {coarse - fine:+.5f} |")
    text = "\n".join(lines)
    args.unit_out.with_suffix(".md").write_text(text + "\n")
    print(text)


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
    parser.add_argument("--parts", nargs="+", default=["steps", "unit"], choices=["steps", "unit"],
                        help="steps: Fig. 2a-b (step sweeps, --out); unit: Fig. 2c extended (--unit-out)")
    parser.add_argument("--unit-out", type=Path, default=Path("docs/lattice_rd_gaussian"))
    parser.add_argument("--unit-lattices", nargs="+", default=list(UNIT_LATTICES), choices=list(UNIT_LATTICES))
    parser.add_argument("--unit-sigmas", type=int, default=10, help="sigmas from 0.5 to 4 (geometric)")
    parser.add_argument("--samples-unit", type=int, default=1 << 15, help="Sobol samples per point (not Leech)")
    parser.add_argument("--leech-samples", type=int, default=1 << 13)
    parser.add_argument("--log2-cell-points", type=int, default=12, help="cell points per P(cell): 2^this")
    parser.add_argument("--leech-log2-cell-points", type=int, default=14)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "unit" in args.parts:
        if "Z" not in args.unit_lattices:
            parser.error("--unit-lattices must include Z (the reference of the gains)")
        run_unit_sweep(args, plt)
    if "steps" in args.parts:
        run_steps(args, plt)
    return 0


def run_steps(args: argparse.Namespace, plt) -> None:
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
        f"written by scripts/probes/lattice_rd_synthetic.py\n\n{table}\n"
    )
    print(table)


if __name__ == "__main__":
    sys.exit(main())
