"""Latent shift: step search (brute, secant, JVP), the never-worse guarantee, bit-exact decoding."""

import itertools

import numpy as np
import pytest
import torch

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.errors import ConfigError
from vidcodec.io.color import pad_to_multiple
from vidcodec.latent_shift import (
    SCOPE_INTRA,
    SCOPE_RESIDUAL,
    ShiftSettings,
    choose_shift,
    group_slices,
    picture_mse,
    shifted,
)
from vidcodec.models.registry import load_model
from vidcodec.quant.tables import TableCache
from vidcodec.train.synthetic import photo_clip


def test_settings_store_float32_steps_and_require_zero():
    settings = ShiftSettings(candidates=(0.0, 0.1, 0.3))
    assert settings.candidates == tuple(float(np.float32(v)) for v in (0.0, 0.1, 0.3))
    assert settings.zero_index == 0 and settings.candidates[settings.probe_index] == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="include 0.0"):
        ShiftSettings(candidates=(0.1, 0.2))
    with pytest.raises(ConfigError, match="search"):
        ShiftSettings(search="newton")
    with pytest.raises(ConfigError, match="distinct"):
        ShiftSettings(candidates=(0.0, 0.1, 0.1))


def test_group_slices_partition_the_channels():
    for channels, groups in [(64, 1), (64, 4), (10, 3), (5, 5)]:
        slices = group_slices(channels, groups)
        covered = [c for s in slices for c in range(channels)[s]]
        assert covered == list(range(channels)) and len(slices) == groups
    with pytest.raises(ConfigError, match="channels"):
        group_slices(4, 5)


