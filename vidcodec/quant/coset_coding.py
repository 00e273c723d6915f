"""Lattice coding that scales: a lattice point as a coset index plus integer grid coordinates.

quant/tables.py codes a lattice point as one symbol of a dense table over all probable points,
which stops working beyond ~4096 points (E8 at sigma > 0.2, the Leech lattice never). Every
lattice here is a union of cosets of a scaled integer grid with at most a parity rule,

    L = union over j of { step * (k + s_j) : k in Z^n, and sum(k) = t_j mod 2 where t_j is set },

(Z^n, A2, A3*, D4, E8 as in quant/lattice.py; the Leech lattice as 8192 cosets of 4 D24 from the
Golay code, quant/leech.py), so a point is (j, k): a coset index and n integers. Each is coded
with a small table of its own, conditioned on what came before, from one probability model:

    Q(j, k) = prod_i m_i(k_i + s_ji) / Z,   m_i(g) = mass of N(0, sigma_i^2) on [g - w_i/2, g + w_i/2],

a product of Gaussian masses on intervals around each coordinate (sigma_i = sigma / step_i, grid
units), restricted to the lattice and normalized. The interval width is the cell's: w = sqrt(12 G)
per dimension (unit volume; / step_i in grid units), the box with the Voronoi cell's second moment,
since the mass of a cell is, to second order, the density smoothed by the cell's covariance G I.
(Z^n: w = 1, the exact cell. With the grid's box, w = 1 grid unit, the rate at sigma 0.5 was 4.1%
above the ideal for A2 and 2.3% for the Leech lattice; with the matched box 0.08% and 0.15%.)
Its chain of conditionals is exact and cheap: Q(j) = W_j / Z and
Q(k_i | j, k_<i) = m_i(k_i + s_ji) R_{i+1}(parity left) / R_i(...), where the sums over the
remaining coordinates of either parity follow from A = sum_k m(k + s) and B = sum_k (-1)^k m(k + s)
per coordinate: R(parity) = (prod A +- prod B) / 2. No table has more than ~20 sigma entries.

From sigma 0.5 to 4 per dimension the streams are within 0.15% of the ideal rate, the sum of
-log2 P(cell) with P the Gaussian's mass on each point's Voronoi cell (docs/lattices.md;
scripts/bench/bench_coset_coding.py measures it with the bytes of real rANS streams). Values beyond
a coordinate's table go through compressai's escape (bypass coding), so every point stays codable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from compressai._CXX import pmf_to_quantized_cdf
from compressai.ans import BufferedRansEncoder, RansDecoder
from scipy.special import ndtr

from vidcodec.quant.golay import golay_codewords
from vidcodec.quant.lattice import NSM_THEORY, get_lattice

CDF_PRECISION_BITS = 16
# A coordinate's table spans the box masses within this many sigma_i of the mean (the mass
# beyond, ~1e-23, goes to the escape symbol).
TABLE_HALF_WIDTH_SIGMAS = 10.0
# Smallest mass of a table's escape symbol: values beyond the table stay codable.
MIN_ESCAPE_PROBABILITY = 1e-9


@dataclass(frozen=True)
class CosetForm:
    """L = union_j { step * (k + shifts[j]) : k in Z^n, sum(k) = parity[j] mod 2 if parity[j] >= 0 }
    at unit volume. step (n,) float64; shifts (C, n) float64 in [0, 1), multiples of 1/4;
    parity (C,) int64 in {-1, 0, 1}; nsm the lattice's G."""

    name: str
    step: torch.Tensor
    shifts: torch.Tensor
    parity: torch.Tensor
    nsm: float  # normalized second moment G of the Voronoi cell (sets the model's box width)

    @property
    def dim(self) -> int:
        return len(self.step)


