"""Packing latents into v-tuples for lattice quantization, in an order the decoder can rebuild.

A tuple's PMF table is indexed by one scale, so only latents with the same scale index of the
hyperprior go into one tuple. The paper sorts latents by sigma; we sort by scale index (the same
order, since the scale table is increasing) with a stable sort, so within one scale index the
latents keep their raster (channel, row, column) order. The decoder knows every scale index before
it decodes any y, hence it rebuilds exactly this grouping. The ``count % v`` latents left over at
each scale index are coded by scalar rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TupleGrouping:
    """Flat positions (into scale_indexes.reshape(-1)) of each tuple and of the leftovers.

    tuples: (T, dim) int64, the latents of tuple t in coding order.
    tuple_scale_indexes: (T,) int64, the scale index shared by each tuple.
    leftovers: (L,) int64, latents coded by scalar rounding, in raster order.
    """

    tuples: torch.Tensor
    tuple_scale_indexes: torch.Tensor
    leftovers: torch.Tensor


def group_by_scale(scale_indexes: torch.Tensor, dim: int) -> TupleGrouping:
    """scale_indexes: integer tensor of any shape; dim: tuple size v >= 1.

    In numpy: it runs on every lattice-coded frame, on ~10^5 latents at 832x480, where torch's
    per-operation overhead (and its threads) cost more than the work."""
    if dim < 1:
        raise ValueError(f"dim={dim} (expected >= 1)")
    flat = scale_indexes.reshape(-1).to(torch.int64).numpy()
    order = stable_order(flat)
    sorted_scales = flat[order]
    if len(flat):
        starts = np.flatnonzero(np.r_[True, sorted_scales[1:] != sorted_scales[:-1]])
    else:
        starts = np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, len(flat)])
    # Rank of each latent within its scale index; the first count - count % dim of each go into
    # tuples. Those are a prefix of each group, and a multiple of dim long, so the kept latents, in
    # sorted order, are the tuples one after another.
    rank = np.arange(len(flat)) - np.repeat(starts, counts)
    in_tuple = rank < np.repeat(counts - counts % dim, counts)
    tuples = order[in_tuple].reshape(-1, dim)
    scales = sorted_scales[in_tuple][::dim]
    rest = sorted_positions(order[~in_tuple], len(flat))
    return TupleGrouping(torch.from_numpy(tuples), torch.from_numpy(np.ascontiguousarray(scales)),
                         torch.from_numpy(rest))


def stable_order(values: np.ndarray) -> np.ndarray:
    """Indexes (int64) that sort the 1-D int64 ``values`` stably. Scale indexes are small: as
    int16, numpy sorts them by radix; a stable order is unique, whatever the algorithm."""
    if len(values) and -(2**15) <= values.min() and values.max() < 2**15:
        values = values.astype(np.int16)
    return np.argsort(values, kind="stable").astype(np.int64)


def sorted_positions(positions: np.ndarray, size: int) -> np.ndarray:
    """Distinct positions in 0..size-1, in increasing order (a mask instead of a sort: O(size))."""
    mask = np.zeros(size, dtype=bool)
    mask[positions] = True
    return np.flatnonzero(mask).astype(np.int64)
