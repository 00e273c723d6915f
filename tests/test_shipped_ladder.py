"""The shipped ssf-small rate ladder as a user meets it: more bits must buy more quality."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vidcodec.cli import encode_main

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("pattern", ["Testsrc2"])
def test_shipped_ladder_is_monotone_on_a_lavfi_pattern(tmp_path, pattern):
    written = subprocess.run([sys.executable, str(REPO / "scripts" / "make_sequences.py"), "--patterns",
                              "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, written.stderr
    sequence = tmp_path / f"{pattern}_416x240_30fps_420_8bit_YUV.yuv"
    points = []
    for quality in (1, 2, 3, 4):
        out = tmp_path / f"q{quality}"
        assert encode_main([str(sequence), "--model", "ssf-small", "--quality", str(quality), "--intra-period", "8",
                            "--out", str(out), "--no-verify", "--quiet"]) == 0
        average = json.loads((out / "summary.json").read_text())["average"]["all"]
        points.append((average["bpp"], average["psnr_rgb"]))
    bpps, psnrs = zip(*points)
    assert all(a < b for a, b in zip(bpps, bpps[1:])), points
    assert all(a < b for a, b in zip(psnrs, psnrs[1:])), points
