"""Batch evaluation: jobs finish with verified decodes, reruns skip, a killed run resumes with the
same results, Ray (in-process and a real local cluster) gives the same results as serial runs."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vidcodec.cli import main
from vidcodec.errors import ConfigError, OutputError
from vidcodec.eval.jobs import file_hash
from vidcodec.eval.runner import EvalRequest, parse_qualities, run_eval
from vidcodec.io.color import rgb_to_yuv420
from vidcodec.io.yuv import SequenceGeometry, YuvWriter
from vidcodec.models.registry import build_model, save_checkpoint
from vidcodec.train.synthetic import photo_clip

REPO = Path(__file__).resolve().parent.parent
VIDCODEC = Path(sys.executable).parent / "vidcodec"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two 128x96 sequences of 4 frames, a dataset file, and tiny checkpoints for q1 and q2."""
    root = tmp_path_factory.mktemp("eval")
    sequences = {}
    for name, photo, seed in (("Cat", "chelsea", 3), ("Cup", "coffee", 4)):
        clip = photo_clip(photo, 4, 96, 128, seed)
        path = root / "seqs" / f"{name}.yuv"
        path.parent.mkdir(exist_ok=True)
        with YuvWriter(path, SequenceGeometry(128, 96)) as writer:
            for frame in clip:
                x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None]
                writer.write_frame(rgb_to_yuv420(x, 8))
        sequences[name] = {"file": path.name, "width": 128, "height": 96, "fps": 30, "frames": 4, "bit_depth": 8}
    dataset_file = root / "tiny.yaml"
    dataset_file.write_text(yaml.safe_dump({"name": "tiny", "root": "seqs", "sequences": sequences}))
    weights = root / "weights"
    weights.mkdir()
    for quality, (planes, seed) in enumerate(((12, 0), (16, 1)), start=1):
        torch.manual_seed(seed)
        model = build_model("ssf-small", mid_planes=planes, latent_planes=planes)
        save_checkpoint(weights / f"ssf-small-q{quality}.pt", model, "ssf-small", {})
    return dataset_file, weights


def request(dataset, out: Path, **options) -> EvalRequest:
    dataset_file, weights = dataset
    values = dict(dataset=dataset_file, configs=["baseline", "oct"], qualities=[1, 2], out_dir=out,
                  frames=3, intra_period=2, model="ssf-small", weights_dir=weights, serial=True, progress=False)
    values.update(options)
    return EvalRequest(**values)


def fingerprint(run: Path) -> dict:
    """Everything deterministic of a run: frame files and the RD numbers (timings left out)."""
    result = {}
    for job in sorted(run.glob("*/*/q*")):
        key = str(job.relative_to(run))
        result[key] = {
            "frames": [f.read_bytes() for f in sorted((job / "frames").iterdir())],
            "rd": [{k: r[k] for k in ("poc", "frame_type", "bits", "psnr_rgb", "psnr_yuv", "ms_ssim_rgb")}
                   for r in map(json.loads, (job / "rd.jsonl").read_text().splitlines())],
        }
    return result


@pytest.fixture(scope="module")
def serial_run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "run"
    outcome = run_eval(request(dataset, out))
    return out, outcome


def test_every_job_finishes_with_a_verified_decode(serial_run):
    out, outcome = serial_run
    assert sorted(s["key"] for s in outcome.statuses) == [
        f"{seq}/{cfg}/q{q}" for seq in ("Cat", "Cup") for cfg in ("baseline", "oct") for q in (1, 2)
    ]
    assert all(s["status"] == "done" for s in outcome.statuses)
    for job in out.glob("*/*/q*"):
        record = json.loads((job / "job.json").read_text())
        assert len(record["verification"]["decoded_md5"]) == 32
        records = [json.loads(line) for line in (job / "rd.jsonl").read_text().splitlines()]
        assert [r["frame_type"] for r in records] == ["I", "P", "I"]  # intra period 2
        assert {r["quantizer"] for r in records} == {"oct" if "oct" in str(job) else "sq"}
    assert not list(out.rglob(".*"))  # no hidden partial directories left behind
    statuses = json.loads((out / "jobs.json").read_text())["jobs"]
    assert [s["status"] for s in statuses] == ["done"] * 8


