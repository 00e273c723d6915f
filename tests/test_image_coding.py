"""encode_image / decode_image as a user runs them, and an image codec as the intra model of a video."""

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.cli import decode_image_main, decode_main, encode_image_main, encode_main
from vidcodec.image_coding import decode_image, split_image_file
from vidcodec.io.color import rgb_to_yuv420
from vidcodec.io.yuv import SequenceGeometry, YuvWriter
from vidcodec.models.registry import build_model, save_checkpoint
from vidcodec.train.synthetic import photo_clip


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("image")
    torch.manual_seed(0)
    save_checkpoint(root / "mbt.pt", build_model("mbt2018-mean", N=32, M=48), "mbt2018-mean", {})
    save_checkpoint(root / "ssf.pt", build_model("ssf-small", mid_planes=16, latent_planes=16), "ssf-small", {})
    frames = photo_clip("coffee", 3, 96, 136, 5)  # 136 is not a multiple of 64: padding and cropping
    Image.fromarray(np.round(frames[0] * 255).astype(np.uint8)).save(root / "picture.png")
    with YuvWriter(root / "clip_136x96.yuv", SequenceGeometry(136, 96)) as writer:
        for frame in frames:
            writer.write_frame(rgb_to_yuv420(torch.from_numpy(frame.transpose(2, 0, 1).copy())[None], 8))
    return root


