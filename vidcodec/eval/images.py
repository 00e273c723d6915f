"""Image evaluation: seed 000's Table 1 layout (Hex, Oct, Latent Shift, Join per image codec; BD-rate
against SQ on PSNR-RGB) over an image dataset file, with real files and verified decodes.

    vidcodec eval-images --dataset sequences/heldout-photos.yaml --model ssf-small --qualities 1-4 --out RUN

An image dataset file (sequences/*.yaml) has ``kind: images``, a ``root`` (relative to the file) and
either ``images: {name: file}`` or ``glob: PATTERN`` (every matching file, named by its stem; for sets
such as CLIC whose file names the project does not list). Each job codes one picture with one
configuration (configs/eval/*.yaml; the tools act on the image latent, scope "intra") and rate point
through ``encode_image``, decodes the file with a fresh decoder, and keeps the row only when the
decoded picture is the encoder's reconstruction pixel for pixel. A job is redone when what determines
its result changes: the picture's bytes, the configuration's codec settings, the model and its weights,
the syntax version.

RUN/NAME/CONFIG/qQ/ holds the coded file and job.json; RUN/results.csv the rows; RUN/bdrate.md the
tables (eval/report.py) on the bits of the whole file, RUN/frame-bits/bdrate.md on the bits of the
coded picture without the file's header (what the paper's Table 1 counts: the latents), RUN/plots the
RD curves.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vidcodec.config import DEFAULT_IMAGE_MODEL, load_config, read_yaml_mapping
from vidcodec.errors import ConfigError
from vidcodec.eval.jobs import EvalSetting, load_setting
from vidcodec.eval.results import atomic_write_text

IMAGE_COLUMNS = ("sequence", "config", "quality", "bytes", "bpp", "frame_bytes", "bpp_frame", "psnr_rgb", "enc_s")


@dataclass
class ImageEvalRequest:
    dataset: Path
    configs: list[str]
    qualities: list[int]
    out_dir: Path
    model: str = DEFAULT_IMAGE_MODEL
    checkpoints: dict[int, Path] | None = None  # rate point -> checkpoint (default: the shipped weights)
    pretrained: bool = False  # CompressAI zoo weights of each rate point instead
    num_threads: int = 2
    force: bool = False
    progress: bool = True


def load_image_dataset(path: Path) -> dict[str, Path]:
    """name -> picture file of an image dataset file, refusing missing files by name."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"image dataset file {path} not found")
    values = read_yaml_mapping(path)
    if values.get("kind") != "images":
        raise ConfigError(f"{path} is not an image dataset (expected 'kind: images'); "
                          "for video sequences use vidcodec eval")
    root = (path.parent / str(values.get("root", "."))).resolve()
    if "glob" in values:
        files = sorted(root.glob(str(values["glob"])))
        if not files:
            raise ConfigError(f"{path}: no file in {root} matches {values['glob']!r}; put the pictures there")
        return {file.stem: file for file in files}
    images = values.get("images")
    if not isinstance(images, dict) or not images:
        raise ConfigError(f"{path}: expected 'images: {{name: file}}' or 'glob: PATTERN'")
    found = {str(name): root / str(file) for name, file in images.items()}
    missing = [str(file) for file in found.values() if not file.is_file()]
    if missing:
        raise ConfigError(f"{len(missing)} picture(s) of {path} not found: {', '.join(missing[:4])}"
                          f"{' ...' if len(missing) > 4 else ''}; put them in {root}")
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _job_parameters(picture_sha256: str, setting: EvalSetting, request: ImageEvalRequest, quality: int,
                    checkpoint_sha256: str | None) -> dict:
    from vidcodec.bitstream.syntax import SYNTAX_VERSION

    return {"picture_sha256": picture_sha256, "codec": dict(setting.codec), "model": request.model,
            "syntax_version": SYNTAX_VERSION,
            "quality": quality, "checkpoint_sha256": checkpoint_sha256, "pretrained": request.pretrained,
            "num_threads": request.num_threads}


