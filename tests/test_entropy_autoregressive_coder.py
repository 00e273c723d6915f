"""AutoregressiveCoder (entropy/autoregressive_coder.py) through mbt2018: CompressAI's bytes with
rounding, bit-exact lattice and shift coding position by position, the desync guard after y."""

import random

import pytest
import torch
from compressai.models import JointAutoregressiveHierarchicalPriors

from vidcodec.bitstream.errors import BitstreamError, DecoderDesyncError
from vidcodec.models.registry import build_model
from vidcodec.tools import CodingTools, ShiftSettings, roles_mask

SIZE = (128, 192)  # a multiple of 64: CompressAI's compress() needs one


@pytest.fixture(scope="module")
def twins():
    """Our mbt2018 and CompressAI's with the same weights; the analysis output scaled up so that y
    spreads over many scales (random weights alone give y near 0 and one scale)."""
    torch.manual_seed(0)
    reference = JointAutoregressiveHierarchicalPriors(N=32, M=48).eval()
    with torch.no_grad():
        reference.g_a[-1].weight.mul_(40.0)
        reference.g_a[-1].bias.mul_(40.0)
    ours = build_model("mbt2018", N=32, M=48).eval()
    ours.load_state_dict(reference.state_dict())
    reference.update(force=True)
    ours.update(force=True)
    return ours, reference


@pytest.fixture(scope="module")
def picture():
    torch.manual_seed(1)
    return torch.rand(1, 3, *SIZE)


def test_rounding_gives_compressais_bytes_and_decodes_bit_exactly(twins, picture):
    ours, reference = twins
    coded = ours.encode_intra(picture)
    strings = reference.compress(picture)["strings"]
    assert coded.parts == [strings[1][0], strings[0][0]]  # z, then y
    assert len(coded.parts[1]) > 100
    assert torch.equal(coded.x_hat, reference.decompress(strings, (2, 3))["x_hat"].clamp(0, 1))
    assert torch.equal(ours.decode_intra(coded.parts, SIZE, coded.entropy_hash), coded.x_hat)


@pytest.mark.parametrize("lattice", ["a2", "a3*"])
def test_lattice_tuples_group_channels_of_a_position_and_decode_bit_exactly(twins, picture, lattice):
    ours, _ = twins
    ours.attach_tools(CodingTools(lattice=lattice, quant_roles=frozenset({"intra"})))
    try:
        coded = ours.encode_intra(picture)
        latent = coded.latents["intra"]
        indexes = latent.scale_indexes[0]
        lattice_coder = ours.latent_coders["intra"].y_coder
        # The tuples of each position, as the coder forms them: the test needs some.
        num_tuples = sum(len(lattice_coder.grouping(indexes[:, i, j])[0])
                         for i in range(indexes.shape[1]) for j in range(indexes.shape[2]))
        assert num_tuples > 50
        assert latent.table_digest  # lattice tables are part of the desync guard
        # Lattice points are not on the integer grid: y_hat - mu is not all integers.
        residual = latent.y_hat - latent.mu
        assert not torch.allclose(residual, residual.round())
        decoded = ours.decode_intra(coded.parts, SIZE, coded.entropy_hash)
        assert torch.equal(decoded, coded.x_hat)
    finally:
        ours.attach_tools(CodingTools())


@pytest.mark.slow
def test_the_shift_uses_the_parameters_the_decoder_computed(twins, picture):
    ours, _ = twins
    ours.attach_tools(CodingTools(lattice="a2", quant_roles=frozenset({"intra"}),
                                  shift=ShiftSettings(scope_mask=roles_mask({"intra"}))))
    try:
        coded = ours.encode_intra(picture)
        assert len(coded.shift_indexes) == 1
        decoded = ours.decode_intra(coded.parts, SIZE, coded.entropy_hash, coded.shift_indexes)
        assert torch.equal(decoded, coded.x_hat)
        # Any signalled step is decoded bit-exactly, not only the one chosen.
        other = (1 - coded.shift_indexes[0],) if coded.shift_indexes[0] <= 1 else (0,)
        assert not torch.equal(ours.decode_intra(coded.parts, SIZE, coded.entropy_hash, other), decoded)
    finally:
        ours.attach_tools(CodingTools())


def test_a_different_y_is_caught_by_the_guard_after_decoding(twins, picture):
    ours, _ = twins
    coded = ours.encode_intra(picture)
    other = ours.encode_intra(picture.flip(-1))
    # The other picture's y under this picture's z: decodes to other parameters, refused.
    with pytest.raises(DecoderDesyncError):
        ours.decode_intra([coded.parts[0], other.parts[1]], SIZE, coded.entropy_hash)


@pytest.mark.slow
@pytest.mark.parametrize("tools", [CodingTools(), CodingTools(lattice="a3*", quant_roles=frozenset({"intra"}))])
def test_hostile_parts_give_bitstream_errors_never_crashes(twins, picture, tools):
    """Parts a buggy or hostile encoder could write (valid CRC, garbage inside): the decoder
    returns a finite picture or raises BitstreamError, nothing else."""
    ours, _ = twins
    ours.attach_tools(tools)
    try:
        small = picture[..., :64, :64].contiguous()  # 4 x 4 positions: decoding is serial
        coded = ours.encode_intra(small)
        rng = random.Random(0)
        for trial in range(12):
            parts = list(coded.parts)
            which = trial % 2
            data = bytearray(parts[which])
            if trial % 3 == 0:
                data = data[:rng.randrange(len(data) + 1)]
            else:
                for _ in range(rng.randint(1, 8)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            parts[which] = bytes(data)
            try:
                decoded = ours.decode_intra(parts, (64, 64), coded.entropy_hash)
            except BitstreamError:
                continue
            assert torch.isfinite(decoded).all()
    finally:
        ours.attach_tools(CodingTools())
