"""The coding tools attached to one codec's latents by role, and what they keep between calls.

A codec (models/interface.py, FrameCodec) declares its latents by role; the tools (tools.CodingTools:
a lattice quantizer for some roles, the latent shift, encoder-side refinement) attach to those roles
here, the same way for every family. What the tools keep lives here too, not in the codec:
  * a lattice coder (entropy/lattice_coder.py) per (role, lattice): it holds per-scale CDFs that are
    slow to rebuild. It is reused while the role's entropy model, the table cache and the model's
    quantized CDF tables (their values, not where they sit in memory) are the ones it was built
    for; new weights (update() writes new tables) give a new coder;
  * the latent shift's last choice per role: a search hint for the next frame that changes no
    stream's syntax, forgotten at the start of each sequence (start_sequence).
"""

from __future__ import annotations

import hashlib

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.errors import ConfigError
from vidcodec.latent_refinement import RefineSettings
from vidcodec.quant.registry import quantizer_of_lattice
from vidcodec.tools import CodingTools


def cdf_fingerprint(entropy_model) -> bytes:
    """A digest of the quantized CDF tables of a compressai entropy model (GaussianConditional or
    EntropyBottleneck, after update()): equal tables give equal digests wherever the tensors live."""
    digest = hashlib.sha256()
    for name in ("_quantized_cdf", "_cdf_length", "_offset"):
        tensor = getattr(entropy_model, name).detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.digest()


class ToolAttachment:
    """The tools one codec codes with (``tools``), its lattice coders and its shift memory."""

    def __init__(self) -> None:
        self.tools = CodingTools()
        # role -> the shift indexes the encoder chose last for that role's latent.
        self.shift_memory: dict[str, tuple[int, ...]] = {}
        # (role, lattice) -> (cdf_fingerprint of the entropy model it was built on, the coder).
        self._lattice_coders: dict[tuple[str, str], tuple[bytes, object]] = {}

    def attach(self, tools: CodingTools, latent_coders: dict) -> None:
        """Code the latents of tools.quant_roles on tools.lattice, shift those of tools.shift.roles
        and refine all of them with tools.refine (its lmbda set); CodingTools() = plain rounding, no
        shift, no refinement. ``latent_coders``: the codec's role -> coder (FrameCodec.latent_coders).
        ConfigError, naming the setting and its flag, for a tool a latent cannot take."""
        for role, coder in latent_coders.items():
            in_scope = tools.lattice is not None and role in tools.quant_roles
            if tools.refine is not None:
                check_refinable(role, coder, in_scope, tools.refine)
            try:
                coder.y_coder = self._lattice_coder(role, tools.lattice, coder, tools.cache) if in_scope else None
            except ValueError as error:  # a lattice the coder's tables are not built for
                from vidcodec.quant.learned_tables import LATTICES as LEARNED_TABLE_LATTICES

                # The lattices with tables over learned densities are the ones every latent can use.
                usable = " or ".join(quantizer_of_lattice(name).name for name in LEARNED_TABLE_LATTICES)
                quantizer = quantizer_of_lattice(tools.lattice)
                raise ConfigError(f"--quant {quantizer.name if quantizer else tools.lattice} on this model's "
                                  f"{role} latent: {error}; use --quant {usable}") from None
        self.tools = tools

    def _lattice_coder(self, role: str, lattice_name: str, coder, cache):
        from vidcodec.entropy.lattice_coder import LatticeLatentCoder

        model = coder.entropy_model
        fingerprint = cdf_fingerprint(model)
        kept = self._lattice_coders.get((role, lattice_name))
        if kept is not None:
            kept_fingerprint, lattice_coder = kept
            if (kept_fingerprint == fingerprint and lattice_coder.entropy_model is model
                    and (cache is None or lattice_coder.cache is cache)):
                return lattice_coder
        lattice_coder = LatticeLatentCoder(lattice_name, model, cache)
        self._lattice_coders[(role, lattice_name)] = (fingerprint, lattice_coder)
        return lattice_coder

    def start_sequence(self, memory: dict | None = None) -> None:
        """Forget the shift's choices of the sequence before: a sequence's coding must not depend on
        what was coded before it. ``memory``: keep them in this dict instead (a benchmark
        interleaving several sequences on one codec passes one dict per sequence)."""
        self.shift_memory = {} if memory is None else memory

    def shifts(self, role: str) -> bool:
        return self.tools.shift is not None and role in self.tools.shift.roles

    def header_shift_indexes(self, shift_indexes: tuple[int, ...]) -> tuple[int, ...]:
        """The shift indexes a frame header carries for a frame coded with ``shift_indexes``: none
        when every chosen step is zero. The decoder then shifts nothing, which is what those steps
        do, so a frame the shift does not help costs what it costs without --latent-shift (the
        header's flag bit says whether indexes follow)."""
        if shift_indexes and all(self.tools.shift.candidates[index] == 0.0 for index in shift_indexes):
            return ()
        return shift_indexes

    def check_shift_indexes(self, shift_indexes: tuple[int, ...], roles: tuple[str, ...]) -> None:
        """Refuse a frame header whose shift indexes do not fit the latents of ``roles`` it codes. None
        at all is always valid: every step zero (header_shift_indexes)."""
        if not shift_indexes:
            return
        expected = sum(self.tools.shift.groups for role in roles if self.shifts(role))
        if len(shift_indexes) != expected:
            raise BitstreamError(f"frame header holds {len(shift_indexes)} shift indexes, expected {expected}")
        if max(shift_indexes) >= len(self.tools.shift.candidates):
            raise BitstreamError(
                f"shift index {max(shift_indexes)} beyond the {len(self.tools.shift.candidates)} candidates"
            )


def check_refinable(role: str, coder, lattice_coded: bool, settings: RefineSettings) -> None:
    """ConfigError when latent refinement cannot run on the latent of ``role``."""
    if settings.lmbda is None:
        raise ConfigError("latent refinement needs the codec's rate-distortion trade-off: pass --refine-lambda")
    if lattice_coded:
        raise ConfigError(f"latent refinement of the lattice-coded {role} latent is not implemented "
                          "(it rounds with a scalar quantizer): drop --refine or --quant")
    if not getattr(coder, "refinable", False):
        raise ConfigError(f"latent refinement is not implemented for this model's {role} latent "
                          f"({type(coder).__name__}, e.g. an autoregressive context model): drop --refine")
