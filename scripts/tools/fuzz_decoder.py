"""Fuzz campaign over the decoder: every input must give a frame or a clear error, never another
exception and never a hang.

    python scripts/tools/fuzz_decoder.py --inputs 100000 --seed 1 --out results/fuzz

Streams: a small ssf-small (16 channels, fixed random weights) codes a 3-frame 128x96 clip (I, P, P)
four times: sq, hex, oct, and join (oct + latent shift); with --intra-codecs a fifth time with its
I-frames by x265-intra (HEVC through PyAV); with --image-codecs twice more with I-frames by learned
image codecs (mbt2018 with Oct and the shift, bmshj2018-factorized with Hex). Each input is one mutation, drawn from
(seed, input index) alone, so any input can be replayed with --replay INDEX:
  frame files (fed to a decoder that has decoded the frames before it):
    flip       1-8 random bit flips
    truncate   cut at a random length
    extend     random bytes appended
    splice     a prefix of this frame + a suffix of another frame (any stream)
    field      a header byte (first 16) set at random, CRC recomputed: reaches the parser
    payload    1-8 payload bytes set at random, CRC recomputed: reaches the entropy decoder
    swap       a frame of another poc or stream, CRC recomputed for this stream
  sequence headers (parsed, tools and models set up, then frame 0 decoded, resealed to the header):
    header     1-4 bytes after the magic set at random, CRC recomputed
    header_cut cut at a random length
A frame input passes when it decodes to a finite picture or raises BitstreamError; a header input
when it does so or raises another VidcodecError (the command line's one-line errors: e.g. a
checkpoint hash that names other weights). Anything else, or more than --timeout-s seconds (times
the picture area a mutated header declares over the stream's: more pixels are more work), is a
failure: its index is printed (replay it with --replay INDEX), listed in OUT/summary.json, and the
exit status is 1.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import signal
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.bitstream.syntax import SequenceHeader, read_frame, sequence_id
from vidcodec.config import load_config
from vidcodec.decoder import Decoder
from vidcodec.errors import VidcodecError
from vidcodec.io.color import rgb_to_yuv420
from vidcodec.io.yuv import SequenceGeometry, YuvReader, YuvWriter
from vidcodec.models.registry import build_model, save_checkpoint
from vidcodec.pipeline import decoder_for_stream, encode_sequence, read_stream_header

WIDTH, HEIGHT, FRAMES = 128, 96, 3
STREAMS = {"sq": {"quant": "sq"}, "hex": {"quant": "hex"}, "oct": {"quant": "oct"},
           "join": {"quant": "oct", "latent_shift": True}}
# --intra-codecs: also a stream whose I-frames are HEVC intra (x265-intra), whose payload reaches
# FFmpeg's hevc decoder. Off by default so that the campaign of the README replays index for index.
INTRA_CODEC_STREAMS = {"x265": {"intra_model": "x265-intra", "intra_quality": 2}}
# --image-codecs: streams whose I-frames are coded by learned image codecs (small, random weights),
# with the tools on their latent: mbt2018 (the context model's serial decoding) with Oct and the
# shift, bmshj2018-factorized with Hex over its learned densities. Off by default, as above.
IMAGE_CODEC_MODELS = {"mbt2018": {"N": 16, "M": 24}, "bmshj2018-factorized": {"N": 16, "M": 24}}
IMAGE_CODEC_STREAMS = {
    "mbt2018-oct-shift": {"intra_model": "mbt2018", "quant": "oct", "quant_scope": "all", "latent_shift": True,
                          "latent_shift_scope": "residual+intra"},
    "factorized-hex": {"intra_model": "bmshj2018-factorized", "quant": "hex", "quant_scope": "all"},
}
FRAME_MUTATIONS = ("flip", "truncate", "extend", "splice", "field", "payload", "swap")
HEADER_MUTATIONS = ("header", "header_cut")
HEADER_SHARE = 0.1  # header inputs are slower (models set up each time)


class Timeout(Exception):
    pass


def make_streams(work: Path, streams_tools: dict[str, dict]) -> tuple[Path, dict[str, Path]]:
    torch.manual_seed(0)
    model = build_model("ssf-small", mid_planes=16, latent_planes=16)
    checkpoint = work / "fuzz-model.pt"
    save_checkpoint(checkpoint, model, "ssf-small", {"purpose": "fuzz campaign, random weights"})
    geometry = SequenceGeometry(WIDTH, HEIGHT, 8, 30.0)
    clip = work / "clip.yuv"
    rng = np.random.default_rng(0)
    base = rng.random((3, HEIGHT + 8, WIDTH + 8)).astype(np.float32)
    with YuvWriter(clip, geometry) as writer:
        for t in range(FRAMES):
            frame = torch.from_numpy(np.ascontiguousarray(base[:, t:t + HEIGHT, 2 * t:2 * t + WIDTH]))[None]
            writer.write_frame(rgb_to_yuv420(frame, 8))
    streams = {}
    for name, tools in streams_tools.items():
        tools = dict(tools)
        if tools.get("intra_model") in IMAGE_CODEC_MODELS:
            model_id = tools["intra_model"]
            tools["intra_checkpoint"] = str(work / f"fuzz-{model_id}.pt")
            save_checkpoint(Path(tools["intra_checkpoint"]), build_model(model_id, **IMAGE_CODEC_MODELS[model_id]),
                            model_id, {"purpose": "fuzz campaign, random weights"})
        config = load_config(None, {"model": "ssf-small", "checkpoint": str(checkpoint), "quality": None,
                                    "intra_period": 8, "num_threads": 1, **tools})
        streams[name] = work / name
        encode_sequence(YuvReader(clip, geometry), streams[name], config, progress=False)
        streams[name] = (streams[name], tools.get("intra_checkpoint"))
    return checkpoint, streams


class Target:
    """One stream: its bytes, a decoder set up from its header, and decoders ready at each poc."""

    def __init__(self, stream: Path, checkpoint: Path, intra_checkpoint: str | None = None) -> None:
        self.header, self.header_bytes = read_stream_header(stream)
        self.checkpoint, self.intra_checkpoint = checkpoint, intra_checkpoint
        self.stream_id = sequence_id(self.header_bytes)
        self.frames = [(stream / "frames" / f"{poc:06d}.bin").read_bytes() for poc in range(FRAMES)]
        decoder = make_decoder(self.header_bytes, self)
        self.ready = []
        for data in self.frames:
            self.ready.append(copy.copy(decoder))
            decoder.decode(data, "valid")


def make_decoder(header_bytes: bytes, target: Target) -> Decoder:
    """A decoder of ``header_bytes`` with the weights of ``target``'s stream."""
    return decoder_for_stream(SequenceHeader.read(header_bytes), header_bytes, target.checkpoint,
                              target.intra_checkpoint and Path(target.intra_checkpoint))


