"""encode_sequence / decode_sequence as a user runs them: files, logs, bit-exactness, bad input."""

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from vidcodec.bitstream.syntax import read_frame, sequence_id
from vidcodec.cli import decode_main, encode_main
from vidcodec.cli import main as vidcodec_main
from vidcodec.io.color import rgb_to_yuv420
from vidcodec.io.yuv import SequenceGeometry, YuvWriter
from vidcodec.models.registry import build_model, save_checkpoint
from vidcodec.train.synthetic import photo_clip

REPO = Path(__file__).resolve().parent.parent


def write_sequence(path: Path, width: int, height: int, num_frames: int, seed: int = 3) -> Path:
    clip = photo_clip("coffee", num_frames, height, width, seed)
    with YuvWriter(path, SequenceGeometry(width, height)) as writer:
        for frame in clip:
            writer.write_frame(rgb_to_yuv420(torch.from_numpy(frame.transpose(2, 0, 1).copy())[None], 8))
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    torch.manual_seed(0)
    save_checkpoint(root / "tiny.pt", build_model("ssf-small", mid_planes=16, latent_planes=16), "ssf-small", {})
    torch.manual_seed(1)
    save_checkpoint(root / "other.pt", build_model("ssf-small", mid_planes=16, latent_planes=16), "ssf-small", {})
    sequence = write_sequence(root / "Clip_416x240_30fps_420_8bit_YUV.yuv", 416, 240, 17)
    stream = root / "stream"
    # No --model: the checkpoint's (ssf-small), not the default (dcvc-small).
    code = encode_main([str(sequence), "--checkpoint", str(root / "tiny.pt"), "--intra-period", "8",
                        "--out", str(stream), "--recon", str(root / "recon.yuv"), "--quiet"])
    assert code == 0
    return root, sequence, stream


def decode(stream: Path, output: Path, checkpoint: Path) -> int:
    return decode_main([str(stream), "-o", str(output), "--checkpoint", str(checkpoint), "--quiet"])


def test_done_criteria_on_17_frames_at_416x240(workspace):
    root, _, stream = workspace
    frame_files = sorted((stream / "frames").iterdir())
    assert [f.name for f in frame_files] == [f"{poc:06d}.bin" for poc in range(17)]
    records = [json.loads(line) for line in (stream / "rd.jsonl").read_text().splitlines()]
    assert len(records) == 17
    assert "".join(r["frame_type"] for r in records) == "IPPPPPPPIPPPPPPPI"
    for record, frame_file in zip(records, frame_files):
        assert record["bits"] == 8 * frame_file.stat().st_size
        part_bits = sum(v for k, v in record.items() if k.startswith("bits_") and k != "bits_header")
        assert record["bits"] == part_bits + record["bits_header"]
        assert record["bpp"] == pytest.approx(record["bits"] / (416 * 240))
        assert record["dec_s"] is not None and record["rho"] is None
    assert decode(stream, root / "decoded.yuv", root / "tiny.pt") == 0
    assert (root / "decoded.yuv").read_bytes() == (root / "recon.yuv").read_bytes()
    assert (root / "recon.yuv").stat().st_size == 17 * 416 * 240 * 3 // 2


def test_info_prints_the_sequence_header_with_both_models(workspace, capsys):
    _, _, stream = workspace
    capsys.readouterr()
    assert vidcodec_main(["info", str(stream)]) == 0
    header = json.loads(capsys.readouterr().out)
    assert header["intra_model"] == header["inter_model"]
    assert header["inter_model"]["model_id"] == "ssf-small" and len(header["inter_model"]["checkpoint_hash"]) == 32
    assert "frames" not in header


def test_info_frames_lists_each_frame_file_with_its_header_bytes(workspace, capsys):
    _, _, stream = workspace
    capsys.readouterr()
    assert vidcodec_main(["info", str(stream), "--frames"]) == 0
    frames = json.loads(capsys.readouterr().out)["frames"]
    records = [json.loads(line) for line in (stream / "rd.jsonl").read_text().splitlines()]
    assert [f["type"] for f in frames] == [r["frame_type"] for r in records]
    assert [8 * f["bytes"] for f in frames] == [r["bits"] for r in records]
    assert [8 * f["header_bytes"] for f in frames] == [r["bits_header"] for r in records]
    # Syntax version 4: 1 info + 1 poc + 1 sequence id + 2 hash + lengths + 4 CRC (P: 3 lengths).
    assert all(f["header_bytes"] <= 16 for f in frames)


