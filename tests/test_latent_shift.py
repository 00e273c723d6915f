"""Latent shift: the entropy gradient, step search (brute, secant, JVP), the never-worse guarantee,
bit-exact decoding through the codec interface."""

import itertools

import pytest
import torch

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.errors import ConfigError
from vidcodec.io.color import PictureBox, picture_box
from vidcodec.latent_shift import choose_shift, entropy_gradient_gaussian, group_slices, picture_mse, shifted
from vidcodec.models.registry import load_model
from vidcodec.quant.tables import TableCache
from vidcodec.tools import ROLE_BITS, CodingTools, ShiftSettings
from vidcodec.train.synthetic import photo_clip

EIGHT = PictureBox(0, 0, 8, 8, 8, 8)  # the whole 8 x 8 frame
PICTURE = picture_box(120, 112, 16, 4)  # a 112x120 picture centred in a 128 x 128 frame


def discretized_nll(y, mu, sigma):
    """-log P written with -|y - mu| (the same function), so that float64 autograd does not lose
    the difference of two CDFs close to 1."""
    u = -(y - mu).abs()
    normal = torch.distributions.Normal(torch.zeros_like(mu), sigma)
    return -torch.log(normal.cdf(u + 0.5) - normal.cdf(u - 0.5))


def test_gradient_matches_autograd_where_the_likelihood_is_representable():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5000, generator=g, dtype=torch.float64) * 3
    sigma = torch.exp(torch.randn(5000, generator=g, dtype=torch.float64)).clamp(0.11, 50)
    y = (mu + torch.randn(5000, generator=g, dtype=torch.float64) * sigma * 2).round() + 0.25
    y.requires_grad_(True)
    discretized_nll(y, mu, sigma).sum().backward()
    ours = entropy_gradient_gaussian(y.detach(), mu, sigma)
    # The reference's erf-based CDF loses relative precision in the tails: compare tightly within
    # 4 sigma and loosely beyond.
    finite = torch.isfinite(y.grad)
    near = finite & (((y.detach() - mu) / sigma).abs() < 4)
    assert near.float().mean() > 0.8
    assert torch.allclose(ours[near], y.grad[near], rtol=1e-8, atol=1e-10)
    assert torch.allclose(ours[finite], y.grad[finite], rtol=1e-4)


def test_gradient_stays_finite_and_tends_to_the_continuous_limit_in_far_tails():
    mu = torch.zeros(4, dtype=torch.float64)
    sigma = torch.full((4,), 0.2, dtype=torch.float64)
    y = torch.tensor([-40.0, -15.0, 15.0, 40.0], dtype=torch.float64)  # P underflows in float64 here
    gradient = entropy_gradient_gaussian(y, mu, sigma)
    assert torch.isfinite(gradient).all()
    assert torch.allclose(gradient, y / sigma**2, rtol=0.05)
    assert (gradient.sign() == y.sign()).all()


def test_gradient_is_zero_at_the_mean_and_antisymmetric():
    sigma = torch.tensor([0.5, 2.0])
    assert torch.allclose(entropy_gradient_gaussian(torch.zeros(2), torch.zeros(2), sigma), torch.zeros(2))
    y = torch.tensor([1.0, 3.0])
    assert torch.allclose(entropy_gradient_gaussian(y, torch.zeros(2), sigma),
                          -entropy_gradient_gaussian(-y, torch.zeros(2), sigma))


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


def exhaustive_best(synthesize, y_hat, g, x, settings, picture):
    combos = itertools.product(range(len(settings.candidates)), repeat=settings.groups)
    return min(picture_mse(synthesize(shifted(y_hat, g, settings, c)), x, picture) for c in combos)


