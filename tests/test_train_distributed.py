"""Data-parallel training: `vidcodec train` under torchrun with 2 CPU processes (gloo).

One DDP step with one clip per rank must equal one single-process step on the batch made of both
ranks' clips: rd_loss averages over the batch and SSF has no batch norm, so the mean of the ranks'
gradients is the gradient of the union batch's loss.

torchrun runs this file itself as each rank's program (the ``__main__`` block at the bottom).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidcodec.errors import ConfigError
from vidcodec.train.batches import training_batch
from vidcodec.train.distributed import DistributedContext
from vidcodec.train.trainer import TrainConfig, Trainer, batch_spec, frames_from_clips

REPO = Path(__file__).resolve().parent.parent
WORLD_SIZE = 2
TINY = dict(model_config={"mid_planes": 16, "latent_planes": 16, "flow_in_pixels": True}, batch_size=1,
            clip_frames=2, crop=128, steps=10, validation_clips=1, log_every=1, validate_every=1, num_threads=1,
            data_workers=0)
CPU = torch.device("cpu")


def without_quantization_noise(setattr_=setattr) -> None:
    """Replace training's additive uniform noise (the stand-in for rounding) by no noise.

    Each rank draws its noise from its own torch generator in the shape of its own batch; no single
    process can draw the noise the two ranks drew, so with noise the two programs would differ by
    more than summation order. Without it the forward pass is a function of the clips alone.
    """
    from compressai.entropy_models import EntropyModel

    original = EntropyModel.quantize

    def quantize(self, inputs, mode, means=None):
        return inputs if mode == "noise" else original(self, inputs, mode, means)

    setattr_(EntropyModel, "quantize", quantize)


def keep_each_ranks_step(setattr_=setattr) -> None:
    """After each step, every rank writes its parameters and (clipped) gradients to rank<R>.pt."""
    optimize = Trainer.optimize

    def optimize_and_keep(self, frames):
        metrics = optimize(self, frames)
        named = dict(self.model.named_parameters())
        torch.save({"params": {n: p.detach().clone() for n, p in named.items()},
                    "grads": {n: p.grad.clone() for n, p in named.items()}},
                   self.out_dir / f"rank{self.ctx.rank}.pt")
        return metrics

    setattr_(Trainer, "optimize", optimize_and_keep)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """One training step (of 10, so at the full learning rate) of 2 processes under torchrun, through
    the command line."""
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    config = run_dir.parent / "tiny.yaml"
    config.write_text(json.dumps(TINY))  # JSON is YAML
    # CPU only: two ranks on one GPU (or on none) is what CI has; NCCL is not tested here.
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD_SIZE}",
               __file__, str(config), str(run_dir)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_one_ddp_step_equals_one_step_on_the_union_of_the_ranks_batches(ddp_run, tmp_path, monkeypatch):
    without_quantization_noise(monkeypatch.setattr)
    per_rank = TrainConfig(**TINY)
    batches = [frames_from_clips(training_batch(batch_spec(per_rank), rank, step=0)) for rank in range(WORLD_SIZE)]
    assert not torch.equal(batches[0][0], batches[1][0]), "each rank must draw its own clips"
    union = [torch.cat(frames) for frames in zip(*batches)]  # (2,3,H,W) per frame: rank 0's clip, rank 1's
    single = DistributedContext(rank=0, world_size=1, local_rank=0, device=CPU)
    reference = Trainer(TrainConfig(**{**TINY, "batch_size": WORLD_SIZE}), tmp_path / "reference", single)
    metrics = reference.optimize(union)
    expected_params = dict(reference.model.named_parameters())

    ranks = [torch.load(ddp_run / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]
    for name, param in expected_params.items():
        # DDP sums the ranks' gradients in another order than the batched convolutions do.
        assert torch.allclose(ranks[0]["grads"][name], param.grad, rtol=1e-4, atol=1e-7), name
        assert torch.allclose(ranks[0]["params"][name], param, rtol=0, atol=1e-6), name
        for other in ranks[1:]:  # every rank took the same step (quantiles included)
            assert torch.equal(other["params"][name], ranks[0]["params"][name]), name
    saved = torch.load(ddp_run / "last.pt", weights_only=False)
    for name, value in saved["model"].items():
        if name in expected_params:
            assert torch.equal(value, ranks[0]["params"][name]), name
    # The log is rank 0's alone and its losses are those of the whole global batch.
    log = [json.loads(line) for line in (ddp_run / "train_log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in log] == [1] and "val_psnr_p" in log[0]
    assert log[0]["loss"] == pytest.approx(metrics["loss"], rel=1e-5)
    assert (ddp_run / "loss.png").exists()


def test_checkpoint_keeps_every_ranks_random_streams(ddp_run):
    saved = torch.load(ddp_run / "last.pt", weights_only=False)
    assert saved["world_size"] == WORLD_SIZE and saved["step"] == 1
    assert len(saved["rng"]) == WORLD_SIZE
    assert not torch.equal(saved["rng"][0]["torch"], saved["rng"][1]["torch"])  # independent noise


def test_resuming_with_another_number_of_processes_is_refused(ddp_run, tmp_path):
    single = DistributedContext(rank=0, world_size=1, local_rank=0, device=CPU)
    with pytest.raises(ConfigError, match=r"world_size=2 .* world_size=1: resume it with torchrun --nproc_per_node 2"):
        Trainer(TrainConfig(**TINY), ddp_run, single)
    # The other way round fails before the process group is needed, on every rank alike.
    one_process_run = tmp_path / "single"
    Trainer(TrainConfig(**TINY), one_process_run, single).run(progress=False, max_steps=1)
    rank0_of_2 = DistributedContext(rank=0, world_size=2, local_rank=0, device=CPU)
    with pytest.raises(ConfigError, match=r"world_size=1 .* world_size=2: resume it without torchrun"):
        Trainer(TrainConfig(**TINY), one_process_run, rank0_of_2)


if __name__ == "__main__":  # one rank of the ddp_run fixture, started by torchrun
    from vidcodec.cli import main

    config_path, out_dir = sys.argv[1:3]
    without_quantization_noise()
    keep_each_ranks_step()
    sys.exit(main(["train", "--config", config_path, "--out", out_dir, "--max-steps", "1", "--quiet"]))