def linear_problem(seed: int, channels: int = 6):
    """A linear 'decoder' (1x1 conv + spatial mixing), a target it cannot reach exactly, and a g
    that is partly aligned with the distortion gradient, so some steps help."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(3, channels, 1, 1, generator=gen, dtype=torch.float64)

    def synthesize(y):
        return torch.nn.functional.conv2d(y, weight)

    y_true = torch.randn(1, channels, 8, 8, generator=gen, dtype=torch.float64)
    y_hat = y_true + 0.3 * torch.randn(1, channels, 8, 8, generator=gen, dtype=torch.float64)
    x = synthesize(y_true) + 0.05 * torch.randn(1, 3, 8, 8, generator=gen, dtype=torch.float64)
    g = (y_true - y_hat) * 20 + torch.randn(1, channels, 8, 8, generator=gen, dtype=torch.float64)
    return synthesize, y_hat, g, x


def exhaustive_best(synthesize, y_hat, g, x, settings, picture_size):
    combos = itertools.product(range(len(settings.candidates)), repeat=settings.groups)
    return min(picture_mse(synthesize(shifted(y_hat, g, settings, c)), x, picture_size) for c in combos)


@pytest.mark.parametrize("seed", range(6))
def test_on_a_linear_decoder_fast_and_jvp_find_the_brute_force_step(seed):
    # MSE(rho) is then an exact parabola, and the nearest grid point to a parabola's minimum is the
    # best grid point: secant, JVP and brute force must agree, and equal the exhaustive minimum.
    synthesize, y_hat, g, x = linear_problem(seed)
    picture = (7, 6)  # excludes a padded border
    results = {}
    for search in ("brute", "fast", "jvp"):
        choice = choose_shift(synthesize, y_hat, g, x, picture, ShiftSettings(search=search))
        assert choice.mse == pytest.approx(picture_mse(choice.x_hat, x, picture), rel=1e-12)
        results[search] = choice
    assert results["fast"].indexes == results["jvp"].indexes == results["brute"].indexes
    assert results["brute"].mse == pytest.approx(
        exhaustive_best(synthesize, y_hat, g, x, ShiftSettings(), picture), rel=1e-12
    )
    assert results["brute"].mse < results["brute"].mse_unshifted  # the problem is built so shifting helps


@pytest.mark.parametrize("search", ["brute", "fast", "jvp"])
@pytest.mark.parametrize("groups", [1, 3])
def test_shift_never_increases_the_distortion_even_when_g_points_the_wrong_way(search, groups):
    synthesize, y_hat, g, x = linear_problem(11)
    settings = ShiftSettings(search=search, groups=groups)
    helpful = choose_shift(synthesize, y_hat, g, x, (8, 8), settings)
    harmful = choose_shift(synthesize, y_hat, -g, x, (8, 8), settings)  # every positive step hurts
    assert helpful.mse <= helpful.mse_unshifted and helpful.gain_db >= 0
    assert harmful.indexes == (settings.zero_index,) * groups and harmful.gain_db == 0.0
    assert len(helpful.indexes) == groups and len(helpful.rhos) == groups


def test_per_group_steps_are_at_least_as_good_as_one_step_with_brute_force():
    synthesize, y_hat, g, x = linear_problem(5)
    one = choose_shift(synthesize, y_hat, g, x, (8, 8), ShiftSettings(search="brute"))
    three = choose_shift(synthesize, y_hat, g, x, (8, 8), ShiftSettings(search="brute", groups=3))
    assert three.mse <= one.mse


def test_gradient_correlation_diagnostic_is_measured():
    synthesize, y_hat, g, x = linear_problem(2)
    choice = choose_shift(synthesize, y_hat, g, x, (8, 8), ShiftSettings(diagnostics=True))
    # g was built from y_true - y_hat, i.e. against the distortion gradient: strongly negative.
    assert -1.0 <= choice.gradient_correlation < -0.3


# --- on the shipped codec ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def codec_and_frames(tmp_path_factory):
    model = load_model("ssf-small", 3)
    clip = photo_clip("coffee", 3, 120, 112, 7)  # 112x120 picture, padded to 128x128
    frames = [pad_to_multiple(torch.from_numpy(f.transpose(2, 0, 1).copy())[None], 128) for f in clip]
    return model.codec, frames, TableCache(tmp_path_factory.mktemp("tables"))


@pytest.mark.parametrize("quant", [None, "a2", "a3*"])
@pytest.mark.parametrize("search", ["brute", "fast"])
def test_codec_decodes_shifted_frames_bit_exactly_and_never_worse(codec_and_frames, quant, search):
    codec, frames, cache = codec_and_frames
    picture = (120, 112)
    codec.set_residual_quantizer(quant, cache)
    try:
        codec.set_latent_shift(None)
        reference = codec.encode_intra(frames[0], picture).x_hat
        plain = codec.encode_inter(frames[1], reference, picture)
        codec.set_latent_shift(ShiftSettings(search=search, groups=2, scope_mask=SCOPE_RESIDUAL | SCOPE_INTRA))
        intra = codec.encode_intra(frames[0], picture)
        inter = codec.encode_inter(frames[1], reference, picture)
        assert inter.parts == plain.parts  # same latent bits: the shift only moves the reconstruction
        assert picture_mse(inter.x_hat, frames[1], picture) <= picture_mse(plain.x_hat, frames[1], picture)
        assert len(inter.shift_indexes) == 2 and len(intra.shift_indexes) == 2
        decoded = codec.decode_inter(inter.parts, reference, inter.entropy_hash, inter.shift_indexes)
        assert torch.equal(decoded, inter.x_hat)
        decoded_intra = codec.decode_intra(intra.parts, (128, 128), intra.entropy_hash, intra.shift_indexes)
        assert torch.equal(decoded_intra, intra.x_hat)
    finally:
        codec.set_residual_quantizer(None)
        codec.set_latent_shift(None)


def test_codec_rejects_shift_indexes_that_do_not_fit_the_stream(codec_and_frames):
    codec, frames, _ = codec_and_frames
    codec.set_latent_shift(ShiftSettings(groups=2))
    try:
        reference = codec.encode_intra(frames[0]).x_hat
        inter = codec.encode_inter(frames[1], reference)
        with pytest.raises(BitstreamError, match="expected 2"):
            codec.decode_inter(inter.parts, reference, inter.entropy_hash, (1,))
        with pytest.raises(BitstreamError, match="beyond"):
            codec.decode_inter(inter.parts, reference, inter.entropy_hash, (1, 8))
        with pytest.raises(BitstreamError, match="expected 0"):  # intra is outside the scope here
            intra = codec.encode_intra(frames[0])
            codec.decode_intra(intra.parts, (128, 128), intra.entropy_hash, (0, 0))
    finally:
        codec.set_latent_shift(None)
