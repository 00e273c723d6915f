"""Lattices for vector quantization of latents: Z^n, A2 (hexagonal), A3* (BCC), D4, E8.

Every lattice is scaled to unit cell volume, so one Voronoi cell holds the same probability mass
as the unit bin of scalar rounding and rates are comparable at equal step size.

Nearest points follow Conway & Sloane ("Fast quantizing and decoding algorithms for lattice
quantizers and codes", IEEE Trans. IT 1982): no codebook search. Each unscaled lattice is written
as a union of cosets of a rectangular grid,

    L = union over shifts s of { diag(step) (k + s) : k in Z^n, and sum(k) even for D_n types },

with every shift s in {0, 1/2}^n. The nearest point is found by rounding in each coset (with the
D_n parity fix where needed) and keeping the closest. Grid values are integers or half-integers,
exact in float64 and int64, which is what makes ``quantize_coords`` exact.

Tie rule (x exactly on a cell boundary), one fixed rule, the same on every call and for every
batch shape, since every step is elementwise or a per-vector loop over a fixed coordinate order:
  1. grid coordinates round half to even (``torch.round``);
  2. D_n's parity fix moves the first (lowest-index) coordinate among those of largest rounding
     error, towards x (upwards when that error is 0);
  3. between cosets the earlier one wins at equal distance (for E8: D8 before D8 + 1/2).
Ties are decided on x / scale in float64, so for the lattices whose scale is not 1 (A2, A3*, D4)
a point on a boundary may fall a rounding error to either side; the outcome depends only on x.
Inputs must stay well inside float64's integer range (|x| < 2^50).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch

from vidcodec.quant.registry import lattice_key, lattice_spellings


class NearestPointLattice(Protocol):
    """What code needs from a lattice to quantize with it and measure it: `Lattice` here and
    quant/leech.py's LeechLattice (which has no `points_within`) both provide this."""

    name: str
    dim: int
    generator: torch.Tensor  # (dim, dim) float64, rows = basis vectors, |det| = 1
    nsm_theory: float

    def nearest_point(self, x: torch.Tensor) -> torch.Tensor: ...
    def quantize_coords(self, x: torch.Tensor) -> torch.Tensor: ...
    def from_coords(self, coords: torch.Tensor) -> torch.Tensor: ...
    def to_coords(self, points: torch.Tensor) -> torch.Tensor: ...
    def to_cell(self, unit_points: torch.Tensor) -> torch.Tensor: ...


