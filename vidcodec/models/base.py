"""FrameCodec: what the encoder and decoder need from a learned video model.

A FrameCodec codes one frame at a time: intra frames on their own, inter frames against a
reference (the previous *decoded* frame). Every method works on padded frames
(1,3,H,W) float32 RGB in [0,1] with H and W multiples of ``pad_multiple``; padding and cropping
are the caller's job. Frames come back clamped to [0,1], because that is what is displayed and
what the next frame is predicted from, on both sides.

Each coded frame is a list of byte strings ("parts", e.g. z and y of each latent) plus the scale
indexes the entropy coder used; the frame header carries a hash of those indexes so the decoder
can refuse to decode when its own differ (see bitstream/syntax.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from vidcodec.bitstream.errors import BitstreamError, DecoderDesyncError
from vidcodec.entropy.hyperprior_coder import entropy_hash


@dataclass
class CodedFrame:
    """Result of encoding one frame.

    parts: byte strings in bitstream order, named by ``part_names`` (e.g. "residual_y").
    x_hat: (1,3,H,W) float32 in [0,1], padded: exactly what the decoder will output.
    entropy_hash: 4-byte hash of the scale indexes used (desync guard).
    shift_indexes: latent-shift step indexes for the frame header (empty: no shift applied).
    shift: the encoder's ShiftChoice (latent_shift.py) for diagnostics, None without shift.
    latents: named decoded latents y_hat and their entropy parameters, for diagnostics.
    """

    part_names: tuple[str, ...]
    parts: list[bytes]
    x_hat: torch.Tensor
    entropy_hash: bytes
    shift_indexes: tuple[int, ...] = ()
    shift: object = None
    latents: dict = field(default_factory=dict)


class FrameCodec(ABC):
    """Interface of a learned frame codec (intra + inter = motion + residual)."""

    #: H and W of coded frames must be multiples of this.
    pad_multiple: int
    #: names of the byte strings of an intra and an inter frame, in bitstream order.
    intra_part_names: tuple[str, ...]
    inter_part_names: tuple[str, ...]

    # picture_size: (H, W) before padding; the latent-shift search measures distortion there only.
    @abstractmethod
    def encode_intra(self, x: torch.Tensor, picture_size: tuple[int, int] | None = None) -> CodedFrame: ...

    @abstractmethod
    def encode_inter(
        self, x: torch.Tensor, x_ref: torch.Tensor, picture_size: tuple[int, int] | None = None
    ) -> CodedFrame: ...

    @abstractmethod
    def decode_intra(
        self, parts: list[bytes], frame_shape: tuple[int, int], expected_hash: bytes,
        shift_indexes: tuple[int, ...] = (),
    ) -> torch.Tensor: ...

    @abstractmethod
    def decode_inter(
        self,
        parts: list[bytes],
        x_ref: torch.Tensor,
        expected_hash: bytes,
        shift_indexes: tuple[int, ...] = (),
    ) -> torch.Tensor: ...


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
