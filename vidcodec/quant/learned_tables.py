"""Probability tables of lattice points under a factorized learned density (bmshj2018-factorized:
one learned CDF F per channel, compressai's EntropyBottleneck), integrated over Voronoi cells.

A v-tuple of residuals r = y - median of one channel has the density prod_i f(r_i) (the latents of
a channel are coded as independent draws of its density), so

    P(p) = integral over V(p) of prod_i f(r_i) dr.

Only F is known (through the bottleneck's cumulative logits), so the integral is written with F
alone. Split r = (u, z), u the first v-1 coordinates. The cells of A2 and A3* are symmetric under
z -> -z, so the cell of the origin meets the line at u in an interval [-h(u), h(u)], and

    P(p) = integral over u of prod_{i<v} f(p_i + u_i) (F(p_z + h(u)) - F(p_z - h(u))) du.

u runs over a regular grid of intervals (U_INTERVALS per axis over the cell's extent); on each,
prod f du is the exact mass prod_i (F(p_i + b_i) - F(p_i + a_i)) and h is taken at its centre: the
midpoint rule in the cell's shape only, the density's part is exact. h(u) comes from bisection with
the lattice's own quantizer (``cell_profile``), so the cells are exactly the quantizer's. With a
Gaussian F the tables agree with quant/tables.py's (tested).

A channel is lattice-coded when its table stays small (at most MAX_TABLE_POINTS points with
P >= PRUNE_PROBABILITY, estimated from its unit intervals' masses: table_extents). Other channels
are rounded and coded with the bottleneck's own tables, as without a lattice. Points with
P < PRUNE_PROBABILITY and everything outside the box are the escape (entropy/lattice_coder.py).
Built for the lattices of Hex and Oct (A2, A3*).

Tables are cached on disk (quant/tables.TableCache) under a key of the lattice, the grid and the
channel's CDF values, so new weights give new tables and the same weights reuse them.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vidcodec.quant.lattice import get_lattice
from vidcodec.quant.tables import MAX_TABLE_POINTS, PRUNE_PROBABILITY, TABLE_FORMAT_VERSION, LatticeTable, TableCache

U_INTERVALS = {2: 512, 3: 96}  # intervals of the grid over u, per axis, by lattice dimension
BISECTION_STEPS = 60
LATTICES = ("A2", "A3*")


def _check_lattice(lattice_name: str):
    lattice = get_lattice(lattice_name)
    if lattice.name not in LATTICES:
        raise ValueError(f"lattice tables over learned densities are built for Hex and Oct (A2, A3*), "
                         f"not {lattice.name}")
    return lattice


def _inside(lattice, points: torch.Tensor) -> torch.Tensor:
    return (lattice.quantize_coords(points) == 0).all(dim=-1)


@functools.lru_cache(maxsize=4)
def cell_profile(lattice_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(edges (n+1,) of the u grid's intervals along each u axis, h (n,)*(v-1) the cell's half
    height in z at each interval's centre (0 outside the cell)), for the Voronoi cell of the origin."""
    lattice = _check_lattice(lattice_name)
    dim = lattice.dim
    # The cell is symmetric under each coordinate's reflection, so along u axis i its extent is
    # reached on that axis: bisection on t * e_i.
    extents = []
    for axis in range(dim - 1):
        low, high = torch.zeros(1, dtype=torch.float64), torch.full((1,), 2.0, dtype=torch.float64)
        for _ in range(BISECTION_STEPS):
            middle = (low + high) / 2
            point = torch.zeros(1, dim, dtype=torch.float64)
            point[0, axis] = middle
            inside = _inside(lattice, point)
            low, high = torch.where(inside, middle, low), torch.where(inside, high, middle)
        extents.append(float(high))
    extent = max(extents)
    n = U_INTERVALS[dim]
    edges = np.linspace(-extent, extent, n + 1)
    centres = torch.from_numpy((edges[:-1] + edges[1:]) / 2)
    grid = torch.stack([a.reshape(-1) for a in torch.meshgrid(*[centres] * (dim - 1), indexing="ij")], dim=-1)
    base = torch.cat([grid, torch.zeros(len(grid), 1, dtype=torch.float64)], dim=-1)
    in_slice = _inside(lattice, base)  # the slice at z = 0 is the cell's projection (symmetry, convexity)
    low = torch.zeros(len(grid), dtype=torch.float64)
    high = torch.full((len(grid),), 2.0, dtype=torch.float64)
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        inside = _inside(lattice, torch.cat([grid, middle[:, None]], dim=-1))
        low, high = torch.where(inside, middle, low), torch.where(inside, high, middle)
    half_height = torch.where(in_slice, (low + high) / 2, 0.0)
    return edges, half_height.numpy().reshape((n,) * (dim - 1))