def test_a_rerun_skips_finished_jobs_and_redoes_unfinished_ones(dataset, serial_run, tmp_path):
    out, _ = serial_run
    before = fingerprint(out)
    # A killed attempt leaves a hidden partial directory; a removed job must be redone.
    (out / "Cat" / "oct" / ".q2.job-99999").mkdir()
    (out / "Cat" / "oct" / ".q2.job-99999" / "junk").write_text("x")
    import shutil

    shutil.rmtree(out / "Cat" / "oct" / "q2")
    outcome = run_eval(request(dataset, out))
    statuses = {s["key"]: s["status"] for s in outcome.statuses}
    assert statuses.pop("Cat/oct/q2") == "done"
    assert set(statuses.values()) == {"skipped"}
    assert fingerprint(out) == before
    assert not (out / "Cat" / "oct" / ".q2.job-99999").exists()


def same_as_serial(run: Path, serial: Path) -> bool:
    """The jobs of ``run`` (a subset of the serial run's) have the serial run's results."""
    new = fingerprint(run)
    return bool(new) and new == {key: value for key, value in fingerprint(serial).items() if key in new}


@pytest.mark.slow
def test_a_run_killed_midway_resumes_to_identical_results(dataset, serial_run, tmp_path):
    out, _ = serial_run
    resumed = tmp_path / "run"
    dataset_file, weights = dataset
    command = [str(VIDCODEC), "eval", "--dataset", str(dataset_file), "--sequences", "Cup", "--configs", "baseline,oct",
               "--qualities", "1-2", "--frames", "3", "--intra-period", "2", "--weights", str(weights),
               "--out", str(resumed), "--serial", "--quiet"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list(resumed.glob("*/*/q*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read().decode()
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list(resumed.glob("*/*/q*")))
    assert 1 <= finished < 4
    assert subprocess.run(command, capture_output=True).returncode == 0
    assert len(fingerprint(resumed)) == 4 and same_as_serial(resumed, out)


@pytest.mark.slow
def test_ray_in_process_gives_the_serial_results(dataset, serial_run, tmp_path):
    out, _ = serial_run
    # Two jobs keep the test short: Ray's workers each import torch and compressai.
    outcome = run_eval(request(dataset, tmp_path / "ray", serial=False, sequences=["Cat"], qualities=[2]))
    assert [s["status"] for s in outcome.statuses] == ["done", "done"]
    assert same_as_serial(tmp_path / "ray", out)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_ray_address_of_a_local_head_gives_the_serial_results(dataset, serial_run, tmp_path, monkeypatch):
    out, _ = serial_run
    port = free_port()
    with pytest.raises(ConfigError, match="cannot connect to the Ray cluster"):
        run_eval(request(dataset, tmp_path / "nowhere", serial=False, ray_address=f"127.0.0.1:{port}"))
    # `ray start` clusters use token authentication (~/.ray/auth_token); the driver must opt in.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    # A real one-node cluster in its own session, so that stopping it cannot touch other Ray
    # instances on the machine (``ray stop`` would stop them all).
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    try:
        deadline = time.monotonic() + 120
        while head.poll() is None and time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        assert head.poll() is None, "ray start --head exited"
        outcome = run_eval(request(dataset, tmp_path / "cluster", serial=False, ray_address=f"127.0.0.1:{port}",
                                   sequences=["Cup"], qualities=[1]))
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
    assert [s["status"] for s in outcome.statuses] == ["done", "done"]
    assert same_as_serial(tmp_path / "cluster", out)


def test_a_failing_job_is_reported_and_the_others_finish(dataset, tmp_path, capsys):
    dataset_file, weights = dataset
    code = main(["eval", "--dataset", str(dataset_file), "--sequences", "Cat", "--configs", "baseline",
                 "--qualities", "2-3", "--frames", "2", "--weights", str(weights), "--out", str(tmp_path / "run"),
                 "--serial", "--quiet"])
    assert code == 1
    statuses = {s["key"]: s for s in json.loads((tmp_path / "run" / "jobs.json").read_text())["jobs"]}
    assert statuses["Cat/baseline/q2"]["status"] == "done"
    failed = statuses["Cat/baseline/q3"]
    assert failed["status"] == "failed" and "ssf-small-q3.pt" in failed["error"]
    assert not (tmp_path / "run" / "Cat" / "baseline" / "q3").exists()
    assert "1 of 2 jobs failed" in capsys.readouterr().err
    # The finished job still reaches the results, the report and the plots.
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert [(r["config"], r["quality"]) for r in rows] == [("baseline", 2)]
    assert "BD-rate" in (tmp_path / "run" / "bdrate.md").read_text()
    assert (tmp_path / "run" / "plots" / "frames_Cat_baseline_q2.png").stat().st_size > 0
    assert main(["bdrate", str(tmp_path / "run"), "--anchor", "baseline"]) == 0
    assert main(["bdrate", str(tmp_path / "missing")]) == 2
    assert "vidcodec eval --out" in capsys.readouterr().err


def test_bad_requests_are_refused_before_anything_runs(dataset, serial_run, tmp_path):
    out, _ = serial_run
    with pytest.raises(ConfigError, match="available: .*baseline"):
        run_eval(request(dataset, tmp_path / "a", configs=["baseline", "nonsense"]))
    assert not (tmp_path / "a").exists()
    with pytest.raises(ConfigError, match="not found.*--root"):
        run_eval(request(dataset, tmp_path / "b", root=tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="not in"):
        run_eval(request(dataset, tmp_path / "c", sequences=["Dog"]))
    with pytest.raises(OutputError, match="other parameters \\(frames\\)"):
        run_eval(request(dataset, out, frames=2))
    with pytest.raises(ConfigError, match="qualities"):
        parse_qualities("4-1")
    assert parse_qualities("1-3,5") == [1, 2, 3, 5]


def test_proxy_inputs_are_shared_by_the_jobs(dataset, tmp_path):
    outcome = run_eval(request(dataset, tmp_path / "run", configs=["baseline"], qualities=[1], crop=(64, 64),
                               downscale=1, sequences=["Cup"]))
    assert [s["status"] for s in outcome.statuses] == ["done"]
    summary = json.loads((tmp_path / "run" / "Cup" / "baseline" / "q1" / "summary.json").read_text())
    assert (summary["sequence"]["width"], summary["sequence"]["height"]) == (64, 64)
    assert (tmp_path / "run" / "inputs" / "Cup_64x64.yuv").stat().st_size == 3 * 64 * 64 * 3 // 2


def test_an_intra_model_codes_the_i_frames_of_every_learned_job(dataset, serial_run, tmp_path):
    """--intra-model: the I-frames by that model's shipped weights of the job's rate point, named in
    the job's identity with their file hash."""
    out = tmp_path / "run"
    outcome = run_eval(request(dataset, out, configs=["baseline"], qualities=[1], sequences=["Cat"],
                               intra_model="ssf-small"))
    assert [s["status"] for s in outcome.statuses] == ["done"]
    parameters = json.loads((out / "Cat" / "baseline" / "q1" / "job.json").read_text())["parameters"]
    assert parameters["intra_model"] == "ssf-small" and len(parameters["intra_weights_sha256"]) == 64
    summary = json.loads((out / "Cat" / "baseline" / "q1" / "summary.json").read_text())
    assert "ssf-small-q1.pt" in json.dumps(summary)
    # The I-frames differ from the run without it (the tiny model's own intra path).
    serial_out, _ = serial_run
    assert fingerprint(out)["Cat/baseline/q1"]["frames"][0] != fingerprint(serial_out)["Cat/baseline/q1"]["frames"][0]


def test_a_run_of_shipped_weights_names_the_registrys_intra_model_in_its_identity(dataset, tmp_path):
    """Without --intra-model, shipped dcvc-small weights code their I-frames with mbt2018-mean-small's
    (models/registry.py); the run and each job record it with the file's hash. A weights directory
    codes its own."""
    from vidcodec.eval.runner import plan_jobs, prepare_inputs, with_resolved_intra
    from vidcodec.models.registry import shipped_checkpoint_path

    shipped = with_resolved_intra(request(dataset, tmp_path / "run", model="dcvc-small", weights_dir=None))
    assert shipped.intra_model == "mbt2018-mean-small"
    [job] = [job for job in plan_jobs(shipped, prepare_inputs(shipped)) if job.key == "Cat/baseline/q2"]
    assert job.intra_model == "mbt2018-mean-small"
    assert job.intra_weights_sha256 == file_hash(shipped_checkpoint_path("mbt2018-mean-small", 2))
    assert with_resolved_intra(request(dataset, tmp_path / "run")).intra_model is None
    named = with_resolved_intra(request(dataset, tmp_path / "run", model="dcvc-small", weights_dir=None,
                                        intra_model="dcvc-small"))
    assert named.intra_model == "dcvc-small"


def test_an_x265_intra_run_codes_its_i_frames_with_x265_and_its_qps_are_in_the_identity(dataset, tmp_path,
                                                                                         monkeypatch):
    from vidcodec.eval.runner import plan_jobs, prepare_inputs
    from vidcodec.models import registry

    options = dict(configs=["baseline"], qualities=[1], intra_model="x265-intra")
    outcome = run_eval(request(dataset, tmp_path / "run", **options))
    assert not outcome.failed
    rd_log = tmp_path / "run" / "Cat" / "baseline" / "q1" / "rd.jsonl"
    records = [json.loads(line) for line in rd_log.read_text().splitlines()]
    assert records[0]["bits_intra_y"] > 0 and records[0]["bits_intra_z"] == 0
    header = json.loads((tmp_path / "run" / "Cat" / "baseline" / "q1" / "summary.json").read_text())
    assert header["config"]["intra_model"] == "x265-intra"
    # Other QPs for the rate point are another result: the settings digest is in the job's identity.
    plan = request(dataset, tmp_path / "run", **options)
    before = [job.parameters() for job in plan_jobs(plan, prepare_inputs(plan))]
    spec = registry.MODELS["x265-intra"]
    monkeypatch.setitem(registry.MODELS, "x265-intra", dataclasses.replace(
        spec, default_config={**spec.default_config, "qp_by_quality": [30, 29, 28, 27]}))
    after = [job.parameters() for job in plan_jobs(plan, prepare_inputs(plan))]
    assert before != after


def test_intra_weights_code_the_i_frames_with_local_checkpoints_and_name_them(dataset, tmp_path):
    """--intra-weights DIR: the I-frames by DIR's INTRA_MODEL-qQ.pt, decoded from the files with it, and
    the file's hash in the job's identity; a missing rate point or a weightless model is refused first."""
    intra_dir = tmp_path / "intra"
    intra_dir.mkdir()
    torch.manual_seed(5)
    codec = build_model("bmshj2018-factorized-small", N=8, M=8)
    save_checkpoint(intra_dir / "bmshj2018-factorized-small-q1.pt", codec, "bmshj2018-factorized-small", {})
    out = tmp_path / "run"
    options = dict(configs=["baseline"], qualities=[1], sequences=["Cat"], intra_model="bmshj2018-factorized-small",
                   intra_weights_dir=intra_dir)
    outcome = run_eval(request(dataset, out, **options))
    assert [s["status"] for s in outcome.statuses] == ["done"]  # run_job decodes the files and compares
    parameters = json.loads((out / "Cat" / "baseline" / "q1" / "job.json").read_text())["parameters"]
    assert parameters["intra_weights_sha256"] == file_hash(intra_dir / "bmshj2018-factorized-small-q1.pt")
    summary = json.loads((out / "Cat" / "baseline" / "q1" / "summary.json").read_text())
    assert summary["config"]["intra_checkpoint"] == str(intra_dir / "bmshj2018-factorized-small-q1.pt")
    with pytest.raises(ConfigError, match="bmshj2018-factorized-small-q2.pt"):
        run_eval(request(dataset, tmp_path / "run2", **{**options, "qualities": [1, 2]}))
    with pytest.raises(ConfigError, match="learned image codec"):
        run_eval(request(dataset, tmp_path / "run3", **{**options, "intra_model": "x265-intra"}))
    assert not (tmp_path / "run2").exists() and not (tmp_path / "run3").exists()
