"""The Leech lattice (24 dimensions) at unit volume: exact nearest point, integer coordinates.

Construction (Conway & Sloane, SPLAG ch. 4 sec. 11), in "standard" integer coordinates where the
minimal vectors have squared norm 32: with C the Golay code of quant/golay.py,

    Leech = { 2c + 4z : c in C, z in Z^24, sum(z) even }  u  { 1 + 2c + 4z : c in C, sum(z) odd }.

Dividing by sqrt(8) gives the unimodular, even lattice of minimal squared norm 4 (volume 1).

Decoder. `Lattice` (quant/lattice.py) is a union of cosets of a scaled integer grid with shifts in
{0, 1/2}^n; the Leech lattice needs 8192 cosets of 4 D24, each a 24-dimensional rounding, which is
costly. Instead this uses the three-block structure of the Golay code (Turyn's construction): the
vectors of the lattice supported on one block of 8 coordinates form 4 E8 (scaled E8, minimal
norm 32), so the lattice is a union of 4096 cosets of (4 E8)^3,

    Leech = union over glue vectors g of  g + (4 E8) x (4 E8) x (4 E8),

and each block of g takes one of only 256 values modulo 4 E8. The nearest point of a coset splits
into three independent 8-dimensional decodings, and each class of 4 E8 is two cosets of 4 D8,
decoded coordinate by coordinate (round within the residue class mod 4, then Wagner's parity fix).
Per input vector the decoder rounds each coordinate to its 4 residue classes, sums squared errors
over half-blocks (32 residue patterns each) and then over the 512 cosets of 4 D8 per block, and
searches the 4096 glue vectors as 256 groups of 16 that share block 0's class. This is the "decode
the pieces, then search the glue" idea of Forney's and Conway & Sloane's Leech decoders without
their hexacode refinements; exact, vectorized over the batch, about 3,000 vectors per second on
two loaded CPU cores (docs/lattices.md).

Ties (x at equal distance from two lattice points): per coordinate round half to even; the parity
fix moves the first coordinate of largest error (upwards when that error is 0); within a class
the coset r + 4 D8 wins over r + 2 + 4 D8; between glue vectors the lowest block-0 class, then the
first in its group. Sums run in a fixed order per vector, so the result of a vector does not
depend on the batch, but like quant/lattice.py ties are decided on float64 costs.
"""

from __future__ import annotations

from functools import cache

import torch

from vidcodec.quant.golay import BLOCK, golay_codewords, golay_generator
from vidcodec.quant.lattice import NSM_THEORY

DIM = 24
BLOCKS = DIM // BLOCK
# Unit volume: the standard lattice has volume 8^12 = 2^36, so scale by 2^(-36/24) = 1/sqrt(8).
SCALE = 8.0**-0.5
# Input vectors decoded at once: bounds the (chunk, 3, 256, 8) float64 work tensors to ~100 MB.
CHUNK = 2048