def interval_masses(logits_low: np.ndarray, logits_high: np.ndarray) -> np.ndarray:
    """F(b) - F(a) from the CDF's logits at a and b (F = sigmoid(logit)), computed on the side of
    the median where it does not cancel (as compressai's EntropyBottleneck does)."""
    sign = -np.sign(logits_low + logits_high)
    sign[sign == 0] = 1.0
    return np.abs(_sigmoid(sign * logits_high) - _sigmoid(sign * logits_low))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class LearnedTableSpec:
    """The key of one channel's table: the lattice, the grid, the densities (a digest of whatever
    determines them, e.g. the bottleneck's weights) and the channel."""

    lattice: str
    density_digest: str
    channel: int
    prune: float = PRUNE_PROBABILITY

    def key(self) -> str:
        text = (f"learned|{self.lattice}|{U_INTERVALS}|{BISECTION_STEPS}|{self.prune!r}|"
                f"{TABLE_FORMAT_VERSION}|{self.density_digest}|{self.channel}")
        return hashlib.sha256(text.encode()).hexdigest()[:20]


class TableGrid:
    """The lattice points a channel's table may hold (those of the box of half-width ``half_width``)
    and the residual values its CDF is needed at: u-axis values p_i + edges, z values p_z +- h."""

    def __init__(self, lattice_name: str, half_width: float) -> None:
        self.lattice = _check_lattice(lattice_name)
        dim = self.lattice.dim
        edges, half_height = cell_profile(lattice_name)
        points = self.lattice.points_within(half_width * dim**0.5 + 1.0)
        points = points[(points.abs() <= half_width + 1.0).all(dim=-1)]
        self.coords = self.lattice.to_coords(points)
        values = points.numpy()
        # Distinct coordinate values per axis; every point indexes into them.
        self.axis_values, self.axis_index = [], []
        for axis in range(dim):
            unique, inverse = np.unique(np.round(values[:, axis], 12), return_inverse=True)
            self.axis_values.append(unique)
            self.axis_index.append(inverse)
        # Only the grid's cells inside the cell's projection contribute.
        self.active = np.nonzero(half_height.reshape(-1) > 0)[0]
        self.edges, self.half_height = edges, half_height.reshape(-1)[self.active]
        self.u_values = [(v[:, None] + edges[None, :]).reshape(-1) for v in self.axis_values[:-1]]
        z = self.axis_values[-1][:, None]
        self.z_values = np.concatenate([(z - self.half_height[None, :]).reshape(-1),
                                        (z + self.half_height[None, :]).reshape(-1)])

    def residual_values(self) -> np.ndarray:
        """Every residual value the tables need the CDF at, concatenated (for one batched call)."""
        return np.concatenate([*self.u_values, self.z_values])

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """P of every point of the grid (N,), from the CDF's logits at residual_values()."""
        dim = self.lattice.dim
        n = len(self.edges) - 1
        masses, start = [], 0
        for axis in range(dim - 1):
            size = len(self.u_values[axis])
            per_value = logits[start:start + size].reshape(len(self.axis_values[axis]), n + 1)
            masses.append(interval_masses(per_value[:, :-1], per_value[:, 1:]))  # (values, n)
            start += size
        num_z, cells = len(self.axis_values[-1]), len(self.half_height)
        z_low = logits[start:start + num_z * cells].reshape(num_z, cells)
        z_high = logits[start + num_z * cells:].reshape(num_z, cells)
        z_mass = np.zeros((num_z, n ** (dim - 1)))
        z_mass[:, self.active] = interval_masses(z_low, z_high)
        # The sum over the u grid separates: for each z value, the u masses of the first axes
        # contract with that z value's masses over the grid, for all coordinate values at once.
        if dim == 2:
            by_value = masses[0] @ z_mass.T  # (x values, z values)
            return by_value[self.axis_index[0], self.axis_index[1]]
        by_value = np.einsum("xa,zab,yb->xyz", masses[0], z_mass.reshape(num_z, n, n), masses[1], optimize=True)
        return by_value[self.axis_index[0], self.axis_index[1], self.axis_index[2]]

    def table(self, spec: LearnedTableSpec, logits: np.ndarray) -> LatticeTable:
        probabilities = self.probabilities(logits)
        keep = probabilities >= spec.prune
        # self.coords are in the order of points_within (by distance, then coordinates), as
        # quant/tables.py orders its tables.
        kept = probabilities[keep]
        return LatticeTable(spec, self.coords[torch.from_numpy(keep)], kept, max(1.0 - float(kept.sum()), 0.0),
                            float(probabilities.sum()))