@pytest.mark.parametrize("seed", range(6))
def test_on_a_linear_decoder_fast_and_jvp_find_the_brute_force_step(seed):
    # MSE(rho) is then an exact parabola, and the nearest grid point to a parabola's minimum is the
    # best grid point: secant, JVP and brute force must agree, and equal the exhaustive minimum.
    synthesize, y_hat, g, x = linear_problem(seed)
    picture = PictureBox(0, 0, 7, 6, 8, 8)  # excludes a padded border
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
    helpful = choose_shift(synthesize, y_hat, g, x, EIGHT, settings)
    harmful = choose_shift(synthesize, y_hat, -g, x, EIGHT, settings)  # every positive step hurts
    assert helpful.mse <= helpful.mse_unshifted and helpful.gain_db >= 0
    assert harmful.indexes == (settings.zero_index,) * groups and harmful.gain_db == 0.0
    assert len(helpful.indexes) == groups and len(helpful.rhos) == groups


@pytest.mark.parametrize("seed", range(6))
def test_the_fast_search_probes_at_the_previous_frames_step_and_saves_a_synthesis(seed):
    synthesize, y_hat, g, x = linear_problem(seed)
    calls = []

    def counted(y):
        calls.append(1)
        return synthesize(y)

    settings = ShiftSettings(search="fast")
    fresh = choose_shift(counted, y_hat, g, x, EIGHT, settings)
    fresh_calls, calls[:] = len(calls), []
    # Told the step it will choose, it probes there: on a linear decoder the solution is the probe.
    hinted = choose_shift(counted, y_hat, g, x, EIGHT, settings, previous=fresh.indexes)
    assert hinted.indexes == fresh.indexes and hinted.mse == pytest.approx(fresh.mse, rel=1e-12)
    if fresh.indexes != (settings.zero_index,):
        assert len(calls) == 2  # x(0) and the probe, which is also the confirmation
    assert len(calls) <= fresh_calls <= 3
    # A wrong hint still finds the step (the secant of a linear decoder is exact at any probe).
    wrong = tuple((i + 3) % len(settings.candidates) or 1 for i in fresh.indexes)
    assert choose_shift(synthesize, y_hat, g, x, EIGHT, settings, previous=wrong).indexes == fresh.indexes


def test_per_group_steps_are_at_least_as_good_as_one_step_with_brute_force():
    synthesize, y_hat, g, x = linear_problem(5)
    one = choose_shift(synthesize, y_hat, g, x, EIGHT, ShiftSettings(search="brute"))
    three = choose_shift(synthesize, y_hat, g, x, EIGHT, ShiftSettings(search="brute", groups=3))
    assert three.mse <= one.mse


def test_gradient_correlation_diagnostic_is_measured():
    synthesize, y_hat, g, x = linear_problem(2)
    choice = choose_shift(synthesize, y_hat, g, x, EIGHT, ShiftSettings(diagnostics=True))
    # g was built from y_true - y_hat, i.e. against the distortion gradient: strongly negative.
    assert -1.0 <= choice.gradient_correlation < -0.3


# --- on the shipped codec ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def codec_and_frames(tmp_path_factory):
    model = load_model("ssf-small", 3)
    clip = photo_clip("coffee", 3, 120, 112, 7)  # 112x120 picture, centred in 128x128
    frames = [PICTURE.pad(torch.from_numpy(f.transpose(2, 0, 1).copy())[None]) for f in clip]
    return model.codec, frames, TableCache(tmp_path_factory.mktemp("tables"))


@pytest.mark.slow
@pytest.mark.parametrize("quant", [None, "a2", "a3*"])
@pytest.mark.parametrize("search", ["brute", "fast"])
def test_codec_decodes_shifted_frames_bit_exactly_and_never_worse(codec_and_frames, quant, search):
    codec, frames, cache = codec_and_frames
    picture = PICTURE
    try:
        codec.attach_tools(CodingTools(lattice=quant, cache=cache))
        reference = codec.encode_intra(frames[0], picture).x_hat
        plain = codec.encode_inter(frames[1], reference, picture)
        shift = ShiftSettings(search=search, groups=2, scope_mask=ROLE_BITS["residual"] | ROLE_BITS["intra"])
        codec.attach_tools(CodingTools(lattice=quant, cache=cache, shift=shift))
        intra = codec.encode_intra(frames[0], picture)
        inter = codec.encode_inter(frames[1], reference, picture)
        assert inter.parts == plain.parts  # same latent bits: the shift only moves the reconstruction
        assert picture_mse(inter.x_hat, frames[1], picture) <= picture_mse(plain.x_hat, frames[1], picture)
        assert len(inter.shift_indexes) == 2 and len(intra.shift_indexes) == 2
        decoded, state = codec.decode_inter(inter.parts, reference, (128, 128), inter.entropy_hash, inter.shift_indexes)
        assert torch.equal(decoded, inter.x_hat) and torch.equal(state, inter.state)
        decoded_intra = codec.decode_intra(intra.parts, (128, 128), intra.entropy_hash, intra.shift_indexes)
        assert torch.equal(decoded_intra, intra.x_hat)
    finally:
        codec.attach_tools(CodingTools())


