"""Lattices for vector quantization of latents: Z^n, A2 (hexagonal), A3* (BCC), D4, E8.

Every lattice is scaled to unit cell volume, so one Voronoi cell holds the same probability mass
as the unit bin of scalar rounding and rates are comparable at equal step size.

Nearest points follow Conway & Sloane ("Fast quantizing and decoding algorithms for lattice
quantizers and codes", IEEE Trans. IT 1982): no codebook search, only rounding in a few cosets.

Ties (x exactly on a cell boundary) are resolved by one fixed rule, the same on every call and for
every batch layout: coordinates round half to even (``torch.round``), D_n's parity fix flips the
first coordinate of largest rounding error, and between cosets the first coset wins when the
distances are equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

NSM_THEORY = {"Z": 1 / 12, "A2": 0.0801875, "A3*": 0.0785433, "D4": 0.0766032, "E8": 0.0716821}


def _round_dn(x: torch.Tensor) -> torch.Tensor:
    """Nearest point of D_n = {k in Z^n : sum(k) even}, x (..., n)."""
    f = torch.round(x)
    odd = (f.sum(-1) % 2) != 0
    if odd.any():
        error = x - f
        worst = torch.argmax(error.abs(), dim=-1, keepdim=True)  # first index among equals
        step = torch.where(torch.gather(error, -1, worst) >= 0, 1.0, -1.0).to(x.dtype)
        fixed = f.scatter_add(-1, worst, step)
        f = torch.where(odd.unsqueeze(-1), fixed, f)
    return f


def _closest_of(x: torch.Tensor, candidates: list[torch.Tensor]) -> torch.Tensor:
    """Per vector, the candidate nearest to x; the earlier candidate wins a tie."""
    best = candidates[0]
    best_dist = ((x - best) ** 2).sum(-1)
    for candidate in candidates[1:]:
        dist = ((x - candidate) ** 2).sum(-1)
        closer = (dist < best_dist).unsqueeze(-1)
        best = torch.where(closer, candidate, best)
        best_dist = torch.minimum(dist, best_dist)
    return best


def _nearest_a2(x: torch.Tensor) -> torch.Tensor:
    # Unscaled A2 with basis (1,0), (1/2, sqrt3/2) = two cosets of the rectangular lattice
    # Z x sqrt3 Z: offset 0 and offset (1/2, sqrt3/2).
    scale = torch.tensor([1.0, math.sqrt(3.0)], dtype=x.dtype)
    offset = torch.tensor([0.5, math.sqrt(3.0) / 2], dtype=x.dtype)
    first = torch.round(x / scale) * scale
    second = torch.round((x - offset) / scale) * scale + offset
    return _closest_of(x, [first, second])


def _nearest_bcc(x: torch.Tensor) -> torch.Tensor:
    return _closest_of(x, [torch.round(x), torch.round(x - 0.5) + 0.5])


def _nearest_e8(x: torch.Tensor) -> torch.Tensor:
    return _closest_of(x, [_round_dn(x), _round_dn(x - 0.5) + 0.5])


@dataclass(frozen=True)
class Lattice:
    """A unit-volume lattice. Points are row vectors: p = k @ generator for integer k."""

    name: str
    dim: int
    generator: torch.Tensor  # (dim, dim) float64, rows = basis vectors, |det| = 1
    nsm_theory: float
    # Nearest point of the *unscaled* lattice (the one the generator was scaled from).
    _nearest_unscaled: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    _scale: float = field(repr=False)  # generator = scale * unscaled generator
    # Per-axis step of a rectangular grid containing the unscaled lattice (for enumeration).
    _grid_step: torch.Tensor = field(repr=False)

    def nearest_point(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., dim) float -> nearest lattice point (..., dim), same dtype (computed in float64)."""
        x64 = x.to(torch.float64)
        return (self._nearest_unscaled(x64 / self._scale) * self._scale).to(x.dtype)

    def to_coords(self, points: torch.Tensor) -> torch.Tensor:
        """Lattice points (..., dim) -> integer coordinates (..., dim) int64."""
        return torch.round(points.to(torch.float64) @ self._inverse()).to(torch.int64)

    def from_coords(self, coords: torch.Tensor) -> torch.Tensor:
        """Integer coordinates (..., dim) -> points (..., dim) float64."""
        return coords.to(torch.float64) @ self.generator

    def quantize_coords(self, x: torch.Tensor) -> torch.Tensor:
        """Integer coordinates of the nearest lattice point of x (..., dim)."""
        return self.to_coords(self.nearest_point(x.to(torch.float64)))

    def _inverse(self) -> torch.Tensor:
        return torch.linalg.inv(self.generator)

    def points_within(self, radius: float, center: torch.Tensor | None = None) -> torch.Tensor:
        """All points p with ||p - center|| <= radius, (N, dim) float64, sorted by distance to the
        center, then lexicographically by integer coordinates (a deterministic order).

        Candidates come from an axis-aligned grid that contains the lattice (``_grid_step``), so
        the search box is tight even for skewed bases such as E8's."""
        center = torch.zeros(self.dim, dtype=torch.float64) if center is None else center.to(torch.float64)
        step = self._grid_step * self._scale
        ranges = [
            torch.arange(math.floor((c - radius) / h), math.ceil((c + radius) / h) + 1, dtype=torch.float64) * h
            for c, h in zip(center.tolist(), step.tolist())
        ]
        grid = torch.cartesian_prod(*ranges).reshape(-1, self.dim)
        grid = grid[torch.linalg.norm(grid - center, dim=-1) <= radius + 1e-12]
        # Membership test in chunks: for E8 the candidate grid has millions of points.
        members = [chunk[(self.nearest_point(chunk) - chunk).abs().amax(dim=-1) < 1e-9] for chunk in grid.split(1 << 18)]
        coords = self.to_coords(torch.cat(members))
        points = self.from_coords(coords)
        dist = torch.linalg.norm(points - center, dim=-1)
        # np.lexsort sorts by its last key first: distance (rounded so float noise cannot reorder
        # equidistant points), then coordinates in order.
        keys = [coords[:, j].numpy() for j in reversed(range(self.dim))] + [np.round(dist.numpy(), 9)]
        order = torch.from_numpy(np.lexsort(keys))
        return points[order]


