import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vidcodec.quant.grouping import group_by_scale


@settings(max_examples=100, deadline=None)
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)), dim=st.integers(1, 4),
       levels=st.integers(1, 6), seed=st.integers(0, 1000))
def test_every_latent_is_coded_exactly_once_and_tuples_share_a_scale(shape, dim, levels, seed):
    scale_indexes = torch.randint(0, levels, shape, generator=torch.Generator().manual_seed(seed))
    grouping = group_by_scale(scale_indexes, dim)
    covered = torch.cat([grouping.tuples.reshape(-1), grouping.leftovers])
    assert torch.equal(torch.sort(covered).values, torch.arange(scale_indexes.numel()))
    flat = scale_indexes.reshape(-1)
    if len(grouping.tuples):
        assert torch.all(flat[grouping.tuples] == grouping.tuple_scale_indexes[:, None])
    # fewer than dim leftovers per scale index
    left_scales = flat[grouping.leftovers]
    for value in left_scales.unique():
        assert int((left_scales == value).sum()) < dim


def test_order_is_by_scale_then_raster():
    scale_indexes = torch.tensor([[3, 1, 3, 1, 1, 3, 2]])
    grouping = group_by_scale(scale_indexes, 2)
    assert grouping.tuples.tolist() == [[1, 3], [0, 2]]
    assert grouping.tuple_scale_indexes.tolist() == [1, 3]
    assert grouping.leftovers.tolist() == [4, 5, 6]


def test_invalid_dimension():
    with pytest.raises(ValueError, match="dim=0"):
        group_by_scale(torch.zeros(3, dtype=torch.int64), 0)
