"""SSF coding is bit-exact with the reference streams in tests/fixtures/reference_streams (made by
its make.py before the codec interface changed): same entropy-coded parts, entropy hashes, shift
indexes and reconstructions for sq, hex, oct and join (oct + latent shift), 416x240, I P P.

Frame files are compared field by field rather than as whole files: the references are in the
frame syntax of versions 2 and 3 (read by `legacy_frame` below), and the frame header's sequence_id
is a hash of sequence.hdr, whose syntax may change without the coding changing."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
from pathlib import Path

import pytest

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.bitstream.syntax import ENTROPY_HASH_BYTES, read_frame, sequence_id
from vidcodec.config import load_config
from vidcodec.io.yuv import SequenceGeometry, YuvReader
from vidcodec.pipeline import decode_sequence, encode_sequence

FIXTURES = Path(__file__).parent / "fixtures" / "reference_streams"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def legacy_frame(data: bytes) -> tuple[dict, list[bytes]]:
    """A frame file of syntax versions 2-3: "VF", poc u32, type u8, sequence_id 4 bytes, entropy_hash
    4 bytes, shift count u8 + u8 each, part count u8, u32 lengths, payload, CRC32."""
    poc, type_code = struct.unpack_from("<IB", data, 2)
    entropy_hash = data[11:15]
    num_shift = data[15]
    shift_indexes = tuple(data[16:16 + num_shift])
    offset = 16 + num_shift
    num_parts = data[offset]
    lengths = struct.unpack_from(f"<{num_parts}I", data, offset + 1)
    offset += 1 + 4 * num_parts
    parts = []
    for length in lengths:
        parts.append(data[offset:offset + length])
        offset += length
    assert offset == len(data) - 4
    header = {"poc": poc, "frame_type": "IP"[type_code], "entropy_hash": entropy_hash,
              "shift_indexes": shift_indexes, "part_lengths": lengths}
    return header, parts


def _fixture_module():
    spec = importlib.util.spec_from_file_location("reference_streams_make", FIXTURES / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make():
    module = _fixture_module()
    fingerprint = module.float_fingerprint(FIXTURES / "model.pt", FIXTURES / "input.yuv")
    if fingerprint != EXPECTED["float_fingerprint"]:
        pytest.skip("this machine's floating-point results differ from the machine that made the reference "
                    "streams (another instruction set): bit-exact comparison is only meaningful there")
    return module


@pytest.mark.parametrize("name", ["sq", "hex", "oct", "join"])
def test_ssf_streams_match_the_references(make, name, tmp_path):
    expected = EXPECTED[name]
    config = load_config(None, {"checkpoint": str(FIXTURES / "model.pt"), "quality": None, "intra_period": 8,
                                "num_threads": 1, **expected["config"]})
    reader = YuvReader(FIXTURES / "input.yuv", SequenceGeometry(make.WIDTH, make.HEIGHT, 8, 30.0))
    recon = tmp_path / "recon.yuv"
    encode_sequence(reader, tmp_path / "stream", config, recon_path=recon, progress=False)
    stream_id = sequence_id((tmp_path / "stream" / "sequence.hdr").read_bytes())
    for reference in sorted((FIXTURES / name / "frames").iterdir()):
        new_header, new_parts = read_frame((tmp_path / "stream" / "frames" / reference.name).read_bytes(), "new",
                                           stream_id)
        old_header, old_parts = legacy_frame(reference.read_bytes())
        assert new_parts == old_parts, f"{name} {reference.name}: entropy-coded parts differ"
        # Syntax version 4 keeps the first ENTROPY_HASH_BYTES of the same hash.
        old_header["entropy_hash"] = old_header["entropy_hash"][:ENTROPY_HASH_BYTES]
        for field in ("poc", "frame_type", "entropy_hash", "shift_indexes", "part_lengths"):
            assert getattr(new_header, field) == old_header[field], f"{name} {reference.name}: {field}"
    assert hashlib.sha256(recon.read_bytes()).hexdigest() == expected["recon_sha256"]


def test_the_join_reference_exercises_the_shift():
    """A reference where every shift index is 0 would not test the shift."""
    shift_indexes = [legacy_frame(p.read_bytes())[0]["shift_indexes"]
                     for p in sorted((FIXTURES / "join" / "frames").iterdir())]
    assert any(any(indexes) for indexes in shift_indexes)


def test_streams_of_the_previous_syntax_get_a_clear_error(tmp_path):
    """The references were written with syntax version 2 (one model in the header): decoding them
    names both versions instead of misreading the header."""
    with pytest.raises(BitstreamError, match="made by syntax version 2, this decoder reads version 4"):
        decode_sequence(FIXTURES / "sq", tmp_path / "x.yuv", checkpoint=FIXTURES / "model.pt", progress=False)
    assert not (tmp_path / "x.yuv").exists()
