"""scripts/device_train.sh, run here on the CPU as a lent GPU machine would run it: the default ladder's
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
SCRIPT = REPO / "scripts" / "device_train.sh"


def run_chunk(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "out").mkdir(exist_ok=True)
    environment = {**os.environ, "OUT": str(tmp_path / "out"), "RUNS_DIR": str(tmp_path / "runs"),
                   "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_a_chunk_of_the_default_recipe_exports_four_rate_points_that_record_it(tmp_path):
    result = run_chunk(tmp_path, "p-chains", "0.01", "vidcodec/weights", MODEL="dcvc-small-detail",
                       CONFIG="configs/train/dcvc-small-detail-chains.yaml", REFERENCE_CODEC="mbt2018-mean-small",
                       CLIP_MIX="photo=0.5,dead_leaves=0.5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "out" / "logs.tgz").is_file()
    for quality in range(1, 5):
        exported = torch.load(tmp_path / "out" / f"dcvc-small-detail-q{quality}.pt", map_location="cpu",
                              weights_only=False)
        stage = exported["provenance"]["curriculum"][-1]
        assert stage["stage"] == "p-chains" and stage["steps"] >= 1
        assert stage["init_from"] == f"vidcodec/weights/dcvc-small-detail-q{quality}.pt"
        assert stage["reference_codec"] == f"vidcodec/weights/mbt2018-mean-small-q{quality}.pt"
        assert stage["clip_mix"] == {"photo": 0.5, "dead_leaves": 0.5}
        assert stage["lmbda"] == (0.0018, 0.0035, 0.0067, 0.013)[quality - 1]


def test_a_missing_config_or_reference_codec_stops_before_training(tmp_path):
    no_config = run_chunk(tmp_path, "p-chains", "1", "vidcodec/weights", MODEL="dcvc-small-detail")
    assert no_config.returncode == 2
    assert "configs/train/dcvc-small-detail-p-chains.yaml" in no_config.stderr and "CONFIG" in no_config.stderr
    no_reference = run_chunk(tmp_path, "p-chains", "1", "vidcodec/weights", MODEL="dcvc-small-detail",
                             CONFIG="configs/train/dcvc-small-detail-chains.yaml", REFERENCE_CODEC="x265-intra")
    assert no_reference.returncode == 2 and "vidcodec/weights/x265-intra-q1.pt" in no_reference.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_failed_run_fails_the_chunk(tmp_path):
    result = run_chunk(tmp_path, "p-chains", "0.01", str(tmp_path / "no-such-dir"), MODEL="dcvc-small-detail",
                       CONFIG="configs/train/dcvc-small-detail-chains.yaml")
    assert result.returncode != 0
    assert not list((tmp_path / "out").glob("*.pt"))
