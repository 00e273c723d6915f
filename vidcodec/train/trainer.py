"""Rate-distortion training of a FrameCodec on generated clips, resumable after any interruption.

Loss (CompressAI's video recipe): lmbda * 255^2 * MSE + bpp, averaged over the frames of each clip,
where frame 0 is coded as an I-frame and every next frame as a P-frame against the model's own
reconstruction of the previous one (CompressAI's ScaleSpaceFlow.forward). The entropy bottlenecks'
quantiles are fitted by a separate optimizer on the auxiliary loss.

State (model, both optimizers, scheduler, RNG states, step) goes to ``OUT/last.pt`` every
``checkpoint_every_s`` seconds, written to a temporary name and renamed, so a kill -9 loses at most one
interval. ``train`` resumes from it when it exists.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from vidcodec.errors import ConfigError
from vidcodec.models.registry import build_model, save_checkpoint
from vidcodec.train.synthetic import random_clip


@dataclass(frozen=True)
class TrainConfig:
    model: str = "ssf-small"
    model_config: dict = field(default_factory=dict)
    lmbda: float = 0.0067
    steps: int = 20000
    batch_size: int = 4
    clip_frames: int = 3
    crop: int = 128
    learning_rate: float = 1e-4
    # Learning rate is divided by 10 at these fractions of the total steps.
    lr_drops: tuple = (0.8, 0.95)
    aux_learning_rate: float = 1e-3
    clip_grad_norm: float = 1.0
    checkpoint_every_s: float = 300.0
    log_every: int = 10
    validate_every: int = 1000
    validation_clips: int = 8
    seed: int = 0
    num_threads: int = 2
    init_from: str | None = None  # checkpoint to fine-tune from (e.g. another rate point)

    def validate(self) -> "TrainConfig":
        problems = []
        if self.lmbda <= 0:
            problems.append(f"lmbda={self.lmbda} (expected > 0)")
        if self.steps < 1 or self.batch_size < 1:
            problems.append("steps and batch_size must be >= 1")
        if self.clip_frames < 2:
            problems.append(f"clip_frames={self.clip_frames} (expected >= 2: one I- and one P-frame)")
        if self.crop < 128 or self.crop % 128:
            problems.append(f"crop={self.crop} (expected a multiple of 128, the SSF padding)")
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))
        return self


def load_train_config(path: Path | None, overrides: dict) -> TrainConfig:
    values = yaml.safe_load(Path(path).read_text()) if path else {}
    known = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(values or {}) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values = {**(values or {}), **{k: v for k, v in overrides.items() if v is not None}}
    if "lr_drops" in values:
        values["lr_drops"] = tuple(values["lr_drops"])
    return TrainConfig(**values).validate()


def rd_loss(model, frames: list[torch.Tensor], lmbda: float) -> dict[str, torch.Tensor]:
    """frames: list of (N,3,H,W) float in [0,1]. Returns loss, mse, bpp (per frame and averaged)."""
    out = model(frames)
    num_pixels = frames[0].shape[0] * frames[0].shape[2] * frames[0].shape[3]
    mse = torch.stack([torch.mean((x_hat - x) ** 2) for x_hat, x in zip(out["x_hat"], frames)])
    bits = []
    for frame_likelihoods in out["likelihoods"]:
        frame_bits = sum(
            torch.log(likelihoods).sum() / -math.log(2)
            for latent in frame_likelihoods.values()
            for likelihoods in latent.values()
        )
        bits.append(frame_bits)
    bpp = torch.stack(bits) / num_pixels
    loss = lmbda * 255**2 * mse.mean() + bpp.mean()
    return {"loss": loss, "mse": mse, "bpp": bpp}


def make_batch(rng: np.random.Generator, config: TrainConfig, split: str = "train") -> list[torch.Tensor]:
    clips = [random_clip(rng, config.clip_frames, config.crop, config.crop, split) for _ in range(config.batch_size)]
    batch = torch.from_numpy(np.stack(clips)).permute(1, 0, 4, 2, 3).contiguous()  # (T,N,3,H,W)
    return list(batch)


def validation_batches(config: TrainConfig) -> list[list[torch.Tensor]]:
    """Fixed held-out clips (held-out photos, fixed seed): the same every evaluation and run."""
    rng = np.random.default_rng(10_000 + config.seed)
    single = TrainConfig(**{**asdict(config), "batch_size": 1})
    return [make_batch(rng, single, split="heldout") for _ in range(config.validation_clips)]


@torch.no_grad()
def validate(model, batches: list[list[torch.Tensor]], lmbda: float) -> dict:
    """Average bpp and PSNR of I (frame 0) and P frames on the validation clips (noise proxy)."""
    model.eval()
    i_bpp, p_bpp, i_mse, p_mse = [], [], [], []
    for frames in batches:
        terms = rd_loss(model, frames, lmbda)
        i_bpp.append(terms["bpp"][0].item())
        p_bpp.extend(terms["bpp"][1:].tolist())
        i_mse.append(terms["mse"][0].item())
        p_mse.extend(terms["mse"][1:].tolist())
    model.train()

    def psnr(values):
        return 10 * math.log10(1 / max(np.mean(values), 1e-12))

    return {"val_bpp_i": float(np.mean(i_bpp)), "val_bpp_p": float(np.mean(p_bpp)),
            "val_psnr_i": psnr(i_mse), "val_psnr_p": psnr(p_mse)}


class Trainer:
    def __init__(self, config: TrainConfig, out_dir: Path) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(config.num_threads)
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, **config.model_config)
        if config.init_from:
            from vidcodec.models.registry import load_model

            self.model.load_state_dict(load_model(config.model, checkpoint=config.init_from).codec.state_dict())
        self.model.train()
        # The entropy bottlenecks' quantiles are fitted by the auxiliary loss alone; keeping them out
        # of the main optimizer also keeps their gradients out of the main gradient-norm clipping.
        self.main_params = [p for n, p in self.model.named_parameters() if not n.endswith(".quantiles")]
        aux_params = [p for n, p in self.model.named_parameters() if n.endswith(".quantiles")]
        self.optimizer = torch.optim.Adam(self.main_params, lr=config.learning_rate)
        self.aux_optimizer = torch.optim.Adam(aux_params, lr=config.aux_learning_rate)
        milestones = [int(f * config.steps) for f in config.lr_drops]
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones, gamma=0.1)
        self.rng = np.random.default_rng(config.seed)
        self.step = 0
        self.wall_s = 0.0
        self.state_path = self.out_dir / "last.pt"
        self.log_path = self.out_dir / "train_log.jsonl"
        if self.state_path.exists():
            self._resume()

    # --- state ---------------------------------------------------------------------------
    def _save_state(self) -> None:
        state = {
            "config": asdict(self.config),
            "step": self.step,
            "wall_s": self.wall_s,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "aux_optimizer": self.aux_optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        }
        tmp = self.state_path.with_name("last.pt.tmp")
        torch.save(state, tmp)
        tmp.replace(self.state_path)

    def _resume(self) -> None:
        state = torch.load(self.state_path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.aux_optimizer.load_state_dict(state["aux_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        self.step, self.wall_s = state["step"], state["wall_s"]
        self._truncate_log(self.step)

    def _truncate_log(self, step: int) -> None:
        """Drop log lines written after the checkpoint we resume from (they will be redone)."""
        if not self.log_path.exists():
            return
        lines = [line for line in self.log_path.read_text().splitlines() if line.strip()]
        kept = [line for line in lines if json.loads(line)["step"] <= step]
        self.log_path.write_text("".join(line + "\n" for line in kept))

    def _log(self, record: dict) -> None:
        with open(self.log_path, "a") as log:
            log.write(json.dumps(record) + "\n")

    # --- loop ----------------------------------------------------------------------------
    def train_step(self) -> dict:
        frames = make_batch(self.rng, self.config)
        terms = rd_loss(self.model, frames, self.config.lmbda)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.main_params, self.config.clip_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        aux_loss = sum(self.model.aux_loss())
        self.aux_optimizer.zero_grad(set_to_none=True)
        aux_loss.backward()
        self.aux_optimizer.step()
        return {
            "loss": terms["loss"].item(),
            "bpp": terms["bpp"].mean().item(),
            "psnr": 10 * math.log10(1 / max(terms["mse"].mean().item(), 1e-12)),
            "aux_loss": aux_loss.item(),
            "lr": self.optimizer.param_groups[0]["lr"],
        }

    def run(self, progress: bool = True, max_steps: int | None = None) -> None:
        """Train until config.steps (or ``max_steps`` more steps, for tests), checkpointing as it goes."""
        from tqdm import tqdm

        target = self.config.steps if max_steps is None else min(self.config.steps, self.step + max_steps)
        val_batches = validation_batches(self.config)
        bar = tqdm(total=self.config.steps, initial=self.step, desc="train", disable=not progress)
        last_save = time.monotonic()
        while self.step < target:
            start = time.monotonic()
            metrics = self.train_step()
            self.step += 1
            self.wall_s += time.monotonic() - start
            if self.step % self.config.log_every == 0 or self.step == target:
                record = {"step": self.step, "wall_s": round(self.wall_s, 2), **metrics}
                if self.step % self.config.validate_every == 0 or self.step == self.config.steps:
                    record.update(validate(self.model, val_batches, self.config.lmbda))
                self._log(record)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", bpp=f"{metrics['bpp']:.3f}", psnr=f"{metrics['psnr']:.2f}")
            bar.update(1)
            if time.monotonic() - last_save >= self.config.checkpoint_every_s:
                self._save_state()
                last_save = time.monotonic()
        bar.close()
        self._save_state()
        plot_training_log(self.log_path, self.out_dir / "loss.png")

    def export(self, path: Path, extra_provenance: dict | None = None) -> None:
        """Write the model as a shippable vidcodec checkpoint (float16 weights, CDF tables)."""
        validations = []
        if self.log_path.exists():
            records = [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]
            validations = [r for r in records if "val_psnr_p" in r]
        provenance = {
            "train_config": asdict(self.config),
            "steps": self.step,
            # Held-out clips through the training forward pass (noise-quantized proxy, not coded).
            "last_validation": {k: v for k, v in validations[-1].items() if k == "step" or k.startswith("val_")}
            if validations else None,
            "wall_s": round(self.wall_s, 1),
            "data": "vidcodec.train.synthetic.random_clip (scikit-image photos with synthetic motion, lavfi sources), split=train",
            **(extra_provenance or {}),
        }
        save_checkpoint(path, self.model.eval(), self.config.model, provenance)
        self.model.train()


def plot_training_log(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    if not records:
        return
    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for ax, key in zip(axes, ("loss", "bpp", "psnr")):
        ax.plot(steps, [r[key] for r in records], lw=0.8, label="train")
        val_key = {"bpp": "val_bpp_p", "psnr": "val_psnr_p"}.get(key)
        val = [(r["step"], r[val_key]) for r in records if val_key and val_key in r]
        if val:
            ax.plot(*zip(*val), "o-", label="held-out P-frames")
            ax.legend()
        ax.set_xlabel("step")
        ax.set_title(key)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
