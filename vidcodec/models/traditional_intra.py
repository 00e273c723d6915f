"""I-frames coded by a traditional encoder through PyAV: ``x265-intra`` (HEVC) and ``svtav1-intra`` (AV1).

Hybrid learned video codecs code their I-frames with a strong image codec (OpenDVC, HLVC and RLVC
use BPG, i.e. HEVC intra) and say so; ``--intra-model x265-intra`` does the same here. An I-frame is
one coded picture: the picture area only (not the padding, io.color.PictureBox), converted to 8-bit
YUV 4:2:0 with io.color's conversion, coded as one intra picture in the codec's own elementary
stream format (HEVC Annex B with its parameter sets, AV1 OBUs with the sequence header), and stored
as the frame's single part, so its bits are counted like any other part's. Both sides decode that
part with the same software decoder (libavcodec's hevc, libdav1d) and pad the picture back out by
edge replication; HEVC and AV1 decoding is exact by the standards, so the inter model's reference is
the same on both sides bit for bit. The desync guard hashes the decoded planes.

The rate point: ``--quality Q`` picks the quantizer from ``qp_by_quality`` (constant QP, no rate
control: one picture, nothing to control). The stream's model hash is a digest of these settings,
so a decoder refuses a stream whose settings it would name differently. There are no weights.

Sources of more than 8 bits are coded at 8 bits here (the decoder's output is converted back to
the stream's bit depth as every frame is).
"""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction

import numpy as np
import torch

from vidcodec.bitstream.errors import BitstreamError, DecoderDesyncError
from vidcodec.bitstream.syntax import ENTROPY_HASH_BYTES
from vidcodec.errors import ConfigError
from vidcodec.io.color import PictureBox, rgb_to_yuv420, yuv420_to_rgb
from vidcodec.io.yuv import YuvFrame
from vidcodec.models.image_codecs import ImageCodec
from vidcodec.models.interface import CodedFrame, check_part_count

# Per library: PyAV encoder, PyAV decoder, encoder options for one intra picture at QP {qp}.
LIBRARIES = {
    # info=0: no SEI with the encoder's version and options (about 2 kB per picture).
    "libx265": ("hevc", lambda qp, preset: {"qp": str(qp), "preset": preset,
                                             "x265-params": "log-level=none:info=0:keyint=1"}),
    "libsvtav1": ("libdav1d", lambda qp, preset: {"qp": str(qp), "preset": preset}),
}


