"""Bitstream errors: bytes from a file are untrusted, so every defect becomes one of these."""

from __future__ import annotations

from vidcodec.errors import VidcodecError


class BitstreamError(VidcodecError):
    """A bitstream file is truncated, corrupted, foreign or of an unknown syntax version."""


class DecoderDesyncError(BitstreamError):
    """The decoder's entropy parameters differ from the encoder's (hash mismatch in a frame header).

    Float results of the networks differ across machines and thread counts; a single scale index on
    the other side of a threshold turns the rest of the frame into noise. We refuse instead.
    """
