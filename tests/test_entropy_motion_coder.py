"""Motion field coding: exact round trips of any field, a few bytes for a still one, clear errors."""

from __future__ import annotations

import pytest
import torch

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.entropy import motion_coder


@pytest.mark.parametrize("spread", [0, 1, 5, 40, 1000])
def test_any_field_decodes_to_itself(spread):
    generator = torch.Generator().manual_seed(spread)
    mv = torch.randint(-spread, spread + 1, (1, 2, 7, 11), generator=generator)
    assert torch.equal(motion_coder.decode(motion_coder.encode(mv), (7, 11)), mv)


def test_a_still_field_costs_its_model_and_almost_nothing_else():
    mv = torch.zeros(1, 2, 15, 26, dtype=torch.int64)  # 416x240 in 16x16 blocks
    assert len(motion_coder.encode(mv)) <= motion_coder.HEADER_BYTES + 8  # 0.001 bpp at 416x240


def test_a_smooth_field_costs_fewer_bits_than_a_noisy_one_of_the_same_range():
    smooth = torch.arange(26).div(4, rounding_mode="floor").view(1, 1, 1, 26).expand(1, 2, 15, 26).contiguous()
    noisy = smooth[..., torch.randperm(26, generator=torch.Generator().manual_seed(0))]
    assert len(motion_coder.encode(smooth)) * 2 < len(motion_coder.encode(noisy))
    ideal_bits = motion_coder.ideal_bits(noisy)
    assert abs(8 * len(motion_coder.encode(noisy)) - ideal_bits) < 0.05 * ideal_bits + 32


def test_differences_and_their_inverse_agree():
    mv = torch.randint(-9, 10, (2, 5, 6), generator=torch.Generator().manual_seed(4))
    assert torch.equal(motion_coder.undo_differences(motion_coder.differences(mv)), mv)


def test_a_short_or_impossible_model_is_refused():
    with pytest.raises(BitstreamError, match="shorter than its 4-byte model"):
        motion_coder.decode(b"\x01\x02", (2, 2))
    with pytest.raises(BitstreamError, match="outside 1..254"):
        motion_coder.decode(bytes([0, 5, 5, 5]) + b"\x00" * 8, (2, 2))
