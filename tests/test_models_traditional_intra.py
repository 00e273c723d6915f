"""x265-intra and svtav1-intra: I-frames by a traditional encoder through PyAV, decoded bit-exactly."""

import json

import numpy as np
import pytest
import torch

from vidcodec.bitstream.errors import BitstreamError, DecoderDesyncError
from vidcodec.cli import decode_image_main, decode_main, encode_image_main, encode_main
from vidcodec.errors import CheckpointError, ConfigError
from vidcodec.io.color import picture_box, rgb_to_yuv420
from vidcodec.io.yuv import SequenceGeometry, YuvWriter
from vidcodec.metrics import psnr_rgb_db
from vidcodec.models.registry import build_model, load_model, save_checkpoint
from vidcodec.train.synthetic import photo_clip

LIBRARIES = ["x265-intra", "svtav1-intra"]


@pytest.fixture(scope="module")
def clip():
    frames = photo_clip("coffee", 3, 70, 106, 5)  # 106 x 70: no multiple of 4 or 16, odd chroma rows
    return [torch.from_numpy(frame.transpose(2, 0, 1).copy())[None].float() for frame in frames]


@pytest.mark.parametrize("model_id", LIBRARIES)
def test_the_picture_area_is_coded_and_decoded_bit_exactly(model_id, clip):
    box = picture_box(70, 106, 16, 8)
    x = box.pad(clip[0])
    codec = load_model(model_id, quality=3).codec
    coded = codec.encode_intra(x, box)
    assert coded.x_hat.shape == x.shape
    decoded = codec.decode_intra(coded.parts, x.shape[-2:], coded.entropy_hash, (), box)
    assert torch.equal(decoded, coded.x_hat)
    # The padding is the decoded picture's edges, as the encoder pads the source.
    assert torch.equal(box.pad(box.crop(decoded)), decoded)
    assert psnr_rgb_db(box.crop(decoded), clip[0]) > 28.0


@pytest.mark.parametrize("model_id", LIBRARIES)
def test_the_rate_points_are_monotone(model_id, clip):
    box = picture_box(70, 106, 2, 0)
    sizes, quality_db = [], []
    for quality in (1, 2, 3, 4):
        coded = load_model(model_id, quality=quality).codec.encode_intra(clip[0], box)
        sizes.append(len(coded.parts[0]))
        quality_db.append(psnr_rgb_db(coded.x_hat, clip[0]))
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    assert quality_db == sorted(quality_db)


def test_damaged_and_foreign_pictures_are_refused(clip):
    box = picture_box(70, 106, 16, 8)
    x = box.pad(clip[0])
    codec = load_model("x265-intra", quality=2).codec
    coded = codec.encode_intra(x, box)
    with pytest.raises(DecoderDesyncError, match="decoded planes"):
        codec.decode_intra(coded.parts, x.shape[-2:], bytes(a ^ 1 for a in coded.entropy_hash), (), box)
    with pytest.raises(BitstreamError, match="could not be decoded|pictures"):
        codec.decode_intra([coded.parts[0][:20]], x.shape[-2:], coded.entropy_hash, (), box)
    other = picture_box(64, 96, 16, 8)
    with pytest.raises(BitstreamError, match="106x70.*96x64"):
        codec.decode_intra(coded.parts, (other.padded_height, other.padded_width), coded.entropy_hash, (), other)
    with pytest.raises(BitstreamError, match="shift indexes"):
        codec.decode_intra(coded.parts, x.shape[-2:], coded.entropy_hash, (3,), box)
    with pytest.raises(BitstreamError, match="parts"):
        codec.decode_intra(coded.parts * 2, x.shape[-2:], coded.entropy_hash, (), box)


def test_settings_stand_in_for_weights():
    a, b = load_model("x265-intra", quality=1), load_model("x265-intra", quality=2)
    assert a.checkpoint_hash != b.checkpoint_hash and a.codec.qp > b.codec.qp
    assert load_model("x265-intra", quality=1).checkpoint_hash == a.checkpoint_hash
    with pytest.raises(CheckpointError, match="without weights"):
        load_model("x265-intra", quality=1, checkpoint="model.pt")
    with pytest.raises(CheckpointError, match="--quality"):
        load_model("svtav1-intra")
    with pytest.raises(ConfigError, match="rate points 1..4"):
        build_model("x265-intra", quality=5)
    with pytest.raises(ConfigError, match="cannot code a 8x8 picture"):  # libx265's minimum is 16 x 16
        a.codec.encode_intra(torch.rand(1, 3, 8, 8))
    with pytest.raises(ConfigError, match="nothing to train"):
        a.codec.forward([torch.zeros(1, 3, 16, 16)])


def test_x265_codes_the_i_frames_of_a_video_bit_exactly(clip, tmp_path):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ssf.pt", build_model("ssf-small", mid_planes=16, latent_planes=16), "ssf-small", {})
    source = tmp_path / "clip_106x70.yuv"
    with YuvWriter(source, SequenceGeometry(106, 70)) as writer:
        for frame in clip:
            writer.write_frame(rgb_to_yuv420(frame, 8))
    stream, recon = tmp_path / "stream", tmp_path / "recon.yuv"
    assert encode_main([str(source), "--checkpoint", str(tmp_path / "ssf.pt"), "--intra-model", "x265-intra",
                        "--intra-quality", "2", "--intra-period", "2", "--out", str(stream), "--recon", str(recon),
                        "--quiet"]) == 0
    assert decode_main([str(stream), "-o", str(tmp_path / "decoded.yuv"), "--checkpoint", str(tmp_path / "ssf.pt"),
                        "--quiet"]) == 0
    assert (tmp_path / "decoded.yuv").read_bytes() == recon.read_bytes()
    records = [json.loads(line) for line in (stream / "rd.jsonl").read_text().splitlines()]
    assert [r["frame_type"] for r in records] == ["I", "P", "I"]
    intra = records[0]
    assert intra["bits_intra_y"] > 0 and intra["bits_intra_z"] == 0
    assert intra["bits"] == intra["bits_intra_y"] + intra["bits_header"]
    assert np.isfinite(records[1]["psnr_rgb"])


def test_an_image_file_by_svtav1(clip, tmp_path):
    from PIL import Image

    picture = tmp_path / "picture.png"
    Image.fromarray(np.round(clip[0][0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(picture)
    coded, recon, decoded = tmp_path / "picture.bin", tmp_path / "recon.png", tmp_path / "decoded.png"
    assert encode_image_main([str(picture), "--model", "svtav1-intra", "--quality", "1", "-o", str(coded),
                              "--recon", str(recon)]) == 0
    assert decode_image_main([str(coded), "-o", str(decoded)]) == 0
    assert np.array_equal(np.asarray(Image.open(decoded)), np.asarray(Image.open(recon)))


def test_tools_with_nothing_to_act_on_are_refused(clip, tmp_path, capsys):
    from PIL import Image

    picture = tmp_path / "picture.png"
    Image.fromarray(np.round(clip[0][0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(picture)
    for tool in (["--quant", "oct"], ["--latent-shift"]):
        assert encode_image_main([str(picture), "--model", "x265-intra", "--quality", "1", *tool,
                                  "-o", str(tmp_path / "picture.bin")]) == 2
        assert "x265-intra codes no learned latent" in capsys.readouterr().err
        assert not (tmp_path / "picture.bin").exists()
