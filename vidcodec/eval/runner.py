"""Batch evaluation: every (sequence, configuration, rate point) of a dataset, on Ray.

    vidcodec eval --dataset sequences/uvg.yaml --root /data/UVG --configs baseline,hex,oct,shift,join \\
        --qualities 1-4 --frames 96 --intra-period 32 --out results/uvg

Layout of RUN (the --out directory):
    run.json                     the run's parameters; a rerun with other parameters is refused
    inputs/SEQ.yuv               proxies (--crop, --downscale), written once and shared by all jobs
    SEQ/CONFIG/qQ/               one finished job (vidcodec/eval/jobs.py)
    jobs.json                    status of every job after the last run (done, skipped, failed + error)
    results.json, results.csv    one row per finished job (vidcodec/eval/results.py)
    bdrate.md, *.csv, plots/     written when the anchor configuration is in the run (report.py, plots.py)

Jobs are idempotent: a rerun skips finished jobs and redoes unfinished ones, so a killed run is
resumed by running the same command again. Jobs run on Ray: ``ray.init()`` starts a local cluster
in-process by default; ``ray_address`` connects to an existing cluster (its nodes must see the run
directory and the sequences under the same paths, and have vidcodec installed). Each job asks Ray
for as many CPUs as it uses torch threads, so a 2-core machine runs one job at a time. A failing
job is reported and the others go on; the run then exits non-zero. ``serial`` runs the jobs in this
process without Ray (debugging, profiling).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from vidcodec.config import resolve_intra_model
from vidcodec.errors import ConfigError, OutputError
from vidcodec.eval.jobs import Job, file_hash, intra_weights_file, load_setting, run_job, weights_file
from vidcodec.eval.proxy import ProxySpec, write_proxy
from vidcodec.eval.ray_watchdog import local_cluster_pids, start_watchdog, stop_watchdog
from vidcodec.eval.results import atomic_write_text
from vidcodec.io.yuv import SequenceGeometry, YuvReader, load_dataset

RUN_FILE = "run.json"


def parse_qualities(text: str) -> list[int]:
    """"1-4" -> [1, 2, 3, 4]; "1,3" -> [1, 3]."""
    qualities: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ConfigError(f"qualities '{text}' (expected e.g. 1-4 or 1,3)")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if not 1 <= low <= high <= 99:
            raise ConfigError(f"qualities '{text}' (expected a range within 1..99)")
        qualities.extend(range(low, high + 1))
    return sorted(set(qualities))


@dataclass
class EvalRequest:
    dataset: Path
    configs: list[str]
    qualities: list[int]
    out_dir: Path
    root: Path | None = None  # directory of the sequence files (default: the dataset's root)
    sequences: list[str] | None = None  # subset of the dataset (default: all)
    frames: int | None = None
    intra_period: int = 8
    crop: tuple[int, int] | None = None
    downscale: int = 1
    num_threads: int = 2
    model: str | None = None
    weights_dir: Path | None = None
    # I-frames by this model's shipped weights (same rate point); None: as config.resolve_intra_model
    # decides (the registry's image codec for shipped weights), filled in by run_eval
    intra_model: str | None = None
    # {intra_model}-q{Q}.pt files for the I-frames instead of that model's shipped weights
    intra_weights_dir: Path | None = None
    ray_address: str | None = None
    serial: bool = False
    force: bool = False
    progress: bool = True

    def parameters(self) -> dict:
        """What identifies the run's results (run.json); execution options are left out."""
        return json.loads(json.dumps({
            "dataset": str(self.dataset.resolve()), "root": str(self.root.resolve()) if self.root else None,
            "frames": self.frames, "intra_period": self.intra_period, "crop": self.crop,
            "downscale": self.downscale, "num_threads": self.num_threads, "model": self.model,
            "weights_dir": str(self.weights_dir.resolve()) if self.weights_dir else None,
            "intra_model": self.intra_model,
            "intra_weights_dir": str(self.intra_weights_dir.resolve()) if self.intra_weights_dir else None,
        }))


@dataclass
class EvalOutcome:
    statuses: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> list[dict]:
        return [s for s in self.statuses if s["status"] == "failed"]


def _dataset_root(request: EvalRequest, dataset: dict) -> Path:
    if request.root is not None:
        return request.root
    root = Path(dataset.get("root", "."))
    # A relative root in a dataset file is relative to the file's own directory.
    return root if root.is_absolute() else request.dataset.resolve().parent / root


def _check_run_dir(request: EvalRequest) -> None:
    run_file = request.out_dir / RUN_FILE
    parameters = request.parameters()
    if run_file.is_file() and not request.force:
        previous = json.loads(run_file.read_text())
        if previous != parameters:
            changed = sorted(k for k in parameters if previous.get(k) != parameters[k])
            raise OutputError(f"{request.out_dir} holds a run with other parameters ({', '.join(changed)}); "
                              "use another --out, or --force to start it over")
    elif request.out_dir.exists() and any(request.out_dir.iterdir()) and not run_file.is_file() and not request.force:
        raise OutputError(f"{request.out_dir} exists, is not empty and is not an eval run; use another --out")
    if request.force and request.out_dir.exists():
        shutil.rmtree(request.out_dir)
    request.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_file, json.dumps(parameters, indent=2) + "\n")


