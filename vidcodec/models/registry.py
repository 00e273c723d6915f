"""Model registry: model ids -> builders, and every way to get weights.

Weights come from, in this order of precedence:
  1. ``checkpoint``: a local file. Either a vidcodec checkpoint (dict with "format":
     "vidcodec-checkpoint", "model_id", "model_config", "state_dict") or a bare CompressAI state
     dict (e.g. a downloaded zoo file, for model "ssf").
  2. ``pretrained``: the CompressAI zoo (ssf: quality 1..9; image codecs: the zoo's qualities), downloaded
     by torch.hub into ``$TORCH_HOME/hub/checkpoints`` and read from there on later runs.
  3. ``quality``: a checkpoint shipped with vidcodec (vidcodec/weights/<model>-q<Q>.pt), or, for a
     model whose entry names ``derived_from``, weights made at load time from that model's shipped
     checkpoint of the same rate point (hybrid-small from mbt2018-mean-small: no file of its own, so
     no weights that add nothing to every clone's history).
Traditional intra codecs (models/traditional_intra.py) have no weights: ``quality`` picks their
settings, and a digest of the settings stands in for the checkpoint hash.

The checkpoint hash written into every bitstream is sha256 over the model's state dict (keys,
dtypes, shapes and bytes, in key order) after the entropy models' CDF tables are in place. CDF
tables stored in the file are used as they are (``update(force=False)``); the tables vidcodec leaves
out of its own files (Gaussian conditionals, a function of the scale table) are rebuilt on load,
so a machine whose floating point builds them differently gets a hash mismatch, not garbage.
"""

from __future__ import annotations

import copy
import hashlib
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from compressai.entropy_models import GaussianConditional
from compressai.models.base import get_scale_table

from vidcodec.errors import CheckpointError
from vidcodec.models.dcvc_small import DcvcSmallCodec
from vidcodec.models.hybrid_small import HybridSmallCodec
from vidcodec.models.image_codecs import Bmshj2018FactorizedCodec, Cheng2020AttnCodec, Mbt2018Codec, Mbt2018MeanCodec
from vidcodec.models.interface import FrameCodec
from vidcodec.models.ssf import ScaleSpaceFlowCodec
from vidcodec.models.traditional_intra import PyAvIntraCodec

CHECKPOINT_FORMAT = "vidcodec-checkpoint"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# CDF tables of the Gaussian conditionals: a function of the scale table alone, rebuilt on load.
DERIVED_BUFFER_SUFFIXES = tuple(
    f"gaussian_conditional.{name}" for name in ("_quantized_cdf", "_offset", "_cdf_length")
)


@dataclass(frozen=True)
class ModelSpec:
    """A model family's entry: ``builder(**config)`` returns its FrameCodec (models/interface.py)."""

    builder: Callable[..., FrameCodec]
    default_config: dict
    description: str
    zoo_name: str | None = None  # CompressAI zoo architecture name, when the zoo has weights
    weightless: bool = False  # a traditional codec: built from its config and --quality alone
    # The I-frames' model when the shipped weights code a sequence and none is named (DCVC's design:
    # a separate image codec for I-frames); its shipped rate point of the same quality. Read by
    # config.resolve_intra_model, the one place that decides the I-frames' model.
    shipped_intra_model: str | None = None
    # Shipped weights without a file of their own: builder.from_image_codec(the shipped weights of this
    # model at the same rate point, their training lambda), when vidcodec/weights/<id>-q<Q>.pt is absent.
    derived_from: str | None = None


