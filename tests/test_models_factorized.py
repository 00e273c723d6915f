"""bmshj2018-factorized (models/image_codecs.py, entropy/factorized_coder.py): CompressAI's bytes,
the latent shift along its learned densities' gradient, Hex/Oct over learned densities."""

import pytest
import torch
from compressai.models import FactorizedPrior

from vidcodec.bitstream.errors import DecoderDesyncError
from vidcodec.errors import ConfigError
from vidcodec.models.registry import build_model
from vidcodec.tools import CodingTools, ShiftSettings, roles_mask

CHANNEL_SCALES = torch.tensor([0.8] * 24 + [3.0] * 24).reshape(1, 48, 1, 1)
INTRA_SHIFT = CodingTools(shift=ShiftSettings(scope_mask=roles_mask({"intra"}), search="brute"))


@pytest.fixture(scope="module")
def twins():
    """Ours and CompressAI's, with the same weights, the bottleneck's density trained a little so
    that it is not the flat one of a fresh model: narrow on the first 24 channels, wide on the rest."""
    torch.manual_seed(0)
    reference = FactorizedPrior(N=32, M=48)
    optimizer = torch.optim.Adam(reference.entropy_bottleneck.parameters(), lr=1e-2)
    for _ in range(50):
        optimizer.zero_grad()
        _, likelihoods = reference.entropy_bottleneck(torch.randn(4, 48, 8, 8) * CHANNEL_SCALES)
        (-torch.log2(likelihoods).mean() + reference.aux_loss()).backward()
        optimizer.step()
    reference.eval().update(force=True)
    ours = build_model("bmshj2018-factorized", N=32, M=48).eval()
    ours.load_state_dict(reference.state_dict())
    ours.update(force=True)
    return ours, reference


def test_coding_gives_compressais_bytes_and_decodes_bit_exactly(twins):
    ours, reference = twins
    x = torch.rand(1, 3, 64, 96)
    coded = ours.encode_intra(x)
    assert coded.parts == [reference.compress(x)["strings"][0][0]]
    assert torch.equal(ours.decode_intra(coded.parts, (64, 96), coded.entropy_hash), coded.x_hat)
    with pytest.raises(DecoderDesyncError):  # another picture size: the guard refuses
        ours.decode_intra(coded.parts, (64, 112), coded.entropy_hash)


def test_the_entropy_gradient_points_to_more_probable_latents(twins):
    ours, _ = twins
    coder = ours.latent_coders["intra"]
    y_hat = torch.round(torch.randn(1, 48, 6, 6) * 3)
    g = coder.entropy_gradient(y_hat, None)
    eb = ours.entropy_bottleneck

    def bits(y):
        likelihood = eb._likelihood(y.permute(1, 0, 2, 3).reshape(48, 1, -1))[0]
        return float(-torch.log2(likelihood.clamp(min=1e-9)).sum())

    with torch.no_grad():
        assert bits(y_hat - 0.01 * g) < bits(y_hat) < bits(y_hat + 0.01 * g)


def test_the_shift_is_signalled_and_decoded_bit_exactly(twins):
    ours, _ = twins
    x = torch.rand(1, 3, 64, 64)
    plain = ours.encode_intra(x)
    ours.attach_tools(INTRA_SHIFT)
    try:
        coded = ours.encode_intra(x)
        assert coded.parts == plain.parts and len(coded.shift_indexes) == 1
        assert coded.shift.mse <= coded.shift.mse_unshifted
        decoded = ours.decode_intra(coded.parts, (64, 64), coded.entropy_hash, coded.shift_indexes)
        assert torch.equal(decoded, coded.x_hat)
    finally:
        ours.attach_tools(CodingTools())


@pytest.mark.slow
@pytest.mark.parametrize("lattice, lattice_channels", [("a2", list(range(48))), ("a3*", list(range(24)))])
def test_lattices_code_tuples_within_a_channel_bit_exactly(twins, lattice, lattice_channels):
    """Hex codes every channel; Oct only the narrow ones (a wide channel's table would exceed the
    coder's size limit, so its latents are rounded, as without a lattice)."""
    ours, _ = twins
    ours.attach_tools(CodingTools(lattice=lattice, quant_roles=frozenset({"intra"})))
    try:
        coder = ours.latent_coders["intra"]
        assert coder.y_coder.lattice_scale_indexes() == lattice_channels
        torch.manual_seed(2)
        y = torch.randn(1, 48, 8, 8) * CHANNEL_SCALES
        y[0, 0, 0, :3] = 40.0  # far beyond the tables: escapes
        coded = coder.encode(y)
        tuples, tuple_channels, _ = coder.y_coder.grouping(coded.scale_indexes)
        assert len(tuples) > 100 and set(tuple_channels.tolist()) == set(lattice_channels)
        # A tuple holds latents of one channel.
        channel_of = coded.scale_indexes.reshape(-1)
        assert (channel_of[tuples] == tuple_channels[:, None]).all()
        residual = coded.y_hat - coded.mu
        assert not torch.allclose(residual, residual.round())  # lattice points, not integers
        assert (coded.y_hat - y).abs().max() < 1.5  # escapes reconstruct too
        decoded = coder.decode_main(coded.y_bytes, coder.decode_side(b"", (8, 8)))
        assert torch.equal(decoded, coded.y_hat)
        assert coded.table_digest and coded.table_digest == coder.table_digest(coded.scale_indexes)
    finally:
        ours.attach_tools(CodingTools())


def test_a_lattice_with_the_shift_round_trips_through_the_codec(twins):
    ours, _ = twins
    ours.attach_tools(CodingTools(lattice="a3*", quant_roles=frozenset({"intra"}), shift=INTRA_SHIFT.shift))
    try:
        x = torch.rand(1, 3, 64, 64)
        coded = ours.encode_intra(x)
        assert len(coded.shift_indexes) == 1
        decoded = ours.decode_intra(coded.parts, (64, 64), coded.entropy_hash, coded.shift_indexes)
        assert torch.equal(decoded, coded.x_hat)
    finally:
        ours.attach_tools(CodingTools())


def test_lattices_without_learned_density_tables_are_refused(twins):
    ours, _ = twins
    with pytest.raises(ConfigError, match="--quant e8.*Hex and Oct"):
        ours.attach_tools(CodingTools(lattice="e8", quant_roles=frozenset({"intra"})))
    ours.attach_tools(CodingTools())


def test_training_forward_is_compressais(twins):
    ours, reference = twins
    x = torch.rand(2, 3, 64, 64)
    torch.manual_seed(1)
    output = ours([x], stage="intra")
    torch.manual_seed(1)
    expected = reference(x)
    assert torch.equal(output.x_hat[0], expected["x_hat"])
    assert torch.equal(output.likelihoods[0]["intra"]["y"], expected["likelihoods"]["y"])
