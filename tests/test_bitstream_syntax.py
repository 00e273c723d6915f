import dataclasses
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
        poc=9, frame_type="P", sequence_id=b"abcd", entropy_hash=b"\x00\x01",
        shift_indexes=(3, 0, 7), part_lengths=tuple(len(p) for p in parts),
    )
    return header, parts


@pytest.mark.parametrize("changes", [{}, {"fps": 120.0}, {"fps": 30000 / 1001}, {"intra_period": -1, "bit_depth": 10},
                                     {"intra_model": ModelRef("image-codec", 0, bytes(range(1, 17))),
                                      "latent_shift": 15, "shift_candidates": (0.0, 0.5)}])
def test_sequence_header_round_trip(changes):
    header = make_header(**changes)
    parsed = SequenceHeader.read(header.write())
    assert parsed == dataclasses.replace(header, fps=parsed.fps)
    assert parsed.fps == pytest.approx(header.fps, rel=1e-9)


def test_the_usual_shift_steps_cost_one_byte():
    from vidcodec.tools import ShiftSettings

    usual = make_header(latent_shift=1, shift_candidates=ShiftSettings().candidates)
    own = make_header(latent_shift=1, shift_candidates=ShiftSettings(candidates=(0.0, 0.01, 0.02)).candidates)
    assert len(usual.write()) == len(make_header().write())  # count byte 255, no values
    assert len(own.write()) == len(make_header().write()) + 3 * 4
    assert SequenceHeader.read(usual.write()) == usual and SequenceHeader.read(own.write()) == own


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
    parsed_header, parsed_parts = read_frame(write_frame(header, parts), "f", b"abcd")
    assert parsed_header == header
    assert parsed_parts == parts


def test_every_truncation_of_a_frame_is_an_error():
    header, parts = make_frame()
    data = write_frame(header, parts)
    for length in range(len(data)):
        with pytest.raises(BitstreamError):
            read_frame(data[:length], "f", b"abcd")


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
            read_frame(bytes(flipped), "f", b"abcd")


def test_sequence_id_differs_between_streams():
    assert sequence_id(make_header().write()) != sequence_id(make_header(num_frames=18).write())


def test_the_stream_nonce_makes_the_sequence_id_of_streams_with_the_same_settings_differ():
    """Issue 34 item 4: a frame file of a stream coded with the same settings must be refused too. The
    encoder gives a digest of its pictures as the nonce; a header built without one gets a random one."""
    assert (sequence_id(make_header(stream_nonce=b"pictureA").write())
            != sequence_id(make_header(stream_nonce=b"pictureB").write()))
    assert (sequence_id(make_header(stream_nonce=b"pictureA").write())
            == sequence_id(make_header(stream_nonce=b"pictureA").write()))
    assert len({sequence_id(make_header().write()) for _ in range(20)}) == 20
    header = make_header()
    assert SequenceHeader.read(header.write()).stream_nonce == header.stream_nonce


@pytest.mark.parametrize("fps", [float("inf"), float("nan"), 1e300, 1e-4, 0.0])
def test_a_frame_rate_the_header_cannot_hold_is_refused_before_writing(fps):
    with pytest.raises(ValueError, match="fps="):
        make_header(fps=fps).write()


@pytest.mark.parametrize("poc, shift_indexes, lengths", [(0, (), (5, 0)), (127, (), (1, 2, 3, 4)),
                                                         (128, (1,), (0,)), (20000, (0, 2), (300, 20000, 1, 1))])
def test_frame_fields_round_trip(poc, shift_indexes, lengths):
    parts = [bytes([i]) * n for i, n in enumerate(lengths)]
    header = FrameHeader(poc=poc, frame_type="I", sequence_id=b"wxyz", entropy_hash=b"\xff\x00",
                         shift_indexes=shift_indexes, part_lengths=lengths)
    assert read_frame(write_frame(header, parts), "f", b"wxyz") == (header, parts)


def test_a_p_frame_header_is_compact():
    """poc < 128, four parts (SSF's motion z/y, residual z/y) of typical q1 sizes, no shift: 13 bytes
    (37 in syntax versions 2 and 3); the shift adds 1 + one byte per channel group."""
    parts = [b"z" * 40, b"y" * 900, b"r" * 30, b"Y" * 2000]
    header = FrameHeader(poc=5, frame_type="P", sequence_id=b"abcd", entropy_hash=b"\x00\x01",
                         shift_indexes=(), part_lengths=tuple(len(p) for p in parts))
    assert len(write_frame(header, parts)) - sum(header.part_lengths) == 13
    shifted = FrameHeader(**{**header.__dict__, "shift_indexes": (3,)})
    assert len(write_frame(shifted, parts)) - sum(header.part_lengths) == 15


def test_a_frame_of_another_stream_is_named_as_such():
    header, parts = make_frame()
    with pytest.raises(BitstreamError, match="frame belongs to another stream"):
        read_frame(write_frame(header, parts), "f", b"Xbcd")
    # The first byte of the id agrees: the CRC, which covers all four, refuses it.
    with pytest.raises(BitstreamError, match="CRC32 mismatch: .* or is a frame of another stream"):
        read_frame(write_frame(header, parts), "f", b"abcX")


def test_non_minimal_varints_and_bad_markers_are_errors():
    header, parts = make_frame()
    data = bytearray(write_frame(header, parts))
    with pytest.raises(BitstreamError, match="frame marker"):
        read_frame(bytes([data[0] ^ 0x80]) + bytes(data[1:]), "f", b"abcd")
    padded = bytes(data[:1]) + bytes([data[1] | 0x80, 0]) + bytes(data[2:-4])  # poc 9 as two bytes
    padded += struct.pack("<I", zlib.crc32(padded, zlib.crc32(b"abcd")))
    with pytest.raises(BitstreamError, match="not a minimal varint"):
        read_frame(padded, "f", b"abcd")
