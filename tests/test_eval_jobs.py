"""Eval configurations (configs/eval/*.yaml) and the finished-job rule."""

import json

import pytest

from vidcodec.errors import ConfigError
from vidcodec.eval.jobs import EVAL_CONFIG_DIR, JOB_FILE, Job, available_settings, is_finished, load_setting


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