# Adding a model family: its FrameCodec module, an entry here, and its YAML (configs/).
MODELS: dict[str, ModelSpec] = {
    "ssf": ModelSpec(
        builder=ScaleSpaceFlowCodec,
        default_config={},
        description="CompressAI ssf2020 architecture (34.2 M parameters)",
        zoo_name="ssf2020",
    ),
    "ssf-small": ModelSpec(
        builder=ScaleSpaceFlowCodec,
        default_config={"mid_planes": 48, "latent_planes": 64, "flow_in_pixels": True},
        description="SSF structure with narrow layers, trainable on a CPU",
        shipped_intra_model="mbt2018-mean-small",
    ),
    "dcvc-small": ModelSpec(
        builder=DcvcSmallCodec,
        default_config={"features": 64, "latent": 96},
        description="conditional (DCVC-style) codec: implicit motion, temporal prior, feature state",
        shipped_intra_model="mbt2018-mean-small",
    ),
    "dcvc-small-gated": ModelSpec(
        builder=DcvcSmallCodec,
        default_config={"features": 64, "latent": 96, "reference_gate": True},
        description="dcvc-small whose P-frames can keep the previous picture's detail (a gate on it); "
                    "an experiment, no shipped weights",
    ),
    "dcvc-small-detail": ModelSpec(
        builder=DcvcSmallCodec,
        default_config={"features": 64, "latent": 96, "detail_head": True},
        description="dcvc-small whose P-frame picture adds a non-linear detail head to its rank-64 "
                    "to_pixels; shipped q1..q4",
        shipped_intra_model="mbt2018-mean-small",
    ),
    "hybrid-small": ModelSpec(
        builder=HybridSmallCodec,
        default_config={"N": 64, "M": 96},
        description="block motion search + motion-compensated prediction in the pixel domain + learned "
                    "residual (mean-scale hyperprior); a P-frame can copy its reference",
        shipped_intra_model="mbt2018-mean-small",
        derived_from="mbt2018-mean-small",
    ),
    "bmshj2018-factorized": ModelSpec(
        builder=Bmshj2018FactorizedCodec,
        default_config={"N": 128, "M": 192},
        description="image codec: CompressAI's bmshj2018-factorized (factorized prior), I-frames only",
        zoo_name="bmshj2018-factorized",
    ),
    "mbt2018-mean": ModelSpec(
        builder=Mbt2018MeanCodec,
        default_config={"N": 128, "M": 192},
        description="image codec: CompressAI's mbt2018-mean (mean-scale hyperprior), I-frames only",
        zoo_name="mbt2018-mean",
    ),
    # Small image codecs the project trains (configs/train/*-small.yaml); shipped weights
    # vidcodec/weights/<id>-q<Q>.pt. Same classes and state-dict keys as CompressAI's, narrow widths.
    "bmshj2018-factorized-small": ModelSpec(
        builder=Bmshj2018FactorizedCodec,
        default_config={"N": 64, "M": 96},
        description="image codec: bmshj2018-factorized with narrow layers (N=64, M=96), I-frames only",
    ),
    "mbt2018-mean-small": ModelSpec(
        builder=Mbt2018MeanCodec,
        default_config={"N": 64, "M": 96},
        description="image codec: mbt2018-mean with narrow layers (N=64, M=96), I-frames only",
    ),
    "mbt2018": ModelSpec(
        builder=Mbt2018Codec,
        default_config={"N": 192, "M": 192},
        description="image codec: CompressAI's mbt2018 (hyperprior + autoregressive context), I-frames only",
        zoo_name="mbt2018",
    ),
    "cheng2020-attn": ModelSpec(
        builder=Cheng2020AttnCodec,
        default_config={"N": 128},
        description="image codec: CompressAI's cheng2020-attn (attention transforms, mbt2018's prior), I-frames only",
        zoo_name="cheng2020-attn",
    ),
    # QPs of q1..q4: of three sets tried under the shipped ssf-small's P-frames on the stand-ins (x265
    # 40-31, 37-28, 34-25), 37-28 gave the lowest BD-rate; SVT-AV1's give about the same bits and PSNR
    # on the stand-ins' first frames (README, "I-frames by x265 or SVT-AV1").
    "x265-intra": ModelSpec(
        builder=PyAvIntraCodec,
        default_config={"library": "libx265", "qp_by_quality": [37, 34, 31, 28], "preset": "medium"},
        description="I-frames only: HEVC intra by libx265 through PyAV, constant QP",
        weightless=True,
    ),
    "svtav1-intra": ModelSpec(
        builder=PyAvIntraCodec,
        default_config={"library": "libsvtav1", "qp_by_quality": [55, 50, 45, 40], "preset": "8"},
        description="I-frames only: AV1 intra by SVT-AV1 through PyAV, constant QP",
        weightless=True,
    ),
}


@dataclass
class LoadedModel:
    codec: FrameCodec
    model_id: str
    quality: int  # 0 when the weights are not a named rate point
    checkpoint_hash: bytes  # 16 bytes
    source: str  # human-readable origin of the weights, for logs and summaries
    provenance: dict


def build_model(model_id: str, **config) -> FrameCodec:
    if model_id not in MODELS:
        raise CheckpointError(f"unknown model '{model_id}' (known: {', '.join(sorted(MODELS))})")
    spec = MODELS[model_id]
    return spec.builder(**{**spec.default_config, **config})


def state_dict_hash(model: torch.nn.Module) -> bytes:
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes() if tensor.numel() else b"")
    return digest.digest()[:16]


def shipped_checkpoint_path(model_id: str, quality: int) -> Path:
    return WEIGHTS_DIR / f"{model_id}-q{quality}.pt"