def seal(body: bytes, stream_id: bytes) -> bytes:
    """A frame body with the CRC the decoder of stream ``stream_id`` expects."""
    return body + struct.pack("<I", zlib.crc32(body, zlib.crc32(stream_id)))


def payload_start(data: bytes, stream_id: bytes) -> int:
    _, parts = read_frame(data, "valid", stream_id)
    return len(data) - 4 - sum(len(part) for part in parts)


def mutate_frame(kind: str, target: Target, poc: int, targets: list[Target], rng: random.Random) -> bytes:
    data = target.frames[poc]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == "truncate":
        return data[:rng.randrange(len(data))]
    if kind == "extend":
        return data + rng.randbytes(rng.randint(1, 64))
    if kind == "splice":
        other = rng.choice(rng.choice(targets).frames)
        return data[:rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1):]
    if kind == "field":
        body = bytearray(data[:-4])
        body[rng.randrange(min(16, len(body)))] = rng.randrange(256)
        return seal(bytes(body), target.stream_id)
    if kind == "payload":
        body = bytearray(data[:-4])
        start = payload_start(data, target.stream_id)
        for _ in range(rng.randint(1, 8)):
            body[rng.randrange(start, len(body))] = rng.randrange(256)
        return seal(bytes(body), target.stream_id)
    if kind == "swap":
        other = rng.choice(targets)
        body = bytearray(rng.choice(other.frames)[:-4])
        body[_sequence_id_offset(body)] = target.stream_id[0]
        return seal(bytes(body), target.stream_id)
    raise ValueError(kind)


def _sequence_id_offset(body: bytes) -> int:
    offset = 1
    while body[offset] & 0x80:  # the poc varint
        offset += 1
    return offset + 1


def mutate_header(kind: str, target: Target, rng: random.Random) -> bytes:
    data = target.header_bytes
    if kind == "header_cut":
        return data[:rng.randrange(len(data))]
    body = bytearray(data[:-4])
    for _ in range(rng.randint(1, 4)):
        body[rng.randrange(6, len(body))] = rng.randrange(256)  # after magic and version
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def run_header(header_bytes: bytes, target: Target) -> None:
    decoder = make_decoder(header_bytes, target)
    frame = bytearray(target.frames[0][:-4])
    new_id = sequence_id(header_bytes)
    frame[_sequence_id_offset(frame)] = new_id[0]
    x_hat = decoder.decode(seal(bytes(frame), new_id), "frame 0")
    if not torch.isfinite(x_hat).all():
        raise AssertionError("non-finite picture")