class Lattice:
    """A unit-volume lattice. Points are row vectors: p = k @ generator for integer k.

    Built by ``get_lattice``; the constructor takes the unscaled lattice in coset form (see the
    module docstring) and scales it by |det(basis)|^(-1/dim).
    """

    name: str
    dim: int
    generator: torch.Tensor  # (dim, dim) float64, rows = basis vectors, |det| = 1
    nsm_theory: float  # normalized second moment G of the Voronoi cell

    def __init__(self, name: str, basis: list[list[float]], step: list[float], shifts: list[list[float]],
                 even_sum: bool, nsm_theory: float) -> None:
        unscaled = torch.tensor(basis, dtype=torch.float64)
        self.name, self.dim, self.nsm_theory = name, unscaled.shape[0], nsm_theory
        self._scale = abs(torch.linalg.det(unscaled).item()) ** (-1.0 / self.dim)
        self.generator = unscaled * self._scale
        self._inverse = torch.linalg.inv(self.generator)
        self._step = torch.tensor(step, dtype=torch.float64)
        self._twice_shifts = [[round(2 * v) for v in s] for s in shifts]  # each entry 0 or 1
        self._even_sum = even_sum
        # Coordinates of a grid point: k = (2 q) @ numerator / denominator with integer numerator,
        # so quantize_coords never goes through an inexact matrix inverse.
        rational = 0.5 * torch.diag(self._step) @ torch.linalg.inv(unscaled)
        for denominator in range(1, 65):
            numerator = torch.round(rational * denominator)
            if torch.allclose(rational * denominator, numerator, rtol=0, atol=1e-9):
                break
        else:
            raise ValueError(f"{name}: grid-to-coordinate map is not rational with a small denominator")
        self._numerator, self._denominator = numerator, float(denominator)

    def __repr__(self) -> str:
        return f"Lattice({self.name!r}, dim={self.dim})"

    def nearest_point(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., dim) float -> nearest lattice point (..., dim), same dtype (computed in float64).

        Equals ``from_coords(quantize_coords(x))`` bit for bit, so an encoder's reconstruction
        matches a decoder's that only sees the coordinates."""
        return self.from_coords(self.quantize_coords(x)).to(x.dtype)

    def quantize_coords(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., dim) float -> integer coordinates (..., dim) int64 of its nearest lattice point.

        Exact: the nearest point is found on the half-integer grid and mapped to coordinates by
        integer arithmetic, with no inexact matrix inverse. Raises ValueError for non-finite x."""
        self._check_last_dim(x, "x")
        x64 = x.to(torch.float64)
        if not torch.isfinite(x64).all():
            raise ValueError("quantize_coords: x must be finite")
        return self._grid_to_coords(self._nearest_twice_grid(x64 / (self._scale * self._step)))

    def to_coords(self, points: torch.Tensor) -> torch.Tensor:
        """Lattice points (..., dim) float -> integer coordinates k (..., dim) int64, points = k @ G.

        Points off the lattice are not detected; use ``quantize_coords`` for arbitrary vectors."""
        self._check_last_dim(points, "points")
        return torch.round(points.to(torch.float64) @ self._inverse).to(torch.int64)

    def from_coords(self, coords: torch.Tensor) -> torch.Tensor:
        """Integer coordinates (..., dim) -> points (..., dim) float64, k @ generator.

        Summed row by row in a fixed order rather than by a matmul, whose rounding may depend on
        the batch shape: the same coordinates give the same bits in any batch."""
        self._check_last_dim(coords, "coords")
        k = coords.to(torch.float64)
        points = k[..., 0:1] * self.generator[0]
        for j in range(1, self.dim):
            points = points + k[..., j : j + 1] * self.generator[j]
        return points

    def to_cell(self, unit_points: torch.Tensor) -> torch.Tensor:
        """Points of [0,1)^dim (..., dim) -> points of the Voronoi cell of the origin, float64.

        u @ G covers the fundamental parallelepiped once; subtracting its nearest lattice point maps
        it onto the Voronoi cell, measure-preserving (both tile space under lattice translations).
        Uniform points stay uniform and low-discrepancy (Sobol) points stay evenly spread: the
        sampling behind cell probabilities (quant/tables.py) and lattice training (train/lattice_loop.py)."""
        self._check_last_dim(unit_points, "unit_points")
        parallelepiped = unit_points.to(torch.float64) @ self.generator
        return parallelepiped - self.nearest_point(parallelepiped)

    def points_within(self, radius: float, center: torch.Tensor | None = None) -> torch.Tensor:
        """All lattice points p with ||p - center|| <= radius, (N, dim) float64 (center (dim,),
        default the origin). A relative slack of 1e-12 keeps a shell whose norm is passed as radius.

        Sorted by distance to the center (rounded to 1e-9 in squared unscaled units, so float noise
        cannot split equal distances; exact for the origin), then lexicographically by integer
        coordinates. Enumeration is exact ball enumeration per coset, coordinate by coordinate, so
        the cost grows with the number of points, not with a bounding box."""
        if center is None:
            center = torch.zeros(self.dim, dtype=torch.float64)
        center = center.to(torch.float64)
        if center.shape != (self.dim,):
            raise ValueError(f"center has shape {tuple(center.shape)} (expected ({self.dim},))")
        if not math.isfinite(radius):
            raise ValueError(f"radius={radius} (expected a finite number)")
        if radius < 0:
            return torch.zeros(0, self.dim, dtype=torch.float64)
        center_grid = center / (self._scale * self._step)
        # Squared radius in unscaled units; the enumeration gets a little more slack than the
        # final filter so that it cannot drop a boundary point to rounding.
        budget = (radius / self._scale) ** 2 * (1 + 1e-12)
        twice_grid = torch.cat([self._ball_of_coset(twice_shift, center_grid, budget * (1 + 1e-9) + 1e-12)
                                for twice_shift in self._twice_shifts])
        squared = _weighted_squared_norm(twice_grid / 2 - center_grid, self._step**2)
        keep = squared <= budget
        twice_grid, squared = twice_grid[keep], squared[keep]
        coords = self._grid_to_coords(twice_grid)
        # np.lexsort sorts by its last key first.
        keys = [coords[:, j].numpy() for j in reversed(range(self.dim))] + [np.round(squared.numpy(), 9)]
        order = torch.from_numpy(np.lexsort(keys))
        return self.from_coords(coords[order])

    def _check_last_dim(self, t: torch.Tensor, what: str) -> None:
        if t.ndim == 0 or t.shape[-1] != self.dim:
            raise ValueError(f"{what} has shape {tuple(t.shape)} (expected (..., {self.dim}) for {self.name})")

    def _nearest_twice_grid(self, y: torch.Tensor) -> torch.Tensor:
        """y (..., dim) float64 in grid units -> 2 q (..., dim) float64 (integers), q the nearest
        grid point of the lattice under the metric weighted by step^2; ties as in the module doc."""
        weights = self._step**2
        best, best_dist = None, None
        for twice_shift in self._twice_shifts:
            shift = torch.tensor(twice_shift, dtype=torch.float64) / 2
            k = _round_dn(y - shift) if self._even_sum else torch.round(y - shift)
            dist = _weighted_squared_norm(y - shift - k, weights)
            twice = 2 * k + 2 * shift
            if best is None:
                best, best_dist = twice, dist
            else:
                closer = dist < best_dist  # strict: the earlier coset keeps a tie
                best = torch.where(closer.unsqueeze(-1), twice, best)
                best_dist = torch.where(closer, dist, best_dist)
        return best

    def _grid_to_coords(self, twice_grid: torch.Tensor) -> torch.Tensor:
        """2 q (..., dim), integer-valued float64, for grid points q of the lattice -> coordinates
        (..., dim) int64. A float64 matmul is exact here: every product and partial sum is an
        integer below 2^53, whatever the summation order, and so is the exact division."""
        return (twice_grid @ self._numerator / self._denominator).to(torch.int64)

    def _ball_of_coset(self, twice_shift: list[int], center_grid: torch.Tensor, budget: float) -> torch.Tensor:
        """All 2 q, q = k + shift in this coset, with sum_i step_i^2 (q_i - c_i)^2 <= budget; (N, dim)
        float64. Expands one coordinate at a time, each prefix only over the integers its
        remaining budget allows."""
        twice = torch.zeros(1, 0, dtype=torch.float64)
        remaining = torch.tensor([budget], dtype=torch.float64)
        for i in range(self.dim):
            shift, c, w = twice_shift[i] / 2, center_grid[i].item(), self._step[i].item()
            half_width = remaining.clamp(min=0).sqrt() / w
            low = torch.ceil(c - shift - half_width)
            count = (torch.floor(c - shift + half_width) - low + 1).clamp(min=0).to(torch.int64)
            parent = torch.repeat_interleave(torch.arange(len(count)), count)
            # Position of each child within its parent's run: 0, 1, ..., count - 1.
            start = torch.cumsum(count, 0) - count
            rank = torch.arange(len(parent)) - start[parent]
            k_i = low[parent] + rank.to(torch.float64)
            q_i = k_i + shift
            twice = torch.cat([twice[parent], (2 * q_i).unsqueeze(-1)], dim=-1)
            remaining = remaining[parent] - w**2 * (q_i - c) ** 2
        if self._even_sum:
            k_sum = ((twice - torch.tensor(twice_shift, dtype=torch.float64)) / 2).sum(-1)
            twice = twice[torch.remainder(k_sum, 2) == 0]
        return twice


def _weighted_squared_norm(v: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_i weights_i v_i^2 over the last axis, summed in a fixed order (batch-independent bits)."""
    total = weights[0] * v[..., 0] ** 2
    for i in range(1, v.shape[-1]):
        total = total + weights[i] * v[..., i] ** 2
    return total


