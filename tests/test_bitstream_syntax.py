import random
import struct
import zlib

import pytest

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.bitstream.syntax import (
    SYNTAX_VERSION,
    FrameHeader,
    ModelRef,
    SequenceHeader,
    read_frame,
    sequence_id,
    write_frame,
)


def make_header(**changes) -> SequenceHeader:
    fields = dict(
        width=416, height=240, bit_depth=8, fps=30.0, num_frames=17, intra_period=8,
        intra_model=ModelRef("ssf-small", 2, bytes(range(16))),
        inter_model=ModelRef("ssf-small", 2, bytes(range(16))), pad_multiple=128,
        quantizer="sq", quant_params=b"\x01\x02", latent_shift=0, num_threads=2,
    )
    fields.update(changes)
    return SequenceHeader(**fields)


def make_frame() -> tuple[FrameHeader, list[bytes]]:
    parts = [b"zz", b"y" * 300, b"", b"r" * 7]
    header = FrameHeader(
        poc=9, frame_type="P", sequence_id=b"abcd", entropy_hash=b"\x00\x01\x02\x03",
        shift_indexes=(3, 0, 7), part_lengths=tuple(len(p) for p in parts),
    )
    return header, parts


@pytest.mark.parametrize("changes", [{}, {"fps": 120.0}, {"fps": 30000 / 1001}, {"intra_period": -1, "bit_depth": 10},
                                     {"intra_model": ModelRef("image-codec", 0, bytes(range(1, 17))),
                                      "latent_shift": 15, "shift_candidates": (0.0, 0.5)}])
def test_sequence_header_round_trip(changes):
    header = make_header(**changes)
    parsed = SequenceHeader.read(header.write())
    assert parsed == make_header(**{**changes, "fps": parsed.fps})
    assert parsed.fps == pytest.approx(header.fps, rel=1e-9)


def test_unknown_syntax_version_is_named():
    data = bytearray(make_header().write())
    data[4:6] = struct.pack("<H", SYNTAX_VERSION + 1)
    with pytest.raises(BitstreamError, match=f"made by syntax version {SYNTAX_VERSION + 1}, this decoder reads"):
        SequenceHeader.read(bytes(data))


def test_sequence_header_rejects_bad_magic_and_crc():
    data = make_header().write()
    with pytest.raises(BitstreamError, match="magic"):
        SequenceHeader.read(b"XXXX" + data[4:])
    flipped = bytearray(data)
    flipped[12] ^= 0x10
    with pytest.raises(BitstreamError, match="CRC32"):
        SequenceHeader.read(bytes(flipped))


def test_sequence_header_rejects_invalid_values_even_with_valid_crc():
    data = bytearray(make_header().write()[:-4])
    data[10:12] = struct.pack("<H", 417)  # height field made odd
    data = bytes(data) + struct.pack("<I", zlib.crc32(bytes(data)))
    with pytest.raises(BitstreamError, match="size="):
        SequenceHeader.read(data)


def test_frame_round_trip():
    header, parts = make_frame()
    parsed_header, parsed_parts = read_frame(write_frame(header, parts), "f")
    assert parsed_header == header
    assert parsed_parts == parts


def test_every_truncation_of_a_frame_is_an_error():
    header, parts = make_frame()
    data = write_frame(header, parts)
    for length in range(len(data)):
        with pytest.raises(BitstreamError):
            read_frame(data[:length], "f")


def test_random_bit_flips_of_a_frame_are_errors():
    header, parts = make_frame()
    data = write_frame(header, parts)
    rng = random.Random(0)
    for _ in range(2000):
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        if bytes(flipped) == data:
            continue
        with pytest.raises(BitstreamError):
            read_frame(bytes(flipped), "f")


def test_sequence_id_differs_between_streams():
    assert sequence_id(make_header().write()) != sequence_id(make_header(num_frames=18).write())
