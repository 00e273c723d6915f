"""Block motion search and prediction: what the hybrid codec's P-frames copy from their reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidcodec.motion import block_motion
from vidcodec.train.synthetic import photo_clip


def _photo(height: int = 96, width: int = 128, seed: int = 3) -> torch.Tensor:
    frame = photo_clip("coffee", 1, height, width, seed=seed)[0]
    return torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None].float()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / max(F.mse_loss(a, b).item(), 1e-12))


def test_a_zero_field_predicts_the_reference_exactly():
    reference = torch.rand(2, 3, 32, 48)
    mv = torch.zeros(2, 2, 2, 3, dtype=torch.int64)
    assert torch.equal(block_motion.predict(reference, mv, 16), reference)


def test_quarter_pel_vectors_sample_between_pixels():
    reference = torch.arange(16.0).view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    mv = torch.tensor([[[[6]], [[0]]]])  # +1.5 pixels in x
    predicted = block_motion.predict(reference, mv, 16)
    assert torch.allclose(predicted[0, 0, 0, 4:8], torch.tensor([5.5, 6.5, 7.5, 8.5]))  # a ramp stays a ramp
    far = block_motion.predict(reference, torch.tensor([[[[32]], [[0]]]]), 16)  # +8 pixels
    assert (far[0, 0, 0, 8:] == 15.0).all()  # beyond the edge: the edge pixel, exactly


def test_the_interpolation_keeps_detail_that_bilinear_would_blur():
    stripes = torch.tensor([0.0, 0.0, 1.0, 1.0]).repeat(8).view(1, 1, 1, 32).expand(1, 1, 16, 32).contiguous()
    half_pel, back = torch.tensor([[[[2, 2]], [[0, 0]]]]), torch.tensor([[[[-2, -2]], [[0, 0]]]])
    there_and_back = block_motion.predict(block_motion.predict(stripes, half_pel, 16), back, 16)
    # bilinear: [0, 0, 1, 1] -> [0, .5, 1, .5] -> [.25, .25, .75, .75], a mean error of 0.25
    assert (there_and_back - stripes)[..., 8:24].abs().mean() < 0.1


def test_an_unchanged_frame_gets_the_zero_field():
    frame = _photo()
    assert not block_motion.search(frame, frame.clone()).any()


@pytest.mark.parametrize("dx, dy", [(3, -2), (-7, 5)])
def test_a_translated_picture_is_found_to_the_pixel_and_predicted_closely(dx, dy):
    big = _photo(160, 192)
    reference = big[..., 32:128, 32:160]
    current = big[..., 32 - dy:128 - dy, 32 - dx:160 - dx]  # the picture moved by (dx, dy) pixels
    mv = block_motion.search(current, reference)
    interior = mv[0, :, 1:-1, 1:-1]
    found = (interior[0] == -4 * dx) & (interior[1] == -4 * dy)
    # the rest are blocks of flat content, where a vector close to a neighbour's costs fewer bits
    assert found.float().mean() >= 0.75
    prediction = block_motion.predict(reference, mv, 16)
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    assert _psnr(prediction[inner], current[inner]) > 45
    assert _psnr(prediction, current) > _psnr(reference, current) + 10


def test_the_search_refuses_frames_that_are_not_padded_to_16():
    with pytest.raises(ValueError, match="sides multiples of 16"):
        block_motion.search(torch.rand(1, 3, 40, 48), torch.rand(1, 3, 40, 48))


@pytest.mark.parametrize("block", [32, 64])
def test_blocks_larger_than_the_picture_side_cover_it_and_predict_it_exactly_when_still(block):
    frame = _photo(48, 80)
    mv = block_motion.search(frame, frame.clone(), block=block)
    assert mv.shape[-2:] == block_motion.blocks_of((48, 80), block) and not mv.any()
    assert torch.equal(block_motion.predict(frame, mv, block), frame)


def test_pooling_a_field_averages_the_vectors_each_large_block_covers():
    mv = torch.tensor([[1, 3, 8], [1, 3, 8], [5, 5, 0]]).view(1, 1, 3, 3).expand(1, 2, 3, 3)
    assert block_motion.pooled(mv, 2)[0, 0].tolist() == [[2, 8], [5, 0]]


def test_the_search_predicts_as_the_decoder_does():
    reference = torch.rand(2, 1, 32, 48)
    mv = torch.randint(-9, 10, (2, 2, 2, 3), generator=torch.Generator().manual_seed(2))
    stack = block_motion.PhaseStack(reference, margin=9)
    assert torch.equal(stack.predict(mv, 16), block_motion.predict(reference, mv, 16))
