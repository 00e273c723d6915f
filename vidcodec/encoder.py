"""Encoder: frames in, packets out. Keeps the inter codec's decoded state (models/interface.py).

The state after each frame is built from the *decoded* latents only, so the decoder, fed the same
packets, holds the same state bit for bit. I-frames are coded by the intra codec, P-frames by the
inter codec (the same model, or two: any intra codec starts any inter codec's state).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vidcodec.bitstream.syntax import FrameHeader, SequenceHeader, sequence_id, write_frame
from vidcodec.gop import FrameType, GopScheduler
from vidcodec.io.color import picture_box
from vidcodec.models.interface import FrameCodec


@dataclass
class Packet:
    """One coded frame: its file bytes and what the RD log needs."""

    poc: int
    frame_type: str  # "I" or "P"
    data: bytes  # complete frame file (header + parts + CRC)
    part_bits: dict[str, int]  # entropy-coded bits per part name, e.g. {"residual_y": 1234}
    x_hat: torch.Tensor  # (1,3,H,W) float32 in [0,1], cropped to the picture size
    shift: object = None  # latent_shift.ShiftChoice of the frame, None without shift
    refine: dict | None = None  # role -> latent_refinement.RefineReport, empty without refinement


class Encoder:
    def __init__(self, intra_codec: FrameCodec, inter_codec: FrameCodec, header: SequenceHeader) -> None:
        self.intra_codec, self.inter_codec = intra_codec, inter_codec
        self.header = header
        self.gop = GopScheduler(header.intra_period)
        self.sequence_id = sequence_id(header.write())
        self.picture = picture_box(header.height, header.width, header.pad_multiple, header.pad_margin)
        self._state: object = None  # the inter codec's decoded state after the previous frame
        for codec in (intra_codec, inter_codec):
            codec.start_sequence()

    def encode(self, poc: int, x: torch.Tensor) -> Packet:
        """x: (1,3,H,W) float32 RGB in [0,1] at the picture size of the sequence header."""
        plan = self.gop.plan(poc)
        picture = self.picture
        x_padded = picture.pad(x)
        if plan.frame_type == FrameType.INTRA:
            codec = self.intra_codec
            coded = self.intra_codec.encode_intra(x_padded, picture)
            with torch.no_grad():  # the state is data, not a graph through the weights
                self._state = self.inter_codec.start_state(coded.x_hat)
        else:
            if self._state is None:
                raise RuntimeError(f"poc {poc} is a P-frame but no reference was coded before it")
            codec = self.inter_codec
            coded = self.inter_codec.encode_inter(x_padded, self._state, picture)
            self._state = coded.state
        frame_type = plan.frame_type.value
        header = FrameHeader(
            poc=poc,
            frame_type=frame_type,
            sequence_id=self.sequence_id,
            entropy_hash=coded.entropy_hash,
            shift_indexes=codec.header_shift_indexes(coded.shift_indexes),
            part_lengths=tuple(len(part) for part in coded.parts),
        )
        return Packet(
            poc=poc,
            frame_type=frame_type,
            data=write_frame(header, coded.parts),
            part_bits={name: 8 * len(part) for name, part in zip(coded.part_names, coded.parts)},
            x_hat=picture.crop(coded.x_hat),
            shift=coded.shift,
            refine=coded.refine,
        )
