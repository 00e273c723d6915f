"""Tiny data folders for the --data tests: videos and numbered images whose frame k has the mean grey
level FRAME_STEP * k + RAMP_LEVELS / 2 (a horizontal ramp, so that crops at different places differ)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

FRAME_STEP = 11
RAMP_LEVELS = 8


def frame_pixels(index: int, height: int, width: int) -> np.ndarray:
    """(H,W,3) uint8: grey FRAME_STEP * index plus a ramp of RAMP_LEVELS levels from left to right."""
    ramp = np.linspace(0, RAMP_LEVELS, width, dtype=np.float32)[None, :, None]
    return np.broadcast_to(FRAME_STEP * index + ramp, (height, width, 3)).astype(np.uint8)


def write_video(path: Path, num_frames: int, height: int, width: int, codec: str = "mpeg4") -> Path:
    """A video of ``num_frames`` frames (a key frame every 4, so that reading a clip seeks)."""
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=25)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    if codec == "mpeg4":
        stream.options = {"g": "4"}
        stream.bit_rate = 4_000_000  # near lossless: a test reads the frame index from the grey level
    for index in range(num_frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_pixels(index, height, width)), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def frame_index(frame: np.ndarray) -> int:
    """The index of the frame (H,W,3) shows, uint8 or float in [0,1] (a crop holds part of the ramp:
    at most RAMP_LEVELS / 2 off the mean, under FRAME_STEP / 2)."""
    scale = 255.0 if frame.dtype != np.uint8 else 1.0
    return int(round((frame.mean() * scale - RAMP_LEVELS / 2) / FRAME_STEP))


def write_image_folder(folder: Path, num_frames: int, height: int, width: int, name: str = "frame_{}.png",
                       first_index: int = 0) -> Path:
    """Numbered PNGs frame_1.png .. (numbered from 1, unpadded, as sorting by name alone would misorder)
    showing frames first_index, first_index + 1, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(num_frames):
        Image.fromarray(frame_pixels(first_index + index, height, width)).save(folder / name.format(index + 1))
    return folder


def write_vimeo(root: Path, train: list[str], test: list[str], height: int, width: int) -> Path:
    """Vimeo-90k's septuplet layout: sequences/XXXXX/YYYY/im1..im7.png and the two lists."""
    for name in train + test:
        write_image_folder(root / "sequences" / name, 7, height, width, name="im{}.png")
    (root / "sep_trainlist.txt").write_text("\n".join(train) + "\n")
    (root / "sep_testlist.txt").write_text("\n".join(test) + "\n")
    return root
