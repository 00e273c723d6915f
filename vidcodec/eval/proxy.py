"""Quick proxies of a test sequence: first N frames, centre crop, integer downscale.

Full UVG runs take hours on a CPU; a proxy keeps the content and shrinks the work. The proxy is
written once per run as a raw YUV file (RUN/inputs/SEQ_WxH.yuv) so that every job of the run, the
learned codec's and the traditional anchors', codes exactly the same samples.

Order of operations: crop to ``crop`` (centred, even offsets so chroma stays aligned), then
downscale by ``downscale`` with box (area) averaging of each plane, rounded half up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidcodec.errors import ConfigError
from vidcodec.io.yuv import SequenceGeometry, YuvFrame, YuvReader, YuvWriter


@dataclass(frozen=True)
class ProxySpec:
    frames: int | None = None  # first N frames; None = all
    crop: tuple[int, int] | None = None  # (width, height) of the centre crop, before downscaling
    downscale: int = 1  # integer factor per dimension

    @property
    def is_identity(self) -> bool:
        return self.crop is None and self.downscale == 1

    def output_geometry(self, source: SequenceGeometry) -> SequenceGeometry:
        width, height = self.crop or (source.width, source.height)
        problems = []
        if self.crop and (width > source.width or height > source.height):
            problems.append(f"crop {width}x{height} is larger than the {source.width}x{source.height} sequence")
        if self.crop and (width % 2 or height % 2):
            problems.append(f"crop {width}x{height} (expected even dimensions for 4:2:0)")
        if self.downscale < 1:
            problems.append(f"downscale={self.downscale} (expected an integer >= 1)")
        elif width % (2 * self.downscale) or height % (2 * self.downscale):
            problems.append(
                f"{width}x{height} is not divisible by 2 x downscale={2 * self.downscale} (4:2:0 needs even sizes "
                "after downscaling); choose a crop that is"
            )
        if problems:
            raise ConfigError("invalid proxy: " + "; ".join(problems))
        return SequenceGeometry(width // self.downscale, height // self.downscale, source.bit_depth, source.fps)


def _centre_offsets(source: SequenceGeometry, width: int, height: int) -> tuple[int, int]:
    """Luma (top, left) of the centre crop, rounded down to even so chroma (at half) stays aligned."""
    return ((source.height - height) // 2) & ~1, ((source.width - width) // 2) & ~1


def _box_downscale(plane: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return plane
    h, w = plane.shape[0] // factor, plane.shape[1] // factor
    blocks = plane.astype(np.float64).reshape(h, factor, w, factor)
    return np.floor(blocks.mean(axis=(1, 3)) + 0.5).astype(plane.dtype)


def proxy_frame(frame: YuvFrame, spec: ProxySpec, source: SequenceGeometry) -> YuvFrame:
    width, height = spec.crop or (source.width, source.height)
    top, left = _centre_offsets(source, width, height)
    y = frame.y[top : top + height, left : left + width]
    u = frame.u[top // 2 : (top + height) // 2, left // 2 : (left + width) // 2]
    v = frame.v[top // 2 : (top + height) // 2, left // 2 : (left + width) // 2]
    return YuvFrame(*(_box_downscale(p, spec.downscale) for p in (y, u, v)))


def write_proxy(reader: YuvReader, spec: ProxySpec, out_path: Path) -> SequenceGeometry:
    """Write the proxy of ``reader`` to ``out_path`` (atomically); returns its geometry."""
    geometry = spec.output_geometry(reader.geometry)
    num_frames = reader.num_frames if spec.frames is None else spec.frames
    if not 1 <= num_frames <= reader.num_frames:
        raise ConfigError(f"frames={spec.frames}: {reader.path} has {reader.num_frames} frames")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        with YuvWriter(tmp, geometry) as writer:
            for poc in range(num_frames):
                writer.write_frame(proxy_frame(reader.read_frame(poc), spec, reader.geometry))
        tmp.replace(out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return geometry