def _round_dn(y: torch.Tensor) -> torch.Tensor:
    """Nearest point of D_n = {k in Z^n : sum(k) even}, y (..., n) float64 -> (..., n) float64."""
    f = torch.round(y)
    odd = torch.remainder(f.sum(-1), 2) != 0  # integer sums of floats: exact
    error = y - f
    worst = torch.argmax(error.abs(), dim=-1, keepdim=True)  # first index among equals
    step = torch.where(torch.gather(error, -1, worst) >= 0, 1.0, -1.0).to(y.dtype)
    fixed = f.scatter_add(-1, worst, step)
    return torch.where(odd.unsqueeze(-1), fixed, f)


def _dn_basis(n: int) -> list[list[float]]:
    rows = [[-1.0, -1.0] + [0.0] * (n - 2)]
    for i in range(n - 1):
        row = [0.0] * n
        row[i], row[i + 1] = 1.0, -1.0
        rows.append(row)
    return rows


def _e8_basis() -> list[list[float]]:
    # Conway & Sloane's generator: 2e_1, e_{i+1} - e_i (i = 1..6), and the glue vector (1/2)^8.
    rows = [[2.0] + [0.0] * 7]
    for i in range(6):
        row = [0.0] * 8
        row[i], row[i + 1] = -1.0, 1.0
        rows.append(row)
    rows.append([0.5] * 8)
    return rows


