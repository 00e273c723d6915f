"""Rate-distortion training of a FrameCodec on generated clips (or a user's, clip_folder.py), resumable
after any interruption.

Loss (CompressAI's video recipe): lmbda * 255^2 * MSE + bpp, averaged over the coded frames of each
clip. Which frames are coded, and how, is the curriculum stage's (curriculum.py): "chains" (default)
codes frame 0 as an I-frame and every next frame as a P-frame against the model's own reconstruction
of the previous one (CompressAI's ScaleSpaceFlow.forward), "intra" codes single frames as I-frames,
"pairs" the second frame of a pair as a P-frame against the uncompressed first. Parameters outside
the stage's roles are frozen. The entropy bottlenecks' quantiles are fitted by a separate optimizer
on the auxiliary loss.

State (model, both optimizers, scheduler, RNG states, step) goes to ``OUT/last.pt`` every
``checkpoint_every_s`` seconds, written to a temporary name and renamed, so a kill -9 loses at most one
interval; Ctrl-C or SIGTERM loses nothing (the step under way finishes, then a checkpoint is written).
``train`` resumes from it when it exists.

Training runs on the GPU when there is one, else on the CPU. Under torchrun it is data-parallel
(distributed.py): every process draws its own clips, ``batch_size`` clips per process (the global
batch is batch_size x world_size), DDP averages the gradients, and rank 0 alone writes files
(checkpoint, log, plot, export), validates and shows progress. A checkpoint holds every rank's RNG
states and can only be resumed with the same number of processes.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from compressai.entropy_models import EntropyBottleneck

from vidcodec.errors import ConfigError
from vidcodec.models.registry import MODELS, build_model, save_checkpoint
from vidcodec.quant.registry import QUANTIZERS, find_quantizer, get_lattice_quantizer
from vidcodec.tools import QUANT_SCOPES
from vidcodec.train.batches import BatchPrefetcher, BatchSpec
from vidcodec.train.clip_folder import DataFolder, folder_clip, open_data_folder
from vidcodec.train.curriculum import STAGES, frame_count_problem, get_stage
from vidcodec.train.distributed import (
    DistributedContext,
    average_gradients,
    average_values,
    gather_to_main,
    main_rank_decides,
    single_process_context,
    wrap_data_parallel,
)
from vidcodec.train.lattice_loop import install_lattice_in_the_loop
from vidcodec.train.stop_request import StopRequest
from vidcodec.train.synthetic import CLIP_MIX, DATA_RECIPE_VERSION, clip_mix_problem, random_clip

# What a run directory's last.pt must agree on with the command that resumes it.
RUN_IDENTITY_KEYS = ("model", "model_config", "stage", "init_from", "init_roles_from", "warm_start_from", "lattice",
                     "reference_codec", "learning_rate_scale", "data")
# A hyperprior sees crop / crop_multiple values of z per side (SSF: 2 x 2 at 256, CompressAI's training
# crop); with 1 x 1 it learns entropy parameters for that case only.
SMALLEST_SAFE_Z_SIDE = 2


@dataclass(frozen=True)
class TrainConfig:
    model: str = "ssf-small"
    model_config: dict = field(default_factory=dict)
    # Curriculum stage (curriculum.py): "intra", "pairs", "p-chains" or "chains" (the recipe before stages).
    stage: str = "chains"
    lmbda: float = 0.0067
    steps: int = 20000
    batch_size: int = 4  # clips per process: the global batch is batch_size x number of processes
    clip_frames: int = 3
    crop: int = 128
    learning_rate: float = 1e-4
    # Parameter-name prefix -> factor on learning_rate (the longest matching prefix wins), e.g.
    # {"gate": 10}: Adam moves a weight by about learning_rate a step, so a zero-initialised part added
    # to a trained model (dcvc-small-gated's gate) needs a larger rate to leave zero within a session.
    learning_rate_scale: dict = field(default_factory=dict)
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
    # Processes that make training clips ahead of the step that needs them (batches.py); 0 = in line.
    data_workers: int = 1
    # Fraction of clips per source (synthetic.CLIP_MIX's keys), for training and validation clips;
    # None: CLIP_MIX. E.g. {photo: 0.65, dead_leaves: 0.35} where PyAV (lavfi) is not installed.
    clip_mix: dict | None = None
    # A folder of the user's own clips (clip_folder.py: video files, Vimeo-90k septuplets, or folders
    # of numbered images) to train and validate on instead of the generated ones; None: generated.
    data: str | None = None
    init_from: str | None = None  # checkpoint to fine-tune from (e.g. another rate point)
    # Role -> checkpoint whose parameters of that role replace init_from's, e.g. {"intra": "a.pt"}:
    # assembles a rate point from an intra path trained in one run and an inter path from another.
    init_roles_from: dict = field(default_factory=dict)
    # Checkpoint of any model whose parameters with the same names and shapes are copied into this one
    # before training: a head start, e.g. mbt2018-mean-small's analysis and synthesis transforms (g_a,
    # g_s: CompressAI's same modules at the same widths) from a trained bmshj2018-factorized-small.
    warm_start_from: str | None = None
    # Lattice quantizer in the loop (lattice_loop.py), named as --quant names it (quant/registry.py;
    # an alias such as "a3*" is turned into the name, "oct"): trains the hyperpriors of lattice_scope
    # with straight-through lattice points for the decoder and lattice-cell noise for the entropy
    # model, cell probabilities estimated from lattice_samples quasi-Monte-Carlo points. None: rounding.
    lattice: str | None = None
    lattice_scope: str = "residual"
    lattice_samples: int = 256
    # Checkpoint of an image codec (e.g. vidcodec/weights/mbt2018-mean-small-q3.pt for lambda 0.0067)
    # whose reconstruction replaces frame 0 of every clip in the stages where frame 0 is only the
    # reference (pairs, p-chains): frozen, in eval mode (rounded latents, as when coding).
    reference_codec: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lattice", _quantizer_name(self.lattice))
        if self.data is not None:
            # Absolute: a run's identity is its folder, however (and from wherever) it was spelled.
            object.__setattr__(self, "data", str(Path(self.data).expanduser().absolute()))

    def validate(self) -> TrainConfig:
        problems = []
        if self.lmbda <= 0:
            problems.append(f"lmbda={self.lmbda} (expected > 0)")
        unknown_roles = sorted(set(self.init_roles_from) - {"intra", "inter"})
        if unknown_roles:
            problems.append(f"init_roles_from has roles {', '.join(unknown_roles)} (expected intra, inter)")
        if self.warm_start_from and self.init_from:
            problems.append("warm_start_from and init_from exclude each other (init_from loads every parameter)")
        if self.reference_codec and self.stage in STAGES and get_stage(self.stage).first_coded != 1:
            problems.append(f"reference_codec is for the stages whose frame 0 is only a reference (pairs, p-chains), "
                            f"not stage={self.stage!r}")
        if self.init_roles_from and not self.init_from:
            problems.append("init_roles_from needs init_from (the checkpoint for the other roles)")
        if self.data is not None and self.clip_mix is not None:
            problems.append("clip_mix mixes the generated clips and data replaces them: give one of the two")
        if self.clip_mix is not None and clip_mix_problem(self.clip_mix):
            problems.append(clip_mix_problem(self.clip_mix))
        bad_scales = {k: v for k, v in self.learning_rate_scale.items()
                      if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0}
        if bad_scales:
            problems.append(f"learning_rate_scale={bad_scales} (expected factors > 0, e.g. {{gate: 10}})")
        if self.data_workers < 0:
            problems.append(f"data_workers={self.data_workers} (expected >= 0)")
        if self.steps < 1 or self.batch_size < 1:
            problems.append("steps and batch_size must be >= 1")
        try:
            frames_problem = frame_count_problem(get_stage(self.stage), self.clip_frames)
        except ValueError as error:
            problems.append(str(error))
        else:
            if frames_problem:
                problems.append(frames_problem)
        multiple = MODELS[self.model].builder.crop_multiple if self.model in MODELS else 1
        if self.model not in MODELS:
            problems.append(f"model={self.model!r} (expected one of {', '.join(sorted(MODELS))})")
        elif self.crop < multiple or self.crop % multiple:
            problems.append(f"crop={self.crop} (expected a multiple of {multiple}, the model's analysis x "
                            "hyper-analysis stride)")
        elif self.crop // multiple < SMALLEST_SAFE_Z_SIDE:
            side = self.crop // multiple
            warnings.warn(
                f"crop={self.crop}: the hyperprior's z is {side} x {side} on such crops and its "
                f"decoder learns entropy parameters for that case only (measured with ssf-small: 3-6x the bits on "
                f"real frames after 8,000 steps at 128); use crop >= {SMALLEST_SAFE_Z_SIDE * multiple} for weights "
                f"you will code with", stacklevel=2)
        if self.lattice is not None:
            try:
                get_lattice_quantizer(self.lattice, "lattice")
            except ConfigError as error:
                problems.append(str(error))
            if self.lattice_scope not in QUANT_SCOPES:
                problems.append(f"lattice_scope={self.lattice_scope!r} (expected one of {', '.join(QUANT_SCOPES)})")
            if self.lattice_samples < 1:
                problems.append(f"lattice_samples={self.lattice_samples} (expected >= 1)")
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))
        return self


def _quantizer_name(lattice):
    """The canonical name of a spelling of a lattice quantizer; anything else unchanged (for
    validate() to report)."""
    quantizer = find_quantizer(lattice) if lattice is not None else None
    return quantizer.name if quantizer is not None and quantizer.lattice is not None else lattice


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


def rd_loss(model, frames: list[torch.Tensor], lmbda: float, stage: str = "chains") -> dict[str, torch.Tensor]:
    """frames: list of (N,3,H,W) float in [0,1]; ``model`` a FrameCodec (or DDP around one), whose
    forward returns a TrainingOutput. Returns loss, mse, bpp per coded frame and the loss averaged
    over them (the stage decides which frames are coded, curriculum.py)."""
    out = model(frames, stage=stage)
    num_pixels = frames[0].shape[0] * frames[0].shape[2] * frames[0].shape[3]
    targets = frames[get_stage(stage).coded_frames(len(frames))]
    mse = torch.stack([torch.mean((x_hat - x) ** 2) for x_hat, x in zip(out.x_hat, targets)])
    bpp = torch.stack(out.frame_bits()) / num_pixels
    loss = lmbda * 255**2 * mse.mean() + bpp.mean()
    return {"loss": loss, "mse": mse, "bpp": bpp}


def frames_from_clips(clips: np.ndarray) -> list[torch.Tensor]:
    """(T,N,H,W,3) float32 clips -> T tensors (N,3,H,W) float in [0,1], one per frame."""
    return list(torch.from_numpy(clips).permute(0, 1, 4, 2, 3).contiguous())


def batch_spec(config: TrainConfig) -> BatchSpec:
    mix = tuple(config.clip_mix.items()) if config.clip_mix is not None else None
    return BatchSpec(batch_size=config.batch_size, clip_frames=config.clip_frames, crop=config.crop, seed=config.seed,
                     clip_mix=mix, data=config.data)


def noise_seed(seed: int, rank: int, world_size: int) -> int | None:
    """Torch seed of a training process's quantization noise, or None to keep the one set before
    the model was built (a single process). Several processes need their own: a shared seed would
    repeat the same noise on every rank. (Clips are seeded per rank and step, batches.py.)"""
    if world_size == 1:
        return None
    return int(np.random.SeedSequence([seed, rank]).spawn(2)[1].generate_state(1)[0])


def validation_batches(config: TrainConfig) -> list[list[torch.Tensor]]:
    """Fixed held-out clips (held-out photos, or the data folder's validation sources; fixed seed):
    the same every evaluation and run."""
    rng = np.random.default_rng(10_000 + config.seed)
    if config.data is not None:
        folder = open_data_folder(config.data, config.clip_frames, config.crop)
        clips = [folder_clip(rng, folder, config.clip_frames, config.crop, "heldout")[:, None]
                 for _ in range(config.validation_clips)]
    else:
        clips = [random_clip(rng, config.clip_frames, config.crop, config.crop, "heldout", config.clip_mix)[:, None]
                 for _ in range(config.validation_clips)]
    return [frames_from_clips(clip) for clip in clips]


@torch.no_grad()
def validate(model, batches: list[list[torch.Tensor]], lmbda: float, stage: str = "chains") -> dict:
    """Average bpp and PSNR of the I- and P-frames a stage codes, on the validation clips (noise
    proxy): val_bpp_i, val_psnr_i when it codes I-frames, val_bpp_p, val_psnr_p when P-frames."""
    model.eval()
    by_type: dict[str, tuple[list, list]] = {}
    for frames in batches:
        terms = rd_loss(model, frames, lmbda, stage)
        for frame_type, bpp, mse in zip(get_stage(stage).coded_frame_types(len(frames)), terms["bpp"], terms["mse"]):
            bpps, mses = by_type.setdefault(frame_type.lower(), ([], []))
            bpps.append(bpp.item())
            mses.append(mse.item())
    model.train()
    record = {}
    for frame_type, (bpps, mses) in sorted(by_type.items()):
        record[f"val_bpp_{frame_type}"] = float(np.mean(bpps))
        record[f"val_psnr_{frame_type}"] = 10 * math.log10(1 / max(float(np.mean(mses)), 1e-12))
    return record


def load_named_checkpoint(path: str, key: str):
    """The LoadedModel of a vidcodec checkpoint of any model (the model it names); ``key`` is the
    config key that gave ``path``, for the error a plain state dict (which names none) gets."""
    from vidcodec.models.registry import checkpoint_model_id, load_model

    model_id = checkpoint_model_id(path)
    if model_id is None:
        raise ConfigError(f"{key} {path}: a plain state dict names no model; export a vidcodec checkpoint "
                          f"(vidcodec train --export) and give that")
    return load_model(model_id, checkpoint=path)


class Trainer:
    """Trains on ``ctx.device``; ``ctx`` from distributed.init_distributed() under torchrun, by
    default one process on the first GPU or the CPU. Every rank constructs a Trainer on the same
    ``out_dir`` (one machine or a shared file system) and calls run() the same number of times."""

    def __init__(self, config: TrainConfig, out_dir: Path, ctx: DistributedContext | None = None) -> None:
        self.config = config
        self.ctx = ctx or single_process_context()
        # Before the run directory exists: a bad data folder is refused before anything is written.
        self.data_folder: DataFolder | None = (open_data_folder(config.data, config.clip_frames, config.crop)
                                               if config.data is not None else None)
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.data_folder is not None and self.ctx.is_main:
            # The split is part of what the log's validation figures mean.
            (self.out_dir / "data.json").write_text(json.dumps(self.data_folder.summary(), indent=2) + "\n")
        torch.set_num_threads(config.num_threads)
        # Same seed on every rank: the same initial weights (DDP would copy rank 0's anyway).
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, **config.model_config)
        if hasattr(self.model, "lmbda"):
            # An encoder that makes rate-distortion decisions (hybrid-small's residual skip) makes them
            # with the lambda its weights were trained for; the export's model_config records it.
            self.model.lmbda = config.lmbda
        # Stages before this one (their provenance), carried into this run's export.
        self.earlier_stages: list[dict] = []
        if config.init_from:
            from vidcodec.models.registry import load_model

            initial = load_model(config.model, checkpoint=config.init_from)
            self.model.load_state_dict(initial.codec.state_dict())
            self.earlier_stages = curriculum_record(initial.provenance)
        for role, path in sorted(config.init_roles_from.items()):
            self._load_role(role, path)
        if config.warm_start_from:
            self._warm_start(config.warm_start_from)
        self.reference_codec = self._load_reference_codec(config.reference_codec) if config.reference_codec else None
        if config.lattice is not None:
            install_lattice_in_the_loop(self.model, QUANTIZERS[config.lattice].lattice, config.lattice_scope,
                                        config.lattice_samples)
        self.model.to(self.ctx.device)
        self.model.train()
        # The entropy bottlenecks' quantiles are fitted by the auxiliary loss alone; keeping them out
        # of the main optimizer also keeps their gradients out of the main gradient-norm clipping.
        # Parameters outside the stage's roles are frozen (the pairs stage never runs the intra path).
        trained_roles = get_stage(config.stage).trained_roles
        for name, parameter in self.model.named_parameters():
            if not name.endswith(".quantiles"):
                parameter.requires_grad_(self.model.parameter_role(name) in trained_roles)
        main_named = [(n, p) for n, p in self.model.named_parameters()
                      if not n.endswith(".quantiles") and p.requires_grad]
        self.main_params = [p for _, p in main_named]
        self.aux_params = [p for n, p in self.model.named_parameters() if n.endswith(".quantiles")]
        self.optimizer = torch.optim.Adam(self._parameter_groups(main_named), lr=config.learning_rate)
        self.aux_optimizer = torch.optim.Adam(self.aux_params, lr=config.aux_learning_rate)
        milestones = [int(f * config.steps) for f in config.lr_drops]
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones, gamma=0.1)
        torch_seed = noise_seed(config.seed, self.ctx.rank, self.ctx.world_size)
        if torch_seed is not None:
            torch.manual_seed(torch_seed)
        self.step = 0
        self.wall_s = 0.0
        self.state_path = self.out_dir / "last.pt"
        self.stopped_by: str | None = None  # the signal that stopped the last run() early (stop_request.py)
        self.log_path = self.out_dir / "train_log.jsonl"
        if self.state_path.exists():
            self._resume()
        # The forward pass of the main loss goes through DDP (which averages its gradients); the
        # aux loss, state dicts and export use self.model. The quantiles stay out of DDP: the aux
        # loss trains them with a backward pass of its own, which DDP does not expect.
        quantile_names = [n for n, _ in self.model.named_parameters() if n.endswith(".quantiles")]
        self.forward_model = wrap_data_parallel(self.model, self.ctx, quantile_names)

    def _load_role(self, role: str, path: str) -> None:
        """Replace the parameters (and their entropy models' buffers) of ``role`` by a checkpoint's."""
        from vidcodec.models.registry import load_model

        donor = load_model(self.config.model, checkpoint=path)
        state = self.model.state_dict()
        replaced = {k: v for k, v in donor.codec.state_dict().items() if self.model.parameter_role(k) == role}
        for key, value in replaced.items():
            # CDF tables differ in length between checkpoints (entropy bottlenecks fitted to other
            # quantiles): give the buffer the donor's shape before loading into it.
            module_name, _, name = key.rpartition(".")
            module = self.model.get_submodule(module_name)
            if name in module._buffers and state[key].shape != value.shape:
                module.register_buffer(name, torch.empty_like(value))
        self.model.load_state_dict({**self.model.state_dict(), **replaced})
        self.earlier_stages = self.earlier_stages + [
            {**record, "role": role} for record in curriculum_record(donor.provenance)
        ]

    def _load_reference_codec(self, path: str) -> torch.nn.Module:
        codec = load_named_checkpoint(path, "reference_codec").codec.to(self.ctx.device).eval()
        codec.requires_grad_(False)
        return codec

    @torch.no_grad()
    def with_reference(self, frames: list[torch.Tensor]) -> list[torch.Tensor]:
        """``frames`` with frame 0 as the reference codec decodes it (unchanged without one)."""
        if self.reference_codec is None:
            return frames
        return [self.reference_codec(frames[:1], stage="intra").x_hat[0].clamp(0.0, 1.0)] + frames[1:]

    def _warm_start(self, path: str) -> None:
        """Copy the parameters of another model's checkpoint whose names and shapes match this model's."""
        donor = load_named_checkpoint(path, "warm_start_from")
        own = dict(self.model.named_parameters())
        copied = {name: value for name, value in donor.codec.named_parameters()
                  if name in own and own[name].shape == value.shape}
        if not copied:
            raise ConfigError(f"warm_start_from {path}: no parameter of model '{donor.model_id}' has a name "
                              f"and shape of model '{self.config.model}'")
        with torch.no_grad():
            for name, value in copied.items():
                own[name].copy_(value)
        modules = sorted({name.split(".")[0] for name in copied})
        self.earlier_stages = [{**record, "warm_start": {"model": donor.model_id, "modules": modules,
                                                         "parameters": len(copied)}}
                               for record in curriculum_record(donor.provenance)]

    # --- state ---------------------------------------------------------------------------
    def _rng_state(self) -> dict:
        """This process's random streams: noise (torch, CUDA), python. Clips need none: they are a
        function of (seed, rank, step)."""
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.ctx.device) if self.ctx.device.type == "cuda" else None,
            "python": random.getstate(),
        }

    def _set_rng_state(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        if self.ctx.device.type == "cuda" and state["cuda"] is not None:
            torch.cuda.set_rng_state(state["cuda"], self.ctx.device)
        random.setstate(state["python"])

    def _save_state(self) -> None:
        """Collective: every rank hands its RNG states to rank 0, which writes the file."""
        rng_states = gather_to_main(self._rng_state(), self.ctx)
        if not self.ctx.is_main:
            return
        state = {
            "config": asdict(self.config),
            "step": self.step,
            "wall_s": self.wall_s,
            "world_size": self.ctx.world_size,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "aux_optimizer": self.aux_optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_states,  # one entry per rank
        }
        tmp = self.state_path.with_name("last.pt.tmp")
        torch.save(state, tmp)
        tmp.replace(self.state_path)

    def _resume(self) -> None:
        # Onto the CPU first: tensors saved from cuda:0 would otherwise all land on rank 0's GPU,
        # and RNG states must be CPU tensors; load_state_dict moves the rest to the model's device.
        state = torch.load(self.state_path, map_location="cpu", weights_only=False)
        saved_world_size = state.get("world_size", 1)
        if saved_world_size != self.ctx.world_size:
            # Every rank reads the same file and raises the same error, before any collective.
            how = "without torchrun" if saved_world_size == 1 else f"with torchrun --nproc_per_node {saved_world_size}"
            raise ConfigError(
                f"{self.state_path} was written with world_size={saved_world_size} (training processes) and this "
                f"run has world_size={self.ctx.world_size}: resume it {how}, or train into a new --out directory"
            )
        saved_config = {"data": None, **state.get("config", {})}  # runs saved before data existed: generated
        if "lattice" in saved_config:  # runs saved before quant/registry.py may name it "a3*"
            saved_config["lattice"] = _quantizer_name(saved_config["lattice"])
        changed = [key for key in RUN_IDENTITY_KEYS
                   if key in saved_config and saved_config[key] != asdict(self.config)[key]]
        if changed:
            # Resuming would load weights of another start (or model) into this one: refuse by name
            # instead of failing on a tensor shape, or silently continuing another run.
            details = "; ".join(f"{key}: run has {saved_config[key]!r}, asked {asdict(self.config)[key]!r}"
                                for key in changed)
            raise ConfigError(f"{self.out_dir} holds a run started otherwise ({details}): resume it with its own "
                              "settings, or train into a new --out directory")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.aux_optimizer.load_state_dict(state["aux_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if "rng" in state:
            self._set_rng_state(state["rng"][self.ctx.rank])
        else:  # written before distributed training: one process, RNG states at the top level
            self._set_rng_state({"torch": state["torch_rng"], "cuda": None, "python": state["python_rng"]})
        self.step, self.wall_s = state["step"], state["wall_s"]
        if self.ctx.is_main:
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

    def _parameter_groups(self, main_named: list[tuple[str, torch.nn.Parameter]]) -> list[dict]:
        """The main (name, parameter) pairs in groups by learning_rate_scale; the unscaled group first
        (it is the one logged as "lr")."""
        scales = self.config.learning_rate_scale
        unmatched = sorted(prefix for prefix in scales if not any(n.startswith(prefix) for n, _ in main_named))
        if unmatched:
            raise ConfigError(f"learning_rate_scale names {', '.join(unmatched)}, which matches no trained "
                              f"parameter of {self.config.model} in stage {self.config.stage!r}")
        factors: dict[float, list] = {1.0: []}
        for name, parameter in main_named:
            prefix = max((k for k in scales if name.startswith(k)), key=len, default=None)
            factors.setdefault(float(scales[prefix]) if prefix else 1.0, []).append(parameter)
        return [{"params": params, "lr": self.config.learning_rate * factor}
                for factor, params in factors.items() if params]

    # --- loop ----------------------------------------------------------------------------
    def train_step(self, batches: BatchPrefetcher) -> dict:
        return self.optimize(frames_from_clips(batches.get(self.step)))

    def optimize(self, frames: list[torch.Tensor]) -> dict:
        """One step of both optimizers on ``frames`` (list of (N,3,H,W) float in [0,1]), this rank's
        share of the global batch. Returns the losses averaged over all ranks."""
        frames = self.with_reference([x.to(self.ctx.device) for x in frames])
        terms = rd_loss(self.forward_model, frames, self.config.lmbda, self.config.stage)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()  # under DDP the gradients arrive averaged over the ranks
        torch.nn.utils.clip_grad_norm_(self.main_params, self.config.clip_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        # Every entropy bottleneck's quantile loss (models differ in what their aux_loss() returns).
        aux_loss = sum(module.loss() for module in self.model.modules() if isinstance(module, EntropyBottleneck))
        self.aux_optimizer.zero_grad(set_to_none=True)
        aux_loss.backward()
        # The aux loss does not depend on the clips, yet GPU kernels need not be bitwise
        # deterministic: averaging keeps the quantiles identical on every rank.
        average_gradients(self.aux_params, self.ctx)
        self.aux_optimizer.step()
        loss, bpp, mse, aux = average_values(
            [terms["loss"].item(), terms["bpp"].mean().item(), terms["mse"].mean().item(), aux_loss.item()], self.ctx
        )
        return {
            "loss": loss,
            "bpp": bpp,
            "psnr": 10 * math.log10(1 / max(mse, 1e-12)),
            "aux_loss": aux,
            "lr": self.optimizer.param_groups[0]["lr"],
        }

    def run(self, progress: bool = True, max_steps: int | None = None, max_wall_s: float | None = None) -> None:
        """Train until config.steps (or ``max_steps`` more steps, or ``max_wall_s`` seconds of this
        call's wall time, for a machine lent for a few minutes), checkpointing as it goes. SIGINT or
        SIGTERM ends it after the step under way, checkpointed, with ``stopped_by`` set."""
        from tqdm import tqdm

        target = self.config.steps if max_steps is None else min(self.config.steps, self.step + max_steps)
        is_main = self.ctx.is_main
        val_batches = []
        if is_main:  # only rank 0 validates
            val_batches = [self.with_reference([x.to(self.ctx.device) for x in frames])
                           for frames in validation_batches(self.config)]
        bar = tqdm(total=self.config.steps, initial=self.step, desc="train", disable=not (progress and is_main))
        last_save = time.monotonic()
        batches = BatchPrefetcher(batch_spec(self.config), self.ctx.rank, self.config.data_workers)
        try:
            deadline = None if max_wall_s is None else time.monotonic() + max_wall_s
            with StopRequest() as stop:
                self._loop(target, batches, val_batches, bar, last_save, deadline, stop)
            self.stopped_by = stop.signal_name
        finally:
            batches.close()
        bar.close()
        self._save_state()
        if is_main and self.log_path.exists():  # a run stopped before its first log line has none
            plot_training_log(self.log_path, self.out_dir / "loss.png")

    def _loop(self, target: int, batches: BatchPrefetcher, val_batches: list, bar, last_save: float,
              deadline: float | None, stop: StopRequest) -> None:
        is_main = self.ctx.is_main
        while self.step < target:
            # On rank 0's clock and signals, so that every rank stops at the same step.
            out_of_time = deadline is not None and time.monotonic() >= deadline
            if main_rank_decides(out_of_time or stop.requested, self.ctx):
                break
            start = time.monotonic()
            metrics = self.train_step(batches)
            self.step += 1
            self.wall_s += time.monotonic() - start
            if is_main and (self.step % self.config.log_every == 0 or self.step == target):
                record = {"step": self.step, "wall_s": round(self.wall_s, 2), **metrics}
                if self.step % self.config.validate_every == 0 or self.step == self.config.steps:
                    record.update(validate(self.model, val_batches, self.config.lmbda, self.config.stage))
                self._log(record)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", bpp=f"{metrics['bpp']:.3f}", psnr=f"{metrics['psnr']:.2f}")
            bar.update(1)
            # On rank 0's clock: every rank takes part in a save (it gathers their RNG states).
            if main_rank_decides(time.monotonic() - last_save >= self.config.checkpoint_every_s, self.ctx):
                self._save_state()
                last_save = time.monotonic()

    def _data_provenance(self) -> dict:
        """The training material: the user's data folder (path, layout, file count, validation split),
        or the generated recipe."""
        if self.data_folder is not None:
            return {"data": self.data_folder.summary()}
        return {"data": "vidcodec.train.synthetic.random_clip (scikit-image photos with synthetic motion, lavfi "
                        "sources), split=train",
                "data_recipe": DATA_RECIPE_VERSION, "clip_mix": self.config.clip_mix or CLIP_MIX}

    def export(self, path: Path, extra_provenance: dict | None = None) -> None:
        """Write the model as a shippable vidcodec checkpoint (float16 weights, CDF tables).
        With several processes, call it on rank 0 only (all ranks hold the same weights)."""
        validations = []
        if self.log_path.exists():
            records = [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]
            validations = [r for r in records if any(k.startswith("val_psnr") for k in r)]
        provenance = {
            "train_config": asdict(self.config),
            "steps": self.step,
            # Held-out clips through the training forward pass (noise-quantized proxy, not coded).
            "last_validation": {k: v for k, v in validations[-1].items() if k == "step" or k.startswith("val_")}
            if validations else None,
            "wall_s": round(self.wall_s, 1),
            **self._data_provenance(),
            # Every stage that led to these weights, oldest first (this run last).
            "curriculum": self.earlier_stages + [{
                "stage": self.config.stage, "steps": self.step, "wall_s": round(self.wall_s, 1),
                "lmbda": self.config.lmbda, "crop": self.config.crop, "batch_size": self.config.batch_size,
                "clip_frames": self.config.clip_frames, "world_size": self.ctx.world_size,
                **({"data": self.data_folder.root, "data_files": self.data_folder.summary()["files"]}
                   if self.data_folder is not None else
                   {"data_recipe": DATA_RECIPE_VERSION, "clip_mix": self.config.clip_mix or CLIP_MIX}),
                "init_from": self.config.init_from, "device": self.ctx.device.type,
                **({"reference_codec": self.config.reference_codec} if self.config.reference_codec else {}),
            }],
            **(extra_provenance or {}),
        }
        # CDF tables are built on the CPU, where the decoder checks them, whatever device trained.
        model = self.model if self.ctx.device.type == "cpu" else copy.deepcopy(self.model).cpu()
        save_checkpoint(path, model.eval(), self.config.model, provenance)
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
        for frame_type, label in (("i", "held-out I-frames"), ("p", "held-out P-frames")):
            val_key = {"bpp": f"val_bpp_{frame_type}", "psnr": f"val_psnr_{frame_type}"}.get(key)
            val = [(r["step"], r[val_key]) for r in records if val_key and val_key in r]
            if val:
                ax.plot(*zip(*val), "o-", label=label)
                ax.legend()
        ax.set_xlabel("step")
        ax.set_title(key)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def curriculum_record(provenance: dict) -> list[dict]:
    """The stages recorded in a checkpoint's provenance. A checkpoint from before stages existed
    counts as one "chains" stage of its recorded steps (its train_config says how it was trained)."""
    if "curriculum" in provenance:
        return list(provenance["curriculum"])
    if "train_config" in provenance:
        train_config = provenance["train_config"]
        return [{"stage": "chains", "steps": provenance.get("steps"), "wall_s": provenance.get("wall_s"),
                 "lmbda": train_config.get("lmbda"), "crop": train_config.get("crop"),
                 "batch_size": train_config.get("batch_size"), "clip_frames": train_config.get("clip_frames"),
                 "data_recipe": provenance.get("data_recipe", 1), "init_from": train_config.get("init_from")}]
    return []