class LeechLattice:
    """The Leech lattice, unit volume, minimal squared norm 4. Points are row vectors p = k @ generator.

    Offers the part of `Lattice`'s interface that needs no enumeration (name, dim, generator,
    nsm_theory, nearest_point, quantize_coords, to_coords, from_coords, to_cell), so code written
    against quant.lattice.NearestPointLattice takes either. No points_within: the first shell alone
    holds 196,560 points, so dense tables over the lattice are out of reach anyway."""

    name = "Leech"
    dim = DIM

    def __init__(self) -> None:
        self.nsm_theory = NSM_THEORY["Leech"]
        self._basis_std = _leech_basis_std()  # (24, 24) int64, upper triangular, det 2^36
        self.generator = self._basis_std.to(torch.float64) * SCALE
        glue = _glue_vectors_std()  # (4096, 24) int64
        block_reps, glue_class = _block_classes(glue)  # (3, 256, 8), (4096, 3)
        self._coset_residue, self._coset_parity = _d8_cosets(block_reps)  # (3, 512, 8), (3, 512)
        # Each coset's 8 coordinates as positions in the flattened (block, coordinate, residue)
        # tables of _nearest_std. Cosets share half-blocks (4 coordinates): only 32 residue patterns
        # per half, so sums over a half are formed once per pattern (index (4, P)), and each coset
        # adds two of them (index (2, 3 * 512) into the P patterns).
        flat_position = (torch.arange(BLOCKS).reshape(BLOCKS, 1, 1) * BLOCK
                         + torch.arange(BLOCK).reshape(1, 1, BLOCK)) * 4 + self._coset_residue
        halves = flat_position.reshape(-1, 2, BLOCK // 2)  # (3 * 512, 2, 4)
        patterns, pattern_of_half = torch.unique(halves.reshape(-1, BLOCK // 2), dim=0, return_inverse=True)
        self._half_index = patterns.T.contiguous()
        self._coset_halves = pattern_of_half.reshape(-1, 2).T.contiguous()
        self._coset_odd = (self._coset_parity != 0).reshape(-1)  # (3 * 512,) bool
        # The glue vectors in groups of 16 that share block 0's class (every class of block 0 has 16;
        # blocks 0 and 1 determine a glue vector, so no two in a group share block 1's class):
        # (16, 256) class indexes for blocks 1 and 2, so the search first minimizes over each group.
        classes = block_reps.shape[1]
        order = torch.argsort(glue_class[:, 0] * classes + glue_class[:, 1])
        grouped = glue_class[order].reshape(classes, -1, BLOCKS)
        if not (grouped[:, :, 0] == torch.arange(classes).unsqueeze(-1)).all():
            raise RuntimeError("Leech glue: block 0's classes are not equally shared")
        self._group_class1 = grouped[:, :, 1].contiguous() + classes  # (256, 16), flat into (3 * 256)
        self._group_class2 = grouped[:, :, 2].contiguous() + 2 * classes

    def __repr__(self) -> str:
        return "LeechLattice()"

    def nearest_point(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., 24) float -> nearest lattice point (..., 24), same dtype (computed in float64).
        Equals ``from_coords(quantize_coords(x))`` bit for bit."""
        return self.from_coords(self.quantize_coords(x)).to(x.dtype)

    def quantize_coords(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., 24) float -> integer coordinates (..., 24) int64 of its nearest lattice point.
        Raises ValueError for non-finite x. Inputs must keep |x| < 2^40 (exact integer arithmetic)."""
        self._check_last_dim(x, "x")
        x64 = x.to(torch.float64)
        if not torch.isfinite(x64).all():
            raise ValueError("quantize_coords: x must be finite")
        flat = x64.reshape(-1, DIM) / SCALE
        nearest = [self._nearest_std(chunk) for chunk in flat.split(CHUNK) if len(chunk)]
        points_std = torch.cat(nearest) if nearest else flat.new_zeros(0, DIM)
        return self._std_to_coords(points_std.to(torch.int64)).reshape(x.shape)

    def to_coords(self, points: torch.Tensor) -> torch.Tensor:
        """Lattice points (..., 24) float -> integer coordinates (..., 24) int64, points = k @ generator.
        Points off the lattice (beyond float noise) raise ValueError."""
        self._check_last_dim(points, "points")
        points_std = torch.round(points.to(torch.float64) / SCALE).to(torch.int64)
        return self._std_to_coords(points_std.reshape(-1, DIM)).reshape(points.shape)

    def from_coords(self, coords: torch.Tensor) -> torch.Tensor:
        """Integer coordinates (..., 24) -> points (..., 24) float64. The standard-coordinate point
        is an exact int64 product, then scaled once: the same bits in any batch."""
        self._check_last_dim(coords, "coords")
        return (coords.to(torch.int64) @ self._basis_std).to(torch.float64) * SCALE

    def to_cell(self, unit_points: torch.Tensor) -> torch.Tensor:
        """Points of [0,1)^24 (..., 24) -> points of the Voronoi cell of the origin, float64; uniform
        (or Sobol) points stay uniform (evenly spread), as for `Lattice.to_cell`."""
        self._check_last_dim(unit_points, "unit_points")
        parallelepiped = unit_points.to(torch.float64) @ self.generator
        return parallelepiped - self.nearest_point(parallelepiped)

    def _check_last_dim(self, t: torch.Tensor, what: str) -> None:
        if t.ndim == 0 or t.shape[-1] != DIM:
            raise ValueError(f"{what} has shape {tuple(t.shape)} (expected (..., {DIM}) for {self.name})")

    def _nearest_std(self, y: torch.Tensor) -> torch.Tensor:
        """y (N, 24) float64 in standard coordinates -> nearest lattice point (N, 24), integer-valued
        float64, by the block-and-glue search of the module docstring.

        Each class of 4 E8 is two cosets of 4 D8 = {4 w : sum(w) even}, and a coset of 4 D8 is
        decoded coordinate by coordinate (round to the residue class mod 4, then Wagner's parity
        fix: move the coordinate that costs least to the other side). So per vector and block only
        4 roundings per coordinate are computed; the 512 cosets are table look-ups into them."""
        n = y.shape[0]
        blocks = y.reshape(n, BLOCKS, BLOCK, 1)
        residues = torch.arange(4, dtype=torch.float64)
        t = torch.round((blocks - residues) / 4.0)  # (N, 3, 8, 4): nearest value a + 4t per residue a
        error = blocks - (residues + 4.0 * t)
        # Look-up tables over (block, coordinate, residue), flattened so one index_select per table
        # gathers all cosets: squared error, parity of t, and the parity fix's extra cost
        # (4 - |e|)^2 - e^2 = 16 - 8 |e|.
        squared = (error**2).reshape(n, -1)
        odd = (torch.remainder(t, 2) != 0).reshape(n, -1)
        fix_cost = (16.0 - 8.0 * error.abs()).reshape(n, -1)
        halves = _combine_entries(squared, odd, fix_cost, self._half_index)
        cost, wrong, cheapest_fix = _combine_entries(*halves, self._coset_halves)
        wrong = wrong ^ self._coset_odd
        cost = torch.where(wrong, cost + cheapest_fix, cost)  # (N, 3 * 512)
        # Class of 4 E8 = cosets 2k and 2k + 1 of 4 D8; the first wins a tie.
        pair = cost.reshape(n, -1, 2)
        second = pair[..., 1] < pair[..., 0]
        class_cost = torch.where(second, pair[..., 1], pair[..., 0])  # (N, 3 * 256)
        classes = class_cost.shape[1] // BLOCKS
        rest = (class_cost.index_select(1, self._group_class1.reshape(-1))
                + class_cost.index_select(1, self._group_class2.reshape(-1))).reshape(n, classes, -1)
        in_group = torch.argmin(rest, dim=-1, keepdim=True)  # (N, 256, 1); first among equal costs
        glue_cost = class_cost[:, :classes] + torch.gather(rest, -1, in_group).squeeze(-1)
        class0 = torch.argmin(glue_cost, dim=-1, keepdim=True)  # (N, 1); first among equal costs
        member = torch.gather(in_group.squeeze(-1), 1, class0).squeeze(-1)  # (N,)
        flat_class = torch.cat([class0, self._group_class1[class0.squeeze(-1), member].unsqueeze(-1),
                                self._group_class2[class0.squeeze(-1), member].unsqueeze(-1)], -1)  # (N, 3)
        chosen_class = flat_class - torch.arange(BLOCKS) * classes
        chosen_coset = 2 * chosen_class + torch.gather(second, 1, flat_class).to(torch.int64)
        return self._coset_point(blocks.squeeze(-1), t, error, chosen_coset)

    def _coset_point(self, blocks: torch.Tensor, t: torch.Tensor, error: torch.Tensor,
                     coset: torch.Tensor) -> torch.Tensor:
        """The nearest point of the chosen coset of 4 D8 per block: blocks (N, 3, 8), t and error
        (N, 3, 8, 4) from _nearest_std, coset (N, 3) int64 -> (N, 24) float64."""
        n = blocks.shape[0]
        residue = self._coset_residue[torch.arange(BLOCKS), coset]  # (N, 3, 8) int64
        t_chosen = torch.gather(t, 3, residue.unsqueeze(-1)).squeeze(-1)
        error_chosen = torch.gather(error, 3, residue.unsqueeze(-1)).squeeze(-1)
        point = residue.to(torch.float64) + 4.0 * t_chosen
        wrong = torch.remainder(t_chosen.sum(-1), 2) != self._coset_parity[torch.arange(BLOCKS), coset]
        # Wagner's rule: the coordinate with the largest |error| (first among equals) moves by 4
        # towards y (upwards when its error is 0), the cheapest way to flip the parity.
        worst = torch.argmax(error_chosen.abs(), dim=-1, keepdim=True)
        step = torch.where(torch.gather(error_chosen, -1, worst) >= 0, 4.0, -4.0).to(torch.float64)
        fixed = point.scatter_add(-1, worst, step)
        return torch.where(wrong.unsqueeze(-1), fixed, point).reshape(n, BLOCKS * BLOCK)

    def _std_to_coords(self, points_std: torch.Tensor) -> torch.Tensor:
        """(N, 24) int64 lattice points in standard coordinates -> coordinates k with
        points = k @ basis, by forward substitution (the basis is upper triangular): exact integer
        arithmetic. A nonzero remainder means the point is not in the lattice."""
        basis = self._basis_std
        coords = torch.zeros_like(points_std)
        for j in range(DIM):
            rest = points_std[:, j] - coords[:, :j] @ basis[:j, j] if j else points_std[:, j]
            quotient = torch.div(rest, basis[j, j], rounding_mode="floor")
            if (quotient * basis[j, j] != rest).any():
                raise ValueError("to_coords: a point is not on the Leech lattice")
            coords[:, j] = quotient
        return coords


def _squared_norm(v: torch.Tensor) -> torch.Tensor:
    """sum of squares over the last axis, added in a fixed order (batch-independent bits)."""
    total = v[..., 0] ** 2
    for i in range(1, v.shape[-1]):
        total = total + v[..., i] ** 2
    return total


def _generating_vectors_std() -> torch.Tensor:
    """(37, 24) int64 vectors that generate the lattice in standard coordinates: 2c for the Golay
    generator rows, one odd vector (-3, 1^23), and a basis of 4 D24."""
    rows = [2 * golay_generator()]
    odd = torch.ones(1, DIM, dtype=torch.int64)
    odd[0, 0] = -3
    rows.append(odd)
    d24 = torch.zeros(DIM, DIM, dtype=torch.int64)
    d24[0, 0], d24[0, 1] = 4, 4
    for i in range(1, DIM):
        d24[i, i - 1], d24[i, i] = 4, -4
    rows.append(d24)
    return torch.cat(rows)


def _hermite_normal_form(rows: list[list[int]]) -> list[list[int]]:
    """Row-style Hermite normal form of an integer matrix of full column rank: an upper-triangular
    basis of the row lattice, positive pivots, entries above a pivot reduced into [0, pivot).
    Python integers, so exact at any size."""
    rows = [list(r) for r in rows]
    n = len(rows[0])
    for j in range(n):
        # Euclid on column j over the remaining rows until one nonzero entry is left.
        while True:
            live = [i for i in range(j, len(rows)) if rows[i][j] != 0]
            pivot = min(live, key=lambda i: abs(rows[i][j]))
            rows[j], rows[pivot] = rows[pivot], rows[j]
            done = True
            for i in range(j + 1, len(rows)):
                if rows[i][j]:
                    q = rows[i][j] // rows[j][j]
                    rows[i] = [a - q * b for a, b in zip(rows[i], rows[j])]
                    done = done and rows[i][j] == 0
            if done:
                break
        if rows[j][j] < 0:
            rows[j] = [-a for a in rows[j]]
        for i in range(j):
            q = rows[i][j] // rows[j][j]
            rows[i] = [a - q * b for a, b in zip(rows[i], rows[j])]
    return rows[:n]


@cache
def _leech_basis_std() -> torch.Tensor:
    """(24, 24) int64 upper-triangular basis of the lattice in standard coordinates. This fixes the
    integer coordinates that quantize_coords returns."""
    basis = _hermite_normal_form(_generating_vectors_std().tolist())
    return torch.tensor(basis, dtype=torch.int64)


def _e8_quotient_key(blocks: torch.Tensor) -> torch.Tensor:
    """(..., 8) int64 block vectors -> (...,) int64 key in [0, 2^17), equal for two vectors iff
    they differ by a vector of 4 E8. 4 E8 = 4 D8 u (4 D8 + 2 . 1^8) and 8 Z^8 is in 4 D8: reduce
    each coordinate mod 4 and keep the parity of the number of 4s taken off (it decides the coset
    of 4 D8), packed as one number; of the two keys of v and v + 2 . 1^8 keep the smaller."""
    def key_mod_4d8(v: torch.Tensor) -> torch.Tensor:
        residue = torch.remainder(v, 4)
        parity = torch.remainder(((v - residue) // 4).sum(-1), 2)
        return (residue * 4 ** torch.arange(BLOCK)).sum(-1) * 2 + parity

    return torch.minimum(key_mod_4d8(blocks), key_mod_4d8(blocks + 2))


def _glue_key(vectors: torch.Tensor) -> torch.Tensor:
    """(N, 24) int64 -> (N,) int64 key, equal iff the vectors differ by an element of (4 E8)^3."""
    keys = [_e8_quotient_key(vectors[:, b * BLOCK:(b + 1) * BLOCK]) for b in range(BLOCKS)]
    return keys[0] + (keys[1] << 17) + (keys[2] << 34)


@cache
def _glue_vectors_std() -> torch.Tensor:
    """(4096, 24) int64: one vector of each coset of (4 E8)^3 in the lattice, standard coordinates.

    Every generating vector has order 2 modulo (4 E8)^3 (checked), so the quotient is a binary
    vector space: a generator not yet in the span doubles it. The order follows the generators."""
    glue = torch.zeros(1, DIM, dtype=torch.int64)
    keys = {0}
    for g in _generating_vectors_std():
        if int(_glue_key(2 * g.unsqueeze(0))) != 0:
            raise RuntimeError("Leech glue: a generating vector has order > 2 modulo (4 E8)^3")
        if int(_glue_key(g.unsqueeze(0))) in keys:
            continue
        added = glue + g
        keys.update(_glue_key(added).tolist())
        glue = torch.cat([glue, added])
    if len(glue) != 4096 or len(keys) != 4096:
        raise RuntimeError(f"Leech glue group has {len(glue)} cosets (expected 4096)")
    return glue


def _unique_rows_first(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """keys (N,) int64 -> (inverse (N,), first (U,)): class of each row (classes in key order) and
    the index of the first row of each class."""
    _, inverse = torch.unique(keys, return_inverse=True)
    positions = torch.arange(len(keys))
    first = torch.full((int(inverse.max()) + 1,), len(keys), dtype=torch.int64).scatter_reduce(
        0, inverse, positions, reduce="amin")
    return inverse, first


def _block_classes(glue: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """glue (4096, 24) -> (reps (3, K, 8) int64, glue_class (4096, 3) int64): for each block, one
    representative per class modulo 4 E8 that the glue vectors take there (K = 256), and each glue
    vector's class per block."""
    reps, classes = [], []
    for b in range(BLOCKS):
        block = glue[:, b * BLOCK:(b + 1) * BLOCK]
        inverse, first = _unique_rows_first(_e8_quotient_key(block))
        reps.append(block[first])
        classes.append(inverse)
    sizes = {len(r) for r in reps}
    if len(sizes) != 1:
        raise RuntimeError(f"Leech blocks take different numbers of classes: {sorted(sizes)}")
    return torch.stack(reps), torch.stack(classes, -1)


def _combine_entries(squared: torch.Tensor, odd: torch.Tensor, fix_cost: torch.Tensor,
                     index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tables (N, M) over entries -> tables (N, P) over groups of k entries, index (k, P): sums of
    squared errors (added in index order: batch-independent bits), xor of odd flags, min of fix
    costs. Gathered as (N, k, P) so the loop runs over contiguous slices."""
    n, k = squared.shape[0], index.shape[0]
    flat = index.reshape(-1)
    squared_k = squared.index_select(1, flat).reshape(n, k, -1)
    odd_k = odd.index_select(1, flat).reshape(n, k, -1)
    fix_k = fix_cost.index_select(1, flat).reshape(n, k, -1)
    total, parity, cheapest = squared_k[:, 0], odd_k[:, 0], fix_k[:, 0]
    for i in range(1, k):
        total = total + squared_k[:, i]
        parity = parity ^ odd_k[:, i]
        cheapest = torch.minimum(cheapest, fix_k[:, i])
    return total, parity, cheapest


def _d8_cosets(block_reps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """block_reps (3, K, 8) int64 class representatives modulo 4 E8 -> the 2K cosets of 4 D8 they
    make up (4 E8 = 4 D8 u (4 D8 + 2 . 1^8)): residues (3, 2K, 8) int64 in 0..3 and parity
    (3, 2K) int64. Coset 2k is r_k + 4 D8, coset 2k + 1 is r_k + 2 + 4 D8. A point a + 4 t
    (a = r mod 4) lies in r + 4 D8 iff sum(t) = sum(floor(r / 4)) mod 2: that sum is the parity."""
    both = torch.stack([block_reps, block_reps + 2], dim=2).reshape(BLOCKS, -1, BLOCK)
    residue = torch.remainder(both, 4)
    parity = torch.remainder(torch.div(both, 4, rounding_mode="floor").sum(-1), 2)
    return residue, parity


def leech_lattice() -> LeechLattice:
    """The unit-volume Leech lattice (built once, then shared)."""
    return _shared_leech()


@cache
def _shared_leech() -> LeechLattice:
    return LeechLattice()


def minimal_vectors() -> torch.Tensor:
    """(196560, 24) float64: the minimal vectors (squared norm 4) at unit volume, listed by shape in
    standard coordinates: (+-2)^8 on an octad with an even number of minus signs (97,152),
    (-+3, +-1^23) with the signs of the 1s flipped on a Golay codeword (98,304), (+-4)^2 (1,104)."""
    words = golay_codewords()
    octads = words[words.sum(-1) == 8]  # 759
    # Sign patterns on the 8 positions of an octad: even number of minus signs (128).
    bits = (torch.arange(256).unsqueeze(-1) >> torch.arange(8)) & 1
    signs8 = 1 - 2 * bits[bits.sum(-1) % 2 == 0]
    support = octads.nonzero()[:, 1].reshape(len(octads), 8)
    shape2 = torch.zeros(len(octads), len(signs8), DIM, dtype=torch.int64)
    positions = support.unsqueeze(1).expand(-1, len(signs8), -1)
    shape2.scatter_(2, positions, 2 * signs8.unsqueeze(0).expand(len(octads), -1, -1))
    # Shape 3: x = 1 - 2c is on the lattice's odd half except for the parity of its 4s
    # (1 - 2c = 1 + 2c - 4c, and sum(c) is even); flipping one coordinate x_i to -3 x_i fixes it.
    base = 1 - 2 * words  # (4096, 24) of +-1
    shape3 = base.unsqueeze(1).repeat(1, DIM, 1)
    eye = torch.eye(DIM, dtype=torch.int64)
    shape3 = shape3 - 4 * eye.unsqueeze(0) * base.unsqueeze(1)
    pairs = torch.combinations(torch.arange(DIM), 2)
    signs2 = torch.tensor([[1, 1], [1, -1], [-1, 1], [-1, -1]])
    shape4 = torch.zeros(len(pairs), 4, DIM, dtype=torch.int64)
    shape4.scatter_(2, pairs.unsqueeze(1).expand(-1, 4, -1), 4 * signs2.unsqueeze(0).expand(len(pairs), -1, -1))
    vectors = torch.cat([shape2.reshape(-1, DIM), shape3.reshape(-1, DIM), shape4.reshape(-1, DIM)])
    return vectors.to(torch.float64) * SCALE
