"""The shipped rate ladders as a user meets them: more bits must buy more quality. Video models (ssf-small,
dcvc-small, dcvc-small-detail) on lavfi testsrc2, image codecs (bmshj2018-factorized-small,
mbt2018-mean-small) on a held-out photograph."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vidcodec.cli import encode_image_main, encode_main

pytestmark = pytest.mark.slow  # codes testsrc2 at four rate points

REPO = Path(__file__).resolve().parent.parent


def make_sequences(flag: str, root: Path) -> Path:
    """scripts/data/make_sequences.py FLAG --out-dir ROOT, as a user generates the held-out content."""
    written = subprocess.run([sys.executable, str(REPO / "scripts" / "data" / "make_sequences.py"), flag,
                              "--out-dir", str(root)], capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, written.stderr
    return root


@pytest.fixture(scope="module")
def testsrc2(tmp_path_factory) -> Path:
    return make_sequences("--patterns", tmp_path_factory.mktemp("patterns")) / "Testsrc2_416x240_30fps_420_8bit_YUV.yuv"


@pytest.fixture(scope="module", params=["ssf-small", "dcvc-small", "dcvc-small-detail"])
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


@pytest.fixture(scope="module")
def chelsea(tmp_path_factory) -> Path:
    return make_sequences("--photos", tmp_path_factory.mktemp("photos")) / "photos" / "chelsea.png"


@pytest.mark.parametrize("model", ["bmshj2018-factorized-small", "mbt2018-mean-small"])
def test_shipped_image_ladder_buys_quality_with_bits(model, chelsea, tmp_path, capsys):
    """(bpp, PSNR-RGB) of q1..q4 on the held-out chelsea (450x300) both rise."""
    points = []
    for quality in (1, 2, 3, 4):
        capsys.readouterr()
        assert encode_image_main([str(chelsea), "--model", model, "--quality", str(quality),
                                  "-o", str(tmp_path / f"q{quality}.bin")]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        points.append((summary["bpp"], summary["psnr_rgb"]))
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(points, points[1:])), points