def prepare_inputs(request: EvalRequest) -> dict[str, tuple[Path, SequenceGeometry, int]]:
    """Sequence name -> (file to code, geometry, frames); proxies written under RUN/inputs/."""
    dataset = load_dataset(request.dataset)
    entries = dataset["sequences"]
    names = request.sequences or list(entries)
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise ConfigError(f"sequences {', '.join(unknown)} are not in {request.dataset} "
                          f"(it lists {', '.join(entries)})")
    root = _dataset_root(request, dataset)
    missing = [str(root / entries[n]["file"]) for n in names if not (root / entries[n]["file"]).is_file()]
    if missing:
        raise ConfigError(f"{len(missing)} sequence file(s) not found: {', '.join(missing)}; pass --root DIR "
                          "with the directory that holds them "
                          "(generated stand-ins: python scripts/data/make_sequences.py --standin)")
    spec = ProxySpec(frames=request.frames, crop=request.crop, downscale=request.downscale)
    inputs = {}
    for name in names:
        entry = entries[name]
        geometry = SequenceGeometry(int(entry["width"]), int(entry["height"]), int(entry.get("bit_depth", 8)),
                                    float(entry.get("fps", 30.0)))
        path = root / entry["file"]
        with YuvReader(path, geometry) as reader:
            frames = reader.num_frames if request.frames is None else request.frames
            if not 1 <= frames <= reader.num_frames:
                raise ConfigError(f"--frames {request.frames}: {path} has {reader.num_frames} frames")
            if not spec.is_identity:
                out_geometry = spec.output_geometry(geometry)
                proxy = request.out_dir / "inputs" / f"{name}_{out_geometry.width}x{out_geometry.height}.yuv"
                if not proxy.is_file() or proxy.stat().st_size != frames * out_geometry.frame_num_bytes:
                    write_proxy(reader, spec, proxy)
                path, geometry = proxy, out_geometry
        inputs[name] = (path.resolve(), geometry, frames)
    return inputs


def plan_jobs(request: EvalRequest, inputs: dict) -> list[Job]:
    settings = [load_setting(name) for name in request.configs]
    weights_dir = str(request.weights_dir.resolve()) if request.weights_dir else None
    intra_weights_dir = str(request.intra_weights_dir.resolve()) if request.intra_weights_dir else None
    hashes: dict[Path, str] = {}

    def weights_sha256(setting, quality: int) -> str | None:
        path = weights_file(setting, quality, request.model, weights_dir)
        if path is None or not path.is_file():  # a missing file fails in its job, with its name
            return None
        if path not in hashes:
            hashes[path] = file_hash(path)
        return hashes[path]

    def intra_sha256(setting, quality: int) -> str | None:
        from vidcodec.models.registry import MODELS, load_model, shipped_weights_file

        if setting.anchor or not request.intra_model:
            return None
        spec = MODELS.get(request.intra_model)
        if spec is not None and spec.weightless:  # x265-intra, ...: its settings (QP) stand for weights
            return load_model(request.intra_model, quality=quality).checkpoint_hash.hex()
        path = (intra_weights_file(intra_weights_dir, request.intra_model, quality) if intra_weights_dir
                else shipped_weights_file(request.intra_model, quality))
        return file_hash(path) if path is not None and path.is_file() else None

    jobs = []
    for name, (path, geometry, frames) in inputs.items():
        for setting in settings:
            for quality in request.qualities:
                jobs.append(Job(
                    sequence=name, setting=setting, quality=quality, input_path=str(path),
                    width=geometry.width, height=geometry.height, bit_depth=geometry.bit_depth, fps=geometry.fps,
                    num_frames=frames, intra_period=request.intra_period,
                    out_dir=str((request.out_dir / name / setting.name / f"q{quality}").resolve()),
                    num_threads=request.num_threads, model=request.model, weights_dir=weights_dir,
                    weights_sha256=weights_sha256(setting, quality),
                    intra_model=request.intra_model if not setting.anchor else None,
                    intra_weights_dir=intra_weights_dir if not setting.anchor else None,
                    intra_weights_sha256=intra_sha256(setting, quality),
                ))
    return jobs


def _failure(job: Job, error: BaseException) -> dict:
    cause = getattr(error, "cause", None) or error  # Ray wraps the worker's exception
    return {"key": job.key, "status": "failed", "error": f"{type(cause).__name__}: {cause}".strip()}


