"""Codec configuration: YAML defaults (configs/*.yaml) overridden by command-line flags, validated once."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from vidcodec.errors import ConfigError
from vidcodec.latent_refinement import DEFAULT_ITERATIONS, DEFAULT_LEARNING_RATE, RefineSettings
from vidcodec.quant.registry import QUANTIZER_NAMES, QUANTIZERS, find_quantizer
from vidcodec.tools import DEFAULT_CANDIDATES, QUANT_SCOPES, SHIFT_SCOPES, CodingTools, ShiftSettings, roles_mask

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"
MAX_THREADS = 255  # stored in one byte of the sequence header
# encode_image and eval-images without --model: the image codec the project trains and ships.
DEFAULT_IMAGE_MODEL = "mbt2018-mean-small"


@dataclass(frozen=True)
class CodecConfig:
    model: str = "hybrid-small"
    quality: int | None = 3
    checkpoint: str | None = None
    pretrained: bool = False
    # The I-frames' model when it is not ``model`` (None: the same model and weights; any intra
    # codec can start any inter codec, models/interface.py). Weights: intra_checkpoint, else the
    # shipped intra_quality (default: quality). load_config fills it in (resolve_intra_model: the
    # registry's image codec for shipped weights); naming ``model`` itself keeps its own I-frame path.
    intra_model: str | None = None
    intra_quality: int | None = None
    intra_checkpoint: str | None = None
    intra_period: int = 8
    num_threads: int = 2
    pad_margin: int = 8  # io.color.picture_box: replicated pixels around the picture (header: u8)
    # quant/registry.py's canonical name, which the stream's header stores: an alias such as "a3*"
    # is turned into it ("oct").
    quant: str = "sq"
    quant_scope: str = "residual"  # tools.QUANT_SCOPES: roles of the latents the lattice codes (ablations)
    latent_shift: bool = False
    latent_shift_scope: str = "residual"  # tools.SHIFT_SCOPES
    shift_search: str = "fast"  # brute | fast
    shift_groups: int = 1
    shift_candidates: tuple | None = None  # None = tools.DEFAULT_CANDIDATES
    shift_diagnostics: bool = False
    # Encoder-side latent refinement (latent_refinement.py): gradient steps per latent, 0 = off; the
    # lambda of its cost, None = each model's training lambda (from its checkpoint).
    refine_iterations: int = 0
    refine_learning_rate: float = DEFAULT_LEARNING_RATE
    refine_lambda: float | None = None
    verify: bool = True
    ms_ssim: bool = True  # measure MS-SSIM for rd.jsonl (costly at large sizes)

    def __post_init__(self) -> None:
        quantizer = find_quantizer(self.quant)
        if quantizer is not None:  # an unknown name is left for validate() to report
            object.__setattr__(self, "quant", quantizer.name)

    def validate(self) -> CodecConfig:
        from vidcodec.models.registry import MODELS

        problems = []
        for key in ("model", "intra_model"):
            value = getattr(self, key)
            if value is not None and value not in MODELS:
                problems.append(f"{key}='{value}' (expected one of {', '.join(sorted(MODELS))})")
        for key in ("quality", "intra_quality"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, int) and 1 <= value <= 9):
                problems.append(f"{key}={value} (expected 1..9)")
        if not isinstance(self.intra_period, int) or self.intra_period == 0 or self.intra_period < -1:
            problems.append(f"intra_period={self.intra_period} (expected -1 or >= 1)")
        if not isinstance(self.num_threads, int) or not 1 <= self.num_threads <= MAX_THREADS:
            problems.append(f"num_threads={self.num_threads} (expected 1..{MAX_THREADS})")
        if not isinstance(self.pad_margin, int) or not 0 <= self.pad_margin <= 64:
            problems.append(f"pad_margin={self.pad_margin} (expected 0..64)")
        if self.quant not in QUANTIZER_NAMES:
            problems.append(f"quant='{self.quant}' (expected one of {', '.join(QUANTIZER_NAMES)})")
        if self.quant_scope not in QUANT_SCOPES:
            problems.append(f"quant_scope='{self.quant_scope}' (expected one of {', '.join(QUANT_SCOPES)})")
        if self.latent_shift_scope not in SHIFT_SCOPES:
            problems.append(f"latent_shift_scope='{self.latent_shift_scope}' "
                            f"(expected one of {', '.join(SHIFT_SCOPES)})")
        else:
            try:
                self.shift_settings_or_default()
            except ConfigError as error:
                problems.append(str(error))
        if not isinstance(self.refine_iterations, int) or self.refine_iterations < 0:
            problems.append(f"refine_iterations={self.refine_iterations} (expected 0 = off, or more)")
        else:
            try:
                self.refine_settings_or_default()
            except ConfigError as error:
                problems.append(str(error))
        if self.checkpoint is None and not self.pretrained and self.quality is None:
            problems.append("no weights: set quality, checkpoint or pretrained")
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        return self

    def shift_settings_or_default(self) -> ShiftSettings:
        return ShiftSettings(
            candidates=DEFAULT_CANDIDATES if self.shift_candidates is None else tuple(self.shift_candidates),
            groups=self.shift_groups,
            search=self.shift_search,
            scope_mask=roles_mask(SHIFT_SCOPES[self.latent_shift_scope]),
            diagnostics=self.shift_diagnostics,
        )

    def shift_settings(self) -> ShiftSettings | None:
        """The latent shift to apply, None when latent_shift is off."""
        return self.shift_settings_or_default() if self.latent_shift else None

    def refine_settings_or_default(self) -> RefineSettings:
        return RefineSettings(self.refine_iterations or DEFAULT_ITERATIONS, self.refine_learning_rate,
                              self.refine_lambda)

    def refine_settings(self) -> RefineSettings | None:
        """The latent refinement to apply, None when refine_iterations is 0."""
        return self.refine_settings_or_default() if self.refine_iterations else None

    @property
    def separate_intra(self) -> bool:
        """Whether I-frames have their own model or weights."""
        return (self.intra_model, self.intra_quality, self.intra_checkpoint) != (None, None, None)

    def coding_tools(self, cache=None) -> CodingTools:
        return CodingTools(lattice=QUANTIZERS[self.quant].lattice, quant_roles=QUANT_SCOPES[self.quant_scope],
                           shift=self.shift_settings(), cache=cache, refine=self.refine_settings())

    def with_resolved_intra(self) -> CodecConfig:
        """This config with intra_model as resolve_intra_model decides it from its own fields."""
        intra_model = resolve_intra_model(self.model, checkpoint=self.checkpoint, pretrained=self.pretrained,
                                          intra_model=self.intra_model, intra_checkpoint=self.intra_checkpoint)
        return dataclasses.replace(self, intra_model=intra_model)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def read_yaml_mapping(path: Path) -> dict:
    """A YAML file holding a mapping (empty file: {}); ConfigError naming the file otherwise."""
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return values


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> CodecConfig:
    """Read ``path`` (default configs/default.yaml), apply non-None ``overrides``, validate."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"config file {path} not found (configs in {CONFIG_DIR}: "
                          f"{', '.join(p.name for p in sorted(CONFIG_DIR.glob('*.yaml')))})")
    values = read_yaml_mapping(path)
    known = {f.name for f in dataclasses.fields(CodecConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return CodecConfig(**values).with_resolved_intra().validate()


def model_in_weights_dir(weights_dir: str | Path | None) -> str | None:
    """The one model whose MODEL-qQ.pt files ``weights_dir`` holds (None without a folder, or when it
    holds several models or none)."""
    if weights_dir is None:
        return None
    models = {path.name.rsplit("-q", 1)[0] for path in Path(weights_dir).glob("*-q*.pt")}
    return models.pop() if len(models) == 1 else None


def resolve_intra_model(model: str | None = None, *, checkpoint: str | Path | None = None,
                        weights_dir: str | Path | None = None, pretrained: bool = False,
                        intra_model: str | None = None, intra_checkpoint: str | Path | None = None,
                        intra_weights_dir: str | Path | None = None) -> str | None:
    """The model that codes the I-frames; None: ``model`` codes them itself. The one place this is
    decided, for load_config (so the encoder, the pipeline and the scripts), the CLI and the
    evaluation runner, whose jobs then carry the answer.

    model: the P-frames' model (None: configs/default.yaml's). checkpoint, weights_dir, pretrained:
    the P-frames' own weights (a file, a folder of MODEL-qQ.pt files, CompressAI's zoo), None / False
    for the shipped ones. intra_model, intra_checkpoint, intra_weights_dir: what the user named for
    the I-frames.

    In order: a named intra model is kept; a folder of I-frame weights names the one model it holds;
    an I-frame checkpoint of its own goes with ``model``; own P-frame weights code their own I-frames
    (a checkpoint's I-frame path was trained with it); shipped weights take the image codec their
    registry entry names (shipped_intra_model, measured better than their own I-frame paths).
    """
    from vidcodec.models.registry import MODELS

    if intra_model is not None:
        return intra_model
    named_by_folder = model_in_weights_dir(intra_weights_dir)
    if named_by_folder is not None:
        return named_by_folder
    own_weights = checkpoint is not None or weights_dir is not None or pretrained
    if intra_checkpoint is not None or own_weights:
        return None
    spec = MODELS.get(model or load_config().model)
    return spec.shipped_intra_model if spec is not None else None