def test_summary_records_averages_config_and_provenance(workspace):
    _, _, stream = workspace
    summary = json.loads((stream / "summary.json").read_text())
    assert summary["average"]["I"]["frames"] == 3 and summary["average"]["P"]["frames"] == 14
    records = [json.loads(line) for line in (stream / "rd.jsonl").read_text().splitlines()]
    assert summary["average"]["all"]["bpp"] == pytest.approx(np.mean([r["bpp"] for r in records]))
    assert summary["config"]["intra_period"] == 8
    assert len(summary["model"]["checkpoint_hash"]) == 32
    assert summary["versions"]["torch"] and "git_commit" in summary


def test_existing_output_is_refused_without_force(workspace, capsys):
    root, sequence, stream = workspace
    common = [str(sequence), "--checkpoint", str(root / "tiny.pt"), "--frames", "2", "--quiet"]
    assert encode_main(common + ["--out", str(stream)]) == 2
    assert "pass --force" in capsys.readouterr().err
    copy = root / "copy"
    shutil.copytree(stream, copy)
    assert encode_main(common + ["--out", str(copy), "--force"]) == 0
    assert len(list((copy / "frames").iterdir())) == 2


def test_interrupted_encode_leaves_nothing_that_looks_complete(workspace, monkeypatch):
    root, sequence, _ = workspace
    from vidcodec import encoder

    original = encoder.Encoder.encode

    def failing(self, poc, x):
        if poc == 3:
            raise KeyboardInterrupt
        return original(self, poc, x)

    monkeypatch.setattr(encoder.Encoder, "encode", failing)
    out = root / "interrupted"
    code = encode_main([str(sequence), "--checkpoint", str(root / "tiny.pt"), "--out", str(out),
                        "--recon", str(root / "int.yuv"), "--quiet"])
    assert code == 130
    assert not out.exists() and not (root / "int.yuv").exists()
    assert not [p for p in root.iterdir() if "partial" in p.name]


