import csv
import subprocess
import sys
from pathlib import Path

import pytest

from vidcodec.eval.results import write_results

REPO = Path(__file__).resolve().parent.parent
BPP = {1: 0.05, 2: 0.09, 3: 0.16, 4: 0.28}
PSNR = {1: 30.0, 2: 32.2, 3: 34.1, 4: 35.8}


def run_dir(path: Path, qualities, rate_factor: float, configs=("baseline",)) -> Path:
    path.mkdir()
    rows = [{"sequence": "Beauty", "config": config, "quality": q, "bpp": BPP[q] * rate_factor, "psnr_rgb": PSNR[q]}
            for config in configs for q in qualities]
    write_results(rows, path)
    return path


def compare(*args):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "tools" / "compare_runs.py"), *map(str, args)],
                          capture_output=True, text=True)


def test_pools_rate_points_of_one_label_and_compares_labels(tmp_path):
    low = run_dir(tmp_path / "sq-low", (1, 2), 1.0, configs=("baseline", "oct"))
    high = run_dir(tmp_path / "sq-high", (3, 4), 1.0, configs=("baseline", "oct"))
    tuned = run_dir(tmp_path / "tuned", (1, 2, 3, 4), 0.9)
    result = compare(f"sq={low}", f"sq={high}", f"tuned={tuned}", "--only", "baseline",
                     "--anchor", "sq:baseline", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    table = list(csv.DictReader((tmp_path / "out" / "bdrate.csv").open()))
    assert list(table[0]) == ["sequence", "tuned:baseline"]  # --only dropped the oct curves
    assert [row["sequence"] for row in table] == ["Beauty", "Average"]
    assert float(table[0]["tuned:baseline"]) == pytest.approx(-10.0)  # 10% fewer bits at every quality
    plots = sorted(path.name for path in (tmp_path / "out" / "plots").iterdir())
    assert plots == ["rd_psnr_rgb_average.png", "rd_psnr_rgb_seq-Beauty.png"]


def test_the_same_rate_point_twice_under_one_label_is_refused(tmp_path):
    first = run_dir(tmp_path / "a", (1, 2, 3, 4), 1.0)
    again = run_dir(tmp_path / "b", (4,), 1.0)
    result = compare(f"sq={first}", f"sq={again}", "--anchor", "sq:baseline", "--out", tmp_path / "out")
    assert result.returncode == 2 and "already given" in result.stderr


def test_frame_type_compares_the_curves_of_one_frame_type(tmp_path):
    def with_frame_types(path: Path, i_rate_factor: float) -> Path:
        path.mkdir()
        rows = [{"sequence": "Beauty", "config": "baseline", "quality": q, "bpp": BPP[q], "psnr_rgb": PSNR[q],
                 "bpp_I": 3 * BPP[q] * i_rate_factor, "psnr_rgb_I": PSNR[q] - 2,
                 "bpp_P": BPP[q], "psnr_rgb_P": PSNR[q]} for q in (1, 2, 3, 4)]
        write_results(rows, path)
        return path

    old, new = with_frame_types(tmp_path / "old", 1.0), with_frame_types(tmp_path / "new", 0.8)
    result = compare(f"old={old}", f"new={new}", "--frame-type", "I", "--anchor", "old:baseline",
                     "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    table = list(csv.DictReader((tmp_path / "out" / "bdrate.csv").open()))
    assert float(table[0]["new:baseline"]) == pytest.approx(-20.0)  # the I-frames alone: 20% fewer bits
    result = compare(f"old={old}", f"new={new}", "--frame-type", "P", "--anchor", "old:baseline",
                     "--out", tmp_path / "p")
    assert float(list(csv.DictReader((tmp_path / "p" / "bdrate.csv").open()))[0]["new:baseline"]) == pytest.approx(0.0)
