import pytest
import torch

from vidcodec.bitstream.syntax import ENTROPY_HASH_BYTES
from vidcodec.entropy.hyperprior_coder import HyperpriorCoder, entropy_hash
from vidcodec.models.ssf import ScaleSpaceFlowCodec


@pytest.fixture(scope="module")
def coder():
    torch.manual_seed(0)
    model = ScaleSpaceFlowCodec(mid_planes=16, latent_planes=16).eval()
    model.update(force=True)
    return HyperpriorCoder(model.res_hyperprior, hyper_stride=8)


@pytest.mark.parametrize("scale, y_shape", [(0.3, (16, 24)), (2.0, (16, 24)), (20.0, (16, 24)), (2.0, (9, 15))])
def test_decode_returns_exactly_the_encoders_latent(coder, scale, y_shape):
    """Latents of any size: (9, 15) is not a multiple of the hyper stride 8 (z is 2 x 2)."""
    torch.manual_seed(1)
    y = torch.randn(1, 16, *y_shape) * scale
    with torch.inference_mode():
        coded = coder.encode(y)
        params = coder.decode_side(coded.z_bytes, y_shape)
        assert coded.y_hat.shape == y.shape and params.mu.shape == y.shape
        y_hat = coder.decode_main(coded.y_bytes, params)
    assert torch.equal(y_hat, coded.y_hat)
    assert torch.equal(params.scale_indexes, coded.scale_indexes)
    # y_hat is y rounded around mu: the quantization error is at most 1/2 per element
    assert (y_hat - y).abs().max() <= 0.5 + 1e-5
    offsets = y_hat - coded.mu
    assert torch.allclose(offsets, torch.round(offsets), atol=1e-4)


def test_larger_latents_cost_more_bits(coder):
    torch.manual_seed(2)
    noise = torch.randn(1, 16, 32, 32)
    with torch.inference_mode():
        sizes = [len(coder.encode(noise * scale).y_bytes) for scale in (0.5, 4.0, 32.0)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_entropy_hash_depends_on_every_index():
    indexes = torch.arange(40, dtype=torch.int32).reshape(1, 2, 4, 5)
    reference = entropy_hash([indexes])
    changed = indexes.clone()
    changed[0, 1, 3, 4] += 1
    assert len(reference) == ENTROPY_HASH_BYTES
    assert entropy_hash([changed]) != reference
    assert entropy_hash([indexes, indexes]) != reference
