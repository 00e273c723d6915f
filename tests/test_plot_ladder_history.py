"""scripts/train/plot_ladder_history.py: the power-law fit, and the script on this repository's own history."""

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "train" / "plot_ladder_history.py"
SPEC = importlib.util.spec_from_file_location("plot_ladder_history", SCRIPT)
history = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(history)


def test_the_fit_recovers_an_exact_power_law():
    # (1 + BD/100) = 4 * (px / 1e9)^-0.25: each doubling multiplies it by 2^-0.25; it is 2 (BD +100%) at 16 G.
    pixels = [2e9, 4e9, 8e9]
    bd = [100.0 * (4.0 * (p / 1e9) ** -0.25 - 1.0) for p in pixels]
    slope, _, per_doubling, needed = history.power_law_fit(pixels, bd, target_pct=100.0)
    assert slope == pytest.approx(-0.25)
    assert per_doubling == pytest.approx(2 ** -0.25)
    assert needed == pytest.approx(16e9, rel=1e-9)


def test_a_fit_that_does_not_fall_predicts_no_amount_of_training():
    assert history.power_law_fit([1e9, 2e9], [150.0, 160.0], target_pct=100.0)[3] == math.inf


def test_the_shipped_ladder_history_plots(tmp_path):
    """The committed history: every commit it names still holds the four checkpoints it read."""
    csv_path = REPO / "docs" / "eval" / "dcvc-small-ladder-history" / "history.csv"
    commits = [line.split(",")[0] for line in csv_path.read_text().splitlines()[1:]]
    missing = subprocess.run(["git", "cat-file", "-e", f"{commits[0]}^{{commit}}"], cwd=REPO, capture_output=True)
    if missing.returncode != 0:
        pytest.skip("a shallow or non-git checkout: the ladders' commits are not here")
    result = subprocess.run([sys.executable, str(SCRIPT), "--history",
                             str(REPO / "docs" / "eval" / "dcvc-small-ladder-history" / "history.csv"),
                             "--out", str(tmp_path / "h.png")], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "fit: each doubling" in result.stdout and (tmp_path / "h.png").stat().st_size > 0
