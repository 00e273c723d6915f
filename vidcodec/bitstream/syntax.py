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
    pad_multiple     u16      the coded frame's sides are multiples of it (the least common multiple
                              of both models' own)
    pad_margin       u8       at least this many pixels of edge replication on every side of the
                              picture, which is centred in the coded frame (io.color.picture_box)
    quantizer        u8 length + ASCII ("sq" for scalar rounding)
    quant_params     u16 length + bytes (opaque to this module, owned by the quantizer: since version
                     5 a scope byte and a digest of the table parameters, 9 bytes, entropy/lattice_coder.py)
    latent_shift     u8       bit mask of the roles of shifted latents (tools.ROLE_BITS): 1 = residual,
                              2 = intra, 4 = motion, 8 = contextual; 0 = off
    shift_groups     u8       channel groups with their own step (1 = one step per latent)
    shift_candidates u8 count + f32 x count: the steps rho an index may select (latent_shift.py);
                     count 255 and no values: DEFAULT_SHIFT_CANDIDATES (since version 5: 1 byte
                     instead of 33 for the usual set, which matters in a one-picture image file)
    num_threads      u8       torch intra-op threads used for coding; the decoder must use the same
    stream_nonce     8 bytes  (since version 6) a digest of the coded pictures (pipeline.content_nonce):
                              streams of different pictures coded with the same settings get different
                              sequence ids, so a frame file of one is refused by the other, while coding
                              the same pictures again gives the same files (reproducible evaluations)
    crc32            u32      over everything before it

``frames/NNNNNN.bin``, sized for a P-frame header of about 13 bytes (the frame's payload at q1,
416x240, is a few hundred)::

    frame_info       u8       bits 7-6 = 0b10: frame marker (a file that is not a frame is named as such
                              3 times in 4 before the CRC is checked); bit 5: shift indexes follow;
                              bit 4: frame type (0 = I, 1 = P); bits 3-0: number of parts - 1
    poc              varint   display order; must equal NNNNNN (1 byte below 128, 2 below 16384)
    sequence_id      u8       first byte of sha256(sequence.hdr): names a frame of another stream 255
                              times in 256; the CRC below covers all four bytes and catches the rest
    entropy_hash     2 bytes  hash of the entropy parameters the encoder used (desync guard). A desync
                              is systematic (other weights, threads or floating point) and repeats on
                              every following frame, so 16 bits miss it with probability 2^-16 per frame
    shift_indexes    only when bit 5 is set: u8 count (>= 1) + u8 x count, per channel group the index
                              of its step in shift_candidates. Bit 5 clear with the shift on: every
                              step is zero (the encoder drops all-zero indexes; FrameCodec.header_shift_indexes)
    part_lengths     varint x (number of parts - 1); the last part runs up to the CRC
    payload          the entropy-coded parts in order
    crc32            u32      over the 4-byte sequence_id followed by everything before it

varint: unsigned LEB128 (7 bits a byte, low bits first, bit 7 = more follows), minimal length only.

Bytes are untrusted: reading never asserts, it raises BitstreamError naming the file and field.

Versions: 2 named one model; 3 (codec interface) names an intra and an inter model and widens the
latent_shift mask to four roles; 4 made the frame header compact (37 bytes for an SSF P-frame in 2
and 3: fixed-width poc, part lengths, 4-byte sequence id and entropy hash) and added pad_margin (the
picture centred in its coded frame; before, padding was right and bottom only). 6 added stream_nonce:
before, streams coded with the same settings shared their sequence id and accepted each other's frames.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction

from vidcodec.bitstream.errors import BitstreamError

