"""Fuzzed frame files: the decoder returns a frame or raises BitstreamError, nothing else."""

import copy
import dataclasses
import random
import struct
import zlib

import pytest
import torch

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.bitstream.syntax import ModelRef, SequenceHeader, read_frame
from vidcodec.decoder import Decoder
from vidcodec.encoder import Encoder
from vidcodec.models.registry import build_model


@pytest.fixture(scope="module")
def coded():
    torch.manual_seed(0)
    codec = build_model("ssf-small", mid_planes=16, latent_planes=16).eval()
    codec.update(force=True)
    header = SequenceHeader(width=160, height=96, bit_depth=8, fps=30.0, num_frames=2, intra_period=8,
                            intra_model=ModelRef("ssf-small", 0, bytes(16)),
                            inter_model=ModelRef("ssf-small", 0, bytes(16)), pad_multiple=16)
    encoder = Encoder(codec, codec, header)
    frames = [torch.rand(1, 3, 96, 160) for _ in range(2)]
    packets = [encoder.encode(poc, x) for poc, x in enumerate(frames)]
    decoder = Decoder(codec, codec, header, header.write())
    return decoder, packets


def decoders_at(decoder: Decoder, packets, poc: int) -> Decoder:
    """A decoder that has decoded the frames before ``poc``."""
    fresh = copy.copy(decoder)
    for packet in packets[:poc]:
        fresh.decode(packet.data, "prefix")
    return fresh


def attempt(decoder: Decoder, data: bytes) -> None:
    try:
        x_hat = copy.copy(decoder).decode(data, "fuzzed")
    except BitstreamError:
        return
    assert x_hat.shape == (1, 3, 96, 160) and torch.isfinite(x_hat).all()


@pytest.mark.parametrize("poc", [0, 1])
def test_every_truncation_point(coded, poc):
    decoder, packets = coded
    ready = decoders_at(decoder, packets, poc)
    data = packets[poc].data
    for length in range(len(data)):
        with pytest.raises(BitstreamError):
            copy.copy(ready).decode(data[:length], "truncated")


@pytest.mark.parametrize("poc", [0, 1])
def test_random_bit_flips(coded, poc):
    decoder, packets = coded
    ready = decoders_at(decoder, packets, poc)
    data = packets[poc].data
    rng = random.Random(poc)
    for _ in range(300):
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        if bytes(flipped) != data:
            with pytest.raises(BitstreamError):
                copy.copy(ready).decode(bytes(flipped), "flipped")


@pytest.mark.parametrize("poc", [0, 1])
def test_corrupted_payload_with_a_valid_crc_never_crashes(coded, poc):
    """A buggy or hostile encoder can write a valid CRC over garbage: still no crash or hang."""
    decoder, packets = coded
    ready = decoders_at(decoder, packets, poc)
    data = packets[poc].data[:-4]
    _, parts = read_frame(packets[poc].data, "valid", decoder.sequence_id)
    payload_start = len(data) - sum(len(part) for part in parts)
    rng = random.Random(10 + poc)
    for _ in range(200):
        body = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            body[rng.randrange(payload_start, len(body))] = rng.randrange(256)
        crc = zlib.crc32(bytes(body), zlib.crc32(decoder.sequence_id))
        attempt(ready, bytes(body) + struct.pack("<I", crc))


def test_a_pad_multiple_other_than_the_models_is_refused(coded):
    """Found by scripts/tools/fuzz_decoder.py: pad_multiple=60544 (then a multiple of SSF's 128) with a valid
    CRC made the decoder work on 60544 x 60544 pictures for minutes instead of refusing the header."""
    decoder, _ = coded
    header = dataclasses.replace(decoder.header, pad_multiple=128 * 473)
    with pytest.raises(BitstreamError, match="pad_multiple=60544 but models 'ssf-small' and 'ssf-small' pad to "
                                             "multiples of 16"):
        Decoder(decoder.intra_codec, decoder.inter_codec, header, header.write())


def test_a_payload_that_decodes_to_non_finite_samples_is_refused(coded):
    """Found by scripts/tools/fuzz_decoder.py --image-codecs: a hostile factorized-prior payload whose
    escape codes decode to enormous latents made the synthesis return NaN. Any such picture is
    refused, whatever the model (here the synthesis is made to overflow)."""
    decoder, packets = coded
    ready = copy.copy(decoder)
    codec = copy.deepcopy(decoder.intra_codec)
    with torch.no_grad():
        for parameter in codec.img_decoder.parameters():  # the entropy model stays, so no desync
            parameter.mul_(1e30)
    ready.intra_codec = ready.inter_codec = codec
    with pytest.raises(BitstreamError, match="non-finite samples"):
        ready.decode(packets[0].data, "frame 0")
