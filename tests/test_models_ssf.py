import pytest
import torch
from compressai.models.video import ScaleSpaceFlow

from vidcodec.bitstream.errors import DecoderDesyncError
from vidcodec.models.ssf import ScaleSpaceFlowCodec


@pytest.fixture(scope="module")
def small_codec():
    torch.manual_seed(0)
    codec = ScaleSpaceFlowCodec(mid_planes=16, latent_planes=16).eval()
    codec.update(force=True)
    return codec


def test_default_widths_are_exactly_compressai_ssf2020():
    torch.manual_seed(0)
    reference = ScaleSpaceFlow().eval()
    ours = ScaleSpaceFlowCodec().eval()
    ref_state, our_state = reference.state_dict(), ours.state_dict()
    assert list(ref_state) == list(our_state)
    assert all(ref_state[k].shape == our_state[k].shape for k in ref_state)
    ours.load_state_dict(ref_state)
    frames = [torch.rand(1, 3, 128, 128) for _ in range(2)]
    with torch.no_grad():
        expected, actual = reference(frames), ours(frames)
    for a, b in zip(expected["x_hat"], actual.x_hat):
        assert torch.equal(a, b)
    assert [set(frame) for frame in actual.likelihoods] == [{"intra"}, {"motion", "residual"}]


def test_small_widths_change_only_channel_counts(small_codec):
    assert small_codec.img_encoder[-1].out_channels == 16
    assert small_codec.res_decoder[0].in_channels == 32  # residual + motion latents
    assert small_codec.motion_decoder[-1].out_channels == 3  # flow (2) + scale field (1)
    assert small_codec.config()["latent_planes"] == 16


def test_intra_and_inter_decode_bit_exactly(small_codec):
    torch.manual_seed(1)
    x0, x1 = torch.rand(1, 3, 128, 256), torch.rand(1, 3, 128, 256)
    coded0 = small_codec.encode_intra(x0)
    x0_dec = small_codec.decode_intra(coded0.parts, (128, 256), coded0.entropy_hash)
    assert torch.equal(coded0.x_hat, x0_dec)
    state = small_codec.start_state(x0_dec)
    coded1 = small_codec.encode_inter(x1, small_codec.start_state(coded0.x_hat))
    x1_dec, next_state = small_codec.decode_inter(coded1.parts, state, (128, 256), coded1.entropy_hash)
    assert torch.equal(coded1.x_hat, x1_dec) and torch.equal(next_state, coded1.state)
    assert coded1.part_names == ("motion_z", "motion_y", "residual_z", "residual_y")
    assert 0.0 <= x1_dec.min() and x1_dec.max() <= 1.0


def test_wrong_entropy_hash_is_a_desync_error(small_codec):
    coded = small_codec.encode_intra(torch.rand(1, 3, 128, 128))
    wrong = bytes(b ^ 0xFF for b in coded.entropy_hash)
    with pytest.raises(DecoderDesyncError, match="decoder desync"):
        small_codec.decode_intra(coded.parts, (128, 128), wrong)


def test_perturbed_weights_are_caught_by_the_desync_guard(small_codec):
    """Decoder-side weights that differ slightly (as across machines) must not decode silently."""
    coded = small_codec.encode_intra(torch.rand(1, 3, 128, 128))
    other = ScaleSpaceFlowCodec(mid_planes=16, latent_planes=16).eval()
    other.load_state_dict(small_codec.state_dict())
    with torch.no_grad():
        for layer in other.img_hyperprior.hyper_decoder_scale.modules():
            if isinstance(layer, torch.nn.ConvTranspose2d):
                layer.bias.add_(0.5)
    with pytest.raises(DecoderDesyncError):
        other.decode_intra(coded.parts, (128, 128), coded.entropy_hash)


def test_flow_in_pixels_shifts_by_whole_pixels():
    """With flow_in_pixels, a flow of (2, 0) and the finest scale moves content by 2 pixels at any
    frame size (the normalized flow of CompressAI would move it by a fraction of the width)."""
    codec = ScaleSpaceFlowCodec(mid_planes=16, latent_planes=16, flow_in_pixels=True)
    for height, width in [(64, 96), (128, 256)]:
        x_ref = torch.rand(1, 3, height, width)
        motion = torch.zeros(1, 3, height, width)
        motion[:, 0], motion[:, 2] = 2.0, -1.0
        x_pred = codec.forward_prediction(x_ref, motion)
        assert torch.allclose(x_pred[..., :-2], x_ref[..., 2:], atol=1e-4)
