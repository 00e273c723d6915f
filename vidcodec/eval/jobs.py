"""One evaluation job: (sequence, configuration, rate point) -> RUN/SEQ/CONFIG/qQ/.

A finished job directory holds the stream (sequence.hdr + frames/, or the anchor's coded file),
rd.jsonl, summary.json and job.json (the job's parameters and the outcome of its decode check).
The directory appears under its final name only once all of that is written and the decode from
the files alone matched the encoder's reconstruction, so "qQ/ exists" means "finished": a killed
run leaves only hidden ``.qQ.job-PID`` directories, which the next run removes and redoes.

Configurations are YAML files in configs/eval/ (see baseline.yaml): ``label`` (column name in
tables), and either ``codec`` (overrides of configs/default.yaml for the learned codec) or
``anchor`` (x264 | x265 | svtav1, vidcodec/eval/anchors.py) with an optional ``crf`` list (one CRF
per rate point, q1 first; default anchors.CRF_LADDER).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from vidcodec.config import CONFIG_DIR, load_config, read_yaml_mapping
from vidcodec.errors import ConfigError, VidcodecError

EVAL_CONFIG_DIR = CONFIG_DIR / "eval"
JOB_FILE = "job.json"


@dataclass(frozen=True)
class EvalSetting:
    """A named configuration of the evaluation (configs/eval/NAME.yaml)."""

    name: str
    label: str
    codec: tuple[tuple[str, object], ...] = ()  # CodecConfig overrides, as sorted (key, value) pairs
    anchor: str | None = None  # traditional codec instead of the learned one
    crf: tuple[int, ...] = ()  # anchor's CRF per rate point (q1 first); () = anchors.CRF_LADDER

    def to_dict(self) -> dict:
        values = {"name": self.name, "label": self.label, "codec": dict(self.codec), "anchor": self.anchor}
        return {**values, "crf": list(self.crf)} if self.crf else values


def available_settings(directory: Path = EVAL_CONFIG_DIR) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.yaml"))


def load_setting(name: str, directory: Path = EVAL_CONFIG_DIR) -> EvalSetting:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"eval configuration '{name}' not found: no {path} "
                          f"(available: {', '.join(available_settings(directory))})")
    values = read_yaml_mapping(path)
    unknown = sorted(set(values) - {"label", "codec", "anchor", "crf"})
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(unknown)} (expected label, codec, or anchor and crf)")
    codec = values.get("codec") or {}
    anchor = values.get("anchor")
    crf = values.get("crf") or []
    if not isinstance(codec, dict) or (codec and anchor):
        raise ConfigError(f"{path}: 'codec' must be a mapping, and a configuration has codec or anchor, not both")
    if not isinstance(crf, list) or not all(isinstance(v, int) for v in crf) or (crf and not anchor):
        raise ConfigError(f"{path}: 'crf' must be a list of integers (one per rate point), with an anchor")
    if not anchor:
        load_config(overrides={**codec, "quality": 1})  # validate the overrides now, not in a worker
    return EvalSetting(name, str(values.get("label", name)), tuple(sorted(codec.items())), anchor, tuple(crf))


@dataclass(frozen=True)
class Job:
    """Everything a worker needs; plain values only (it travels to Ray workers by pickle)."""

    sequence: str
    setting: EvalSetting
    quality: int
    input_path: str  # raw YUV (the original, or the run's proxy of it)
    width: int
    height: int
    bit_depth: int
    fps: float
    num_frames: int
    intra_period: int
    out_dir: str  # RUN/SEQ/CONFIG/qQ
    num_threads: int = 2
    model: str | None = None  # model id override (default: configs/default.yaml)
    weights_dir: str | None = None  # {model}-q{Q}.pt files instead of the shipped weights
    # sha256 of the checkpoint file coded with (learned codecs): weights retrained at the same path
    # make the finished job stale instead of being reused silently.
    weights_sha256: str | None = None
    # The I-frames' model when not ``model``'s own (shipped weights of the same rate point), and the
    # sha256 of that checkpoint file.
    intra_model: str | None = None
    intra_weights_dir: str | None = None  # {intra_model}-q{Q}.pt files instead of its shipped weights
    intra_weights_sha256: str | None = None

    @property
    def key(self) -> str:
        return f"{self.sequence}/{self.setting.name}/q{self.quality}"

    def parameters(self) -> dict:
        """What must match for a finished directory to count as this job's result: not where it is,
        nor the label its configuration shows in tables."""
        from vidcodec.bitstream.syntax import SYNTAX_VERSION

        values = dataclasses.asdict(self)
        values["setting"] = {k: v for k, v in self.setting.to_dict().items() if k != "label"}
        values.pop("out_dir")
        # Everything the coding sees, defaults included (configs/default.yaml may change), and the
        # syntax the files were written in.
        values["codec_config"] = None if self.setting.anchor else job_config(self).to_dict()
        values["syntax_version"] = SYNTAX_VERSION
        return values


def weights_file(setting: EvalSetting, quality: int, model: str | None, weights_dir: str | None) -> Path | None:
    """The checkpoint file a learned configuration codes rate point ``quality`` with (None: an
    anchor, or weights that are not a file of the project, e.g. the CompressAI zoo)."""
    from vidcodec.models.registry import shipped_weights_file

    if setting.anchor:
        return None
    codec = dict(setting.codec)
    if codec.get("checkpoint"):
        return Path(codec["checkpoint"])
    model_id = model or codec.get("model") or load_config().model
    if weights_dir:
        return Path(weights_dir) / f"{model_id}-q{quality}.pt"
    path = shipped_weights_file(model_id, quality)
    return path if path is not None and not codec.get("pretrained") else None


def intra_weights_file(intra_weights_dir: str, intra_model: str, quality: int) -> Path:
    """The I-frame checkpoint of rate point ``quality`` in an --intra-weights directory."""
    return Path(intra_weights_dir) / f"{intra_model}-q{quality}.pt"


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_finished(job: Job) -> bool:
    record = Path(job.out_dir) / JOB_FILE
    if not record.is_file():
        return False
    try:
        return json.loads(record.read_text()).get("parameters") == json.loads(json.dumps(job.parameters()))
    except (OSError, ValueError):
        return False


def _remove_stale_partials(out_dir: Path) -> None:
    """Hidden leftovers of killed attempts at this job (any process id)."""
    for stale in out_dir.parent.glob(f".{out_dir.name}.*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


def job_config(job: Job):
    """The CodecConfig a learned job codes with. Its I-frame model was decided by the runner
    (config.resolve_intra_model); here it becomes the config's intra fields, with the file of an
    --intra-weights folder or the job's rate point for shipped weights."""
    overrides = {**dict(job.setting.codec), "intra_period": job.intra_period, "num_threads": job.num_threads,
                 "model": job.model, "quality": job.quality}
    if job.weights_dir:
        overrides["checkpoint"] = str(weights_file(job.setting, job.quality, job.model, job.weights_dir))
        overrides["quality"] = None
    if job.intra_model and job.intra_weights_dir:
        overrides.update(intra_model=job.intra_model, intra_quality=None, intra_checkpoint=str(
            intra_weights_file(job.intra_weights_dir, job.intra_model, job.quality)))
    elif job.intra_model:
        overrides.update(intra_model=job.intra_model, intra_quality=job.quality)
    return load_config(overrides=overrides)