SEQUENCE_MAGIC = b"VIDC"
SYNTAX_VERSION = 6  # 6: stream_nonce; 5: compact lattice parameters (quant_params) and default shift steps
FRAME_MARKER = 0b10 << 6
FRAME_MARKER_MASK = 0b11 << 6
FRAME_HAS_SHIFT = 1 << 5
FRAME_TYPE_SHIFT = 4
SEQUENCE_ID_BYTES = 4
STREAM_NONCE_BYTES = 8
MAX_FPS_TERM = 2**32 - 1  # fps_num and fps_den are u32
# The latent shift's usual steps (why these: tools.py), named by one count byte in the header.
DEFAULT_SHIFT_CANDIDATES = (0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.045, 0.07)
DEFAULT_CANDIDATES_CODE = 255
_DEFAULT_F32 = struct.unpack(f"<{len(DEFAULT_SHIFT_CANDIDATES)}f",
                             struct.pack(f"<{len(DEFAULT_SHIFT_CANDIDATES)}f", *DEFAULT_SHIFT_CANDIDATES))
ENTROPY_HASH_BYTES = 2
MAX_VARINT_BYTES = 5
CHROMA_FORMAT_420 = 1
FRAME_TYPE_CODES = {"I": 0, "P": 1}
MAX_PARTS = 16  # bits 3-0 of frame_info
MAX_SHIFT_CANDIDATES = 255
MAX_SHIFT_MASK = 15  # four roles (tools.ROLE_BITS)


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

    def varint(self, field: str) -> int:
        value = 0
        for index in range(MAX_VARINT_BYTES):
            byte = self.take(1, field)[0]
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                if byte == 0 and index > 0:
                    raise BitstreamError(f"{self.where}: field '{field}' is not a minimal varint")
                return value
        raise BitstreamError(f"{self.where}: field '{field}' is a varint longer than {MAX_VARINT_BYTES} bytes")

    def text(self, length_fmt: str, field: str) -> str:
        raw = self.take(self.unpack(length_fmt, field + " length"), field)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise BitstreamError(f"{self.where}: field '{field}' is not ASCII") from None


def _write_varint(value: int) -> bytes:
    if not 0 <= value < 1 << (7 * MAX_VARINT_BYTES):
        raise ValueError(f"varint out of range: {value}")  # a bug, not a stream error
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _crc_matches(data: bytes, prefix: bytes = b"") -> bool:
    return len(data) >= 4 and zlib.crc32(data[:-4], zlib.crc32(prefix)) == struct.unpack("<I", data[-4:])[0]