# Closed forms of G (Conway & Sloane, SPLAG ch. 2 and 21).
NSM_THEORY = {
    "Z": 1 / 12,
    "A2": 5 / (36 * math.sqrt(3)),  # 0.0801875
    "A3*": 19 / (192 * 2 ** (1 / 3)),  # 0.0785433
    "D4": 13 / (120 * math.sqrt(2)),  # 0.0766032
    "E8": 929 / 12960,  # 0.0716821
    # Not a closed form: the estimate the literature quotes (SPLAG ch. 2), to 4 significant digits.
    "Leech": 0.06577,
}
_NAMES = "z1..z8, " + lattice_spellings()  # quant/registry.py: each lattice with its aliases


def get_lattice(name: str) -> Lattice:
    """"z1".."z8", "a2"/"hex", "a3*"/"bcc"/"oct", "d4", "e8" (case-insensitive) -> a unit-volume
    Lattice; ValueError naming the known lattices otherwise. Generators (hence coordinates, which
    appear in bitstreams) are fixed: Z^n identity, A2 (1,0),(1/2,sqrt3/2), A3* e1,e2,(1/2)^3, D4
    and E8 as in Conway & Sloane, each times |det|^(-1/dim)."""
    key = lattice_key(name)  # aliases from quant/registry.py: "hex" -> "a2", "oct" -> "a3*"
    if key.startswith("z") and key[1:].isdigit() and 1 <= int(key[1:]) <= 8:
        n = int(key[1:])
        identity = torch.eye(n, dtype=torch.float64).tolist()
        return Lattice(f"Z{n}", identity, [1.0] * n, [[0.0] * n], False, NSM_THEORY["Z"])
    if key == "a2":
        # A2 = rectangular grid Z x sqrt3 Z plus its shift by (1/2, sqrt3/2).
        return Lattice("A2", [[1.0, 0.0], [0.5, math.sqrt(3.0) / 2]], [1.0, math.sqrt(3.0)],
                       [[0.0, 0.0], [0.5, 0.5]], False, NSM_THEORY["A2"])
    if key == "a3*":
        return Lattice("A3*", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.5]], [1.0] * 3,
                       [[0.0] * 3, [0.5] * 3], False, NSM_THEORY["A3*"])
    if key == "d4":
        return Lattice("D4", _dn_basis(4), [1.0] * 4, [[0.0] * 4], True, NSM_THEORY["D4"])
    if key == "e8":
        return Lattice("E8", _e8_basis(), [1.0] * 8, [[0.0] * 8, [0.5] * 8], True, NSM_THEORY["E8"])
    raise ValueError(f"unknown lattice {name!r} (known: {_NAMES})")


def normalized_second_moment(lattice: NearestPointLattice, num_samples: int = 200_000, seed: int = 0) -> float:
    """Monte Carlo G = E||x - Q(x)||^2 / (dim V^(2/dim)), V = 1, for x uniform over one fundamental
    parallelepiped: it tiles space, so x - Q(x) is uniform over the Voronoi cell of the origin.

    x = u @ generator with u a scrambled Sobol sequence in [0,1)^dim (seeded): still unbiased, and
    at 200k samples within 0.04% of the closed forms for every lattice here, where plain Monte
    Carlo's standard error is already 0.2% for Z1."""
    sobol = torch.quasirandom.SobolEngine(lattice.dim, scramble=True, seed=seed)
    total, unit_weights = 0.0, torch.ones(lattice.dim, dtype=torch.float64)
    for start in range(0, num_samples, 1 << 16):  # chunks bound the memory
        u = sobol.draw(min(1 << 16, num_samples - start), dtype=torch.float64)
        x = u @ lattice.generator
        total += _weighted_squared_norm(x - lattice.nearest_point(x), unit_weights).sum().item()
    return total / num_samples / lattice.dim