@pytest.mark.parametrize(
    "make_input, extra, message",
    [
        (lambda d: d / "missing_416x240.yuv", [], "not found"),
        (lambda d: _bytes(d / "odd_size_64x48.yuv", 64 * 48 * 3 // 2 * 2 + 7), [], "2 whole frames fit"),
        (lambda d: _bytes(d / "mystery.yuv", 1000), [], "--size WxH"),
        (lambda d: _bytes(d / "a.yuv", 1000), ["--size", "63x48"], "even dimensions"),
        (lambda d: _bytes(d / "b.yuv", 1000), ["--size", "8x8"], "too small"),
        (lambda d: _bytes(d / "two_64x48.yuv", 64 * 48 * 3), ["--frames", "5"], "--frames 5 exceeds the 2 frames"),
        (lambda d: _bytes(d / "c_64x48.yuv", 64 * 48 * 3), ["--intra-period", "0"],
         "intra_period=0 (expected -1 or >= 1)"),
    ],
)
def test_bad_input_gives_one_clear_line(workspace, tmp_path, capsys, make_input, extra, message):
    root, _, _ = workspace
    path = make_input(tmp_path)
    code = encode_main([str(path), "--checkpoint", str(root / "tiny.pt"), "--out", str(tmp_path / "o"), "--quiet",
                        *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def _bytes(path: Path, size: int) -> Path:
    path.write_bytes(bytes(size))
    return path


def damaged_copy(stream: Path, dest: Path) -> Path:
    shutil.copytree(stream, dest)
    return dest


@pytest.mark.parametrize("model_id, config", [("ssf-small", None), ("dcvc-small", {"features": 16, "latent": 16})])
def test_truncated_and_flipped_frames_and_foreign_frames(workspace, tmp_path, capsys, model_id, config):
    """The same one-line errors for every model family."""
    root, sequence, stream = workspace
    checkpoint = root / "tiny.pt"
    if config:
        checkpoint = tmp_path / "model.pt"
        torch.manual_seed(0)
        save_checkpoint(checkpoint, build_model(model_id, **config), model_id, {})
        stream = tmp_path / "stream"
        assert encode_main([str(sequence), "--model", model_id, "--checkpoint", str(checkpoint), "--out",
                            str(stream), "--quiet", "--no-verify"]) == 0
    truncated = damaged_copy(stream, tmp_path / "truncated")
    data = (truncated / "frames" / "000005.bin").read_bytes()
    (truncated / "frames" / "000005.bin").write_bytes(data[: len(data) // 2])
    flipped = damaged_copy(stream, tmp_path / "flipped")
    data = bytearray((flipped / "frames" / "000002.bin").read_bytes())
    data[len(data) // 2] ^= 0x04
    (flipped / "frames" / "000002.bin").write_bytes(bytes(data))
    # The same sequence coded with a shorter GOP: a frame file of another stream.
    other = tmp_path / "other"
    assert encode_main([str(sequence), "--model", model_id, "--checkpoint", str(checkpoint), "--intra-period", "4",
                        "--frames", "3", "--out", str(other), "--quiet", "--no-verify"]) == 0
    foreign = damaged_copy(stream, tmp_path / "foreign")
    shutil.copy(other / "frames" / "000001.bin", foreign / "frames" / "000001.bin")
    missing = damaged_copy(stream, tmp_path / "missing")
    (missing / "frames" / "000016.bin").unlink()
    expectations = [
        (truncated, ["frames/000005.bin: CRC32 mismatch"]),
        (flipped, ["frames/000002.bin: CRC32 mismatch"]),
        # "frame belongs to another stream"; 1 time in 256 the first id byte agrees: "CRC32 ... another stream"
        (foreign, ["frames/000001.bin: ", "another stream"]),
        (missing, ["000016.bin missing"]),
    ]
    for damaged, messages in expectations:
        output = tmp_path / f"{damaged.name}.yuv"
        assert decode(damaged, output, checkpoint) == 2
        err = capsys.readouterr().err
        assert all(message in err for message in messages) and "Traceback" not in err, err
        assert not output.exists()


def test_wrong_or_missing_checkpoint_and_unknown_version(workspace, tmp_path, capsys):
    root, _, stream = workspace
    assert decode(stream, tmp_path / "x.yuv", root / "other.pt") == 2
    assert "wrong weights: the stream needs model 'ssf-small' with checkpoint hash" in capsys.readouterr().err
    assert decode_main([str(stream), "-o", str(tmp_path / "x.yuv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "custom checkpoint" in err and "pass --checkpoint PATH" in err
    assert decode(stream, tmp_path / "x.yuv", tmp_path / "nope.pt") == 2
    assert "nope.pt not found" in capsys.readouterr().err
    future = damaged_copy(stream, tmp_path / "future")
    header = bytearray((future / "sequence.hdr").read_bytes())
    header[4:6] = struct.pack("<H", 99)
    body = bytes(header[:-4])
    (future / "sequence.hdr").write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    assert decode(future, tmp_path / "x.yuv", root / "tiny.pt") == 2
    assert "made by syntax version 99, this decoder reads version" in capsys.readouterr().err
    assert not (tmp_path / "x.yuv").exists()


@pytest.mark.slow
def test_errors_exit_nonzero_without_traceback_in_a_real_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "vidcodec.cli", "encode", str(tmp_path / "nothing.yuv"), "--size", "64x48"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: input sequence") and "Traceback" not in result.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "vidcodec.cli", "encode", str(tmp_path / "nothing.yuv"), "--size", "64x48", "--debug"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.parametrize("quant", ["hex", "oct"])
def test_lattice_quantizers_round_trip_bit_exactly(workspace, tmp_path, quant):
    root, sequence, _ = workspace
    stream = tmp_path / quant
    assert encode_main([str(sequence), "--checkpoint", str(root / "tiny.pt"), "--frames", "4", "--quant", quant,
                        "--out", str(stream), "--recon", str(tmp_path / "recon.yuv"), "--quiet"]) == 0
    records = [json.loads(line) for line in (stream / "rd.jsonl").read_text().splitlines()]
    assert {r["quantizer"] for r in records} == {quant}
    assert decode(stream, tmp_path / "decoded.yuv", root / "tiny.pt") == 0
    assert (tmp_path / "decoded.yuv").read_bytes() == (tmp_path / "recon.yuv").read_bytes()


@pytest.mark.parametrize("scope", ["residual+motion", "all"])
def test_lattice_quantizer_scopes_round_trip_and_change_the_coded_latents(workspace, tmp_path, scope):
    root, sequence, _ = workspace
    streams = {}
    for name in ("residual", scope):
        # The shipped model: a random tiny model's motion latents code to the same bytes either way.
        stream = tmp_path / name
        assert encode_main([str(sequence), "--model", "ssf-small", "--quality", "3", "--frames", "2", "--quant", "hex",
                            "--quant-scope", name,
                            "--out", str(stream), "--recon", str(tmp_path / f"{name}.yuv"), "--quiet"]) == 0
        assert decode_main([str(stream), "-o", str(tmp_path / f"{name}_decoded.yuv"), "--quiet"]) == 0
        assert (tmp_path / f"{name}_decoded.yuv").read_bytes() == (tmp_path / f"{name}.yuv").read_bytes()
        stream_id = sequence_id((stream / "sequence.hdr").read_bytes())
        streams[name] = [read_frame(path.read_bytes(), path.name, stream_id)[1]
                         for path in sorted((stream / "frames").iterdir())]
    # Motion latents are lattice-coded in both wider scopes, I-frame latents only in "all" (parts: I-frame
    # z, y; P-frame motion z, motion y, residual z, residual y).
    assert streams[scope][1][1] != streams["residual"][1][1]
    same_intra = streams[scope][0][1] == streams["residual"][0][1]
    assert same_intra == (scope == "residual+motion")


@pytest.mark.parametrize("quant", ["sq", "oct"])
def test_latent_shift_round_trips_and_logs_its_diagnostics(workspace, tmp_path, quant):
    root, sequence, _ = workspace
    stream = tmp_path / "shift"
    assert encode_main([str(sequence), "--checkpoint", str(root / "tiny.pt"), "--frames", "4", "--quant", quant,
                        "--latent-shift", "--shift-groups", "2", "--shift-diagnostics",
                        "--out", str(stream), "--recon", str(tmp_path / "recon.yuv"), "--quiet"]) == 0
    assert decode(stream, tmp_path / "decoded.yuv", root / "tiny.pt") == 0
    assert (tmp_path / "decoded.yuv").read_bytes() == (tmp_path / "recon.yuv").read_bytes()
    records = [json.loads(line) for line in (stream / "rd.jsonl").read_text().splitlines()]
    assert records[0]["rho"] is None and records[0]["shift_gain_db"] is None  # I-frame: outside the scope
    for record in records[1:]:
        assert len(record["rho"]) == 2 and record["shift_gain_db"] >= 0.0
        assert -1.0 <= record["shift_corr"] <= 1.0
    summary = json.loads((stream / "summary.json").read_text())
    assert summary["config"]["latent_shift"] is True and summary["average"]["P"]["shift_gain_db"] >= 0.0


def test_ms_ssim_can_be_left_out(workspace, tmp_path, capsys):
    """--no-ms-ssim: rd.jsonl's ms_ssim_rgb is null, the summary prints '-', the rest is measured."""
    root, sequence, _ = workspace
    capsys.readouterr()
    assert encode_main([str(sequence), "--checkpoint", str(root / "tiny.pt"), "--frames", "2", "--no-ms-ssim",
                        "--out", str(tmp_path / "s"), "--quiet"]) == 0
    records = [json.loads(line) for line in (tmp_path / "s" / "rd.jsonl").read_text().splitlines()]
    assert all(r["ms_ssim_rgb"] is None and r["psnr_rgb"] > 0 for r in records)
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["average"]["all"]["ms_ssim_rgb"] is None and summary["config"]["ms_ssim"] is False
    assert "       -" in capsys.readouterr().out