def _make(name: str, basis: list[list[float]], nearest: Callable, nsm: float, grid_step: list[float]) -> Lattice:
    unscaled = torch.tensor(basis, dtype=torch.float64)
    dim = unscaled.shape[0]
    scale = abs(torch.linalg.det(unscaled).item()) ** (-1.0 / dim)
    return Lattice(name, dim, unscaled * scale, nsm, nearest, scale, torch.tensor(grid_step, dtype=torch.float64))


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


def get_lattice(name: str) -> Lattice:
    """"z1".."z8", "a2"/"hex", "a3*"/"bcc"/"oct", "d4", "e8" (case-insensitive)."""
    key = name.lower()
    if key.startswith("z") and key[1:].isdigit() and 1 <= int(key[1:]) <= 8:
        n = int(key[1:])
        return _make(f"Z{n}", torch.eye(n).tolist(), torch.round, NSM_THEORY["Z"], [1.0] * n)
    if key in ("a2", "hex"):
        return _make("A2", [[1.0, 0.0], [0.5, math.sqrt(3.0) / 2]], _nearest_a2, NSM_THEORY["A2"], [0.5, math.sqrt(3.0) / 2])
    if key in ("a3*", "bcc", "oct"):
        return _make("A3*", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.5]], _nearest_bcc, NSM_THEORY["A3*"], [0.5] * 3)
    if key == "d4":
        return _make("D4", _dn_basis(4), _round_dn, NSM_THEORY["D4"], [1.0] * 4)
    if key == "e8":
        return _make("E8", _e8_basis(), _nearest_e8, NSM_THEORY["E8"], [0.5] * 8)
    raise ValueError(f"unknown lattice '{name}' (known: z1..z8, a2/hex, a3*/bcc/oct, d4, e8)")


def normalized_second_moment(lattice: Lattice, num_samples: int = 200_000, seed: int = 0) -> float:
    """Monte Carlo G = E||x - Q(x)||^2 / dim for x uniform over one fundamental parallelepiped
    (which tiles space, so x - Q(x) is uniform over the Voronoi cell); the volume is 1."""
    generator = torch.Generator().manual_seed(seed)
    u = torch.rand(num_samples, lattice.dim, generator=generator, dtype=torch.float64)
    x = u @ lattice.generator
    error = x - lattice.nearest_point(x)
    return (error**2).sum(-1).mean().item() / lattice.dim
