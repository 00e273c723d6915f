"""Decoder: frame files in, frames out; mirrors the encoder's decoded state."""

from __future__ import annotations

import math

import torch

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.bitstream.syntax import SequenceHeader, read_frame, sequence_id
from vidcodec.gop import FrameType, GopScheduler
from vidcodec.io.color import picture_box
from vidcodec.models.interface import FrameCodec


class Decoder:
    def __init__(self, intra_codec: FrameCodec, inter_codec: FrameCodec, header: SequenceHeader,
                 header_bytes: bytes) -> None:
        # The encoder writes exactly the least common multiple of the two models' multiples; any
        # other value is a damaged header (a large one would make every frame huge).
        expected = math.lcm(intra_codec.pad_multiple, inter_codec.pad_multiple)
        if header.pad_multiple != expected:
            raise BitstreamError(
                f"sequence.hdr: pad_multiple={header.pad_multiple} but models '{header.intra_model.model_id}' "
                f"and '{header.inter_model.model_id}' pad to multiples of {expected}"
            )
        self.intra_codec, self.inter_codec = intra_codec, inter_codec
        self.header = header
        self.gop = GopScheduler(header.intra_period)
        self.sequence_id = sequence_id(header_bytes)
        self.picture = picture_box(header.height, header.width, header.pad_multiple, header.pad_margin)
        self.padded_shape = (self.picture.padded_height, self.picture.padded_width)
        self._state: object = None
        self._next_poc = 0

    def decode(self, data: bytes, where: str) -> torch.Tensor:
        """Decode the next frame file (in poc order); returns (1,3,H,W) float32 in [0,1].

        Raises BitstreamError on a damaged, foreign, misplaced or desynchronized frame.
        """
        frame, parts = read_frame(data, where, self.sequence_id)
        if frame.poc != self._next_poc:
            raise BitstreamError(f"{where}: holds poc {frame.poc}, expected poc {self._next_poc}")
        plan = self.gop.plan(frame.poc)
        if frame.frame_type != plan.frame_type.value:
            raise BitstreamError(
                f"{where}: frame_type {frame.frame_type} but the GOP (intra_period="
                f"{self.header.intra_period}) puts a {plan.frame_type.value}-frame at poc {frame.poc}"
            )
        try:
            if plan.frame_type == FrameType.INTRA:
                x_hat = self.intra_codec.decode_intra(parts, self.padded_shape, frame.entropy_hash,
                                                      frame.shift_indexes, self.picture)
                with torch.no_grad():  # the state is data, not a graph through the weights
                    state = self.inter_codec.start_state(x_hat)
            else:
                x_hat, state = self.inter_codec.decode_inter(parts, self._state, self.padded_shape,
                                                             frame.entropy_hash, frame.shift_indexes)
        except BitstreamError as error:
            raise type(error)(f"{where}: {error}") from None
        if not torch.isfinite(x_hat).all():
            # No encoder writes this: a payload a buggy or hostile encoder sealed with a valid CRC,
            # whose escape codes decode to latents far beyond any analysis transform's range.
            raise BitstreamError(f"{where}: the payload decodes to a picture with non-finite samples "
                                 "(latents out of any encoder's range): a damaged or hostile stream")
        self._state = state
        self._next_poc += 1
        return self.picture.crop(x_hat)
