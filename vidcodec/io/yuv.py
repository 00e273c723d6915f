"""Raw YUV 4:2:0 (8-bit, or 10-bit little-endian in 16-bit words) and .y4m sequences.

Geometry of a raw file comes from, in order: ``--size``, the file name (UVG/JVET style:
``Beauty_1920x1080_120fps_420_8bit_YUV.yuv``, ``BQMall_832x480_60.yuv``), or a dataset file in
sequences/ that names the sequence (``Beauty.yuv`` -> sequences/uvg.yaml). A .y4m file carries its
own geometry in its header.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np
import yaml

from vidcodec.errors import ConfigError

DATASET_DIR = Path(__file__).resolve().parents[2] / "sequences"
MIN_DIMENSION = 16
MAX_DIMENSION = 65535  # width and height are u16 in the sequence header
# Frame rates a stream can carry: the header stores fps as u32/u32 with a denominator of at most
# 1001 (NTSC rates), so below 1/100 the rate would round to another or to 0; above 10000 no
# camera or display runs, and such a value is a typo (or inf / 1e300).
MIN_FPS, MAX_FPS = 0.01, 10000.0
Y4M_MAGIC = b"YUV4MPEG2 "
Y4M_CHROMA_420 = {"420jpeg": 8, "420": 8, "420mpeg2": 8, "420paldv": 8, "420p10": 10}


class SequenceError(ValueError):
    """Bad input sequence; the message names the problem and the fix."""


@dataclass(frozen=True)
class SequenceGeometry:
    width: int
    height: int
    bit_depth: int = 8
    fps: float = 30.0

    @property
    def bytes_per_sample(self) -> int:
        return 1 if self.bit_depth <= 8 else 2

    @property
    def frame_num_bytes(self) -> int:
        """Bytes of one raw 4:2:0 frame: W*H luma + 2 * (W/2)*(H/2) chroma samples."""
        return self.width * self.height * 3 // 2 * self.bytes_per_sample

    def validate(self) -> None:
        if self.width % 2 or self.height % 2:
            raise SequenceError(f"size {self.width}x{self.height}: 4:2:0 needs even dimensions")
        if self.width < MIN_DIMENSION or self.height < MIN_DIMENSION:
            raise SequenceError(
                f"size {self.width}x{self.height} is too small (minimum {MIN_DIMENSION}x{MIN_DIMENSION})"
            )
        if self.width > MAX_DIMENSION or self.height > MAX_DIMENSION:
            raise SequenceError(f"size {self.width}x{self.height} is too large (at most {MAX_DIMENSION} a side)")
        if self.bit_depth not in (8, 10):
            raise SequenceError(f"bit depth {self.bit_depth} is not supported (expected 8 or 10)")
        check_fps(self.fps)


def check_fps(fps: float) -> None:
    """ConfigError unless ``fps`` is a frame rate a stream can carry (MIN_FPS..MAX_FPS)."""
    if not MIN_FPS <= fps <= MAX_FPS:  # False for nan too
        raise ConfigError(f"fps={fps:g} (expected {MIN_FPS:g} to {MAX_FPS:g} frames per second); "
                          "pass --fps with a rate in that range")


@dataclass(frozen=True)
class YuvFrame:
    """One 4:2:0 picture: y (H,W), u and v (H/2,W/2); uint8 for 8-bit, uint16 for 10-bit."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise SequenceError(f"--size '{text}' is not of the form WxH (e.g. 1920x1080)")
    return int(match.group(1)), int(match.group(2))


def geometry_from_filename(path: str | Path) -> SequenceGeometry | None:
    """Parse WxH, frame rate and bit depth from JVET/UVG-style names; None when there is no WxH."""
    name = Path(path).stem
    size = re.search(r"(?:^|[_\-.])(\d{2,5})x(\d{2,5})(?=$|[_\-.])", name)
    if not size:
        return None
    tail = name[size.end():]
    fps_match = re.search(r"[_\-.](\d+(?:\.\d+)?)(?:fps|hz)?(?=$|[_\-.])", tail, re.IGNORECASE)
    depth_match = re.search(r"[_\-.](8|10)bit(?=$|[_\-.])", name, re.IGNORECASE)
    fps = float(fps_match.group(1)) if fps_match else 30.0
    if fps_match and fps_match.group(1) == "420":  # chroma tag, not a rate: "..._420_8bit"
        fps = 30.0
    return SequenceGeometry(
        width=int(size.group(1)),
        height=int(size.group(2)),
        bit_depth=int(depth_match.group(1)) if depth_match else 8,
        fps=fps,
    )


