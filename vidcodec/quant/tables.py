"""Probability tables of lattice points under an isotropic Gaussian, integrated over Voronoi cells.

For a v-tuple of residuals r = y - mu whose latents share one scale sigma, the probability of the
lattice point p is the mass of N(0, sigma^2 I_v) over p's Voronoi cell V(p):

    P(p) = integral over V(p) of phi_sigma(x) dx.

How each lattice is integrated:
  * Z1: exactly, P = Phi((p + 1/2) / sigma) - Phi((p - 1/2) / sigma).
  * A2 (seed 000, appendix E): the hexagonal cell is split at its vertical axis; for each x the
    vertical extent of the cell is known in closed form, so the inner integral is a difference of
    erf's and the outer one is Gauss-Legendre quadrature on each half (smooth there).
  * A3*, D4, E8 (seed 002, section 3.2.2): quasi-Monte Carlo. Scrambled Sobol points (fixed seed)
    fill one fundamental parallelepiped; folding them into the Voronoi cell of the origin
    (e = x - Q(x)) gives points spread evenly over the cell, and P(p) is the mean of the density
    at p + e (the cell has volume 1). The number of points is chosen by
    ``scripts/probes/check_table_accuracy.py`` against a 16x larger reference run (see QMC_LOG2_POINTS).

Points with P < PRUNE_PROBABILITY (seed 000, D.3) are dropped from the table; their mass, plus the
mass beyond the enumeration radius, is the escape probability: a tuple whose lattice point is not
in the table is coded as "escape" and then its coordinates with a fallback model, never clipped.

Tables are deterministic (fixed quadrature nodes and Sobol seed, float64) and cached on disk under
a key of all their parameters (``TableCache``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.special import ndtr
from scipy.stats import qmc

from vidcodec.quant.lattice import Lattice, get_lattice

PRUNE_PROBABILITY = 1e-7
# Largest table a scale (or a learned density's channel) may have and still be lattice-coded: with
# 16-bit rANS every symbol costs at least 2^-16 of the mass, so larger tables waste rate. One value
# for Gaussian and learned tables; part of the lattice coder's table parameters.
MAX_TABLE_POINTS = 4096
QMC_LOG2_POINTS = 14  # 16384 Sobol points per cell
QMC_SEED = 0
GAUSS_LEGENDRE_NODES = 64
TABLE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class TableSpec:
    lattice: str  # lattice name as get_lattice() accepts it
    sigma: float
    prune: float = PRUNE_PROBABILITY
    qmc_log2_points: int = QMC_LOG2_POINTS
    qmc_seed: int = QMC_SEED

    def key(self) -> str:
        text = json.dumps({**asdict(self), "version": TABLE_FORMAT_VERSION, "sigma": repr(float(self.sigma))},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class LatticeTable:
    """PMF over the kept lattice points of one (lattice, sigma).

    coords: (N, dim) int64 integer coordinates of the kept points, ordered by distance from the
        origin then lexicographically (the symbol of a point is its row index).
    pmf: (N,) float64 cell probabilities of those points.
    escape_mass: probability of every point not in the table (pruned or beyond the radius).
    integrated_mass: total mass of all enumerated cells before pruning: 1 up to the integration
        error and the mass beyond the radius (an accuracy check, not used for coding).
    """

    spec: TableSpec
    coords: torch.Tensor
    pmf: np.ndarray
    escape_mass: float
    integrated_mass: float

    @property
    def num_points(self) -> int:
        return len(self.pmf)

    def symbols_of(self, coords: torch.Tensor) -> torch.Tensor:
        """Table index of each point (..., dim) int64; -1 where the point is not in the table.

        Vectorized: a dense array over the bounding box of the table's coordinates maps each
        coordinate vector to its symbol."""
        if self.num_points == 0:
            return torch.full(coords.shape[:-1], -1, dtype=torch.int64)
        low, strides, dense = self._dense_lookup
        flat = coords.reshape(-1, coords.shape[-1]).to(torch.int64) - low
        inside = ((flat >= 0) & (flat < self._extent)).all(dim=-1)
        symbols = torch.full((len(flat),), -1, dtype=torch.int64)
        symbols[inside] = dense[(flat[inside] * strides).sum(-1)]
        return symbols.reshape(coords.shape[:-1])

    @functools.cached_property
    def _extent(self) -> torch.Tensor:
        return self.coords.amax(dim=0) - self.coords.amin(dim=0) + 1

    @functools.cached_property
    def _dense_lookup(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        low = self.coords.amin(dim=0)
        extent = self._extent
        strides = torch.ones_like(extent)
        for i in range(len(extent) - 2, -1, -1):
            strides[i] = strides[i + 1] * extent[i + 1]
        dense = torch.full((int(extent.prod()),), -1, dtype=torch.int64)
        dense[((self.coords - low) * strides).sum(-1)] = torch.arange(len(self.coords))
        return low, strides, dense


def _enumeration_radius(lattice: Lattice, sigma: float, prune: float) -> float:
    """Radius beyond which every cell has P < prune (and, in total, negligible mass).

    A cell's mass is at most the density at its nearest point to the origin (volume 1), and that
    point is at most the covering radius closer than the lattice point, hence the margin."""
    dim = lattice.dim
    peak_density = (2 * math.pi * sigma**2) ** (-dim / 2)
    # Mass-based floor: radius holding all but ~1e-12 of the Gaussian's mass (chi distribution).
    mass_radius = sigma * math.sqrt(dim + 2 * math.sqrt(dim * 28.0) + 2 * 28.0)
    if peak_density <= prune:
        return mass_radius + 1.0
    density_radius = sigma * math.sqrt(2 * math.log(peak_density / prune))
    return min(density_radius, mass_radius) + 1.0 + 1e-9


def _z1_probabilities(points: torch.Tensor, sigma: float) -> np.ndarray:
    p = points[:, 0].numpy()
    return ndtr((p + 0.5) / sigma) - ndtr((p - 0.5) / sigma)


def _a2_probabilities(lattice: Lattice, points: torch.Tensor, sigma: float) -> np.ndarray:
    # Cell of the origin: a hexagon with flat sides at x = +-half_width and vertices at (0, +-R).
    # For |x| <= half_width its vertical extent is |y| <= R - |x| / sqrt(3).
    neighbour_distance = torch.linalg.norm(lattice.generator[0]).item()
    half_width = neighbour_distance / 2
    circumradius = half_width * 2 / math.sqrt(3)
    nodes, weights = np.polynomial.legendre.leggauss(GAUSS_LEGENDRE_NODES)
    # The integrand has a kink at x = 0: integrate [-half_width, 0] and [0, half_width] separately.
    xs = np.concatenate([(nodes - 1) * half_width / 2, (nodes + 1) * half_width / 2])
    ws = np.concatenate([weights, weights]) * half_width / 2
    height = circumradius - np.abs(xs) / math.sqrt(3)
    px, py = points[:, 0].numpy()[:, None], points[:, 1].numpy()[:, None]
    density_x = np.exp(-0.5 * ((px + xs) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    mass_y = ndtr((py + height) / sigma) - ndtr((py - height) / sigma)
    return (density_x * mass_y) @ ws


def _qmc_probabilities(lattice: Lattice, points: torch.Tensor, sigma: float, log2_points: int, seed: int) -> np.ndarray:
    sobol = qmc.Sobol(d=lattice.dim, scramble=True, seed=seed).random_base2(log2_points)
    offsets = lattice.to_cell(torch.from_numpy(sobol))  # spread evenly over the Voronoi cell of the origin
    norm = (2 * math.pi * sigma**2) ** (-lattice.dim / 2)
    result = np.empty(len(points))
    # Chunks keep the (points x samples) matrix small.
    chunk = max(1, (1 << 22) // len(offsets))
    for start in range(0, len(points), chunk):
        p = points[start : start + chunk]
        squared = ((p[:, None, :] + offsets[None, :, :]) ** 2).sum(-1)
        result[start : start + chunk] = (torch.exp(-0.5 * squared / sigma**2).mean(dim=1) * norm).numpy()
    return result


def cell_probabilities(lattice: Lattice, points: torch.Tensor, sigma: float,
                       qmc_log2_points: int = QMC_LOG2_POINTS, qmc_seed: int = QMC_SEED) -> np.ndarray:
    """P(p) for each point (N, dim) float64 of ``lattice`` under N(0, sigma^2 I)."""
    if lattice.name == "Z1":
        return _z1_probabilities(points, sigma)
    if lattice.name == "A2":
        return _a2_probabilities(lattice, points, sigma)
    return _qmc_probabilities(lattice, points, sigma, qmc_log2_points, qmc_seed)


def build_table(spec: TableSpec) -> LatticeTable:
    lattice = get_lattice(spec.lattice)
    points = lattice.points_within(_enumeration_radius(lattice, spec.sigma, spec.prune))
    probabilities = cell_probabilities(lattice, points, spec.sigma, spec.qmc_log2_points, spec.qmc_seed)
    keep = probabilities >= spec.prune
    integrated = float(probabilities.sum())
    kept = probabilities[keep]
    # Escape carries everything not kept; measured against 1, not against the integrated sum, so
    # that integration error cannot make the escape mass negative.
    escape_mass = max(1.0 - float(kept.sum()), 0.0)
    return LatticeTable(spec, lattice.to_coords(points[torch.from_numpy(keep)]), kept, escape_mass, integrated)


class TableCache:
    """Tables on disk, one .npz per TableSpec key, written atomically (temporary name, rename).

    Default directory: $VIDCODEC_CACHE/lattice_tables (VIDCODEC_CACHE defaults to ~/.cache/vidcodec)."""

    def __init__(self, directory: Path | None = None) -> None:
        default = Path(os.environ.get("VIDCODEC_CACHE", Path.home() / ".cache" / "vidcodec")) / "lattice_tables"
        self.directory = Path(directory) if directory is not None else default
        self._memory: dict[str, LatticeTable] = {}

    def get(self, spec: TableSpec, build: Callable[[], LatticeTable] | None = None) -> LatticeTable:
        """The table of ``spec`` (any spec with a key(): TableSpec, learned_tables.LearnedTableSpec),
        built by ``build`` (default: build_table(spec)) when neither memory nor disk has it."""
        key = spec.key()
        if key in self._memory:
            return self._memory[key]
        path = self.directory / f"{key}.npz"
        table = None
        if path.is_file():
            try:
                with np.load(path) as data:
                    table = LatticeTable(spec, torch.from_numpy(data["coords"]), data["pmf"],
                                         float(data["escape_mass"]), float(data["integrated_mass"]))
            except (OSError, ValueError, KeyError):
                table = None  # a damaged cache file is rebuilt, never trusted
        if table is None:
            table = build() if build is not None else build_table(spec)
            self.directory.mkdir(parents=True, exist_ok=True)
            # One temporary name per process: parallel evaluation jobs may build the same table.
            tmp = self.directory / f".{key}.{os.getpid()}.tmp.npz"
            np.savez(tmp, coords=table.coords.numpy(), pmf=table.pmf, escape_mass=table.escape_mass,
                     integrated_mass=table.integrated_mass)
            tmp.replace(path)
        self._memory[key] = table
        return table
