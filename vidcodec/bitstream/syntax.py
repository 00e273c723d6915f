"""All bitstream syntax of vidcodec: the sequence header and the frame header.

Layout (all integers little-endian):

``sequence.hdr``::

    magic            4 bytes  b"VIDC"
    syntax_version   u16      SYNTAX_VERSION; any change of this module bumps it
    header_length    u32      bytes of the fields below, up to and excluding the CRC
    width, height    u16 u16  picture size before padding, luma samples
    bit_depth        u8       8 or 10
    chroma_format    u8       1 = 4:2:0 (the only one supported)
    fps_num, fps_den u32 u32
    num_frames       u32
    intra_period     i32      -1 = only the first frame is intra
    intra model      the model coding I-frames, as:
      model_id         u8 length + ASCII
      quality          u8       shipped rate point, 0 = custom checkpoint
      checkpoint_hash  16 bytes sha256 prefix of the model's state dict (see models.registry)
    inter model      the model coding P-frames, the same three fields (often the same model)
    pad_multiple     u16      frames are padded to multiples of it by edge replication (a multiple
                              of both models' own)
    quantizer        u8 length + ASCII ("sq" for scalar rounding)
    quant_params     u16 length + bytes (opaque to this module, owned by the quantizer)
    latent_shift     u8       bit mask of the roles of shifted latents (tools.ROLE_BITS): 1 = residual,
                              2 = intra, 4 = motion, 8 = contextual; 0 = off
    shift_groups     u8       channel groups with their own step (1 = one step per latent)
    shift_candidates u8 count + f32 x count: the steps rho an index may select (latent_shift.py)
    num_threads      u8       torch intra-op threads used for coding; the decoder must use the same
    crc32            u32      over everything before it

``frames/NNNNNN.bin``::

    sync             2 bytes  b"VF"
    poc              u32      display order; must equal NNNNNN
    frame_type       u8       0 = I, 1 = P
    sequence_id      4 bytes  first bytes of sha256(sequence.hdr): a frame from another stream is refused
    entropy_hash     4 bytes  hash of the scale indexes the encoder used (desync guard)
    shift_indexes    u8 count + u8 x count: per channel group, the index of its step in
                              shift_candidates; count is 0 for latents the shift does not apply to
    num_parts        u8
    part_lengths     u32 x num_parts
    payload          sum(part_lengths) bytes, the entropy-coded parts in order
    crc32            u32      over everything before it

Bytes are untrusted: reading never asserts, it raises BitstreamError naming the file and field.

Versions: 2 named one model; 3 (codec interface) names an intra and an inter model and widens the
latent_shift mask to four roles. Frame files are the same in both.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction

from vidcodec.bitstream.errors import BitstreamError

SEQUENCE_MAGIC = b"VIDC"
FRAME_SYNC = b"VF"
SYNTAX_VERSION = 3
CHROMA_FORMAT_420 = 1
FRAME_TYPE_CODES = {"I": 0, "P": 1}
MAX_PARTS = 16
MAX_SHIFT_CANDIDATES = 255
MAX_SHIFT_MASK = 15  # four roles (tools.ROLE_BITS)
# A frame part larger than this cannot come from any supported picture size; refusing early keeps a
# corrupted length field from making us allocate or wait on gigabytes.
MAX_PART_BYTES = 1 << 30


class _ByteReader:
    """Sequential reader over untrusted bytes; every read checks the remaining length."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data = data
        self.offset = 0
        self.where = where

    def take(self, num_bytes: int, field: str) -> bytes:
        if num_bytes < 0 or self.offset + num_bytes > len(self.data):
            raise BitstreamError(
                f"{self.where}: truncated at field '{field}' (needs {num_bytes} bytes at offset "
                f"{self.offset}, file has {len(self.data)})"
            )
        chunk = self.data[self.offset : self.offset + num_bytes]
        self.offset += num_bytes
        return chunk

    def unpack(self, fmt: str, field: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), field))[0]

    def text(self, length_fmt: str, field: str) -> str:
        raw = self.take(self.unpack(length_fmt, field + " length"), field)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise BitstreamError(f"{self.where}: field '{field}' is not ASCII") from None


def _check_crc(data: bytes, where: str) -> bytes:
    """Split off and verify the trailing CRC32; returns the body."""
    if len(data) < 4:
        raise BitstreamError(f"{where}: truncated ({len(data)} bytes, too short for a CRC)")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise BitstreamError(f"{where}: CRC32 mismatch (file corrupted or truncated)")
    return body


