"""The shipped rate ladders (ssf-small, dcvc-small) as a user meets them: more bits must buy more quality."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vidcodec.cli import encode_main

pytestmark = pytest.mark.slow  # codes testsrc2 at four rate points

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def testsrc2(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("patterns")
    written = subprocess.run([sys.executable, str(REPO / "scripts" / "make_sequences.py"), "--patterns",
                              "--out-dir", str(root)], capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, written.stderr
    return root / "Testsrc2_416x240_30fps_420_8bit_YUV.yuv"


@pytest.fixture(scope="module", params=["ssf-small", "dcvc-small"])
def testsrc2_ladder(request, testsrc2, tmp_path_factory) -> list[tuple[float, float]]:
    """(bpp, PSNR-RGB) of q1..q4 on lavfi testsrc2, 416x240, 9 frames, intra period 8."""
    root = tmp_path_factory.mktemp(request.param)
    points = []
    for quality in (1, 2, 3, 4):
        out = root / f"q{quality}"
        assert encode_main([str(testsrc2), "--model", request.param, "--quality", str(quality), "--intra-period", "8",
                            "--out", str(out), "--no-verify", "--quiet"]) == 0
        average = json.loads((out / "summary.json").read_text())["average"]["all"]
        points.append((average["bpp"], average["psnr_rgb"]))
    return points


def test_shipped_ladder_rate_rises_with_the_rate_point(testsrc2_ladder):
    bpps = [bpp for bpp, _ in testsrc2_ladder]
    assert all(a < b for a, b in zip(bpps, bpps[1:])), testsrc2_ladder


def test_shipped_ladder_quality_rises_with_the_rate_point(testsrc2_ladder):
    psnrs = [psnr for _, psnr in testsrc2_ladder]
    assert all(a < b for a, b in zip(psnrs, psnrs[1:])), testsrc2_ladder