def _check_crc(data: bytes, where: str) -> bytes:
    """Split off and verify the trailing CRC32; returns the body."""
    if len(data) < 4:
        raise BitstreamError(f"{where}: truncated ({len(data)} bytes, too short for a CRC)")
    if not _crc_matches(data):
        raise BitstreamError(f"{where}: CRC32 mismatch (file corrupted or truncated)")
    return data[:-4]


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
    def read(cls, reader: _ByteReader, which: str) -> ModelRef:
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
    pad_margin: int = 0
    quantizer: str = "sq"
    quant_params: bytes = b""
    latent_shift: int = 0
    shift_groups: int = 1
    shift_candidates: tuple[float, ...] = ()
    num_threads: int = 1
    # What makes the sequence id of a stream its own; the encoder passes a digest of its pictures,
    # a header built without one gets a random nonce.
    stream_nonce: bytes = field(default_factory=lambda: secrets.token_bytes(STREAM_NONCE_BYTES))

    def fps_fraction(self) -> Fraction:
        """fps as the header stores it; ValueError (a caller's bug: geometry is validated before) when
        it has no positive u32/u32 form."""
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps={self.fps} cannot be written")
        fps = Fraction(self.fps).limit_denominator(1001)
        if not 0 < fps.numerator <= MAX_FPS_TERM:
            raise ValueError(f"fps={self.fps} cannot be written as u32/u32 with a denominator <= 1001")
        return fps

    def _shift_fields(self) -> bytes:
        fields = struct.pack("<BB", self.latent_shift, self.shift_groups)
        if tuple(self.shift_candidates) == _DEFAULT_F32:
            return fields + struct.pack("<B", DEFAULT_CANDIDATES_CODE)
        if len(self.shift_candidates) >= DEFAULT_CANDIDATES_CODE:
            raise ValueError(f"{len(self.shift_candidates)} shift candidates (at most {DEFAULT_CANDIDATES_CODE - 1})")
        return (fields + struct.pack("<B", len(self.shift_candidates))
                + struct.pack(f"<{len(self.shift_candidates)}f", *self.shift_candidates))

    def _nonce(self) -> bytes:
        if len(self.stream_nonce) != STREAM_NONCE_BYTES:
            raise ValueError(f"stream_nonce of {len(self.stream_nonce)} bytes (expected {STREAM_NONCE_BYTES})")
        return self.stream_nonce

    def write(self) -> bytes:
        fps = self.fps_fraction()
        quantizer = self.quantizer.encode("ascii")
        fields = b"".join(
            [
                struct.pack("<HHBB", self.width, self.height, self.bit_depth, CHROMA_FORMAT_420),
                struct.pack("<IIIi", fps.numerator, fps.denominator, self.num_frames, self.intra_period),
                self.intra_model.write(),
                self.inter_model.write(),
                struct.pack("<HB", self.pad_multiple, self.pad_margin),
                struct.pack("<B", len(quantizer)) + quantizer,
                struct.pack("<H", len(self.quant_params)) + self.quant_params,
                self._shift_fields(),
                struct.pack("<B", self.num_threads),
                self._nonce(),
            ]
        )
        body = SEQUENCE_MAGIC + struct.pack("<HI", SYNTAX_VERSION, len(fields)) + fields
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def read(cls, data: bytes, where: str = "sequence.hdr") -> SequenceHeader:
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
        pad_margin = reader.unpack("B", "pad_margin")
        quantizer = reader.text("B", "quantizer")
        quant_params = reader.take(reader.unpack("H", "quant_params length"), "quant_params")
        latent_shift = reader.unpack("B", "latent_shift")
        shift_groups = reader.unpack("B", "shift_groups")
        num_candidates = reader.unpack("B", "shift_candidates count")
        if num_candidates == DEFAULT_CANDIDATES_CODE:
            shift_candidates = _DEFAULT_F32
        else:
            shift_candidates = tuple(reader.unpack("f", f"shift_candidates[{i}]") for i in range(num_candidates))
        num_threads = reader.unpack("B", "num_threads")
        stream_nonce = reader.take(STREAM_NONCE_BYTES, "stream_nonce")
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
            pad_margin=pad_margin,
            quantizer=quantizer,
            quant_params=quant_params,
            latent_shift=latent_shift,
            shift_groups=shift_groups,
            shift_candidates=shift_candidates,
            num_threads=num_threads,
            stream_nonce=stream_nonce,
        )


def sequence_id(header_bytes: bytes) -> bytes:
    """4-byte identity of a stream: its first byte is in every frame header, and every frame's CRC
    covers all four, so a frame file of another stream is refused. Streams of other pictures differ
    in it through the header's stream_nonce."""
    return hashlib.sha256(header_bytes).digest()[:SEQUENCE_ID_BYTES]


@dataclass(frozen=True)
class FrameHeader:
    poc: int
    frame_type: str  # "I" or "P"
    sequence_id: bytes  # SEQUENCE_ID_BYTES, of the stream the frame belongs to
    entropy_hash: bytes  # ENTROPY_HASH_BYTES
    shift_indexes: tuple[int, ...]
    part_lengths: tuple[int, ...]


