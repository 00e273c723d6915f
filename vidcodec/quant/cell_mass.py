"""Gaussian mass of single lattice cells, in the log domain, for lattices too large for dense tables.

quant/tables.py integrates N(0, sigma^2 I) over *every* cell within a radius, which is out of
reach beyond 8 dimensions (the Leech lattice's first shell has 196,560 points). What the ideal
rate of one tuple needs is the mass of *its* cell only:

    P(p) = integral over V(0) of phi_sigma(p + e) de    (cell volume 1)
         ~ mean over e_j of phi_sigma(p + e_j),

with e_j scrambled Sobol points folded into the Voronoi cell of the origin (``to_cell``), the
quasi-Monte Carlo rule of tables.py plus their mirror images -e_j (antithetic: exact first
moment, several times more accurate away from the mean), computed as a log-sum-exp so that far
cells in 24 dimensions do not underflow.

``gaussian_entropy`` uses it for the entropy of the quantized index of a Gaussian source,
H = E[-log2 P(Q(X))], where tabulating all cells is impossible and the plug-in entropy of samples
is badly biased (in 24 dimensions nearly every sample falls in its own cell). Two things keep the
estimate accurate: X is drawn by quasi-Monte Carlo as well (inverse normal CDF of scrambled Sobol
points), and the exactly known differential entropy h(X) serves as a control variate,

    H = h(X) + E[ log2 phi(X) - log2 P(Q(X)) ],

whose summand varies far less than -log2 P(Q(X)) itself (at high rate it tends to the constant
-log2 V = 0). The remaining bias is Jensen's (-log of an estimated P), which shrinks with the
number of cell points; scripts/probes/lattice_rd_synthetic.py measures it against exact tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vidcodec.quant.lattice import NearestPointLattice

# (points x cell offsets) entries evaluated at once: bounds memory to ~100 MB of float64.
_CHUNK_ENTRIES = 1 << 22


def cell_offsets(lattice: NearestPointLattice, log2_points: int = 10, seed: int = 0) -> torch.Tensor:
    """(2^log2_points, dim) float64 points spread evenly over the Voronoi cell of the origin:
    2^(log2_points - 1) scrambled Sobol points (seeded) folded into the cell, and their mirror
    images. The cell is centrally symmetric, so the mirrored set has mean exactly 0: the error of
    the first-order term p.e of the density, which dominates far from the mean (it grows with
    |p| / sigma^2), cancels (antithetic sampling)."""
    if log2_points < 1:
        raise ValueError(f"log2_points={log2_points} (expected >= 1)")
    sobol = torch.quasirandom.SobolEngine(lattice.dim, scramble=True, seed=seed)
    half = lattice.to_cell(sobol.draw(1 << (log2_points - 1), dtype=torch.float64))
    return torch.cat([half, -half])


def log2_cell_mass(points: torch.Tensor, sigma: float, offsets: torch.Tensor) -> torch.Tensor:
    """log2 P(p) under N(0, sigma^2 I) for lattice points (N, dim) float64 of a unit-volume
    lattice, by the quasi-Monte Carlo rule over ``offsets`` (M, dim) from ``cell_offsets``; (N,)."""
    if sigma <= 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma={sigma} (expected a finite number > 0)")
    dim = points.shape[-1]
    log_norm = -0.5 * dim * math.log(2 * math.pi * sigma**2) - math.log(len(offsets))
    chunk = max(1, _CHUNK_ENTRIES // len(offsets))
    out = []
    for p in points.to(torch.float64).split(chunk):
        # |p + e|^2 = |p|^2 + 2 p.e + |e|^2: one matmul instead of an (n, M, dim) tensor.
        squared = (p**2).sum(-1, keepdim=True) + 2.0 * p @ offsets.T + (offsets**2).sum(-1)
        out.append(torch.logsumexp(-0.5 * squared / sigma**2, dim=-1) + log_norm)
    if not out:
        return points.new_zeros(0, dtype=torch.float64)
    return torch.cat(out) / math.log(2.0)


@dataclass(frozen=True)
class EntropyEstimate:
    """Per dimension, for N(0, sigma^2 I) quantized by a unit-volume lattice."""

    bits: float  # entropy of the lattice point, bits per dimension
    bits_error: float  # standard error of ``bits`` as i.i.d. Monte Carlo (QMC is usually better)
    mse: float  # mean squared error per dimension
    mse_error: float  # its standard error, likewise


def gaussian_samples(dim: int, num_samples: int, sigma: float, seed: int) -> torch.Tensor:
    """(num_samples, dim) float64 N(0, sigma^2 I) by the inverse normal CDF of scrambled Sobol points."""
    u = torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed).draw(num_samples, dtype=torch.float64)
    tiny = 2.0**-53  # a scrambled point may sit exactly on 0
    return sigma * torch.special.ndtri(u.clamp(tiny, 1.0 - tiny))


def gaussian_entropy(lattice: NearestPointLattice, sigma: float, num_samples: int = 1 << 14,
                     log2_cell_points: int = 10, seed: int = 0,
                     offsets: torch.Tensor | None = None) -> EntropyEstimate:
    """Entropy and MSE per dimension of the lattice point of X ~ N(0, sigma^2 I_dim), sigma in
    units of the unit-volume lattice; the control-variate estimator of the module docstring.
    ``offsets``: reuse cell_offsets(lattice, ...) across calls (default: 2^log2_cell_points
    points, seed + 1)."""
    dim = lattice.dim
    x = gaussian_samples(dim, num_samples, sigma, seed)
    q = lattice.nearest_point(x)
    if offsets is None:
        offsets = cell_offsets(lattice, log2_cell_points, seed + 1)
    log2_p = log2_cell_mass(q, sigma, offsets)
    log2_density = (-0.5 * (x**2).sum(-1) / sigma**2) / math.log(2.0) - 0.5 * dim * math.log2(2 * math.pi * sigma**2)
    differential_entropy = 0.5 * dim * math.log2(2 * math.pi * math.e * sigma**2)
    terms = log2_density - log2_p
    squared_error = ((x - q) ** 2).sum(-1)
    root_n = math.sqrt(num_samples)
    return EntropyEstimate(
        bits=(differential_entropy + terms.mean().item()) / dim,
        bits_error=terms.std().item() / root_n / dim,
        mse=squared_error.mean().item() / dim,
        mse_error=squared_error.std().item() / root_n / dim,
    )
