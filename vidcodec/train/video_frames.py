"""Frames of a user's video file through PyAV (anything FFmpeg decodes: .mp4, .mkv, .y4m, ...):
how many there are, how large they are, and ``count`` consecutive ones from any start.

Reading a clip seeks to the key frame before its start and decodes from there, so a clip from the end
of a long video costs a group of pictures, not the whole video. Frame indexes come from presentation
timestamps, so the same (file, start) gives the same frames whether or where the demuxer could seek.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidcodec.errors import ConfigError


@dataclass(frozen=True)
class VideoProbe:
    """What the header of a video says: its frame count (estimated from the duration when the
    container does not store it) and its frame size in pixels."""

    num_frames: int
    height: int
    width: int


def _open(path: Path):
    import av  # here: generated-data runs need no PyAV (a GPU machine may lack it)

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise ConfigError(f"data file {path}: PyAV cannot open it ({error}); remove it from the data folder or "
                          "convert it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)") from None
    if not container.streams.video:
        container.close()
        raise ConfigError(f"data file {path}: no video stream; remove it from the data folder")
    return container


def probe_video(path: Path) -> VideoProbe:
    """The frame count and size of ``path`` from its header (nothing decoded); ConfigError naming the
    file when PyAV cannot open it or it holds no video."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if stream.frames:
            num_frames = stream.frames
        elif stream.duration and rate:  # y4m: a duration in frames of the stream's time base
            num_frames = int(round(stream.duration * stream.time_base * rate))
        elif container.duration and rate:  # Matroska: only the container's duration, in microseconds
            num_frames = int(round(container.duration / 1e6 * rate))
        else:  # neither stored: count the packets (demuxed, not decoded)
            num_frames = sum(1 for packet in container.demux(stream) if packet.size)
        height, width = stream.codec_context.height, stream.codec_context.width
    finally:
        container.close()
    if num_frames < 1 or height < 1 or width < 1:
        raise ConfigError(f"data file {path}: no frames found; remove it from the data folder")
    return VideoProbe(num_frames=num_frames, height=height, width=width)


def _frame_index(frame, stream, rate) -> int | None:
    if frame.pts is None or not rate:
        return None
    start_pts = stream.start_time or 0
    return int(round(float((frame.pts - start_pts) * stream.time_base * rate)))


def read_video_frames(path: Path, start: int, count: int) -> np.ndarray:
    """(count,H,W,3) uint8 RGB: frames start .. start + count - 1 of ``path`` in display order. When the
    file ends before them (a frame count estimated from the duration), the last ``count`` frames."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if start > 0 and rate:
            try:
                container.seek(int(start / rate / stream.time_base) + (stream.start_time or 0), stream=stream,
                               backward=True)
            except Exception:  # noqa: BLE001 - a demuxer that cannot seek: decode from the start instead
                container.seek(0)
        frames: list[np.ndarray] = []
        last: deque[np.ndarray] = deque(maxlen=count)
        for position, frame in enumerate(container.decode(stream)):
            index = _frame_index(frame, stream, rate)
            if index is None:
                index = position if start == 0 else None
            if index is None:  # no timestamps to place a seek: read the whole file in order
                container.close()
                return _read_in_order(path, start, count)
            if position == 0 and index > start:  # the seek went past the start
                container.close()
                return _read_in_order(path, start, count)
            image = frame.to_ndarray(format="rgb24")
            last.append(image)
            if index >= start:
                frames.append(image)
                if len(frames) == count:
                    return np.stack(frames)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - av.FFmpegError and friends: a damaged file
        raise ConfigError(f"data file {path}: decoding failed at frame {start} ({error}); remove or re-encode it") \
            from None
    finally:
        container.close()
    if start > 0:
        return _read_in_order(path, start, count)
    raise ConfigError(f"data file {path}: has {len(last)} frames, fewer than clip_frames={count}; remove it or "
                      "lower clip_frames")


def _read_in_order(path: Path, start: int, count: int) -> np.ndarray:
    """read_video_frames without seeking: decodes from the first frame (exact, slower)."""
    container = _open(path)
    try:
        last: deque[np.ndarray] = deque(maxlen=count)
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            last.append(frame.to_ndarray(format="rgb24"))
            if index == start + count - 1:
                break
    finally:
        container.close()
    if len(last) < count:
        raise ConfigError(f"data file {path}: has {len(last)} frames, fewer than clip_frames={count}; remove it "
                          "or lower clip_frames")
    return np.stack(last)