def _run_serial(jobs: list[Job], report) -> None:
    for job in jobs:
        try:
            report(job, run_job(job))
        except Exception as error:  # one failing job must not stop the others (as on Ray)
            report(job, _failure(job, error))


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a wrong --ray-address: ray.init() retries an unreachable one for minutes."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:(\d+)", address.strip())
    if match is None:
        if address.strip() == "auto":
            return  # Ray resolves it from this machine's running cluster
        raise ConfigError(f"--ray-address '{address}' (expected HOST:PORT, ray://HOST:PORT or auto)")
    try:
        socket.create_connection((match.group(1), int(match.group(2))), timeout=timeout_s).close()
    except OSError as error:
        raise ConfigError(f"cannot connect to the Ray cluster at {address}: {error}; start it with "
                          "`ray start --head` or check the address (`ray status` on the head node)") from None


def _run_on_ray(jobs: list[Job], request: EvalRequest, report) -> None:
    import ray

    if request.ray_address:
        check_reachable(request.ray_address)

    started_here = not ray.is_initialized()
    watchdog = None
    if started_here:
        try:
            # "local" starts a private cluster even when another one runs on this machine (plain
            # ray.init() would join that one, or hang on a stale address it left behind).
            ray.init(address=request.ray_address or "local", include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, ray.exceptions.RayError) as error:
            raise ConfigError(
                f"cannot connect to the Ray cluster at {request.ray_address}: {str(error).splitlines()[-1]}; check "
                "the address (ray status on the head node prints it); a cluster started with `ray start` uses "
                "token authentication: set RAY_AUTH_MODE=token here (the token is read from ~/.ray/auth_token "
                "or RAY_AUTH_TOKEN)"
            ) from None
        if not request.ray_address:  # a cluster of our own: it must not outlive us (ray_watchdog.py)
            watchdog = start_watchdog(local_cluster_pids())
    try:
        remote = ray.remote(num_cpus=request.num_threads, max_retries=0)(run_job)
        pending = {remote.remote(job): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                report(job, ray.get(ready[0]))
            except ray.exceptions.RayError as error:
                report(job, _failure(job, error))
    finally:
        if started_here:
            ray.shutdown()
            stop_watchdog(watchdog)


def with_resolved_intra(request: EvalRequest) -> EvalRequest:
    """``request`` naming the I-frame model its jobs will use (config.resolve_intra_model decides), so
    that the run's and each job's identity record it."""
    intra_model = resolve_intra_model(request.model, weights_dir=request.weights_dir, intra_model=request.intra_model,
                                      intra_weights_dir=request.intra_weights_dir)
    return dataclasses.replace(request, intra_model=intra_model)


def check_intra_weights(request: EvalRequest) -> None:
    """--intra-weights needs a learned I-frame model whose file is there for every rate point."""
    from vidcodec.models.registry import MODELS

    if request.intra_weights_dir is None:
        return
    spec = MODELS.get(request.intra_model) if request.intra_model else None
    if spec is None or spec.weightless:
        raise ConfigError(f"--intra-weights {request.intra_weights_dir} needs --intra-model naming a learned "
                          f"image codec whose files it holds (got {request.intra_model!r})")
    paths = [intra_weights_file(str(request.intra_weights_dir), request.intra_model, q) for q in request.qualities]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise ConfigError(f"--intra-weights: no {', '.join(missing)} (one {request.intra_model}-qQ.pt per rate "
                          "point of --qualities)")


def run_eval(request: EvalRequest) -> EvalOutcome:
    """Run (or resume) every job of ``request``; writes jobs.json and results (see module docstring)."""
    from tqdm import tqdm

    if not request.configs or not request.qualities:
        raise ConfigError("nothing to run: give at least one configuration and one rate point")
    for name in request.configs:
        load_setting(name)  # unknown names fail before anything is written
    if request.intra_period == 0 or request.intra_period < -1:
        raise ConfigError(f"intra_period={request.intra_period} (expected -1 or >= 1)")
    request = with_resolved_intra(request)
    check_intra_weights(request)
    load_dataset(request.dataset)  # a broken dataset file fails before anything is written
    _check_run_dir(request)
    inputs = prepare_inputs(request)
    jobs = plan_jobs(request, inputs)
    outcome = EvalOutcome()
    bar = tqdm(total=len(jobs), desc=f"eval {request.out_dir.name}", unit="job", disable=not request.progress)

    def report(job: Job, status: dict) -> None:
        outcome.statuses.append(status)
        bar.update(1)
        if status["status"] == "failed":
            tqdm.write(f"job {job.key} failed: {status['error']}", file=sys.stderr)
        bar.set_postfix(failed=len(outcome.failed))

    try:
        if request.serial:
            _run_serial(jobs, report)
        else:
            _run_on_ray(jobs, request, report)
    finally:
        bar.close()
        statuses = sorted(outcome.statuses, key=lambda s: s["key"])
        atomic_write_text(request.out_dir / "jobs.json", json.dumps({"jobs": statuses}, indent=2) + "\n")
    return outcome