def coset_form(name: str) -> CosetForm:
    """"z1".."z8", "a2", "a3*", "d4", "e8" (the grids of quant/lattice.py, hence the same points),
    or "leech" (quant/leech.py). Shifts are listed in a fixed order: it is the coset index."""
    key = name.strip().lower()
    if key == "leech":
        words = golay_codewords().to(torch.float64)
        # Standard coordinates (minimal norm 32) on the grid 4 Z^24: 2c + 4 D24 (k even) and
        # 1 + 2c + 4 (D24 + e1) (k odd); unit volume divides by sqrt(8).
        shifts = torch.cat([words / 2, (1 + 2 * words) / 4])
        parity = torch.cat([torch.zeros(4096, dtype=torch.int64), torch.ones(4096, dtype=torch.int64)])
        return CosetForm("Leech", torch.full((24,), 4 / math.sqrt(8.0), dtype=torch.float64), shifts, parity,
                         NSM_THEORY["Leech"])
    lattice = get_lattice(key)  # validates the name, gives the unit-volume scale
    n = lattice.dim
    half = torch.full((1, n), 0.5, dtype=torch.float64)
    zero = torch.zeros(1, n, dtype=torch.float64)
    if lattice.name.startswith("Z"):
        grid, shifts, parity = [1.0] * n, zero, [-1]
    elif lattice.name == "A2":
        grid, shifts, parity = [1.0, math.sqrt(3.0)], torch.cat([zero, half]), [-1, -1]
    elif lattice.name == "A3*":
        grid, shifts, parity = [1.0] * 3, torch.cat([zero, half]), [-1, -1]
    elif lattice.name == "D4":
        grid, shifts, parity = [1.0] * 4, zero, [0]
    else:  # E8
        grid, shifts, parity = [1.0] * 8, torch.cat([zero, half]), [0, 0]
    unscaled = torch.tensor(grid, dtype=torch.float64)
    # Unit volume: the grid of one coset has volume prod(grid) (x2 with a parity rule); C cosets.
    volume = float(torch.prod(unscaled)) * (2.0 if parity[0] >= 0 else 1.0) / len(shifts)
    step = unscaled * volume ** (-1.0 / n)
    return CosetForm(lattice.name, step, shifts, torch.tensor(parity, dtype=torch.int64), lattice.nsm_theory)


