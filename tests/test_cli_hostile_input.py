"""encode_sequence / decode_sequence / encode_image used carelessly or hostilely (issue 34): every bad
input gives exit 2, one line ``error: ...`` naming the problem and the fix, no change to any input
file and no partial output."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidcodec.cli import decode_main, encode_image_main, encode_main
from vidcodec.models.registry import build_model, save_checkpoint


def random_sequence(path: Path, width: int, height: int, num_frames: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.write_bytes(rng.integers(16, 236, size=num_frames * width * height * 3 // 2, dtype=np.uint8).tobytes())
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "tiny.pt"
    torch.manual_seed(0)
    save_checkpoint(path, build_model("ssf-small", mid_planes=16, latent_planes=16), "ssf-small", {})
    return path


def encode(checkpoint: Path, sequence: Path, *extra: str) -> int:
    return encode_main([str(sequence), "--checkpoint", str(checkpoint), "--quiet", *extra])


def decode(checkpoint: Path, stream: Path, output: Path, *extra: str) -> int:
    return decode_main([str(stream), "-o", str(output), "--checkpoint", str(checkpoint), "--quiet", *extra])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --- 1, 2: data loss ------------------------------------------------------------------------------
@pytest.mark.parametrize("force", [[], ["--force"]])
def test_recon_never_replaces_the_source_sequence(checkpoint, tmp_path, capsys, force):
    source = random_sequence(tmp_path / "victim_64x64.yuv", 64, 64, 2)
    before = digest(source)
    assert encode(checkpoint, source, "--out", str(tmp_path / "o"), "--recon", str(source), *force) == 2
    assert "is the input" in one_error_line(capsys)
    assert digest(source) == before and not (tmp_path / "o").exists()


def test_recon_and_decoded_output_replace_an_existing_file_only_with_force(checkpoint, tmp_path, capsys):
    source = random_sequence(tmp_path / "a_64x64.yuv", 64, 64, 2)
    recon, decoded = tmp_path / "recon.yuv", tmp_path / "decoded.yuv"
    recon.write_text("precious")
    decoded.write_text("precious too")
    assert encode(checkpoint, source, "--out", str(tmp_path / "o"), "--recon", str(recon)) == 2
    assert "--recon" in one_error_line(capsys) and recon.read_text() == "precious"
    assert not (tmp_path / "o").exists()
    assert encode(checkpoint, source, "--out", str(tmp_path / "o"), "--recon", str(recon), "--force") == 0
    assert recon.stat().st_size == 2 * 64 * 64 * 3 // 2
    assert decode(checkpoint, tmp_path / "o", decoded) == 2
    assert "pass --force" in one_error_line(capsys) and decoded.read_text() == "precious too"
    assert decode(checkpoint, tmp_path / "o", decoded, "--force") == 0
    assert decoded.read_bytes() == recon.read_bytes()
    header = tmp_path / "o" / "sequence.hdr"
    header_digest = digest(header)
    assert decode(checkpoint, tmp_path / "o", header, "--force") == 2  # a file of the stream it decodes
    assert "is the input" in one_error_line(capsys) and digest(header) == header_digest


def test_recon_inside_the_output_directory_is_refused(checkpoint, tmp_path, capsys):
    """The stream directory replaces --out at the end: a reconstruction inside it would be lost."""
    source = random_sequence(tmp_path / "a_64x64.yuv", 64, 64, 1)
    assert encode(checkpoint, source, "--out", str(tmp_path / "o"), "--recon", str(tmp_path / "o" / "r.yuv")) == 2
    assert "inside --out" in one_error_line(capsys) and not (tmp_path / "o").exists()


def test_encode_image_never_replaces_its_input(checkpoint, tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "victim.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    before = digest(image)
    common = [str(image), "--model", "ssf-small", "--checkpoint", str(checkpoint), "--force"]
    assert encode_image_main([*common, "-o", str(tmp_path / "v.bin"), "--recon", str(image)]) == 2
    assert "is the input" in one_error_line(capsys)
    assert encode_image_main([*common, "-o", str(image)]) == 2
    assert "is the input" in one_error_line(capsys)
    assert digest(image) == before and not (tmp_path / "v.bin").exists()


def test_force_never_deletes_a_file_or_a_folder_that_is_not_an_output(checkpoint, tmp_path, capsys):
    source = random_sequence(tmp_path / "a_64x64.yuv", 64, 64, 1)
    victim = tmp_path / "victim.txt"
    victim.write_text("notes")
    assert encode(checkpoint, source, "--out", str(victim), "--force") == 2
    assert "is a file, not a directory" in one_error_line(capsys) and victim.read_text() == "notes"
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    assert encode(checkpoint, source, "--out", str(folder), "--force") == 2
    assert "not an earlier output" in one_error_line(capsys)
    assert (folder / "thesis.tex").read_text() == "years of work"
    # The folder that holds the source, even when it also holds an earlier output.
    (tmp_path / "summary.json").write_text("{}")
    assert encode(checkpoint, source, "--out", str(tmp_path), "--force") == 2
    assert "holds the input" in one_error_line(capsys) and source.is_file() and victim.is_file()


# --- 3, 8: frame rates ----------------------------------------------------------------------------
@pytest.mark.parametrize("fps", ["0.0001", "0", "-30", "inf", "nan", "1e300"])
def test_frame_rates_a_stream_cannot_carry_are_refused_with_the_range(checkpoint, tmp_path, capsys, fps):
    source = random_sequence(tmp_path / "a_64x64.yuv", 64, 64, 1)
    assert encode(checkpoint, source, "--out", str(tmp_path / "o"), "--fps", fps) == 2
    assert "(expected 0.01 to 10000 frames per second)" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_the_slowest_and_fastest_rates_allowed_survive_the_header(checkpoint, tmp_path, capsys):
    from vidcodec.cli import main as vidcodec_main

    source = random_sequence(tmp_path / "a_64x64.yuv", 64, 64, 1)
    for fps in ("0.01", "10000"):
        out = tmp_path / fps
        assert encode(checkpoint, source, "--out", str(out), "--fps", fps, "--no-ms-ssim") == 0
        capsys.readouterr()
        assert vidcodec_main(["info", str(out)]) == 0
        assert json.loads(capsys.readouterr().out)["fps"] == pytest.approx(float(fps))


# --- 4, 12: frames of another stream ----------------------------------------------------------------
@pytest.mark.parametrize("intra_period", ["1", "8"])
def test_a_frame_of_another_sequence_coded_with_the_same_settings_is_refused(checkpoint, tmp_path, capsys,
                                                                             intra_period):
    """Two sequences of one size, one set of flags: frame 1 (an I-frame, or a P-frame) of one put into
    the other. Before syntax version 6 both streams had one sequence id: exit 0 with frames [a, b, a],
    or a 'decoder desync' error blaming weights and threads."""
    for name, seed in (("a", 0), ("b", 1)):
        source = random_sequence(tmp_path / f"{name}_64x64.yuv", 64, 64, 3, seed)
        assert encode(checkpoint, source, "--out", str(tmp_path / name), "--intra-period", intra_period,
                      "--no-ms-ssim") == 0
    (tmp_path / "a" / "frames" / "000001.bin").write_bytes((tmp_path / "b" / "frames" / "000001.bin").read_bytes())
    assert decode(checkpoint, tmp_path / "a", tmp_path / "x.yuv") == 2
    err = one_error_line(capsys)
    assert "frames/000001.bin" in err and "another stream" in err and "desync" not in err
    assert not (tmp_path / "x.yuv").exists()


def test_coding_the_same_pictures_again_gives_the_same_files(checkpoint, tmp_path):
    """The sequence id comes from the pictures, not from chance: evaluations stay reproducible."""
    source = random_sequence(tmp_path / "a_64x64.yuv", 64, 64, 2)
    for name in ("first", "second"):
        assert encode(checkpoint, source, "--out", str(tmp_path / name), "--no-ms-ssim") == 0
    for name in ("sequence.hdr", "frames/000000.bin", "frames/000001.bin"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()


# --- 7: small pictures ------------------------------------------------------------------------------
@pytest.mark.parametrize("side", [16, 32])
def test_the_smallest_pictures_encode_with_ms_ssim_null(checkpoint, tmp_path, side):
    source = random_sequence(tmp_path / f"a_{side}x{side}.yuv", side, side, 2)
    out = tmp_path / "o"
    assert encode(checkpoint, source, "--out", str(out), "--recon", str(tmp_path / "r.yuv")) == 0
    records = [json.loads(line) for line in (out / "rd.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["ms_ssim_rgb"] is None and r["psnr_rgb"] > 0 for r in records)
    assert decode(checkpoint, out, tmp_path / "d.yuv") == 0
    assert (tmp_path / "d.yuv").read_bytes() == (tmp_path / "r.yuv").read_bytes()


# --- 11, 14: staging ------------------------------------------------------------------------------
def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_rerun_removes_staging_left_by_dead_processes(checkpoint, tmp_path):
    source = random_sequence(tmp_path / "a_64x64.yuv", 64, 64, 1)
    pid = dead_pid()
    stale = [tmp_path / f".o.partial-{pid}", tmp_path / f".o.old-{pid}", tmp_path / f".r.yuv.partial-{pid}.yuv"]
    for path in stale[:2]:
        (path / "frames").mkdir(parents=True)
        (path / "summary.json").write_text("{}")
    stale[2].write_bytes(b"half a frame")
    live = tmp_path / ".o.partial-1"  # pid 1 is alive: a concurrent run's, left alone
    live.mkdir()
    assert encode(checkpoint, source, "--out", str(tmp_path / "o"), "--recon", str(tmp_path / "r.yuv")) == 0
    assert not any(path.exists() for path in stale)
    assert live.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [live.name]


def test_an_output_that_cannot_be_written_is_named_not_its_staging(checkpoint, tmp_path, capsys):
    source = random_sequence(tmp_path / "a_64x64.yuv", 64, 64, 1)
    long_name = "o" * 250  # fits a file system's 255 bytes, its hidden staging name does not
    assert encode(checkpoint, source, "--out", str(tmp_path / long_name)) == 2
    err = one_error_line(capsys)
    assert f"cannot write {tmp_path / long_name}: File name too long" in err and ".partial-" not in err
    assert encode(checkpoint, source, "--out", str(tmp_path / "o"), "--recon", str(tmp_path / f"{long_name}.yuv")) == 2
    err = one_error_line(capsys)
    assert "cannot write" in err and ".partial-" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]


def test_a_failed_final_rename_keeps_the_earlier_output_and_leaves_no_staging(checkpoint, tmp_path, capsys,
                                                                               monkeypatch):
    source = random_sequence(tmp_path / "a_64x64.yuv", 64, 64, 1)
    out = tmp_path / "o"
    assert encode(checkpoint, source, "--out", str(out), "--no-ms-ssim") == 0
    earlier = digest(out / "sequence.hdr")
    original_rename = Path.rename

    def rename(self, target):
        if Path(target) == out and ".partial-" in self.name:
            raise OSError(28, "No space left on device", str(self))
        return original_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    assert encode(checkpoint, source, "--out", str(out), "--force", "--no-ms-ssim") == 2
    err = one_error_line(capsys)
    assert f"cannot write {out}: No space left on device" in err
    assert digest(out / "sequence.hdr") == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, "o"])


@pytest.mark.slow
def test_bad_input_in_a_real_process_leaves_inputs_untouched(checkpoint, tmp_path):
    source = random_sequence(tmp_path / "victim_64x64.yuv", 64, 64, 1)
    before = digest(source)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run([sys.executable, "-m", "vidcodec.cli", "encode", str(source), "--checkpoint",
                             str(checkpoint), "--out", str(tmp_path / "o"), "--recon", str(source), "--force"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "is the input" in result.stderr
    assert digest(source) == before


# --- 6, 10: doubtful sequence files, broken dataset files ----------------------------------------------
def test_ten_bit_samples_named_8_bit_are_coded_with_a_warning(checkpoint, tmp_path, capsys):
    rng = np.random.default_rng(0)
    source = tmp_path / "a_64x64_8bit.yuv"
    source.write_bytes(rng.integers(64, 940, size=64 * 64 * 3 // 2, dtype="<u2").tobytes())
    assert encode(checkpoint, source, "--out", str(tmp_path / "o"), "--no-ms-ssim", "--frames", "1") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "--bit-depth 10" in warnings[0]


@pytest.mark.parametrize("text", ["sequences: {A: {file: a.yuv, width: 64\n",
                                  "sequences: {A: {file: a.yuv, width: sixty-four, height: 64}}\n"])
def test_eval_with_a_broken_dataset_file_gives_one_line_and_no_run(tmp_path, capsys, text):
    from vidcodec.cli import main as vidcodec_main

    (tmp_path / "broken.yaml").write_text(text)
    assert vidcodec_main(["eval", "--dataset", str(tmp_path / "broken.yaml"), "--configs", "baseline",
                          "--qualities", "1", "--out", str(tmp_path / "run"), "--serial", "--quiet"]) == 2
    assert "broken.yaml" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()
