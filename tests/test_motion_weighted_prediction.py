"""Weighted prediction: a fade is followed by a gain and an offset in two bytes."""

from __future__ import annotations

import torch

from vidcodec.motion import weighted_prediction


def test_a_fade_is_fitted_to_the_step_and_undone():
    prediction = torch.rand(1, 3, 32, 48)
    x = prediction * 1.06 + 0.02
    codes = weighted_prediction.fit(x, prediction)
    # the offset is fitted after the gain is rounded, so it absorbs the gain's rounding
    assert codes[0] == round(0.06 * 256) and abs(codes[1] - 0.02 * 512) <= 1.5
    assert (weighted_prediction.apply(prediction, codes) - x).abs().max() < 2e-3


def test_no_change_gives_no_codes_and_a_flat_prediction_no_gain():
    prediction = torch.rand(1, 3, 16, 16)
    assert weighted_prediction.fit(prediction, prediction) == (0, 0)
    flat = torch.full((1, 3, 16, 16), 0.4)
    assert weighted_prediction.fit(flat + 0.1, flat)[0] == 0  # no variance: an offset only


def test_codes_are_clamped_and_round_trip_through_two_bytes():
    prediction = torch.rand(1, 1, 8, 8)
    codes = weighted_prediction.fit(prediction * 5.0, prediction)
    assert codes[0] == 127
    assert weighted_prediction.from_bytes(weighted_prediction.to_bytes((-127, 127))) == (-127, 127)
