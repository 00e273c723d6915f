import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clip_fixtures import write_image_folder, write_video
from vidcodec.errors import ConfigError
from vidcodec.models.registry import load_model
from vidcodec.train.synthetic import DATA_RECIPE_VERSION
from vidcodec.train.trainer import TrainConfig, Trainer

REPO = Path(__file__).resolve().parent.parent
TINY = dict(model_config={"mid_planes": 8, "latent_planes": 8, "flow_in_pixels": True}, batch_size=1,
            clip_frames=2, crop=128, validation_clips=1, log_every=1, validate_every=2, num_threads=1,
            data_workers=0)


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    straight = Trainer(TrainConfig(steps=4, **TINY), tmp_path / "straight")
    straight.run(progress=False)
    first_half = Trainer(TrainConfig(steps=4, **TINY), tmp_path / "resumed")
    first_half.run(progress=False, max_steps=2)
    resumed = Trainer(TrainConfig(steps=4, **TINY), tmp_path / "resumed")
    assert resumed.step == 2
    resumed.run(progress=False)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    log = [json.loads(line) for line in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert "val_psnr_p" in log[1] and (tmp_path / "resumed" / "loss.png").exists()


def test_a_wall_time_limit_stops_with_a_checkpoint_and_the_mix_is_recorded(tmp_path):
    """--max-minutes: a chunk on a lent machine ends cleanly; here a limit of 0 s stops before step 1."""
    mix = {"photo": 0.5, "dead_leaves": 0.5}
    trainer = Trainer(TrainConfig(steps=4, clip_mix=mix, **TINY), tmp_path / "run")
    trainer.run(progress=False, max_wall_s=0.0)
    assert trainer.step == 0 and (tmp_path / "run" / "last.pt").exists()
    trainer.run(progress=False, max_steps=1)
    trainer.export(tmp_path / "m.pt")
    provenance = load_model("ssf-small", checkpoint=tmp_path / "m.pt").provenance
    assert provenance["clip_mix"] == mix and provenance["curriculum"][-1]["clip_mix"] == mix


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_finishes_the_step_under_way_and_checkpoints_it(tmp_path, monkeypatch, capsys, signal_number):
    """Ctrl-C or SIGTERM: no export, exit status 130, the checkpoint holds every finished step, and the
    process's own handlers are back afterwards."""
    from vidcodec.cli import EXIT_INTERRUPTED, main

    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({**TINY, "steps": 10, "checkpoint_every_s": 3600}))  # JSON is YAML
    real_step = Trainer.train_step

    def step_then_signal(trainer, batches):
        metrics = real_step(trainer, batches)
        if trainer.step == 1:  # the second step: its update must be kept
            os.kill(os.getpid(), signal_number)
        return metrics

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    handler_before = signal.getsignal(signal_number)
    status = main(["train", "--config", str(config), "--out", str(tmp_path / "run"), "--export",
                   str(tmp_path / "m.pt"), "--quiet"])
    assert status == EXIT_INTERRUPTED
    assert f"stopped by {signal.Signals(signal_number).name} at step 2" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()
    assert signal.getsignal(signal_number) is handler_before
    assert Trainer(TrainConfig(**{**TINY, "steps": 10}), tmp_path / "run").step == 2


def test_cli_export_creates_its_directory_and_a_directory_is_refused_before_training(tmp_path, capsys):
    from vidcodec.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({**TINY, "steps": 1}))  # JSON is YAML
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "refused"), "--export",
                 str(tmp_path), "--quiet"]) != 0
    assert f"--export {tmp_path} is a directory" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()  # refused before the run directory or any step
    export = tmp_path / "new" / "dir" / "m.pt"
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run"), "--export", str(export),
                 "--quiet"]) == 0
    assert load_model("ssf-small", checkpoint=export).provenance["steps"] == 1


def test_learning_rate_scale_gives_named_parameters_their_own_rate(tmp_path):
    config = TrainConfig(steps=2, learning_rate_scale={"motion": 10, "motion_decoder": 3}, **TINY)
    trainer = Trainer(config, tmp_path / "run")
    groups = trainer.optimizer.param_groups
    assert [group["lr"] for group in groups] == pytest.approx([1e-4, 1e-3, 3e-4])  # unscaled first
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    assert all(names[id(p)].startswith("motion_decoder") for p in groups[2]["params"])
    assert all(names[id(p)].startswith(("motion_encoder", "motion_hyperprior")) for p in groups[1]["params"])
    assert not any(names[id(p)].startswith("motion") for p in groups[0]["params"])
    assert sum(len(g["params"]) for g in groups) == len(trainer.main_params)
    trainer.run(progress=False)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([1e-6, 1e-5, 3e-6])  # both drops
    with pytest.raises(ConfigError, match="learning_rate_scale names gate, which matches no trained parameter"):
        Trainer(TrainConfig(steps=2, learning_rate_scale={"gate": 10}, **TINY), tmp_path / "other")
    with pytest.raises(ConfigError, match="expected factors > 0"):
        TrainConfig(steps=2, learning_rate_scale={"motion": 0}, **TINY).validate()


def test_cli_names_a_malformed_clip_mix(tmp_path, capsys):
    from vidcodec.cli import main

    assert main(["train", "--out", str(tmp_path), "--clip-mix", "photo=most"]) != 0
    assert "--clip-mix 'photo=most' (expected SOURCE=FRACTION" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--clip-mix", "video=1"]) != 0
    assert "clip_mix has sources video" in capsys.readouterr().err