@pytest.mark.parametrize("tools", [[], ["--quant", "hex"], ["--quant", "oct"], ["--quant", "oct", "--latent-shift"]])
def test_round_trip_is_bit_exact(workspace, tmp_path, capsys, tools):
    coded, recon, decoded = tmp_path / "x.bin", tmp_path / "recon.png", tmp_path / "decoded.png"
    assert encode_image_main([str(workspace / "picture.png"), "-o", str(coded), "--checkpoint",
                              str(workspace / "mbt.pt"), "--recon", str(recon), *tools]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bytes"] == coded.stat().st_size and (result["width"], result["height"]) == (136, 96)
    assert result["bpp"] == pytest.approx(8 * result["bytes"] / (136 * 96), abs=1e-5)
    assert decode_image_main([str(coded), "-o", str(decoded), "--checkpoint", str(workspace / "mbt.pt")]) == 0
    assert np.array_equal(np.asarray(Image.open(decoded)), np.asarray(Image.open(recon)))
    assert np.asarray(Image.open(decoded)).shape == (96, 136, 3)


def test_a_raw_yuv_frame_codes_and_decodes_to_yuv(workspace, tmp_path):
    coded = tmp_path / "x.bin"
    assert encode_image_main([str(workspace / "clip_136x96.yuv"), "-o", str(coded), "--checkpoint",
                              str(workspace / "mbt.pt"), "--recon", str(tmp_path / "recon.yuv")]) == 0
    assert decode_image_main([str(coded), "-o", str(tmp_path / "decoded.yuv"), "--checkpoint",
                              str(workspace / "mbt.pt")]) == 0
    assert (tmp_path / "decoded.yuv").read_bytes() == (tmp_path / "recon.yuv").read_bytes()
    assert (tmp_path / "decoded.yuv").stat().st_size == 136 * 96 * 3 // 2


def test_damaged_files_give_clear_errors(workspace, tmp_path, capsys):
    coded = tmp_path / "x.bin"
    assert encode_image_main([str(workspace / "picture.png"), "-o", str(coded), "--checkpoint",
                              str(workspace / "mbt.pt")]) == 0
    data = coded.read_bytes()
    header_bytes, frame = split_image_file(data, "x")
    rng = random.Random(0)
    damaged = [b"PNG!" + data[4:], data[:6], data[:len(data) // 2], data[:8 + len(header_bytes) + 3]]
    for _ in range(40):
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        damaged.append(bytes(flipped))
    for index, bad in enumerate(damaged):
        path = tmp_path / f"bad{index}.bin"
        path.write_bytes(bad)
        with pytest.raises(BitstreamError):
            decode_image(path, tmp_path / "out.png", workspace / "mbt.pt")
        assert not (tmp_path / "out.png").exists()
    assert decode_image_main([str(tmp_path / "bad0.bin"), "-o", str(tmp_path / "o.png"), "--checkpoint",
                              str(workspace / "mbt.pt")]) == 2
    assert "not a vidcodec image file" in capsys.readouterr().err


def test_bad_inputs_are_named(workspace, tmp_path, capsys):
    (tmp_path / "text.png").write_text("not an image")
    assert encode_image_main([str(tmp_path / "text.png"), "-o", str(tmp_path / "x.bin"), "--checkpoint",
                              str(workspace / "mbt.pt")]) == 2
    assert "not an image Pillow can read" in capsys.readouterr().err
    assert encode_image_main([str(tmp_path / "missing.png"), "-o", str(tmp_path / "x.bin")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "x.bin").write_bytes(b"")
    assert encode_image_main([str(workspace / "picture.png"), "-o", str(tmp_path / "x.bin"), "--checkpoint",
                              str(workspace / "mbt.pt")]) == 2
    assert "--force" in capsys.readouterr().err


def test_an_image_codec_codes_the_i_frames_of_a_video(workspace, tmp_path, capsys):
    stream, recon = tmp_path / "stream", tmp_path / "recon.yuv"
    assert encode_main([str(workspace / "clip_136x96.yuv"), "--checkpoint", str(workspace / "ssf.pt"),
                        "--intra-model", "mbt2018-mean", "--intra-checkpoint", str(workspace / "mbt.pt"),
                        "--out", str(stream), "--recon", str(recon), "--quiet"]) == 0
    assert decode_main([str(stream), "-o", str(tmp_path / "decoded.yuv"), "--checkpoint", str(workspace / "ssf.pt"),
                        "--intra-checkpoint", str(workspace / "mbt.pt"), "--quiet"]) == 0
    assert (tmp_path / "decoded.yuv").read_bytes() == recon.read_bytes()
    records = [json.loads(line) for line in (stream / "rd.jsonl").read_text().splitlines()]
    assert [r["frame_type"] for r in records] == ["I", "P", "P"]
    # As the video's only model, an image codec is refused before anything is written.
    assert encode_main([str(workspace / "clip_136x96.yuv"), "--model", "mbt2018-mean", "--checkpoint",
                        str(workspace / "mbt.pt"), "--out", str(tmp_path / "s2"), "--quiet"]) == 2
    assert "image codec" in capsys.readouterr().err and not (tmp_path / "s2").exists()


def test_an_odd_sized_picture_is_refused_before_anything_is_written(workspace, tmp_path, capsys):
    Image.fromarray(np.zeros((64, 63, 3), np.uint8)).save(tmp_path / "odd.png")
    assert encode_image_main([str(tmp_path / "odd.png"), "--checkpoint", str(workspace / "mbt.pt"), "--model",
                              "mbt2018-mean", "-o", str(tmp_path / "odd.bin")]) == 2
    assert "crop it to 62x64" in capsys.readouterr().err and not (tmp_path / "odd.bin").exists()


def test_a_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    """Issue 34 item 5: Pillow's convert("RGB") clipped 16-bit samples at 255 (a white picture)."""
    from vidcodec.image_coding import read_image

    grey = np.linspace(0, 65535, 64 * 48).round().astype(np.uint16).reshape(48, 64)
    Image.fromarray(grey).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    x = read_image(tmp_path / "deep.png")
    assert x.shape == (1, 3, 48, 64)
    expected = torch.from_numpy(grey.astype(np.float32) / 65535)
    for channel in range(3):
        assert torch.allclose(x[0, channel], expected, atol=1e-6)


def test_a_picture_beyond_pillows_pixel_limit_gives_one_line(workspace, tmp_path, capsys, monkeypatch):
    """Issue 34 item 9: a 20000x20000 PNG raised PIL's DecompressionBombError as a traceback; the limit
    is lowered here so that a small picture stands in for the huge one."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert encode_image_main([str(workspace / "picture.png"), "-o", str(tmp_path / "x.bin"), "--checkpoint",
                              str(workspace / "mbt.pt"), "--model", "mbt2018-mean"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "too many pixels" in err and "crop or scale" in err
    assert not (tmp_path / "x.bin").exists()
