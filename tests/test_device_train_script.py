"""scripts/train/device_train.sh, run here on the CPU as a lent GPU machine would run it: the default ladder's
recipe (p-chains from the shipped weights against the shipped I-frames of each rate point) exports four
checkpoints that record it, and a failure is an exit status, not a silent chunk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "train" / "device_train.sh"


SCRIPT_VARIABLES = ("MODEL", "CONFIG", "REFERENCE_CODEC", "CLIP_MIX", "STEPS", "MAX_STEPS", "PYTHON", "RUNS_DIR", "OUT")


def run_chunk(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The script as the device runs it, with only the variables given here (none from this shell)."""
    (tmp_path / "out").mkdir(exist_ok=True)
    inherited = {key: value for key, value in os.environ.items() if key not in SCRIPT_VARIABLES}
    environment = {**inherited, "OUT": str(tmp_path / "out"), "RUNS_DIR": str(tmp_path / "runs"),
                   "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_a_chunk_of_the_default_recipe_exports_four_rate_points_that_record_it(tmp_path):
    result = run_chunk(tmp_path, "p-chains", "5", "vidcodec/weights", MODEL="dcvc-small-detail",
                       CONFIG="configs/train/dcvc-small-detail-chains.yaml", REFERENCE_CODEC="mbt2018-mean-small",
                       CLIP_MIX="photo=0.5,dead_leaves=0.5", STEPS="3000", MAX_STEPS="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "out" / "logs.tgz").is_file()
    for quality in range(1, 5):
        exported = torch.load(tmp_path / "out" / f"dcvc-small-detail-q{quality}.pt", map_location="cpu",
                              weights_only=False)
        stage = exported["provenance"]["curriculum"][-1]
        assert stage["stage"] == "p-chains" and stage["steps"] == 1
        assert exported["provenance"]["train_config"]["steps"] == 3000
        assert stage["init_from"] == f"vidcodec/weights/dcvc-small-detail-q{quality}.pt"
        assert stage["reference_codec"] == f"vidcodec/weights/mbt2018-mean-small-q{quality}.pt"
        assert stage["clip_mix"] == {"photo": 0.5, "dead_leaves": 0.5}
        assert stage["lmbda"] == (0.0018, 0.0035, 0.0067, 0.013)[quality - 1]


def test_a_missing_config_reference_codec_or_runs_dir_stops_before_training(tmp_path):
    no_config = run_chunk(tmp_path, "p-chains", "1", "vidcodec/weights", MODEL="dcvc-small-detail")
    assert no_config.returncode == 2
    assert "configs/train/dcvc-small-detail-p-chains.yaml" in no_config.stderr and "CONFIG" in no_config.stderr
    no_reference = run_chunk(tmp_path, "p-chains", "1", "vidcodec/weights", MODEL="dcvc-small-detail",
                             CONFIG="configs/train/dcvc-small-detail-chains.yaml", REFERENCE_CODEC="x265-intra")
    assert no_reference.returncode == 2 and "vidcodec/weights/x265-intra-q1.pt" in no_reference.stderr
    relative = run_chunk(tmp_path, "p-chains", "1", "vidcodec/weights", MODEL="dcvc-small-detail",
                         CONFIG="configs/train/dcvc-small-detail-chains.yaml", RUNS_DIR="runs")
    assert relative.returncode == 2 and "RUNS_DIR=runs" in relative.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_one_failed_run_fails_the_chunk_and_the_others_still_export(tmp_path):
    """A start directory without q4: q4's run fails on its missing --init-from, q1..q3 export."""
    start = tmp_path / "start"
    start.mkdir()
    for quality in range(1, 4):
        name = f"mbt2018-mean-small-q{quality}.pt"
        (start / name).symlink_to(REPO / "vidcodec" / "weights" / name)
    result = run_chunk(tmp_path, "intra", "5", str(start), MODEL="mbt2018-mean-small",
                       CONFIG="configs/train/mbt2018-mean-small-finetune.yaml", MAX_STEPS="1")
    assert result.returncode != 0
    assert (tmp_path / "out" / "logs.tgz").is_file()  # past the checks: the four runs started
    assert str(start / "mbt2018-mean-small-q4.pt") in (tmp_path / "runs" / "q4.out").read_text()
    assert sorted(path.name for path in (tmp_path / "out").glob("*.pt")) == [
        f"mbt2018-mean-small-q{quality}.pt" for quality in range(1, 4)]