# Fields of a sequence entry in a video dataset file: name -> (type, required).
DATASET_FIELDS = {"file": (str, True), "width": (int, True), "height": (int, True), "fps": (float, False),
                  "frames": (int, False), "bit_depth": (int, False)}


def load_dataset(path: str | Path) -> dict:
    """Read a dataset file: {name, description, sequences: {Name: {file, width, height, fps, frames, bit_depth}}};
    SequenceError naming the file, sequence and field for YAML that does not parse or a field of the
    wrong type (``width: sixty-four``)."""
    path = Path(path)
    if not path.is_file():
        raise SequenceError(f"dataset file {path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        problem = " ".join(str(error).split())
        raise SequenceError(f"dataset file {path} is not valid YAML ({problem}); fix the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("sequences"), dict):
        raise SequenceError(f"dataset file {path} has no 'sequences' mapping")
    if data.get("kind") != "images":
        for name, entry in data["sequences"].items():
            _check_dataset_entry(path, name, entry)
    return data


def _check_dataset_entry(path: Path, name: object, entry: object) -> None:
    if not isinstance(entry, dict):
        raise SequenceError(f"dataset file {path}: sequence '{name}' is not a mapping of fields "
                            f"({', '.join(DATASET_FIELDS)})")
    for field_name, (kind, required) in DATASET_FIELDS.items():
        if field_name not in entry:
            if required:
                raise SequenceError(f"dataset file {path}: sequence '{name}' lacks the field '{field_name}'")
            continue
        value = entry[field_name]
        numeric = kind is not str and not isinstance(value, bool) and isinstance(value, (int, float))
        fits = isinstance(value, str) if kind is str else numeric and (kind is float or float(value).is_integer())
        if not fits or (numeric and not value > 0):
            expected = "a file name" if kind is str else f"a positive {'number' if kind is float else 'integer'}"
            raise SequenceError(f"dataset file {path}: sequence '{name}' field {field_name}={value!r} "
                                f"(expected {expected})")


def _dataset_files() -> list[Path]:
    """The video dataset files of sequences/ (image datasets, ``kind: images``, live there too)."""
    return [path for path in sorted(DATASET_DIR.glob("*.yaml"))
            if (yaml.safe_load(path.read_text()) or {}).get("kind") != "images"]


def geometry_from_dataset(path: str | Path, dataset_files: list[Path] | None = None) -> SequenceGeometry | None:
    """Find the sequence in dataset files by its file name or sequence name ("Beauty.yuv" -> Beauty)."""
    name = Path(path).name
    stem = Path(path).stem
    for dataset_file in dataset_files if dataset_files is not None else _dataset_files():
        for seq_name, entry in load_dataset(dataset_file)["sequences"].items():
            file_name = str(entry.get("file", ""))
            names = {seq_name.lower(), file_name.lower(), Path(file_name).stem.lower()}
            if name.lower() in names or stem.lower() in names or stem.split("_")[0].lower() == seq_name.lower():
                return SequenceGeometry(
                    width=int(entry["width"]),
                    height=int(entry["height"]),
                    bit_depth=int(entry.get("bit_depth", 8)),
                    fps=float(entry.get("fps", 30.0)),
                )
    return None


def _parse_y4m_header(line: bytes, where: str) -> SequenceGeometry:
    tokens = line.decode("ascii", errors="replace").split()[1:]
    values = {token[0]: token[1:] for token in tokens if token}
    try:
        width, height = int(values["W"]), int(values["H"])
    except (KeyError, ValueError):
        raise SequenceError(f"{where}: y4m header lacks W and H") from None
    chroma = values.get("C", "420jpeg")
    if chroma not in Y4M_CHROMA_420:
        raise SequenceError(f"{where}: y4m chroma format C{chroma} is not supported (4:2:0 8-bit or 10-bit only)")
    fps = 30.0
    if "F" in values:
        num, _, den = values["F"].partition(":")
        try:
            fps = float(Fraction(int(num), int(den or 1)))
        except (ValueError, ZeroDivisionError, OverflowError):
            raise SequenceError(f"{where}: y4m frame rate F{values['F']} is invalid") from None
    return SequenceGeometry(width, height, Y4M_CHROMA_420[chroma], fps)


def resolve_geometry(
    path: str | Path,
    size: str | None = None,
    fps: float | None = None,
    bit_depth: int | None = None,
    dataset_files: list[Path] | None = None,
) -> SequenceGeometry:
    path = Path(path)
    geometry = None
    if path.suffix.lower() == ".y4m" and path.is_file():
        with open(path, "rb") as handle:
            geometry = _parse_y4m_header(handle.readline(), str(path))
        if size is not None and parse_size(size) != (geometry.width, geometry.height):
            raise SequenceError(
                f"--size {size} disagrees with the y4m header of {path} "
                f"({geometry.width}x{geometry.height}); drop --size"
            )
    elif size is not None:
        width, height = parse_size(size)
        from_name = geometry_from_filename(path) or geometry_from_dataset(path, dataset_files)
        geometry = SequenceGeometry(width, height, from_name.bit_depth if from_name else 8,
                                    from_name.fps if from_name else 30.0)
    else:
        geometry = geometry_from_filename(path) or geometry_from_dataset(path, dataset_files)
    if geometry is None:
        raise SequenceError(
            f"cannot tell the picture size of {path}: pass --size WxH (and --bit-depth 10 for 10-bit), "
            "name the file like Name_1920x1080_60fps_8bit.yuv, or list it in a sequences/*.yaml file"
        )
    geometry = SequenceGeometry(
        geometry.width,
        geometry.height,
        bit_depth if bit_depth is not None else geometry.bit_depth,
        fps if fps is not None else geometry.fps,
    )
    geometry.validate()
    return geometry


class YuvReader:
    """Random-access reader of a raw .yuv or a .y4m sequence."""

    def __init__(
        self,
        path: str | Path,
        geometry: SequenceGeometry | None = None,
        *,
        size: str | None = None,
        fps: float | None = None,
        bit_depth: int | None = None,
        dataset_files: list[Path] | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SequenceError(f"input sequence {self.path} not found")
        self.geometry = geometry or resolve_geometry(self.path, size, fps, bit_depth, dataset_files)
        self.geometry.validate()
        self._handle: BinaryIO = open(self.path, "rb")
        self._is_y4m = self.path.suffix.lower() == ".y4m"
        if self._is_y4m:
            self._frame_offsets = self._index_y4m()
        else:
            self._frame_offsets = self._index_raw()
        self.num_frames = len(self._frame_offsets)
        # Doubts about the input that do not stop coding; the command line prints them.
        self.warnings: list[str] = []
        if not self._is_y4m and self.geometry.bit_depth == 8 and self._looks_like_16_bit_words():
            self.warnings.append(
                f"{self.path}: every second byte is 0..3, the pattern of 10-bit samples in 16-bit words; "
                "if it is 10-bit, pass --bit-depth 10 (coded as 8-bit it gives twice the frames, each garbage)")

    def _looks_like_16_bit_words(self, probe_bytes: int = 1 << 20) -> bool:
        """Whether the file starts like little-endian 10-bit samples: high bytes all 0..3 while the low
        bytes are not. 8-bit video (luma >= 16 in video range) almost never has this pattern."""
        self._handle.seek(0)
        head = np.frombuffer(self._handle.read(min(probe_bytes, self.geometry.frame_num_bytes) // 2 * 2), np.uint8)
        if head.size < 64:
            return False
        low, high = head[0::2], head[1::2]
        return int(high.max()) <= 3 and int(low.max()) > 3

    def _index_raw(self) -> list[int]:
        file_size = self.path.stat().st_size
        frame_bytes = self.geometry.frame_num_bytes
        g = self.geometry
        if file_size == 0:
            raise SequenceError(f"{self.path} is empty")
        if file_size % frame_bytes:
            raise SequenceError(
                f"{self.path} has {file_size} bytes, not a multiple of the {frame_bytes}-byte frame of "
                f"{g.width}x{g.height} 4:2:0 {g.bit_depth}-bit: {file_size // frame_bytes} whole frames fit "
                f"with {file_size % frame_bytes} bytes left over; check --size and --bit-depth"
            )
        return [index * frame_bytes for index in range(file_size // frame_bytes)]

    def _index_y4m(self) -> list[int]:
        self._handle.seek(0)
        header = self._handle.readline()
        if not header.startswith(Y4M_MAGIC):
            raise SequenceError(f"{self.path} is not a y4m file (no YUV4MPEG2 header)")
        offsets = []
        file_size = self.path.stat().st_size
        position = self._handle.tell()
        while position < file_size:
            self._handle.seek(position)
            line = self._handle.readline(1024)
            if not line.startswith(b"FRAME"):
                raise SequenceError(f"{self.path}: expected a FRAME marker at byte {position}")
            start = position + len(line)
            if start + self.geometry.frame_num_bytes > file_size:
                raise SequenceError(f"{self.path}: frame {len(offsets)} is truncated")
            offsets.append(start)
            position = start + self.geometry.frame_num_bytes
        if not offsets:
            raise SequenceError(f"{self.path} holds no frames")
        return offsets

    def read_frame(self, index: int) -> YuvFrame:
        if not 0 <= index < self.num_frames:
            raise SequenceError(f"frame {index} is outside {self.path} ({self.num_frames} frames)")
        g = self.geometry
        dtype = np.uint8 if g.bytes_per_sample == 1 else np.dtype("<u2")
        self._handle.seek(self._frame_offsets[index])
        samples = np.frombuffer(self._handle.read(g.frame_num_bytes), dtype=dtype)
        luma = g.width * g.height
        chroma = luma // 4
        y = samples[:luma].reshape(g.height, g.width)
        u = samples[luma : luma + chroma].reshape(g.height // 2, g.width // 2)
        v = samples[luma + chroma :].reshape(g.height // 2, g.width // 2)
        if g.bit_depth == 10:
            y, u, v = (plane.astype(np.uint16) for plane in (y, u, v))
            if max(int(y.max()), int(u.max()), int(v.max())) > 1023:
                raise SequenceError(
                    f"{self.path} frame {index} has samples above 1023: not 10-bit (try --bit-depth 8 or check --size)"
                )
        return YuvFrame(y.copy(), u.copy(), v.copy())

    def __iter__(self) -> Iterator[YuvFrame]:
        for index in range(self.num_frames):
            yield self.read_frame(index)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> YuvReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class YuvWriter:
    """Writes frames as raw YUV, or as y4m when the file name ends in .y4m."""

    def __init__(self, path: str | Path, geometry: SequenceGeometry) -> None:
        self.path = Path(path)
        self.geometry = geometry
        self._handle = open(self.path, "wb")
        self._is_y4m = self.path.suffix.lower() == ".y4m"
        if self._is_y4m:
            rate = Fraction(geometry.fps).limit_denominator(1001)
            chroma = "420jpeg" if geometry.bit_depth == 8 else "420p10"
            self._handle.write(
                f"YUV4MPEG2 W{geometry.width} H{geometry.height} F{rate.numerator}:{rate.denominator} "
                f"Ip A1:1 C{chroma}\n".encode("ascii")
            )

    def write_frame(self, frame: YuvFrame) -> None:
        g = self.geometry
        if frame.y.shape != (g.height, g.width) or frame.u.shape != (g.height // 2, g.width // 2):
            raise ValueError(f"frame of shape {frame.y.shape} does not match {g.width}x{g.height}")
        dtype = np.uint8 if g.bytes_per_sample == 1 else np.dtype("<u2")
        if self._is_y4m:
            self._handle.write(b"FRAME\n")
        for plane in (frame.y, frame.u, frame.v):
            self._handle.write(np.ascontiguousarray(plane, dtype=dtype).tobytes())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> YuvWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_frame_count(requested: int | None, available: int, path: str | Path) -> int:
    """Number of frames to code: all when ``requested`` is None."""
    if requested is None:
        return available
    if requested < 1:
        raise SequenceError(f"--frames {requested} (expected >= 1)")
    if requested > available:
        raise SequenceError(f"--frames {requested} exceeds the {available} frames in {path}")
    return requested
