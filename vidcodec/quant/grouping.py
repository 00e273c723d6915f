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
    """scale_indexes: integer tensor of any shape; dim: tuple size v >= 1."""
    if dim < 1:
        raise ValueError(f"dim={dim} (expected >= 1)")
    flat = scale_indexes.reshape(-1).to(torch.int64)
    order = torch.sort(flat, stable=True).indices
    sorted_scales = flat[order]
    values, counts = torch.unique_consecutive(sorted_scales, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    tuple_rows, tuple_scales, leftovers = [], [], []
    for value, start, count in zip(values.tolist(), starts.tolist(), counts.tolist()):
        full = count - count % dim
        members = order[start : start + count]
        if full:
            tuple_rows.append(members[:full].reshape(-1, dim))
            tuple_scales.append(torch.full((full // dim,), value, dtype=torch.int64))
        leftovers.append(members[full:])
    tuples = torch.cat(tuple_rows) if tuple_rows else torch.empty(0, dim, dtype=torch.int64)
    scales = torch.cat(tuple_scales) if tuple_scales else torch.empty(0, dtype=torch.int64)
    rest = torch.sort(torch.cat(leftovers)).values if leftovers else torch.empty(0, dtype=torch.int64)
    return TupleGrouping(tuples, scales, rest)