@dataclass(frozen=True)
class ModelRef:
    """Which weights code a frame type: model id, shipped rate point (0 = custom checkpoint), and the
    16-byte hash of the state dict (models.registry.state_dict_hash)."""

    model_id: str
    quality: int
    checkpoint_hash: bytes

    def write(self) -> bytes:
        model_id = self.model_id.encode("ascii")
        return struct.pack("<B", len(model_id)) + model_id + struct.pack("<B", self.quality) + self.checkpoint_hash

    @classmethod
    def read(cls, reader: "_ByteReader", which: str) -> "ModelRef":
        return cls(
            model_id=reader.text("B", f"{which} model_id"),
            quality=reader.unpack("B", f"{which} quality"),
            checkpoint_hash=reader.take(16, f"{which} checkpoint_hash"),
        )


@dataclass(frozen=True)
class SequenceHeader:
    width: int
    height: int
    bit_depth: int
    fps: float
    num_frames: int
    intra_period: int
    intra_model: ModelRef
    inter_model: ModelRef
    pad_multiple: int
    quantizer: str = "sq"
    quant_params: bytes = b""
    latent_shift: int = 0
    shift_groups: int = 1
    shift_candidates: tuple[float, ...] = ()
    num_threads: int = 1

    def fps_fraction(self) -> Fraction:
        return Fraction(self.fps).limit_denominator(1001)

    def write(self) -> bytes:
        fps = self.fps_fraction()
        quantizer = self.quantizer.encode("ascii")
        fields = b"".join(
            [
                struct.pack("<HHBB", self.width, self.height, self.bit_depth, CHROMA_FORMAT_420),
                struct.pack("<IIIi", fps.numerator, fps.denominator, self.num_frames, self.intra_period),
                self.intra_model.write(),
                self.inter_model.write(),
                struct.pack("<H", self.pad_multiple),
                struct.pack("<B", len(quantizer)) + quantizer,
                struct.pack("<H", len(self.quant_params)) + self.quant_params,
                struct.pack("<BBB", self.latent_shift, self.shift_groups, len(self.shift_candidates)),
                struct.pack(f"<{len(self.shift_candidates)}f", *self.shift_candidates),
                struct.pack("<B", self.num_threads),
            ]
        )
        body = SEQUENCE_MAGIC + struct.pack("<HI", SYNTAX_VERSION, len(fields)) + fields
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def read(cls, data: bytes, where: str = "sequence.hdr") -> "SequenceHeader":
        if data[:4] != SEQUENCE_MAGIC:
            raise BitstreamError(f"{where}: not a vidcodec sequence header (bad magic {data[:4]!r})")
        reader = _ByteReader(data, where)
        reader.take(4, "magic")
        version = reader.unpack("H", "syntax_version")
        if version != SYNTAX_VERSION:
            raise BitstreamError(
                f"{where}: made by syntax version {version}, this decoder reads version {SYNTAX_VERSION}; "
                "decode it with the vidcodec release that wrote it"
            )
        body = _check_crc(data, where)
        reader = _ByteReader(body, where)
        reader.take(4 + 2, "magic")
        fields_length = reader.unpack("I", "header_length")
        if fields_length != len(body) - reader.offset:
            raise BitstreamError(f"{where}: header_length {fields_length} does not match the file")
        width = reader.unpack("H", "width")
        height = reader.unpack("H", "height")
        bit_depth = reader.unpack("B", "bit_depth")
        chroma_format = reader.unpack("B", "chroma_format")
        fps_num = reader.unpack("I", "fps_num")
        fps_den = reader.unpack("I", "fps_den")
        num_frames = reader.unpack("I", "num_frames")
        intra_period = reader.unpack("i", "intra_period")
        intra_model = ModelRef.read(reader, "intra")
        inter_model = ModelRef.read(reader, "inter")
        pad_multiple = reader.unpack("H", "pad_multiple")
        quantizer = reader.text("B", "quantizer")
        quant_params = reader.take(reader.unpack("H", "quant_params length"), "quant_params")
        latent_shift = reader.unpack("B", "latent_shift")
        shift_groups = reader.unpack("B", "shift_groups")
        num_candidates = reader.unpack("B", "shift_candidates count")
        shift_candidates = tuple(reader.unpack("f", f"shift_candidates[{i}]") for i in range(num_candidates))
        num_threads = reader.unpack("B", "num_threads")
        problems = []
        if chroma_format != CHROMA_FORMAT_420:
            problems.append(f"chroma_format={chroma_format} (expected {CHROMA_FORMAT_420} = 4:2:0)")
        if bit_depth not in (8, 10):
            problems.append(f"bit_depth={bit_depth} (expected 8 or 10)")
        if width < 2 or height < 2 or width % 2 or height % 2:
            problems.append(f"size={width}x{height} (expected even and >= 2)")
        if fps_den == 0 or fps_num == 0:
            problems.append(f"fps={fps_num}/{fps_den}")
        if intra_period == 0 or intra_period < -1:
            problems.append(f"intra_period={intra_period} (expected -1 or >= 1)")
        if pad_multiple < 1 or num_threads < 1:
            problems.append(f"pad_multiple={pad_multiple}, num_threads={num_threads} (expected >= 1)")
        if latent_shift > MAX_SHIFT_MASK or shift_groups < 1 or (latent_shift and not shift_candidates):
            problems.append(f"latent_shift={latent_shift}, shift_groups={shift_groups}, {num_candidates} shift "
                            f"candidates (expected mask 0..{MAX_SHIFT_MASK}, >= 1 group, candidates when on)")
        if not all(math.isfinite(rho) for rho in shift_candidates):
            problems.append("shift_candidates hold a non-finite value")
        if problems:
            raise BitstreamError(f"{where}: invalid field values: " + "; ".join(problems))
        return cls(
            width=width,
            height=height,
            bit_depth=bit_depth,
            fps=fps_num / fps_den,
            num_frames=num_frames,
            intra_period=intra_period,
            intra_model=intra_model,
            inter_model=inter_model,
            pad_multiple=pad_multiple,
            quantizer=quantizer,
            quant_params=quant_params,
            latent_shift=latent_shift,
            shift_groups=shift_groups,
            shift_candidates=shift_candidates,
            num_threads=num_threads,
        )


