"""Eval configurations (configs/eval/*.yaml) and the finished-job rule."""

import dataclasses
import json

import pytest

from vidcodec.errors import ConfigError
from vidcodec.eval.jobs import (
    EVAL_CONFIG_DIR,
    JOB_FILE,
    Job,
    available_settings,
    file_hash,
    is_finished,
    load_setting,
    weights_file,
)


def test_shipped_configurations_load_and_cover_the_papers_table():
    names = available_settings()
    assert {"baseline", "hex", "oct", "shift", "join", "x264", "x265", "svtav1"} <= set(names)
    for name in names:
        setting = load_setting(name)
        assert setting.label and (setting.anchor or setting.codec)
    join = dict(load_setting("join").codec)
    assert join["quant"] == "oct" and join["latent_shift"] is True
    assert load_setting("x265").anchor == "x265" and load_setting("x265-low").crf == (49, 45, 41, 37)


@pytest.mark.parametrize("text, message", [
    ("label: A\ncodec: {quant: zz}\n", "quant='zz'"),
    ("label: A\nbitrate: 5\n", "unknown keys bitrate"),
    ("label: A\ncodec: {quant: oct}\nanchor: x264\n", "not both"),
    ("label: [unclosed\n", "not valid YAML"),
    ("label: A\ncodec: {quant: oct}\ncrf: [30]\n", "with an anchor"),
    ("label: A\nanchor: x264\ncrf: 30\n", "list of integers"),
])
def test_bad_configuration_files_are_refused_with_the_reason(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_setting("bad", tmp_path)
    with pytest.raises(ConfigError, match="available: bad"):
        load_setting("missing", tmp_path)


def test_a_job_is_finished_only_with_its_own_parameters(tmp_path):
    job = Job(sequence="S", setting=load_setting("oct"), quality=2, input_path="/x.yuv", width=64, height=64,
              bit_depth=8, fps=30.0, num_frames=3, intra_period=8, out_dir=str(tmp_path / "q2"))
    assert not is_finished(job)
    (tmp_path / "q2").mkdir()
    (tmp_path / "q2" / JOB_FILE).write_text(json.dumps({"parameters": job.parameters()}))
    assert is_finished(job)
    longer = Job(**{**job.__dict__, "num_frames": 4})
    assert not is_finished(longer)
    assert "out_dir" not in job.parameters() and EVAL_CONFIG_DIR.name == "eval"


def test_retrained_weights_make_a_finished_job_stale_and_a_relabel_does_not(tmp_path):
    """The job's identity holds the checkpoint file's hash, not the configuration's table label."""
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "ssf-small-q2.pt").write_bytes(b"first training")
    setting = load_setting("oct")
    path = weights_file(setting, 2, "ssf-small", str(weights))
    assert path == weights / "ssf-small-q2.pt" and weights_file(load_setting("x264"), 2, None, None) is None
    job = Job(sequence="S", setting=setting, quality=2, input_path="/x.yuv", width=64, height=64, bit_depth=8,
              fps=30.0, num_frames=3, intra_period=8, out_dir=str(tmp_path / "q2"), model="ssf-small",
              weights_dir=str(weights), weights_sha256=file_hash(path))
    (tmp_path / "q2").mkdir()
    (tmp_path / "q2" / JOB_FILE).write_text(json.dumps({"parameters": job.parameters()}))
    relabelled = Job(**{**job.__dict__, "setting": dataclasses.replace(setting, label="Oct-Quant")})
    assert is_finished(relabelled)
    path.write_bytes(b"retrained")
    retrained = Job(**{**job.__dict__, "weights_sha256": file_hash(path)})
    assert not is_finished(retrained)
    # Another intra model, or other weights of it, is another result too.
    with_intra = Job(**{**job.__dict__, "intra_model": "mbt2018-mean", "intra_weights_sha256": "ab"})
    assert not is_finished(with_intra)


def test_the_identity_holds_the_resolved_codec_config_and_the_syntax_version(tmp_path, monkeypatch):
    """A default changed in configs/default.yaml (here pad_margin) changes the result: the job is stale."""
    from vidcodec.bitstream.syntax import SYNTAX_VERSION
    from vidcodec.eval import jobs

    job = Job(sequence="S", setting=load_setting("oct"), quality=2, input_path="/x.yuv", width=64, height=64,
              bit_depth=8, fps=30.0, num_frames=3, intra_period=8, out_dir=str(tmp_path / "q2"))
    parameters = job.parameters()
    assert parameters["syntax_version"] == SYNTAX_VERSION
    assert parameters["codec_config"]["quant"] == "oct" and parameters["codec_config"]["quality"] == 2
    (tmp_path / "q2").mkdir()
    (tmp_path / "q2" / JOB_FILE).write_text(json.dumps({"parameters": parameters}))
    assert is_finished(job)
    original = jobs.load_config
    monkeypatch.setattr(jobs, "load_config", lambda **kw: dataclasses.replace(original(**kw), pad_margin=0))
    assert not is_finished(job)
    x264 = load_setting("x264")
    assert x264.anchor and Job(**{**job.__dict__, "setting": x264}).parameters()["codec_config"] is None