def to_symbols(form: CosetForm, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lattice points (T, n) float64 -> (coset index (T,) int64, k (T, n) int64). Points off the
    lattice raise ValueError."""
    g = points.to(torch.float64) / form.step
    quarters = torch.round(4 * g)
    if not torch.allclose(4 * g, quarters, atol=1e-6):
        raise ValueError(f"to_symbols: points are not on the {form.name} grid")
    frac = torch.remainder(quarters, 4).to(torch.int64)  # 4 * shift
    shift_codes = _codes(torch.round(4 * form.shifts).to(torch.int64))
    order = torch.argsort(shift_codes)
    position = torch.searchsorted(shift_codes[order], _codes(frac)).clamp(max=len(order) - 1)
    coset = order[position]
    k = ((quarters.to(torch.int64) - frac) // 4)
    bad = shift_codes[coset] != _codes(frac)
    parity = form.parity[coset]
    bad |= (parity >= 0) & (torch.remainder(k.sum(-1), 2) != parity.clamp(min=0))
    if bad.any():
        raise ValueError(f"to_symbols: {int(bad.sum())} points are not on the {form.name} lattice")
    return coset, k


def from_symbols(form: CosetForm, coset: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """(coset (T,), k (T, n)) -> points (T, n) float64."""
    return (k.to(torch.float64) + form.shifts[coset]) * form.step


def _codes(quarter_shifts: torch.Tensor) -> torch.Tensor:
    """(..., n) int64 in 0..3 -> (...,) int64, a base-4 number (n <= 24 fits in 48 bits)."""
    weights = 4 ** torch.arange(quarter_shifts.shape[-1], dtype=torch.int64)
    return (quarter_shifts * weights).sum(-1)


class CosetModel:
    """The model Q of the module docstring for one lattice and one sigma (per dimension, in the
    units of the unit-volume lattice): exact -log2 Q(p), and rANS coding of points with it."""

    def __init__(self, form: CosetForm, sigma: float) -> None:
        if not (sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"sigma={sigma} (expected a finite number > 0)")
        self.form, self.sigma = form, sigma
        self._shift_values = torch.unique(form.shifts)  # a few multiples of 1/4
        self._step_values, self._step_class = torch.unique(form.step, return_inverse=True)
        # Half the model's interval per coordinate, grid units (module docstring).
        self._half_width = 0.5 * math.sqrt(12.0 * form.nsm) / form.step
        # Per (step class, shift value): the k range of the table and the box masses on it.
        self._boxes: dict[tuple[int, float], tuple[int, np.ndarray]] = {}
        sums_a = torch.zeros(len(self._step_values), len(self._shift_values), dtype=torch.float64)
        sums_b = torch.zeros_like(sums_a)
        for c, step in enumerate(self._step_values.tolist()):
            for v, shift in enumerate(self._shift_values.tolist()):
                low, masses = self._box_masses(sigma / step, shift, float(self._half_width[self._step_class == c][0]))
                self._boxes[(c, shift)] = (low, masses)
                signs = np.where((np.arange(len(masses)) + low) % 2 == 0, 1.0, -1.0)
                sums_a[c, v], sums_b[c, v] = float(masses.sum()), float((signs * masses).sum())
        # A and B per (coset, coordinate); suffix products give R_i of every coset.
        shift_index = torch.searchsorted(self._shift_values, form.shifts)
        self._a = sums_a[self._step_class.expand_as(shift_index), shift_index]  # (C, n)
        self._b = sums_b[self._step_class.expand_as(shift_index), shift_index]
        ones = torch.ones(len(form.shifts), 1, dtype=torch.float64)
        self._suffix_a = torch.cat([torch.flip(torch.cumprod(torch.flip(self._a, [1]), 1), [1]), ones], 1)
        self._suffix_b = torch.cat([torch.flip(torch.cumprod(torch.flip(self._b, [1]), 1), [1]), ones], 1)
        parity = form.parity
        sign = torch.where(parity == 1, -1.0, 1.0).to(torch.float64)
        weights = torch.where(parity >= 0, 0.5 * (self._suffix_a[:, 0] + sign * self._suffix_b[:, 0]),
                              self._suffix_a[:, 0])
        self._log2_total = math.log2(float(weights.sum()))
        self._coset_pmf = (weights / weights.sum()).numpy()
        self._tables: dict[tuple, int] = {}
        self._cdfs: list[list[int]] = []
        self._offsets: list[int] = []
        self._cdf_index: dict[tuple[int, tuple[int, ...]], int] = {}
        self._coset_table = self._add_table(0, self._coset_pmf)

    @property
    def num_tables(self) -> int:
        """Distinct CDF tables built so far (the coset table and the coordinates' tables)."""
        return len(self._cdfs)

    @staticmethod
    def _box_masses(sigma_grid: float, shift: float, half: float) -> tuple[int, np.ndarray]:
        """(first k, masses of [k + shift - half, k + shift + half] under N(0, sigma_grid^2))."""
        reach = TABLE_HALF_WIDTH_SIGMAS * sigma_grid + 1.0
        low, high = math.floor(-reach - shift), math.ceil(reach - shift)
        g = np.arange(low, high + 1, dtype=np.float64) + shift
        # Upper tails on the right, lower tails on the left: no cancellation in the far boxes.
        right = ndtr(-(g - half) / sigma_grid) - ndtr(-(g + half) / sigma_grid)
        left = ndtr((g + half) / sigma_grid) - ndtr((g - half) / sigma_grid)
        return low, np.where(g > 0, right, left)

    def model_bits(self, points: torch.Tensor) -> torch.Tensor:
        """-log2 Q(p) per point (T,) float64: the rate of an ideal arithmetic coder with this model."""
        coset, k = to_symbols(self.form, points)
        g = k.to(torch.float64) + self.form.shifts[coset]
        sigma_grid, half = self.sigma / self.form.step, self._half_width
        upper = ndtr((-(g - half) / sigma_grid).numpy()) - ndtr((-(g + half) / sigma_grid).numpy())
        lower = ndtr(((g + half) / sigma_grid).numpy()) - ndtr(((g - half) / sigma_grid).numpy())
        masses = np.where(g.numpy() > 0, upper, lower)
        return torch.from_numpy(-np.log2(masses).sum(-1) + self._log2_total)

    def encode(self, points: torch.Tensor) -> bytes:
        """Lattice points (T, n) -> one rANS string: all coset indexes, then coordinate 0 of every
        point, coordinate 1, ... (the order the decoder can rebuild each table in)."""
        coset, k = to_symbols(self.form, points)
        symbols, indexes = coset.tolist(), [self._coset_table] * len(coset)
        parity_left = self._initial_parity(coset)
        for i in range(self.form.dim):
            tables = self._coordinate_tables(coset, i, parity_left)
            symbols += k[:, i].tolist()
            indexes += tables
            parity_left = torch.remainder(parity_left - k[:, i], 2)
        encoder = BufferedRansEncoder()
        encoder.encode_with_indexes(symbols, indexes, self._cdfs, [len(c) for c in self._cdfs], self._offsets)
        return encoder.flush()

    def decode(self, data: bytes, num_points: int) -> torch.Tensor:
        """Inverse of encode: (num_points, n) float64 lattice points."""
        decoder = RansDecoder()
        decoder.set_stream(data)
        coset = torch.tensor(self._read(decoder, [self._coset_table] * num_points), dtype=torch.int64)
        if num_points and (coset.min() < 0 or coset.max() >= len(self.form.shifts)):
            raise ValueError("decode: coset index out of range (corrupt or foreign stream)")
        parity_left = self._initial_parity(coset)
        k = torch.zeros(num_points, self.form.dim, dtype=torch.int64)
        for i in range(self.form.dim):
            k[:, i] = torch.tensor(self._read(decoder, self._coordinate_tables(coset, i, parity_left)),
                                   dtype=torch.int64)
            parity_left = torch.remainder(parity_left - k[:, i], 2)
        return from_symbols(self.form, coset, k)

    def _read(self, decoder: RansDecoder, indexes: list[int]) -> list[int]:
        return decoder.decode_stream(indexes, self._cdfs, [len(c) for c in self._cdfs], self._offsets)

    def _initial_parity(self, coset: torch.Tensor) -> torch.Tensor:
        return self.form.parity[coset].clamp(min=0)

    def _coordinate_tables(self, coset: torch.Tensor, i: int, parity_left: torch.Tensor) -> list[int]:
        """Table index per point for coordinate i, given its coset and the parity its coordinates
        i.. must still sum to (ignored for cosets without a parity rule)."""
        shift = self.form.shifts[coset, i]
        ruled = self.form.parity[coset] >= 0
        # R_{i+1}(q) = (A + (-1)^q B) / 2 over coordinates i+1..: the weight of the parity q the
        # remaining coordinates must reach after k_i (for the last coordinate A = B = 1: the
        # parity is forced).
        a, b = self._suffix_a[coset, i + 1], self._suffix_b[coset, i + 1]
        same = torch.where(ruled, 0.5 * (a + b), torch.ones_like(a))  # k_i of the parity left: rest even
        other = torch.where(ruled, 0.5 * (a - b), torch.ones_like(a))
        keys = torch.stack([shift, parity_left.to(torch.float64), same, other], -1)
        unique, inverse = torch.unique(keys, dim=0, return_inverse=True)
        ids = [self._table_for(int(self._step_class[i]), *row) for row in unique.tolist()]
        return torch.tensor(ids, dtype=torch.int64)[inverse].tolist()

    def _table_for(self, step_class: int, shift: float, parity_left: float, same: float, other: float) -> int:
        key = (step_class, shift, parity_left, same, other)
        if key not in self._tables:
            low, masses = self._boxes[(step_class, shift)]
            k_parity = (np.arange(len(masses)) + low) % 2
            weight = np.where(k_parity == int(parity_left), same, other)
            self._tables[key] = self._add_table(low, masses * weight)
        return self._tables[key]

    def _add_table(self, offset: int, weights: np.ndarray) -> int:
        """Index of the quantized CDF of these weights (escape symbol appended). Contexts whose
        weights differ only below the CDF's 16-bit resolution share one entry: rANS receives the
        whole CDF list on every call, so duplicates would cost time, not just memory."""
        pmf = weights / weights.sum()
        pmf = np.append(pmf * (1 - MIN_ESCAPE_PROBABILITY), MIN_ESCAPE_PROBABILITY)
        cdf = pmf_to_quantized_cdf(pmf.tolist(), CDF_PRECISION_BITS)
        content = (offset, tuple(cdf))
        if content not in self._cdf_index:
            self._cdf_index[content] = len(self._cdfs)
            self._cdfs.append(cdf)
            self._offsets.append(offset)
        return self._cdf_index[content]