class PyAvIntraCodec(torch.nn.Module, ImageCodec):
    """I-frames through a traditional encoder (``library``, a PyAV codec name) at a constant QP."""

    pad_multiple = 2  # 4:2:0 chroma; the coded picture is the picture area, any even size
    crop_multiple = 2
    # The coded picture is the I-frame's one part; rd.jsonl counts it as bits_intra_y (its columns
    # are named "<role>_y|z", rd_log.py), with bits_intra_z 0.
    intra_part_names = ("intra_y",)

    def __init__(self, library: str, qp_by_quality: list[int], quality: int, preset: str) -> None:
        torch.nn.Module.__init__(self)
        if library not in LIBRARIES:
            raise ConfigError(f"unknown intra library '{library}' (known: {', '.join(LIBRARIES)})")
        if not 1 <= quality <= len(qp_by_quality):
            raise ConfigError(f"--quality {quality}: this intra codec has rate points 1..{len(qp_by_quality)}")
        self.library, self.qp_by_quality, self.quality, self.preset = library, list(qp_by_quality), quality, preset
        self.qp = self.qp_by_quality[quality - 1]
        self.model_name = f"{library} intra"
        self.latent_coders = {}  # no latents: the coding tools have nothing to act on

    def config(self) -> dict:
        return {"library": self.library, "qp_by_quality": self.qp_by_quality, "quality": self.quality,
                "preset": self.preset}

    def settings_digest(self) -> bytes:
        """16 bytes naming the coding settings, in place of a checkpoint hash."""
        return hashlib.sha256(repr(sorted(self.config().items())).encode()).digest()[:16]

    def forward(self, frames, stage="intra"):
        raise ConfigError(f"{self.model_name} is a traditional encoder: it has nothing to train")

    # --- coding ------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_intra(self, x: torch.Tensor, picture: PictureBox | None = None) -> CodedFrame:
        picture = picture or PictureBox.whole(x)
        yuv = rgb_to_yuv420(picture.crop(x), 8)
        data = self._encode_picture(yuv)
        decoded = self._decode_picture(data)  # the decoder's output, not the encoder's own reconstruction
        return CodedFrame(self.intra_part_names, [data], self._frame(decoded, picture), _planes_hash(decoded))

    @torch.no_grad()
    def decode_intra(self, parts: list[bytes], frame_shape: tuple[int, int], expected_hash: bytes,
                     shift_indexes: tuple[int, ...] = (), picture: PictureBox | None = None) -> torch.Tensor:
        check_part_count(parts, self.intra_part_names, "I")
        if shift_indexes:
            raise BitstreamError(f"frame header holds {len(shift_indexes)} shift indexes, expected 0")
        picture = picture or PictureBox(0, 0, *frame_shape, *frame_shape)
        decoded = self._decode_picture(parts[0])
        if decoded.y.shape != (picture.height, picture.width):
            raise BitstreamError(f"the {self.library} picture is {decoded.y.shape[1]}x{decoded.y.shape[0]}, "
                                 f"the sequence's {picture.width}x{picture.height}")
        if _planes_hash(decoded) != expected_hash:
            raise DecoderDesyncError(
                f"decoder desync: the {LIBRARIES[self.library][0]} decoder's picture differs from the encoder's "
                "(hash of the decoded planes); the PyAV/FFmpeg decoders of the two machines disagree")
        return self._frame(decoded, picture)

    def _frame(self, decoded: YuvFrame, picture: PictureBox) -> torch.Tensor:
        return picture.pad(yuv420_to_rgb(decoded, 8))

    def _encode_picture(self, yuv: YuvFrame) -> bytes:
        import av

        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration otherwise
        height, width = yuv.y.shape
        context = av.CodecContext.create(self.library, "w")
        context.width, context.height, context.pix_fmt = width, height, "yuv420p"
        context.time_base = Fraction(1, 25)
        context.options = LIBRARIES[self.library][1](self.qp, self.preset)
        try:
            context.open()
        except av.FFmpegError as error:  # e.g. libx265 refuses pictures under 16 x 16
            raise ConfigError(f"{self.library} cannot code a {width}x{height} picture at QP {self.qp}: "
                              f"{error}") from None
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane, values in zip(frame.planes, (yuv.y, yuv.u, yuv.v)):
            rows = np.zeros((values.shape[0], plane.line_size), np.uint8)  # lines are padded
            rows[:, :values.shape[1]] = values
            plane.update(rows.tobytes())
        packets = list(context.encode(frame)) + list(context.encode(None))
        return b"".join(bytes(packet) for packet in packets)

    def _decode_picture(self, data: bytes) -> YuvFrame:
        import av

        context = av.CodecContext.create(LIBRARIES[self.library][0], "r")
        try:
            frames = list(context.decode(av.Packet(data))) + list(context.decode(None))
        except av.FFmpegError as error:
            raise BitstreamError(f"the {self.library} picture could not be decoded: {error}") from None
        if len(frames) != 1 or frames[0].format.name != "yuv420p":
            raise BitstreamError(f"the {self.library} part holds {len(frames)} pictures "
                                 f"({', '.join(f.format.name for f in frames)}), expected one 8-bit 4:2:0 picture")
        planes = [np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width].copy()
                  for plane in frames[0].planes]
        return YuvFrame(y=planes[0], u=planes[1], v=planes[2])


def _planes_hash(frame: YuvFrame) -> bytes:
    digest = hashlib.blake2b(digest_size=4)
    for plane in (frame.y, frame.u, frame.v):
        digest.update(np.ascontiguousarray(plane).tobytes())
    return digest.digest()[:ENTROPY_HASH_BYTES]