def test_a_run_directory_is_not_resumed_from_another_start(tmp_path):
    """A run started from one checkpoint (or none) cannot be resumed as if started from another."""
    first = Trainer(TrainConfig(steps=2, **TINY), tmp_path / "run")
    first.run(progress=False, max_steps=1)
    first.export(tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="holds a run started otherwise .*init_from: run has None, asked '"):
        Trainer(TrainConfig(steps=2, init_from=str(tmp_path / "other.pt"), **TINY), tmp_path / "run")
    resumed = Trainer(TrainConfig(steps=3, **TINY), tmp_path / "run")  # more steps: the same run
    assert resumed.step == 1


def test_export_gives_a_loadable_checkpoint_with_provenance(tmp_path):
    trainer = Trainer(TrainConfig(steps=1, **TINY), tmp_path / "run")
    trainer.run(progress=False)
    trainer.export(tmp_path / "m.pt")
    loaded = load_model("ssf-small", checkpoint=tmp_path / "m.pt")
    assert loaded.provenance["steps"] == 1 and loaded.provenance["train_config"]["crop"] == 128
    assert loaded.provenance["data_recipe"] == DATA_RECIPE_VERSION
    assert [stage["stage"] for stage in loaded.provenance["curriculum"]] == ["chains"]
    assert loaded.codec.config()["latent_planes"] == 8


@pytest.mark.slow
def test_kill_9_loses_at_most_one_checkpoint_interval(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({**TINY, "steps": 1000, "checkpoint_every_s": 0}))  # JSON is YAML
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "vidcodec.cli", "train", "--config", str(config), "--out", str(run_dir), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = run_dir / "train_log.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    logged_steps = len(log.read_text().splitlines())
    assert logged_steps >= 3
    resumed = Trainer(TrainConfig(**{**TINY, "steps": 1000, "checkpoint_every_s": 0}), run_dir)
    # checkpoint_every_s=0 saves after every step: at most the step in flight is lost
    assert resumed.step >= logged_steps - 1


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_with_clip_workers_checkpoints_every_finished_step(tmp_path):
    """A terminal's Ctrl-C reaches the trainer and its clip workers: the trainer finishes its step,
    checkpoints and exits with 130. (The workers ignore it so that a trainer waiting for a batch
    gets it; this test does not catch that race, the batches being ready ahead.)"""
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({**TINY, "steps": 1000, "checkpoint_every_s": 3600, "data_workers": 1}))
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "vidcodec.cli", "train", "--config", str(config), "--out", str(run_dir), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    log = run_dir / "train_log.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr.decode()
    logged_steps = len(log.read_text().splitlines())
    assert logged_steps >= 3 and b"stopped by SIGINT" in stderr
    assert Trainer(TrainConfig(**{**TINY, "steps": 1000}), run_dir).step == logged_steps


def test_cli_trains_on_a_folder_of_videos_and_names_it_in_the_provenance(tmp_path, capsys):
    """vidcodec train --data DIR: clips from the user's videos; the export names the folder, not a recipe."""
    from vidcodec.cli import main

    data = tmp_path / "videos"
    data.mkdir()
    for index in range(3):
        write_video(data / f"clip{index}.mp4", 4, 136, 144)
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({**TINY, "steps": 2}))  # JSON is YAML
    export = tmp_path / "m.pt"
    assert main(["train", "--config", str(config), "--data", str(data), "--out", str(tmp_path / "run"),
                 "--max-steps", "2", "--export", str(export)]) == 0
    assert "(videos, 2 sources for training); validation: 1 of 3 sources held out" in capsys.readouterr().err
    provenance = load_model("ssf-small", checkpoint=export).provenance
    assert provenance["steps"] == 2 and provenance["train_config"]["data"] == str(data)
    assert provenance["data"]["folder"] == str(data.resolve()) and provenance["data"]["files"] == 3
    assert "data_recipe" not in provenance and "clip_mix" not in provenance
    assert provenance["curriculum"][-1]["data_files"] == 3 and "data_recipe" not in provenance["curriculum"][-1]
    assert json.loads((tmp_path / "run" / "data.json").read_text())["layout"] == "videos"
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert "val_psnr_p" in log[-1]


def test_bad_data_is_refused_before_training_and_a_run_cannot_switch_data(tmp_path, capsys):
    from vidcodec.cli import main

    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "refused")]) != 0
    assert f"data folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    small = tmp_path / "small"
    for index in range(2):
        write_image_folder(small / f"scene{index}", 3, 64, 64)
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({**TINY, "steps": 2}))
    assert main(["train", "--config", str(config), "--data", str(small), "--out", str(tmp_path / "refused")]) != 0
    assert "frames of 64 x 64 pixels are smaller than crop=128" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    assert TrainConfig(data="clips", **TINY).data == str(Path.cwd() / "clips")  # resumable from anywhere
    with pytest.raises(ConfigError, match="clip_mix mixes the generated clips and data replaces them"):
        TrainConfig(data=str(small), clip_mix={"photo": 1.0}, **TINY).validate()

    data = tmp_path / "images"
    for index in range(2):
        write_image_folder(data / f"scene{index}", 3, 128, 128)
    Trainer(TrainConfig(steps=2, data=str(data), **TINY), tmp_path / "run").run(progress=False, max_steps=1)
    with pytest.raises(ConfigError, match=r"holds a run started otherwise \(data: run has '.*images', asked None\)"):
        Trainer(TrainConfig(steps=2, **TINY), tmp_path / "run")
    assert Trainer(TrainConfig(steps=2, data=str(data), **TINY), tmp_path / "run").step == 1