def shipped_weights_file(model_id: str, quality: int) -> Path | None:
    """The file the shipped weights of (model_id, quality) come from: the model's own checkpoint, or
    the one its weights are derived from (ModelSpec.derived_from); None when there are none."""
    own = shipped_checkpoint_path(model_id, quality)
    if own.is_file():
        return own
    spec = MODELS.get(model_id)
    if spec is not None and spec.derived_from:
        donor = shipped_checkpoint_path(spec.derived_from, quality)
        return donor if donor.is_file() else None
    return None


def _load_derived(model_id: str, quality: int) -> LoadedModel:
    donor = load_model(MODELS[model_id].derived_from, quality=quality)
    lmbda = donor.provenance.get("train_config", {}).get("lmbda")
    if not isinstance(lmbda, (int, float)):
        raise CheckpointError(f"{donor.source} records no training lambda; {model_id} cannot be derived from it")
    codec = MODELS[model_id].builder.from_image_codec(donor.codec, float(lmbda))
    provenance = {"derived_from": {"model": donor.model_id, "source": donor.source,
                                   "checkpoint_hash": donor.checkpoint_hash.hex(), "provenance": donor.provenance},
                  "train_config": {"lmbda": lmbda}}
    return LoadedModel(codec, model_id, quality, state_dict_hash(codec), f"derived from {donor.source}", provenance)


