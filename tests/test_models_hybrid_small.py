"""hybrid-small: block motion + learned residual. A P-frame copies its reference for the price of its
motion field, decodes bit-exactly with the coding tools on its residual latent, and refuses bad parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.config import load_config
from vidcodec.io.color import rgb_to_yuv420
from vidcodec.io.yuv import SequenceGeometry, YuvReader, YuvWriter
from vidcodec.models.hybrid_small import HybridSmallCodec
from vidcodec.models.registry import build_model, save_checkpoint
from vidcodec.pipeline import decode_sequence, encode_sequence
from vidcodec.train.synthetic import photo_clip

SMALL = {"N": 16, "M": 16}


def _clip(num_frames: int, height: int, width: int, seed: int = 5) -> list[torch.Tensor]:
    frames = photo_clip("coffee", num_frames, height, width, seed=seed)
    return [torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None].float() for frame in frames]


@pytest.fixture(scope="module")
def codec() -> HybridSmallCodec:
    torch.manual_seed(0)
    model = build_model("hybrid-small", **SMALL).eval()
    model.update(force=True)
    return model


@pytest.mark.parametrize("stage, roles", [("intra", [{"intra"}]), ("pairs", [{"residual"}]),
                                          ("p-chains", [{"residual"}, {"residual"}]),
                                          ("chains", [{"intra"}, {"residual"}, {"residual"}])])
def test_training_forward_codes_the_frames_of_each_stage(codec, stage, roles):
    out = codec(_clip(3, 64, 128), stage=stage)
    assert [set(frame) for frame in out.likelihoods] == roles
    assert all(x.shape == (1, 3, 64, 128) for x in out.x_hat)


def test_a_frame_coded_against_itself_is_a_copy_for_the_price_of_its_motion_field(codec):
    x = _clip(1, 64, 128)[0]
    frame = codec.encode_inter(x, x)
    assert frame.parts[1:] == [b"", b""]  # the residual is not worth its bits
    assert len(frame.parts[0]) <= 16 and torch.equal(frame.x_hat, x.clamp(0, 1))
    x_hat, state = codec.decode_inter(frame.parts, x, (64, 128), frame.entropy_hash)
    assert torch.equal(x_hat, frame.x_hat) and torch.equal(state, x_hat)


def test_p_frames_with_a_coded_residual_decode_bit_exactly(codec):
    reference, x = _clip(2, 64, 128)
    codec.residual_decision = "always"  # untrained weights: a residual would not pay
    try:
        frame = codec.encode_inter(x, reference)
    finally:
        codec.residual_decision = "rd"
    assert frame.parts[0][0] & 1 and frame.parts[2]
    x_hat, _ = codec.decode_inter(frame.parts, reference, (64, 128), frame.entropy_hash)
    assert torch.equal(x_hat, frame.x_hat)


@pytest.mark.parametrize("parts, message", [([b"\x80\x00", b"", b""], "flags byte 80"),
                                            ([b"", b"", b""], "flags byte missing"),
                                            ([b"\x00" + bytes([254, 1, 254, 1]) + b"\x00" * 8, b"z", b""],
                                             "without a residual carries residual bytes"),
                                            ([b"\x02\x00", b"", b""], "shorter than the global motion's")])
def test_a_damaged_motion_part_is_refused_by_name(codec, parts, message):
    with pytest.raises(BitstreamError, match=message):
        codec.decode_inter(parts, torch.rand(1, 3, 64, 128), (64, 128), b"\x00" * 4)


def test_a_sequence_round_trips_with_oct_and_the_latent_shift_on_the_residual_latent(codec, tmp_path, monkeypatch):
    monkeypatch.setattr(HybridSmallCodec, "residual_decision", "always")  # untrained: it would be skipped
    checkpoint = tmp_path / "hybrid.pt"
    save_checkpoint(checkpoint, codec, "hybrid-small", {"purpose": "test"})
    geometry = SequenceGeometry(112, 72, 8, 30.0)
    sequence = tmp_path / "clip.yuv"
    with YuvWriter(sequence, geometry) as writer:
        for frame in _clip(4, geometry.height, geometry.width):
            writer.write_frame(rgb_to_yuv420(frame, 8))
    config = load_config(None, {"model": "hybrid-small", "checkpoint": str(checkpoint), "quality": None,
                                "quant": "oct", "latent_shift": True, "num_threads": 1})
    result = encode_sequence(YuvReader(sequence, geometry), tmp_path / "out", config, recon_path=tmp_path / "rec.yuv",
                             progress=False)
    assert [r["frame_type"] for r in result.records] == ["I", "P", "P", "P"]
    assert all(r["bits_motion_y"] > 0 and r["bits_residual_y"] > 0 and r["rho"] is not None
               for r in result.records[1:])
    decode_sequence(tmp_path / "out", tmp_path / "dec.yuv", checkpoint=checkpoint, progress=False)
    assert (tmp_path / "dec.yuv").read_bytes() == (tmp_path / "rec.yuv").read_bytes()


def test_the_shipped_rate_points_are_derived_from_the_shipped_image_codec():
    from vidcodec.models.registry import load_model, shipped_checkpoint_path, shipped_weights_file

    assert not shipped_checkpoint_path("hybrid-small", 1).exists()  # no file of its own
    assert shipped_weights_file("hybrid-small", 1) == shipped_checkpoint_path("mbt2018-mean-small", 1)
    derived, image = load_model("hybrid-small", quality=1), load_model("mbt2018-mean-small", quality=1)
    assert derived.codec.lmbda == image.provenance["train_config"]["lmbda"] == 0.0018
    for module in (derived.codec.intra, derived.codec.residual):
        assert all(torch.equal(value, image.codec.state_dict()[name]) for name, value in module.state_dict().items())
    assert load_model("hybrid-small", quality=1).checkpoint_hash == derived.checkpoint_hash
    assert derived.provenance["derived_from"]["model"] == "mbt2018-mean-small"


def test_a_skipped_p_frame_carries_no_shift_index_under_the_latent_shift(codec, tmp_path):
    checkpoint = tmp_path / "hybrid.pt"
    save_checkpoint(checkpoint, codec, "hybrid-small", {"purpose": "test"})
    geometry = SequenceGeometry(112, 72, 8, 30.0)
    sequence = tmp_path / "still.yuv"
    still = _clip(1, geometry.height, geometry.width)[0]
    with YuvWriter(sequence, geometry) as writer:
        for _ in range(3):
            writer.write_frame(rgb_to_yuv420(still, 8))
    config = load_config(None, {"model": "hybrid-small", "checkpoint": str(checkpoint), "quality": None,
                                "latent_shift": True, "num_threads": 1})
    result = encode_sequence(YuvReader(sequence, geometry), tmp_path / "out", config, recon_path=tmp_path / "rec.yuv",
                             progress=False)
    p_frames = result.records[1:]
    assert all(r["bits_residual_y"] == 0 and r["rho"] is None and r["bits"] - r["bits_motion_y"] < 8 * 40
               for r in p_frames)
    decode_sequence(tmp_path / "out", tmp_path / "dec.yuv", checkpoint=checkpoint, progress=False)
    assert (tmp_path / "dec.yuv").read_bytes() == (tmp_path / "rec.yuv").read_bytes()