def table_extents(dim: int, unit_masses: np.ndarray, prune: float = PRUNE_PROBABILITY) -> tuple[np.ndarray, np.ndarray]:
    """(estimated points (C,), half width (C,)) of each channel's table, from the masses of its
    unit intervals centred on -K..K (C, 2K+1): a cell can reach ``prune`` only where every
    coordinate's unit mass does (the other factors are at most 1), so the table lies in the box of
    those intervals, and the v-tuples of them whose product reaches ``prune`` estimate its size."""
    half = unit_masses.shape[1] // 2
    points, half_widths = np.zeros(len(unit_masses)), np.zeros(len(unit_masses))
    for channel, masses in enumerate(unit_masses):
        kept = np.nonzero(masses >= prune)[0]
        if len(kept) == 0:
            points[channel] = np.inf
            continue
        half_widths[channel] = np.abs(kept - half).max() + 0.5
        logs = np.log(masses[kept])
        products = logs
        for _ in range(dim - 1):
            products = np.add.outer(products, logs).reshape(-1)
            products = products[products >= np.log(prune)]  # the rest cannot come back
        points[channel] = len(products)
    return points, half_widths


def tables_of_cdfs(lattice_name: str, logits_of: Callable[[np.ndarray], np.ndarray], density_digest: str,
                   cache: TableCache | None = None, max_half_width: int = 64) -> list[LatticeTable | None]:
    """One table per channel of a factorized density whose table stays within MAX_TABLE_POINTS
    (table_extents); None for the others. ``logits_of(values (K,))`` -> (C, K) float64 logits of
    every channel's CDF at median + values (residual units); the bulk of the calls happens only
    when the cache lacks a table (``density_digest`` names the densities in the cache's keys)."""
    lattice = _check_lattice(lattice_name)
    edges = np.arange(-max_half_width - 0.5, max_half_width + 1.0)
    unit_logits = logits_of(edges)
    points, half_widths = table_extents(lattice.dim, interval_masses(unit_logits[:, :-1], unit_logits[:, 1:]))
    eligible = points <= MAX_TABLE_POINTS
    cache = cache or TableCache()
    built: dict = {}

    def build(channel: int, spec: LearnedTableSpec) -> LatticeTable:
        if not built:  # the first table missing from the cache: every channel's logits at once
            built["grid"] = TableGrid(lattice_name, float(half_widths[eligible].max()))
            built["logits"] = logits_of(built["grid"].residual_values())
        return built["grid"].table(spec, built["logits"][channel])

    tables: list[LatticeTable | None] = []
    for channel, ok in enumerate(eligible):
        spec = LearnedTableSpec(lattice.name, density_digest, channel)
        tables.append(cache.get(spec, build=functools.partial(build, channel, spec)) if ok else None)
    return tables