def save_checkpoint(
    path: Path, model: FrameCodec, model_id: str, provenance: dict, float16: bool = True
) -> None:
    """Write a vidcodec checkpoint (weights + CDF tables) atomically: temporary file, then rename.

    The Gaussian conditionals' CDF tables (2.4 MB for SSF) are left out: they depend only on the
    scale table and are rebuilt on load. float16 halves the rest (shipped checkpoints must stay
    under 10 MiB). The weights are rounded
    to float16 *before* the CDF tables are computed, so tables and weights agree; buffers such as
    the scale table stay float32. Loading converts the weights back to float32.
    """
    model = copy.deepcopy(model).eval()
    # Quantiles stay float32: the CDF tables are built from them and they are tiny.
    halved = {name for name, _ in model.named_parameters() if float16 and not name.endswith(".quantiles")}
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in halved:
                parameter.copy_(parameter.half().float())
    # Fit the entropy bottlenecks' quantiles by bisection (exact, unlike a short aux-loss training).
    model.update(force=True, update_quantiles=True)
    state_dict = {
        name: tensor.half() if name in halved else tensor
        for name, tensor in model.state_dict().items()
        if not name.endswith(DERIVED_BUFFER_SUFFIXES)
    }
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "model_id": model_id,
        "model_config": model.config(),
        "state_dict": state_dict,
        "provenance": provenance,
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def _read_file(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise CheckpointError(f"checkpoint {path} could not be read ({type(error).__name__}: {error})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(data).__name__}, expected a dict")
    return data


def _build_without_init(model_id: str, config: dict) -> FrameCodec:
    """build_model without the random initialization that load_state_dict overwrites (0.14 s for ssf's
    34 M parameters, more than a 1080p frame's metrics): built on the meta device, then given memory
    without values. A strict load_state_dict writes every parameter and persistent buffer; a model
    with tensors a state dict does not hold (non-persistent buffers, plain tensor attributes) would
    keep garbage in them, so such a model is built the ordinary way, as is one whose construction needs
    values (CompressAI's GDN computes its parametrization from tensors it makes on the CPU); a real
    error in the model's construction is raised by the ordinary build."""
    try:
        with torch.device("meta"):
            model = build_model(model_id, **config)
    except RuntimeError:
        return build_model(model_id, **config)
    for module in model.modules():
        if module._non_persistent_buffers_set or any(isinstance(v, torch.Tensor) for v in vars(module).values()):
            return build_model(model_id, **config)
    return model.to_empty(device="cpu")


def _instantiate(model_id: str, config: dict, state_dict: dict, where: str) -> FrameCodec:
    from compressai.zoo.pretrained import load_pretrained  # key renames of old CompressAI files

    model = _build_without_init(model_id, config)
    state_dict = load_pretrained(state_dict)
    missing_tables = [k for k in model.state_dict() if k.endswith(DERIVED_BUFFER_SUFFIXES) and k not in state_dict]
    if missing_tables:
        # Only the Gaussian conditionals: updating the whole model would size the entropy
        # bottlenecks' buffers, and then the file's tables would no longer load into them.
        for name, module in model.named_modules():
            if isinstance(module, GaussianConditional):
                module.update_scale_table(state_dict.get(f"{name}.scale_table", get_scale_table()), force=True)
        state_dict.update({k: model.state_dict()[k] for k in missing_tables})
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, KeyError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise CheckpointError(f"{where} does not fit model '{model_id}': {first_line}") from None
    model.update(force=False)
    return model.eval()


def load_model(
    model_id: str,
    quality: int | None = None,
    checkpoint: str | Path | None = None,
    pretrained: bool = False,
) -> LoadedModel:
    """Build ``model_id`` and load its weights (see module docstring for the precedence)."""
    if model_id not in MODELS:
        raise CheckpointError(f"unknown model '{model_id}' (known: {', '.join(sorted(MODELS))})")
    spec = MODELS[model_id]
    provenance: dict = {}
    if spec.weightless:
        return _load_weightless(model_id, quality, checkpoint, pretrained)
    if checkpoint is not None:
        path = Path(checkpoint)
        data = _read_file(path)
        if data.get("format") == CHECKPOINT_FORMAT:
            if data.get("model_id") != model_id:
                raise CheckpointError(
                    f"checkpoint {path} is for model '{data.get('model_id')}', not '{model_id}' "
                    f"(pass --model {data.get('model_id')})"
                )
            config, state_dict = data.get("model_config", {}), data.get("state_dict", {})
            provenance = data.get("provenance", {})
        else:
            config, state_dict = {}, data.get("state_dict", data)
        model = _instantiate(model_id, config, state_dict, f"checkpoint {path}")
        # A local file is not a named rate point: the decoder must be given the same file.
        source, quality = f"checkpoint {path}", 0
    elif pretrained:
        if spec.zoo_name is None:
            raise CheckpointError(f"model '{model_id}' has no CompressAI zoo weights; use --quality or --checkpoint")
        model, source = _load_from_zoo(model_id, spec.zoo_name, quality)
    else:
        if quality is None:
            raise CheckpointError("no weights given: pass --quality Q, --checkpoint PATH or --pretrained")
        path = shipped_checkpoint_path(model_id, quality)
        if not path.is_file() and spec.derived_from and shipped_weights_file(model_id, quality):
            return _load_derived(model_id, quality)
        if not path.is_file():
            available = sorted(p.name for p in WEIGHTS_DIR.glob(f"{model_id}-q*.pt"))
            raise CheckpointError(
                f"no shipped checkpoint for model '{model_id}' quality {quality} "
                f"(shipped: {', '.join(available) or 'none'}); pass --checkpoint PATH"
                + (" or --pretrained" if spec.zoo_name else "")
            )
        loaded = load_model(model_id, checkpoint=path)
        loaded.quality, loaded.source = quality, f"shipped {path.name}"
        return loaded
    return LoadedModel(model, model_id, quality or 0, state_dict_hash(model), source, provenance)


def checkpoint_model_id(path: str | Path) -> str | None:
    """The model id a vidcodec checkpoint was written for; None for a plain state dict (e.g. a
    CompressAI file), which names no model."""
    data = _read_file(Path(path))
    if data.get("format") != CHECKPOINT_FORMAT:
        return None
    if data.get("model_id") not in MODELS:
        raise CheckpointError(f"checkpoint {path} is for model {data.get('model_id')!r}, which this vidcodec does "
                              f"not know (known: {', '.join(sorted(MODELS))})")
    return data["model_id"]


def _load_weightless(model_id: str, quality: int | None, checkpoint, pretrained: bool) -> LoadedModel:
    if checkpoint is not None or pretrained:
        raise CheckpointError(f"model '{model_id}' is a traditional codec without weights: pass --quality Q only")
    if quality is None:
        raise CheckpointError(f"model '{model_id}' needs --quality Q (its rate point)")
    codec = build_model(model_id, quality=quality)
    return LoadedModel(codec, model_id, quality, codec.settings_digest(),
                       f"{MODELS[model_id].description.split(': ', 1)[1]}, QP {codec.qp}", {})


def _load_from_zoo(model_id: str, zoo_name: str, quality: int | None) -> tuple[FrameCodec, str]:
    from compressai.zoo import image, video

    # Image architectures change width with the rate point (the zoo's cfgs); video ones do not.
    is_image = zoo_name in image.model_urls
    urls = (image if is_image else video).model_urls[zoo_name]["mse"]
    if quality not in urls:
        raise CheckpointError(f"--pretrained needs --quality in 1..{max(urls)} for '{model_id}'")
    config = dict(zip(("N", "M"), image.cfgs[zoo_name][quality])) if is_image else {}
    url = urls[quality]
    cache_dir = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        state_dict = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True)
    except (urllib.error.URLError, OSError) as error:
        raise CheckpointError(
            f"cannot download {url} ({error}); with no internet, put the file at "
            f"{cache_dir / url.rsplit('/', 1)[-1]} (TORCH_HOME sets the cache) or pass --checkpoint"
        ) from None
    model = _instantiate(model_id, config, state_dict, f"zoo weights {url}")
    return model, f"CompressAI zoo {zoo_name} mse q{quality}"
