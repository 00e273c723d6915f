"""Codec configuration: YAML defaults (configs/*.yaml) overridden by command-line flags, validated once."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from vidcodec.errors import ConfigError
from vidcodec.latent_shift import DEFAULT_CANDIDATES, SCOPES, ShiftSettings

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"
# Quantizer of P-frame residual latents -> lattice (None = scalar rounding). d4 and e8 are
# experimental: their tables are built by quasi-Monte Carlo and only small scales are lattice-coded.
QUANTIZER_LATTICES = {"sq": None, "hex": "a2", "oct": "a3*", "d4": "d4", "e8": "e8"}
QUANTIZERS = tuple(QUANTIZER_LATTICES)
QUANT_SCOPES = ("residual", "residual+motion", "all")
MAX_THREADS = 255  # stored in one byte of the sequence header


@dataclass(frozen=True)
class CodecConfig:
    model: str = "ssf-small"
    quality: int | None = 3
    checkpoint: str | None = None
    pretrained: bool = False
    intra_period: int = 8
    num_threads: int = 2
    quant: str = "sq"
    quant_scope: str = "residual"  # QUANT_SCOPES: latents the lattice applies to (ablations)
    latent_shift: bool = False
    latent_shift_scope: str = "residual"  # latent_shift.SCOPES
    shift_search: str = "fast"  # brute | fast
    shift_groups: int = 1
    shift_candidates: tuple | None = None  # None = latent_shift.DEFAULT_CANDIDATES
    shift_diagnostics: bool = False
    verify: bool = True

    def validate(self) -> "CodecConfig":
        from vidcodec.models.registry import MODELS

        problems = []
        if self.model not in MODELS:
            problems.append(f"model='{self.model}' (expected one of {', '.join(sorted(MODELS))})")
        if self.quality is not None and not (isinstance(self.quality, int) and 1 <= self.quality <= 9):
            problems.append(f"quality={self.quality} (expected 1..9)")
        if not isinstance(self.intra_period, int) or self.intra_period == 0 or self.intra_period < -1:
            problems.append(f"intra_period={self.intra_period} (expected -1 or >= 1)")
        if not isinstance(self.num_threads, int) or not 1 <= self.num_threads <= MAX_THREADS:
            problems.append(f"num_threads={self.num_threads} (expected 1..{MAX_THREADS})")
        if self.quant not in QUANTIZERS:
            problems.append(f"quant='{self.quant}' (expected one of {', '.join(QUANTIZERS)})")
        if self.quant_scope not in QUANT_SCOPES:
            problems.append(f"quant_scope='{self.quant_scope}' (expected one of {', '.join(QUANT_SCOPES)})")
        if self.latent_shift_scope not in SCOPES:
            problems.append(f"latent_shift_scope='{self.latent_shift_scope}' (expected one of {', '.join(SCOPES)})")
        else:
            try:
                self.shift_settings_or_default()
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
            scope_mask=SCOPES[self.latent_shift_scope],
            diagnostics=self.shift_diagnostics,
        )

    def shift_settings(self) -> ShiftSettings | None:
        """The latent shift to apply, None when latent_shift is off."""
        return self.shift_settings_or_default() if self.latent_shift else None

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
    return CodecConfig(**values).validate()