def _encode_learned(job: Job, reader, work: Path) -> dict:
    from vidcodec.pipeline import decode_sequence, encode_sequence

    config = job_config(job)
    recon = work.with_name(work.name + ".recon.yuv")
    decoded = work.with_name(work.name + ".decoded.yuv")
    try:
        encode_sequence(reader, work, config, num_frames=job.num_frames, recon_path=recon, force=True,
                        progress=False, run_info={"job": job.key})
        # The check that matters: a fresh decoder, reading only the files, gives the same pictures.
        decode_sequence(work, decoded, checkpoint=config.checkpoint, progress=False,
                        intra_checkpoint=config.intra_checkpoint, force=True)
        recon_md5, decoded_md5 = file_hash(recon, "md5"), file_hash(decoded, "md5")
        if recon_md5 != decoded_md5:
            raise VidcodecError(f"{job.key}: decoding the files gives other pictures than the encoder's "
                                f"reconstruction (md5 {decoded_md5} != {recon_md5})")
        return {"decoded_md5": decoded_md5, "decoder": "decode_sequence"}
    finally:
        recon.unlink(missing_ok=True)
        decoded.unlink(missing_ok=True)


def _encode_anchor(job: Job, reader, work: Path) -> dict:
    from vidcodec.eval.anchors import encode_anchor

    crf = None
    if job.setting.crf:
        if job.quality > len(job.setting.crf):
            raise ConfigError(f"{job.key}: configuration '{job.setting.name}' lists {len(job.setting.crf)} CRFs, "
                              f"none for rate point {job.quality}")
        crf = job.setting.crf[job.quality - 1]
    encode_anchor(job.setting.anchor, reader, work, None if crf else job.quality, job.num_frames, job.intra_period,
                  crf=crf)
    return {"decoder": "pyav"}


def run_job(job: Job) -> dict:
    """Run one job (skipping it when already finished); returns a short status for progress reports."""
    from vidcodec.io.yuv import SequenceGeometry, YuvReader

    out_dir = Path(job.out_dir)
    if is_finished(job):
        return {"key": job.key, "status": "skipped"}
    _remove_stale_partials(out_dir)
    work = out_dir.with_name(f".{out_dir.name}.job-{os.getpid()}")
    start = time.perf_counter()
    geometry = SequenceGeometry(job.width, job.height, job.bit_depth, job.fps)
    try:
        with YuvReader(job.input_path, geometry) as reader:
            check = _encode_anchor(job, reader, work) if job.setting.anchor else _encode_learned(job, reader, work)
        seconds = time.perf_counter() - start
        record = {"parameters": job.parameters(), "verification": check, "seconds": seconds}
        (work / JOB_FILE).write_text(json.dumps(record, indent=2) + "\n")
        if out_dir.exists():  # an unfinished or outdated result under the final name
            shutil.rmtree(out_dir)
        work.rename(out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    summary = json.loads((out_dir / "summary.json").read_text())["average"]["all"]
    return {"key": job.key, "status": "done", "seconds": seconds, "bpp": summary["bpp"],
            "psnr_rgb": summary["psnr_rgb"]}