def declared_work(header_bytes: bytes, target: Target) -> float:
    """How many times the stream's picture area a mutated header declares (1 when it does not parse
    or declares less): decoding a larger picture is more work, not a hang. It matters for a context
    model's I-frames (mbt2018), decoded position by position before its desync guard can be checked."""
    try:
        header = SequenceHeader.read(header_bytes)
    except VidcodecError:
        return 1.0
    return max(1.0, header.width * header.height / (target.header.width * target.header.height))


def plan_input(index: int, seed: int, targets: list[Target]) -> tuple[str, Callable[[], str], float]:
    """Input ``index``: its mutation kind, a function that runs it and returns 'frame' or 'error'
    (a clear error), or raises anything else, and the work it declares (declared_work)."""
    rng = random.Random(seed * 1_000_003 + index)
    target = rng.choice(targets)
    if rng.random() < HEADER_SHARE:
        kind = rng.choice(HEADER_MUTATIONS)
        header_bytes = mutate_header(kind, target, rng)

        def run() -> str:
            try:
                run_header(header_bytes, target)
            except VidcodecError:
                return "error"
            return "frame"
        return kind, run, declared_work(header_bytes, target)
    kind = rng.choice(FRAME_MUTATIONS)
    poc = rng.randrange(FRAMES)
    data = mutate_frame(kind, target, poc, targets, rng)

    def run() -> str:
        try:
            x_hat = copy.copy(target.ready[poc]).decode(data, "fuzzed")
        except BitstreamError:
            return "error"
        if not torch.isfinite(x_hat).all():
            raise AssertionError("non-finite picture")
        return "frame"
    return kind, run, 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=20.0, help="per input; longer is a hang")
    parser.add_argument("--out", type=Path, default=Path("results/fuzz"))
    parser.add_argument("--replay", type=int, help="run only this input index, with its traceback")
    parser.add_argument("--intra-codecs", action="store_true",
                        help="also fuzz a stream with x265-intra I-frames (FFmpeg's hevc decoder)")
    parser.add_argument("--image-codecs", action="store_true",
                        help="also fuzz streams whose I-frames are coded by mbt2018 (Oct + shift) and "
                             "bmshj2018-factorized (Hex)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        checkpoint, streams = make_streams(Path(work), {**STREAMS, **(INTRA_CODEC_STREAMS if args.intra_codecs else {}),
                                                        **(IMAGE_CODEC_STREAMS if args.image_codecs else {})})
        targets = [Target(stream, checkpoint, intra_checkpoint) for stream, intra_checkpoint in streams.values()]
        if args.replay is not None:
            kind, run, _ = plan_input(args.replay, args.seed, targets)
            print(kind, run())  # with its traceback if it fails
            return 0
        counts: Counter[tuple[str, str]] = Counter()
        failures = []

        def on_alarm(signum, frame):
            raise Timeout()

        signal.signal(signal.SIGALRM, on_alarm)
        start = time.monotonic()
        for index in range(args.inputs):
            kind, run, work = plan_input(index, args.seed, targets)
            signal.setitimer(signal.ITIMER_REAL, args.timeout_s * work)
            try:
                outcome = run()
            except Timeout:
                outcome = "hang"
            except Exception as error:  # noqa: BLE001 -- any other exception is what we look for
                outcome = f"crash: {type(error).__name__}: {error}"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if outcome not in ("frame", "error"):
                failures.append({"index": index, "kind": kind, "outcome": outcome})
                print(f"input {index}: {outcome} (replay: --seed {args.seed} --replay {index})", file=sys.stderr)
                outcome = "failure"
            counts[(kind, outcome)] += 1
            if (index + 1) % 5000 == 0:
                print(f"{index + 1}/{args.inputs} inputs, {len(failures)} failures, "
                      f"{time.monotonic() - start:.0f} s", file=sys.stderr)
    summary = {
        "inputs": args.inputs, "seed": args.seed, "streams": list(streams), "failures": failures,
        "seconds": round(time.monotonic() - start, 1),
        "outcomes": {f"{kind}/{outcome}": n for (kind, outcome), n in sorted(counts.items())},
        "torch": torch.__version__,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["outcomes"], indent=2))
    print(f"{args.inputs} inputs, seed {args.seed}: {len(failures)} failures in {summary['seconds']} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