def run_image_eval(request: ImageEvalRequest) -> list[dict]:
    """Code every picture x configuration x rate point (finished jobs are kept), write results.csv,
    the BD tables and the plots; returns the rows."""
    from vidcodec.image_coding import decode_image, encode_image, read_image, split_image_file

    pictures = load_image_dataset(request.dataset)
    settings = [load_setting(name) for name in request.configs]
    anchors = [s.name for s in settings if s.anchor]
    if anchors:
        raise ConfigError(f"configurations {', '.join(anchors)} are video anchors; image evaluation runs "
                          "learned configurations (baseline, hex, oct, shift, join, ...)")
    checkpoints = request.checkpoints or {}
    checkpoint_hashes = {q: _sha256(p) for q, p in checkpoints.items()}
    picture_hashes = {name: _sha256(file) for name, file in pictures.items()}  # once, not once per job
    jobs = [(name, file, setting, quality) for name, file in pictures.items() for setting in settings
            for quality in request.qualities]
    rows = []
    for index, (name, file, setting, quality) in enumerate(jobs, start=1):
        job_dir = Path(request.out_dir) / name / setting.name / f"q{quality}"
        parameters = _job_parameters(picture_hashes[name], setting, request, quality, checkpoint_hashes.get(quality))
        job_file = job_dir / "job.json"
        if job_file.is_file() and not request.force:
            done = json.loads(job_file.read_text())
            if done.get("parameters") == parameters:
                rows.append(done["row"])
                continue
        job_dir.mkdir(parents=True, exist_ok=True)
        overrides = {**dict(setting.codec), "model": request.model, "num_threads": request.num_threads,
                     "pretrained": request.pretrained}
        if quality in checkpoints:
            overrides.update(checkpoint=str(checkpoints[quality]), quality=None)
        else:
            overrides["quality"] = quality
        config = load_config(overrides=overrides)
        coded, recon, decoded = job_dir / "picture.bin", job_dir / "recon.png", job_dir / "decoded.png"
        result = encode_image(file, coded, replace(config, verify=True), recon_path=recon, force=True)
        decode_image(coded, decoded, config.checkpoint, force=True)
        if not np.array_equal(_pixels(read_image(recon)), _pixels(read_image(decoded))):
            raise RuntimeError(f"{name} {setting.name} q{quality}: the decoded file differs from the encoder's picture")
        frame_bytes = len(split_image_file(coded.read_bytes(), str(coded))[1])
        row = {"sequence": name, "config": setting.name, "quality": quality, "bytes": result.bytes,
               "bpp": result.bpp, "frame_bytes": frame_bytes, "bpp_frame": result.bpp * frame_bytes / result.bytes,
               "psnr_rgb": result.psnr_rgb, "enc_s": result.enc_s}
        atomic_write_text(job_file, json.dumps({"parameters": parameters, "row": row}, indent=1) + "\n")
        for scratch in (recon, decoded):
            scratch.unlink()
        rows.append(row)
        if request.progress:
            print(f"[{index}/{len(jobs)}] {name} {setting.name} q{quality}: {result.bpp:.4f} bpp, "
                  f"{result.psnr_rgb:.2f} dB", flush=True)
    _write_outputs(rows, Path(request.out_dir), settings)
    return rows


def _pixels(x) -> np.ndarray:
    return np.round(x.numpy() * 255).astype(np.uint8)


def _write_outputs(rows: list[dict], out_dir: Path, settings: list[EvalSetting]) -> None:
    from vidcodec.eval.plots import plot_rd_curves
    from vidcodec.eval.report import write_report

    lines = [",".join(IMAGE_COLUMNS)] + [",".join(str(row[c]) for c in IMAGE_COLUMNS) for row in rows]
    atomic_write_text(out_dir / "results.csv", "\n".join(lines) + "\n")
    names = [s.name for s in settings]
    if "baseline" in names and len(names) > 1 and len({row["quality"] for row in rows}) > 1:
        write_report(rows, out_dir)
        plot_rd_curves(rows, out_dir / "plots")
        # The same without the file's sequence header, a per-file constant of each configuration (the
        # lattice's table parameters and the shift's candidates are in it): what the tools change.
        write_report([{**row, "bpp": row["bpp_frame"]} for row in rows], out_dir / "frame-bits")