def write_frame(header: FrameHeader, parts: list[bytes]) -> bytes:
    """Serialize a frame: header, the parts concatenated, CRC32."""
    # Bugs, not stream errors:
    if tuple(len(p) for p in parts) != header.part_lengths:
        raise ValueError("part_lengths do not match the parts")
    if not 1 <= len(parts) <= MAX_PARTS or len(header.entropy_hash) != ENTROPY_HASH_BYTES:
        raise ValueError(f"{len(parts)} parts, entropy hash of {len(header.entropy_hash)} bytes")
    if len(header.sequence_id) != SEQUENCE_ID_BYTES or len(header.shift_indexes) > 255:
        raise ValueError(f"sequence id of {len(header.sequence_id)} bytes, {len(header.shift_indexes)} shift indexes")
    frame_info = (FRAME_MARKER | (FRAME_HAS_SHIFT if header.shift_indexes else 0)
                  | FRAME_TYPE_CODES[header.frame_type] << FRAME_TYPE_SHIFT | (len(parts) - 1))
    shift = (bytes([len(header.shift_indexes), *header.shift_indexes]) if header.shift_indexes else b"")
    body = b"".join(
        [
            bytes([frame_info]),
            _write_varint(header.poc),
            header.sequence_id[:1],
            header.entropy_hash,
            shift,
            *(_write_varint(length) for length in header.part_lengths[:-1]),
            *parts,
        ]
    )
    return body + struct.pack("<I", zlib.crc32(body, zlib.crc32(header.sequence_id)))


_FOREIGN_FRAME = ("{where}: frame belongs to another stream (its sequence id is not this stream's sequence.hdr's); "
                  "put back the frame file this stream was encoded with")


def read_frame(data: bytes, where: str, stream_id: bytes) -> tuple[FrameHeader, list[bytes]]:
    """Parse and verify one frame file of the stream whose sequence_id is ``stream_id``; raises
    BitstreamError on any defect, a frame of another stream included."""
    if len(data) < 4:
        raise BitstreamError(f"{where}: truncated ({len(data)} bytes, too short for a CRC)")
    if data[0] & FRAME_MARKER_MASK != FRAME_MARKER:
        raise BitstreamError(f"{where}: not a vidcodec frame (bad frame marker in its first byte)")
    if not _crc_matches(data, stream_id):
        reader = _ByteReader(data[:-4], where)
        reader.take(1, "frame_info")
        try:
            reader.varint("poc")
            stored_id = reader.take(1, "sequence_id")
        except BitstreamError:
            stored_id = stream_id[:1]
        if stored_id != stream_id[:1]:
            raise BitstreamError(_FOREIGN_FRAME.format(where=where))
        # 1 foreign frame in 256 shares the first id byte: only the CRC (which covers all four) tells.
        raise BitstreamError(f"{where}: CRC32 mismatch: the file is corrupted or truncated, or is a frame of "
                             "another stream")
    body = data[:-4]
    reader = _ByteReader(body, where)
    frame_info = reader.take(1, "frame_info")[0]
    poc = reader.varint("poc")
    if reader.take(1, "sequence_id") != stream_id[:1]:  # only when the CRC collided
        raise BitstreamError(_FOREIGN_FRAME.format(where=where))
    entropy_hash = reader.take(ENTROPY_HASH_BYTES, "entropy_hash")
    shift_indexes: tuple[int, ...] = ()
    if frame_info & FRAME_HAS_SHIFT:
        count = reader.unpack("B", "shift_indexes count")
        if count == 0:
            raise BitstreamError(f"{where}: field 'shift_indexes count' is 0 but frame_info announces them")
        shift_indexes = tuple(reader.take(count, "shift_indexes"))
    num_parts = (frame_info & 0x0F) + 1
    leading = tuple(reader.varint(f"part_lengths[{i}]") for i in range(num_parts - 1))
    if sum(leading) > len(body) - reader.offset:
        raise BitstreamError(f"{where}: truncated at field 'payload' (part lengths {list(leading)} exceed the file)")
    part_lengths = (*leading, len(body) - reader.offset - sum(leading))
    parts = [reader.take(length, f"payload part {i}") for i, length in enumerate(part_lengths)]
    frame_types = {code: name for name, code in FRAME_TYPE_CODES.items()}
    header = FrameHeader(
        poc=poc,
        frame_type=frame_types[frame_info >> FRAME_TYPE_SHIFT & 1],
        sequence_id=stream_id,
        entropy_hash=entropy_hash,
        shift_indexes=shift_indexes,
        part_lengths=part_lengths,
    )
    return header, parts


def frame_file_name(poc: int) -> str:
    return f"{poc:06d}.bin"
