"""FrameCodec: what the encoder, decoder, trainer and tools need from a learned codec, any family.

A codec codes one frame at a time, on padded frames (1,3,H,W) float32 RGB in [0,1] with H and W
multiples of ``pad_multiple`` (padding and cropping are the caller's job). Frames come back clamped
to [0,1], because that is what is displayed and what the next frame is predicted from.

What a codec declares:
  * its latents by role (tools.ROLES: intra, motion, residual, contextual) in ``latent_coders``:
    one coder per role: a FactorizedCoder (entropy/factorized_coder.py) for a latent with a learned
    factorized prior, an AutoregressiveCoder (entropy/autoregressive_coder.py) for a hyperprior joined
    with a spatial context model, or a HyperpriorCoder over a CompressAI-style hyperprior module (entropy_bottleneck,
    hyper_encoder, hyper_decoder_mean/scale, gaussian_conditional; a module whose entropy
    parameters also depend on decoded data, e.g. a temporal prior, defines
    ``entropy_parameters(z_hat, context)``, see hyperprior_coder.hyperprior_parameters). The coding
    tools attach to roles (``attach_tools``; models/tool_attachment.py), the lattice in the
    training loop to their hyperprior modules (train/lattice_loop.py); no tool knows a model's
    attribute names.
  * an opaque decoded state, what a P-frame is coded against: the previous picture (SSF), the
    previous frame's decoder features (dcvc-small), ... ``start_state(x_hat)`` makes it from an
    I-frame's reconstruction (which may come from another codec: the intra and inter models of a
    stream may differ), ``encode_inter`` / ``decode_inter`` return the next one. It must be a
    function of decoded data only, so encoder and decoder hold the same state bit for bit.
  * its training forward, ``forward(frames, stage=...)`` (codecs are torch Modules; DDP hooks
    forward()), returning a TrainingOutput: reconstructions and likelihoods by role.

Implementations are CompressAI CompressionModels as well (aux_loss(), update(); the registry and
trainer use them), and name the I-frame path's parameters for the curriculum (parameter_role).

Each coded frame is a list of byte strings ("parts", e.g. z and y of each latent) plus a hash of
the entropy parameters the coder used (the scale indexes of every latent, which are functions of
the side information and of whatever the state feeds into the entropy model, and the lattice
tables): the frame header carries it so the decoder refuses to decode when its own differ
(bitstream/syntax.py).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from vidcodec.bitstream.errors import BitstreamError, DecoderDesyncError
from vidcodec.entropy.hyperprior_coder import CodedLatent, EntropyParameters, HyperpriorCoder, entropy_hash
from vidcodec.io.color import PictureBox
from vidcodec.latent_refinement import RefineReport, refine_latent
from vidcodec.latent_shift import choose_shift, shifted
from vidcodec.models.tool_attachment import ToolAttachment
from vidcodec.tools import CodingTools


@dataclass
class CodedFrame:
    """Result of encoding one frame.

    parts: byte strings in bitstream order, named by ``part_names`` (e.g. "residual_y").
    x_hat: (1,3,H,W) float32 in [0,1], padded: exactly what the decoder will output.
    entropy_hash: hash of the entropy parameters used (desync guard; syntax.ENTROPY_HASH_BYTES).
    shift_indexes: latent-shift step indexes for the frame header, for each shifted latent in
        coding order (empty: no shift applied).
    shift: the encoder's ShiftChoice (latent_shift.py) for diagnostics, None without shift.
    latents: named decoded latents y_hat and their entropy parameters, for diagnostics.
    state: the decoded state after this frame (P-frames; I-frames: the inter codec's start_state).
    refine: role -> latent_refinement.RefineReport of each refined latent (empty: no refinement).
    """

    part_names: tuple[str, ...]
    parts: list[bytes]
    x_hat: torch.Tensor
    entropy_hash: bytes
    shift_indexes: tuple[int, ...] = ()
    shift: object = None
    latents: dict = field(default_factory=dict)
    state: object = None
    refine: dict = field(default_factory=dict)


@dataclass
class EncodedLatent:
    """One latent through FrameCodec.encode_latent: the coded latent, y_hat as the decoder will hold
    it (shifted when its role is), the finished frame synthesized from it, and the shift signalled."""

    coded: CodedLatent
    y_hat: torch.Tensor
    x_hat: torch.Tensor
    shift_indexes: tuple[int, ...] = ()
    shift: object = None  # latent_shift.ShiftChoice, None without shift
    refine: RefineReport | None = None  # None without refinement

    def refine_reports(self, role: str) -> dict:
        """CodedFrame.refine of a frame whose only refined latent is this one."""
        return {role: self.refine} if self.refine is not None else {}


@dataclass
class TrainingOutput:
    """The training forward of a curriculum stage (train/curriculum.py), for any codec.

    x_hat: one (N,3,H,W) reconstruction per coded frame.
    likelihoods: per coded frame, role -> {name: likelihood tensor} (e.g. {"y": ..., "z": ...});
        the rate of a frame is the sum of -log2 over all of them.
    """

    x_hat: list[torch.Tensor]
    likelihoods: list[dict[str, dict[str, torch.Tensor]]]

    def frame_bits(self) -> list[torch.Tensor]:
        return [
            sum(torch.log(likelihoods).sum() for latent in frame.values() for likelihoods in latent.values())
            / -math.log(2)
            for frame in self.likelihoods
        ]


class FrameCodec(ABC):
    """A learned frame codec: intra frames and P-frames against an opaque decoded state.

    Subclasses set ``pad_multiple``, the part names, and ``latent_coders`` (role -> HyperpriorCoder,
    in __init__), and implement the abstract methods. ``picture``: where the picture sits in the padded
    frame (io.color.PictureBox); the latent-shift search measures distortion there only."""

    #: H and W of coded frames must be multiples of this (the analysis transforms' stride; the
    #: hyperpriors code latents of any size, HyperpriorCoder).
    pad_multiple: int
    #: H and W of training crops must be multiples of this (analysis x hyper-analysis stride: the
    #: training forward pads nothing).
    crop_multiple: int
    #: names of the byte strings of an intra and an inter frame, in bitstream order.
    intra_part_names: tuple[str, ...]
    inter_part_names: tuple[str, ...]
    #: role -> coder of that latent (tools.ROLES).
    latent_coders: dict[str, HyperpriorCoder]

    # --- the coding tools, attached by role (models/tool_attachment.py) -------------------------
    @property
    def tool_attachment(self) -> ToolAttachment:
        """The tools this codec codes with and what they keep between calls; made on first use, as
        families construct through their own base classes (CompressAI's) and never call ours."""
        attachment = getattr(self, "_tool_attachment", None)
        if attachment is None:
            attachment = ToolAttachment()
            self._tool_attachment = attachment
        return attachment

    @property
    def tools(self) -> CodingTools:
        return self.tool_attachment.tools

    def attach_tools(self, tools: CodingTools) -> None:
        """Attach ``tools`` to this codec's latents by role (ToolAttachment.attach)."""
        self.tool_attachment.attach(tools, self.latent_coders)

    def start_sequence(self, memory: dict | None = None) -> None:
        """Forget what the encoder remembers between frames (ToolAttachment.start_sequence)."""
        self.tool_attachment.start_sequence(memory)

    def shifts(self, role: str) -> bool:
        return self.tool_attachment.shifts(role)

    def encode_latent(self, role: str, y: torch.Tensor, synthesize: Callable[[torch.Tensor], torch.Tensor],
                      x: torch.Tensor, picture: PictureBox | None,
                      context: torch.Tensor | None = None) -> EncodedLatent:
        """Code latent ``y`` of ``role``. ``synthesize(y_hat)`` -> finished padded frame: the shift
        picks its step on it. ``context``: decoded data the role's entropy parameters depend on
        (hyperprior_coder.hyperprior_parameters)."""
        coder = self.latent_coders[role]
        report = None
        if self.tools.refine is not None:
            y, report = refine_latent(lambda latent, noise: coder.differentiable_bits(latent, context, noise), y,
                                      synthesize, x, picture, self.tools.refine)
        latent = coder.encode(y, context)
        if not self.shifts(role):
            return EncodedLatent(latent, latent.y_hat, synthesize(latent.y_hat), refine=report)
        g = coder.entropy_gradient(latent.y_hat, latent)
        memory = self.tool_attachment.shift_memory
        choice = choose_shift(synthesize, latent.y_hat, g, x, picture or PictureBox.whole(x), self.tools.shift,
                              memory.get(role))
        memory[role] = choice.indexes
        y_hat = shifted(latent.y_hat, g, self.tools.shift, choice.indexes)
        return EncodedLatent(latent, y_hat, choice.x_hat, choice.indexes, choice, report)

    def decode_side(self, role: str, z_bytes: bytes, y_shape: tuple[int, int],
                    context: torch.Tensor | None = None) -> EntropyParameters:
        """The entropy parameters of the latent of ``role``, of spatial size ``y_shape``, from its z."""
        # A corrupted but CRC-valid stream cannot reach here (the CRC catches it), yet a stream
        # written by a buggy or hostile encoder can: rANS on garbage returns garbage, it does not
        # raise, and compressai raises ValueError/RuntimeError on some inputs. Name the part.
        try:
            return self.latent_coders[role].decode_side(z_bytes, y_shape, context)
        except (ValueError, RuntimeError) as error:
            raise BitstreamError(f"{role} z could not be decoded: {error}") from None

    def header_shift_indexes(self, shift_indexes: tuple[int, ...]) -> tuple[int, ...]:
        """The shift indexes a frame header carries (ToolAttachment.header_shift_indexes)."""
        return self.tool_attachment.header_shift_indexes(shift_indexes)

    def check_shift_indexes(self, shift_indexes: tuple[int, ...], roles: tuple[str, ...]) -> None:
        """Refuse shift indexes that do not fit the latents of ``roles`` (ToolAttachment)."""
        self.tool_attachment.check_shift_indexes(shift_indexes, roles)

    def decode_latent(self, role: str, y_bytes: bytes, params: EntropyParameters,
                      shift_indexes: tuple[int, ...]) -> tuple[torch.Tensor, tuple[int, ...]]:
        """y_hat of ``role`` (shifted when the role is), and the shift indexes left for the latents
        after it (check_shift_indexes first). No indexes: no shift (header_shift_indexes)."""
        coder = self.latent_coders[role]
        y_hat = coder.decode_main(y_bytes, params)
        if not self.shifts(role) or not shift_indexes:
            return y_hat, shift_indexes
        settings = self.tools.shift
        mine, rest = shift_indexes[:settings.groups], shift_indexes[settings.groups:]
        g = coder.entropy_gradient(y_hat, params)
        return shifted(y_hat, g, settings, mine), rest

    def table_digest(self, role: str, scale_indexes: torch.Tensor) -> bytes:
        return self.latent_coders[role].table_digest(scale_indexes)

    # --- frames of one latent (z and y parts), for codecs whose frame is a single latent -------------
    def encode_single_latent(self, role: str, part_names: tuple[str, ...], y: torch.Tensor,
                             synthesize: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                             picture: PictureBox | None, context: torch.Tensor | None = None,
                             ) -> tuple[CodedFrame, EncodedLatent]:
        """A frame whose parts are the z and y of one latent of ``role`` (encode_latent's arguments)."""
        encoded = self.encode_latent(role, y, synthesize, x, picture, context)
        latent = encoded.coded
        frame = CodedFrame(part_names, [latent.z_bytes, latent.y_bytes], encoded.x_hat,
                           entropy_hash([latent.scale_indexes], latent.table_digest), encoded.shift_indexes,
                           encoded.shift, latents={role: latent},
                           refine=encoded.refine_reports(role))
        return frame, encoded

    def decode_single_latent(self, role: str, part_names: tuple[str, ...], frame_type: str, parts: list[bytes],
                             y_shape: tuple[int, int], expected_hash: bytes, shift_indexes: tuple[int, ...],
                             context: torch.Tensor | None = None) -> torch.Tensor:
        """y_hat of a frame made by encode_single_latent, after the part count, shift and desync checks."""
        check_part_count(parts, part_names, frame_type)
        self.check_shift_indexes(shift_indexes, (role,))
        params = self.decode_side(role, parts[0], y_shape, context)
        if getattr(self.latent_coders[role], "autoregressive", False):
            # Its entropy parameters come with y (entropy/autoregressive_coder.py): the guard is
            # checked once y is decoded, still before any picture is output.
            y_hat = self.decode_latent(role, parts[1], params, shift_indexes)[0]
            check_entropy_hash([params.scale_indexes], expected_hash, params.table_digest)
            return y_hat
        check_entropy_hash([params.scale_indexes], expected_hash, self.table_digest(role, params.scale_indexes))
        return self.decode_latent(role, parts[1], params, shift_indexes)[0]

    # --- what each family implements -----------------------------------------------------------
    @abstractmethod
    def encode_intra(self, x: torch.Tensor, picture: PictureBox | None = None) -> CodedFrame: ...

    @abstractmethod
    def decode_intra(self, parts: list[bytes], frame_shape: tuple[int, int], expected_hash: bytes,
                     shift_indexes: tuple[int, ...] = (), picture: PictureBox | None = None) -> torch.Tensor:
        """The padded frame of an I-frame; ``picture`` as for encode_intra (a codec that codes the
        picture area only pads it back out)."""

    @abstractmethod
    def start_state(self, x_hat: torch.Tensor) -> object:
        """The decoded state after an I-frame whose padded reconstruction is ``x_hat``."""

    @abstractmethod
    def encode_inter(self, x: torch.Tensor, state: object, picture: PictureBox | None = None) -> CodedFrame:
        """A P-frame against ``state``; the CodedFrame's ``state`` is the next one."""

    @abstractmethod
    def decode_inter(self, parts: list[bytes], state: object, frame_shape: tuple[int, int], expected_hash: bytes,
                     shift_indexes: tuple[int, ...] = ()) -> tuple[torch.Tensor, object]:
        """(x_hat, next state) of a P-frame; the same as encode_inter's, bit for bit."""

    @abstractmethod
    def forward(self, frames: list[torch.Tensor], stage: str = "chains") -> TrainingOutput:
        """Training forward of a curriculum stage (train/curriculum.py); frames (N,3,H,W) in [0,1]."""

    @staticmethod
    @abstractmethod
    def parameter_role(name: str) -> str:
        """'intra' for the I-frame path's parameters, 'inter' for the P-frame path's (curriculum)."""

    @abstractmethod
    def config(self) -> dict:
        """Constructor arguments, stored in checkpoints to rebuild the model."""


def check_entropy_hash(scale_indexes: list[torch.Tensor], expected_hash: bytes, table_digests: bytes = b"") -> None:
    """Raise DecoderDesyncError when the decoder's scale indexes (or lattice tables) differ from the encoder's."""
    actual = entropy_hash(scale_indexes, table_digests)
    if actual != expected_hash:
        raise DecoderDesyncError(
            f"decoder desync: the entropy parameters recomputed by the decoder (hash {actual.hex()}) "
            f"differ from the encoder's ({expected_hash.hex()}). The model weights, the thread count "
            "or the machine's floating-point results differ from the encoder's; decode with the same "
            "checkpoint and thread count (both are recorded in sequence.hdr)"
        )


def check_part_count(parts: list[bytes], names: tuple[str, ...], frame_type: str) -> None:
    if len(parts) != len(names):
        raise BitstreamError(
            f"{frame_type}-frame has {len(parts)} parts, this model codes {len(names)} ({', '.join(names)})"
        )