def test_codec_rejects_shift_indexes_that_do_not_fit_the_stream(codec_and_frames):
    codec, frames, _ = codec_and_frames
    codec.attach_tools(CodingTools(shift=ShiftSettings(groups=2)))
    try:
        reference = codec.encode_intra(frames[0]).x_hat
        inter = codec.encode_inter(frames[1], reference)
        with pytest.raises(BitstreamError, match="expected 2"):
            codec.decode_inter(inter.parts, reference, (128, 128), inter.entropy_hash, (1,))
        with pytest.raises(BitstreamError, match="beyond"):
            codec.decode_inter(inter.parts, reference, (128, 128), inter.entropy_hash, (1, 8))
        with pytest.raises(BitstreamError, match="expected 0"):  # intra is outside the scope here
            intra = codec.encode_intra(frames[0])
            codec.decode_intra(intra.parts, (128, 128), intra.entropy_hash, (0, 0))
    finally:
        codec.attach_tools(CodingTools())


def test_a_frame_whose_steps_are_all_zero_carries_no_shift_index_and_decodes_the_same(codec_and_frames):
    codec, frames, _ = codec_and_frames
    settings = ShiftSettings(groups=2)
    codec.attach_tools(CodingTools(shift=settings))
    try:
        zero, other = settings.zero_index, len(settings.candidates) - 1  # other: the largest step
        assert codec.header_shift_indexes((zero, zero)) == ()  # costs what a frame without the shift costs
        assert codec.header_shift_indexes((zero, other)) == (zero, other)
        assert codec.header_shift_indexes(()) == ()
        reference = codec.encode_intra(frames[0]).x_hat
        inter = codec.encode_inter(frames[1], reference)
        with_zeros, _ = codec.decode_inter(inter.parts, reference, (128, 128), inter.entropy_hash, (zero, zero))
        without, _ = codec.decode_inter(inter.parts, reference, (128, 128), inter.entropy_hash, ())
        assert torch.equal(with_zeros, without)
        shifted_picture, _ = codec.decode_inter(inter.parts, reference, (128, 128), inter.entropy_hash,
                                                (other, other))
        assert not torch.equal(shifted_picture, without)  # the indexes do reach the picture when present
    finally:
        codec.attach_tools(CodingTools())


def test_each_sequence_starts_without_the_last_ones_shift_memory(codec_and_frames):
    from vidcodec.bitstream.syntax import ModelRef, SequenceHeader
    from vidcodec.encoder import Encoder

    codec, frames, _ = codec_and_frames
    codec.attach_tools(CodingTools(shift=ShiftSettings()))
    try:
        reference = codec.encode_intra(frames[0], PICTURE).x_hat
        codec.encode_inter(frames[1], reference, PICTURE)
        assert "residual" in codec.tool_attachment.shift_memory  # the fast search's hint for the next frame
        ref = ModelRef("ssf-small", 3, bytes(16))
        header = SequenceHeader(width=112, height=120, bit_depth=8, fps=30.0, num_frames=2, intra_period=8,
                                intra_model=ref, inter_model=ref, pad_multiple=16, pad_margin=4)
        Encoder(codec, codec, header)
        assert codec.tool_attachment.shift_memory == {}  # a stream never depends on the one coded before
    finally:
        codec.attach_tools(CodingTools())
