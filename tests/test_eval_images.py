"""vidcodec eval-images: Table 1 layout over an image dataset, verified decodes, resumable jobs."""

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from vidcodec.cli import main
from vidcodec.errors import ConfigError
from vidcodec.eval.images import ImageEvalRequest, load_image_dataset, run_image_eval
from vidcodec.models.registry import build_model, save_checkpoint
from vidcodec.train.synthetic import load_photo


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for name, photo in (("cup", "coffee"), ("cat", "chelsea")):
        pixels = np.round(load_photo(photo)[:96, :128] * 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"{name}.png")
    dataset = root / "tiny.yaml"
    dataset.write_text(yaml.safe_dump({"name": "tiny", "kind": "images", "root": ".",
                                       "images": {"cup": "cup.png", "cat": "cat.png"}}))
    weights = root / "weights"
    weights.mkdir()
    for quality in (1, 2):
        torch.manual_seed(quality)
        save_checkpoint(weights / f"mbt2018-mean-q{quality}.pt", build_model("mbt2018-mean", N=16, M=16),
                        "mbt2018-mean", {})
    return dataset, weights


def test_a_run_writes_rows_tables_and_plots_and_a_rerun_recodes_nothing(images, tmp_path, capsys):
    dataset, weights = images
    out = tmp_path / "run"
    argv = ["eval-images", "--dataset", str(dataset), "--model", "mbt2018-mean", "--weights", str(weights),
            "--qualities", "1-2", "--configs", "baseline,oct,shift", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert "### BD-rate vs baseline" in capsys.readouterr().out
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3 * 2
    assert (out / "frame-bits" / "bdrate.md").is_file() and (out / "plots" / "rd_psnr_rgb_average.png").is_file()
    coded = out / "cup" / "oct" / "q2" / "picture.bin"
    stamp = coded.stat().st_mtime_ns
    assert main(argv) == 0
    assert coded.stat().st_mtime_ns == stamp  # finished jobs are kept
    assert (out / "results.csv").read_text().splitlines() == rows


def test_missing_weights_give_one_error_line_not_a_traceback(images, tmp_path, capsys):
    """Issue 35: --weights naming no checkpoints ended in a NameError traceback (ConfigError unimported)."""
    dataset, _ = images
    out = tmp_path / "run"
    argv = ["eval-images", "--dataset", str(dataset), "--model", "mbt2018-mean", "--weights", str(tmp_path / "nowhere"),
            "--qualities", "1", "--out", str(out), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --weights ") and "mbt2018-mean-q1.pt" in err and "Traceback" not in err, err
    assert not out.exists()


def test_a_changed_picture_is_coded_again(images, tmp_path):
    dataset, weights = images
    request = ImageEvalRequest(dataset=dataset, configs=["baseline"], qualities=[1], out_dir=tmp_path / "run",
                               model="mbt2018-mean", checkpoints={1: weights / "mbt2018-mean-q1.pt"}, progress=False)
    first = run_image_eval(request)
    copy = tmp_path / "copy.yaml"
    other = tmp_path / "cup.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(other)
    copy.write_text(yaml.safe_dump({"kind": "images", "root": str(tmp_path), "images": {"cup": "cup.png"}}))
    second = run_image_eval(ImageEvalRequest(**{**request.__dict__, "dataset": copy}))
    assert second[0]["bytes"] != [r for r in first if r["sequence"] == "cup"][0]["bytes"]


def test_bad_datasets_and_configurations_are_refused(images, tmp_path):
    dataset, _ = images
    video = tmp_path / "video.yaml"
    video.write_text(yaml.safe_dump({"name": "v", "root": ".", "sequences": {}}))
    with pytest.raises(ConfigError, match="kind: images"):
        load_image_dataset(video)
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump({"kind": "images", "root": ".", "images": {"a": "nowhere.png"}}))
    with pytest.raises(ConfigError, match="not found: .*nowhere.png"):
        load_image_dataset(missing)
    empty = tmp_path / "empty.yaml"
    empty.write_text(yaml.safe_dump({"kind": "images", "root": ".", "glob": "*.png"}))
    with pytest.raises(ConfigError, match="no file .* matches"):
        load_image_dataset(empty)
    with pytest.raises(ConfigError, match="video anchors"):
        run_image_eval(ImageEvalRequest(dataset=dataset, configs=["x264"], qualities=[1], out_dir=tmp_path / "r"))


def test_zoo_weights_through_pretrained(images, tmp_path, monkeypatch):
    from compressai.models import MeanScaleHyperprior
    from compressai.zoo.image import model_urls

    dataset, _ = images
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    file_name = model_urls["mbt2018-mean"]["mse"][1].rsplit("/", 1)[-1]
    torch.save(MeanScaleHyperprior(N=128, M=192).state_dict(), tmp_path / "torch" / "hub" / "checkpoints" / file_name)
    rows = run_image_eval(ImageEvalRequest(dataset=dataset, configs=["baseline"], qualities=[1],
                                           out_dir=tmp_path / "run", model="mbt2018-mean", pretrained=True,
                                           progress=False))
    assert len(rows) == 2 and all(row["bytes"] > 0 for row in rows)
