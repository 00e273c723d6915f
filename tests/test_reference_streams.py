"""SSF coding is bit-exact with the reference streams in tests/fixtures/reference_streams (see its
make.py for when they were made and why they were remade): same entropy-coded parts, entropy hashes,
shift indexes and reconstructions for sq, hex, oct and join (oct + latent shift), 416x240, I P P.

Frame files are compared field by field rather than as whole files: the frame header's sequence_id
is a hash of sequence.hdr, which may change without the coding changing."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.bitstream.syntax import SYNTAX_VERSION, read_frame, sequence_id
from vidcodec.config import load_config
from vidcodec.io.yuv import SequenceGeometry, YuvReader
from vidcodec.pipeline import decode_sequence, encode_sequence

FIXTURES = Path(__file__).parent / "fixtures" / "reference_streams"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


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
    config = load_config(None, {"model": "ssf-small", "checkpoint": str(FIXTURES / "model.pt"), "quality": None,
                                "intra_period": 8, "num_threads": 1, **expected["config"]})
    reader = YuvReader(FIXTURES / "input.yuv", SequenceGeometry(make.WIDTH, make.HEIGHT, 8, 30.0))
    recon = tmp_path / "recon.yuv"
    encode_sequence(reader, tmp_path / "stream", config, recon_path=recon, progress=False)
    stream_id = sequence_id((tmp_path / "stream" / "sequence.hdr").read_bytes())
    reference_ids = {name: sequence_id((FIXTURES / name / "sequence.hdr").read_bytes())}
    for reference in sorted((FIXTURES / name / "frames").iterdir()):
        new_header, new_parts = read_frame((tmp_path / "stream" / "frames" / reference.name).read_bytes(), "new",
                                           stream_id)
        old_header, old_parts = read_frame(reference.read_bytes(), str(reference), reference_ids[name])
        assert new_parts == old_parts, f"{name} {reference.name}: entropy-coded parts differ"
        for field in ("poc", "frame_type", "entropy_hash", "shift_indexes", "part_lengths"):
            assert getattr(new_header, field) == getattr(old_header, field), f"{name} {reference.name}: {field}"
    assert hashlib.sha256(recon.read_bytes()).hexdigest() == expected["recon_sha256"]


def test_the_join_reference_exercises_the_shift():
    """A reference where every shift index is 0 would not test the shift."""
    stream_id = sequence_id((FIXTURES / "join" / "sequence.hdr").read_bytes())
    shift_indexes = [read_frame(p.read_bytes(), p.name, stream_id)[0].shift_indexes
                     for p in sorted((FIXTURES / "join" / "frames").iterdir())]
    assert any(any(indexes) for indexes in shift_indexes)


def test_streams_of_an_earlier_syntax_get_a_clear_error(tmp_path):
    """tests/fixtures/syntax_v2_sequence.hdr: the sq reference's header as first made (syntax version 2,
    one model in the header). Decoding names both versions instead of misreading the header."""
    stream = tmp_path / "v2"
    (stream / "frames").mkdir(parents=True)
    (stream / "sequence.hdr").write_bytes((FIXTURES.parent / "syntax_v2_sequence.hdr").read_bytes())
    with pytest.raises(BitstreamError, match=f"made by syntax version 2, this decoder reads version {SYNTAX_VERSION}"):
        decode_sequence(stream, tmp_path / "x.yuv", checkpoint=FIXTURES / "model.pt", progress=False)
    assert not (tmp_path / "x.yuv").exists()
