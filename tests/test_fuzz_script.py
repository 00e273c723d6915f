"""scripts/tools/fuzz_decoder.py runs a campaign, counts every mutation kind and replays an input."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "tools" / "fuzz_decoder.py"


@pytest.mark.slow
def test_a_short_campaign_passes_and_covers_every_mutation(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("fuzz_decoder", SCRIPT)
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    assert fuzz.main(["--inputs", "400", "--seed", "3", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["inputs"] == 400 and summary["failures"] == []
    assert sum(summary["outcomes"].values()) == 400
    kinds = {key.split("/")[0] for key in summary["outcomes"]}
    assert kinds == set(fuzz.FRAME_MUTATIONS) | set(fuzz.HEADER_MUTATIONS)
    # Mutations with a recomputed CRC reach the decoder, and some of them decode to a picture.
    assert summary["outcomes"].get("payload/frame", 0) + summary["outcomes"].get("swap/frame", 0) > 0
    capsys.readouterr()
    assert fuzz.main(["--seed", "3", "--out", str(tmp_path), "--replay", "7"]) == 0
    kind, outcome = capsys.readouterr().out.split()
    assert kind in fuzz.FRAME_MUTATIONS + fuzz.HEADER_MUTATIONS and outcome in ("frame", "error")
