"""The coding tools of seed 000 and the latents they attach to, by role.

Every codec declares its latents by role (``FrameCodec.latent_coders``, models/interface.py); the
tools attach to roles through ``FrameCodec.attach_tools``, the same way for every model family:
  * the lattice quantizer (Hex-Quant on A2, Oct-Quant on A3*, ...): ``quant`` picks the lattice,
    ``quant_scope`` the roles it codes;
  * the latent shift (latent_shift.py): ``latent_shift_scope`` picks the roles, ShiftSettings the
    candidate steps, channel groups and encoder search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidcodec.bitstream.syntax import DEFAULT_SHIFT_CANDIDATES
from vidcodec.errors import ConfigError
from vidcodec.quant.registry import lattice_key

# intra: the I-frame latent; motion: motion latent of a motion-compensated P-frame; residual: its
# residual latent; contextual: the latent of a conditional P-frame codec (DCVC-style).
ROLES = ("intra", "motion", "residual", "contextual")
# The P-frame's main latent, whatever the family: what the paper's tools act on.
P_FRAME_MAIN = frozenset({"residual", "contextual"})

# The quantizers and their lattices: quant/registry.py.
# Latents the lattice codes (ablations): the paper's scope, then wider ones.
QUANT_SCOPES: dict[str, frozenset[str]] = {
    "residual": P_FRAME_MAIN,
    "residual+motion": P_FRAME_MAIN | {"motion"},
    "all": frozenset(ROLES),
    "intra": frozenset({"intra"}),  # image codecs (models/image_codecs.py): their only latent
}
SHIFT_SCOPES: dict[str, frozenset[str]] = {
    "residual": P_FRAME_MAIN,
    "residual+intra": P_FRAME_MAIN | {"intra"},
    "intra": frozenset({"intra"}),  # image codecs
}
# Bits of the sequence header's latent_shift mask, one per role.
ROLE_BITS = {"residual": 1, "intra": 2, "motion": 4, "contextual": 8}


def roles_mask(roles) -> int:
    return sum(ROLE_BITS[role] for role in roles)


def mask_roles(mask: int) -> frozenset[str]:
    return frozenset(role for role, bit in ROLE_BITS.items() if mask & bit)


# Latent shift steps. Why these: on the shipped ssf-small models (held-out sequences, a sweep of
# rho) the MSE-optimal step lies between 0.005 and 0.03 with the PSNR falling off quickly beyond
# 0.1; steps are positive because the KKT conditions make the distortion gradient point against g.
DEFAULT_CANDIDATES = DEFAULT_SHIFT_CANDIDATES  # (0.0, 0.005, ..., 0.07): one byte in the sequence header
SEARCHES = ("brute", "fast", "jvp")


def as_float32(values) -> tuple[float, ...]:
    """Steps as the header stores them (float32), so encoder and decoder multiply the same numbers."""
    return tuple(float(v) for v in np.asarray(values, dtype=np.float32))


@dataclass(frozen=True)
class ShiftSettings:
    """The latent shift (latent_shift.py): candidate steps, channel groups per latent, the encoder's
    search, the roles shifted (scope_mask, ROLE_BITS) and encoder-side diagnostics."""

    candidates: tuple[float, ...] = DEFAULT_CANDIDATES
    groups: int = 1
    search: str = "fast"
    scope_mask: int = ROLE_BITS["residual"] | ROLE_BITS["contextual"]
    diagnostics: bool = False  # encoder-side: also measure corr(g, grad D) (one backward pass)

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", as_float32(self.candidates))
        problems = []
        if 0.0 not in self.candidates:
            problems.append("the candidates must include 0.0 (so the shift can never hurt)")
        if not 2 <= len(self.candidates) <= 255 or len(set(self.candidates)) != len(self.candidates):
            problems.append(f"{len(self.candidates)} candidates (expected 2..255 distinct values)")
        if not all(np.isfinite(self.candidates)):
            problems.append("non-finite candidate")
        if not 1 <= self.groups <= 255:
            problems.append(f"groups={self.groups} (expected 1..255)")
        if self.search not in SEARCHES:
            problems.append(f"search='{self.search}' (expected one of {', '.join(SEARCHES)})")
        if not 0 < self.scope_mask <= roles_mask(ROLES):
            problems.append(f"scope mask {self.scope_mask} (expected 1..{roles_mask(ROLES)}, bits {ROLE_BITS})")
        if problems:
            raise ConfigError("invalid latent shift settings: " + "; ".join(problems))

    @property
    def roles(self) -> frozenset[str]:
        return mask_roles(self.scope_mask)

    @property
    def zero_index(self) -> int:
        return self.candidates.index(0.0)

    @property
    def probe_index(self) -> int:
        """The fast search's secant probe: the middle one of the non-zero candidates by value."""
        nonzero = sorted((rho, index) for index, rho in enumerate(self.candidates) if rho != 0.0)
        return nonzero[len(nonzero) // 2][1]


@dataclass(frozen=True)
class CodingTools:
    """What a codec codes with beyond its own weights (FrameCodec.attach_tools).

    lattice: lattice key (quant/registry.py: "a2", "a3*", ...; any spelling of a lattice quantizer
        is turned into its key) for the latents of quant_roles; None = rounding.
    shift: the latent shift, None = off. cache: lattice TableCache (None: the default one).
    refine: encoder-side refinement of every latent (latent_refinement.RefineSettings), None = off;
    encoder only, no syntax."""

    lattice: str | None = None
    quant_roles: frozenset[str] = P_FRAME_MAIN
    shift: ShiftSettings | None = None
    cache: object = None
    refine: object = None

    def __post_init__(self) -> None:
        # One key per lattice: the PMF tables are cached under it, so "oct" and "a3*" must not
        # build the same tables twice.
        if self.lattice is not None:
            object.__setattr__(self, "lattice", lattice_key(self.lattice))