def sequence_id(header_bytes: bytes) -> bytes:
    """4-byte identity of a stream, stored in every frame header to catch foreign frame files."""
    return hashlib.sha256(header_bytes).digest()[:4]


@dataclass(frozen=True)
class FrameHeader:
    poc: int
    frame_type: str  # "I" or "P"
    sequence_id: bytes  # 4 bytes
    entropy_hash: bytes  # 4 bytes
    shift_indexes: tuple[int, ...]
    part_lengths: tuple[int, ...]


def write_frame(header: FrameHeader, parts: list[bytes]) -> bytes:
    """Serialize a frame: header, the parts concatenated, CRC32."""
    if tuple(len(p) for p in parts) != header.part_lengths:
        raise ValueError("part_lengths do not match the parts")  # a bug, not a stream error
    body = b"".join(
        [
            FRAME_SYNC,
            struct.pack("<IB", header.poc, FRAME_TYPE_CODES[header.frame_type]),
            header.sequence_id,
            header.entropy_hash,
            struct.pack("<B", len(header.shift_indexes)),
            struct.pack(f"<{len(header.shift_indexes)}B", *header.shift_indexes),
            struct.pack("<B", len(parts)),
            struct.pack(f"<{len(parts)}I", *header.part_lengths),
            *parts,
        ]
    )
    return body + struct.pack("<I", zlib.crc32(body))


def read_frame(data: bytes, where: str) -> tuple[FrameHeader, list[bytes]]:
    """Parse and verify one frame file; raises BitstreamError on any defect."""
    if data[:2] != FRAME_SYNC:
        raise BitstreamError(f"{where}: not a vidcodec frame (bad sync {data[:2]!r})")
    body = _check_crc(data, where)
    reader = _ByteReader(body, where)
    reader.take(2, "sync")
    poc = reader.unpack("I", "poc")
    type_code = reader.unpack("B", "frame_type")
    frame_types = {code: name for name, code in FRAME_TYPE_CODES.items()}
    if type_code not in frame_types:
        raise BitstreamError(f"{where}: field 'frame_type'={type_code} is not 0 (I) or 1 (P)")
    seq_id = reader.take(4, "sequence_id")
    entropy_hash = reader.take(4, "entropy_hash")
    num_shift_indexes = reader.unpack("B", "shift_indexes count")
    shift_indexes = tuple(reader.unpack("B", f"shift_indexes[{i}]") for i in range(num_shift_indexes))
    num_parts = reader.unpack("B", "num_parts")
    if not 1 <= num_parts <= MAX_PARTS:
        raise BitstreamError(f"{where}: field 'num_parts'={num_parts} (expected 1..{MAX_PARTS})")
    part_lengths = tuple(reader.unpack("I", f"part_lengths[{i}]") for i in range(num_parts))
    if any(length > MAX_PART_BYTES for length in part_lengths):
        raise BitstreamError(f"{where}: field 'part_lengths' holds an impossible size")
    parts = [reader.take(length, f"payload part {i}") for i, length in enumerate(part_lengths)]
    if reader.offset != len(body):
        raise BitstreamError(f"{where}: {len(body) - reader.offset} trailing bytes after the payload")
    header = FrameHeader(
        poc=poc,
        frame_type=frame_types[type_code],
        sequence_id=seq_id,
        entropy_hash=entropy_hash,
        shift_indexes=shift_indexes,
        part_lengths=part_lengths,
    )
    return header, parts


def frame_file_name(poc: int) -> str:
    return f"{poc:06d}.bin"
