"""What the pipeline costs beyond the networks: raw CompressAI calls against the encode_sequence and
decode_sequence processes, same model, weights, threads and frames, in one run.

    python scripts/bench/bench_overhead.py --sizes 512x256 1920x1152 --frames 3 --out docs/bench_overhead.md

Sizes should be multiples of 128, and the pipeline runs with --pad-margin 0, so both sides code the
same pixels (CompressAI's ssf2020 compress() needs multiples of 128). Model: `ssf` (exactly CompressAI's
ssf2020), random weights (the networks' cost does not depend on them). Per size:
  raw       CompressAI's own ScaleSpaceFlow with the same state dict: compress(frames) and
            decompress(strings, shapes) in this process (the frames already RGB tensors in memory);
  process   wall time of `encode_sequence ... --no-verify` and of `decode_sequence`, as a user runs them;
  startup   wall time of a process that only imports the pipeline (interpreter, torch, compressai);
  coding    the per-frame enc_s / dec_s the pipeline logs (networks + entropy coding);
and the ratio (process - startup) / raw, the overhead the issue's target is about (<= 1.05x).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def timed_process(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=REPO)
    return time.perf_counter() - start


def bench_size(size: str, num_frames: int, threads: int, work: Path) -> dict:
    import vidcodec.compat  # noqa: F401, I001  (before compressai: compressai without torchvision)
    from compressai.models.video import ScaleSpaceFlow
    from vidcodec.io.color import rgb_to_yuv420, yuv420_to_rgb
    from vidcodec.io.yuv import SequenceGeometry, YuvReader, YuvWriter
    from vidcodec.models.registry import build_model, load_model, save_checkpoint
    from vidcodec.train.synthetic import photo_clip

    width, height = (int(v) for v in size.split("x"))
    clip = work / f"clip_{size}.yuv"
    geometry = SequenceGeometry(width, height)
    with YuvWriter(clip, geometry) as writer:
        for frame in photo_clip("coffee", num_frames, height, width, seed=1):
            writer.write_frame(rgb_to_yuv420(torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None], 8))
    checkpoint = work / "ssf-random.pt"
    if not checkpoint.is_file():
        torch.manual_seed(0)
        save_checkpoint(checkpoint, build_model("ssf"), "ssf", {"purpose": "bench_overhead"})
    torch.set_num_threads(threads)
    model = ScaleSpaceFlow().eval()
    model.load_state_dict(load_model("ssf", checkpoint=checkpoint).codec.state_dict())
    with YuvReader(clip, geometry) as reader:
        frames = [yuv420_to_rgb(reader.read_frame(poc), 8) for poc in range(num_frames)]
    with torch.no_grad():
        start = time.perf_counter()
        strings, shapes = model.compress(frames)
        raw_encode = time.perf_counter() - start
        start = time.perf_counter()
        model.decompress(strings, shapes)
        raw_decode = time.perf_counter() - start

    stream = work / f"stream_{size}"
    encode = [str(BIN / "encode_sequence"), str(clip), "--size", size, "--model", "ssf", "--checkpoint",
              str(checkpoint), "--frames", str(num_frames), "--threads", str(threads), "--pad-margin", "0",
              "--no-verify", "--out", str(stream), "--force", "--quiet"]
    process_encode_no_ms_ssim = timed_process(encode + ["--no-ms-ssim"])
    process_encode = timed_process(encode)
    process_decode = timed_process([str(BIN / "decode_sequence"), str(stream), "-o", str(work / "decoded.yuv"),
                                    "--checkpoint", str(checkpoint), "--quiet"])
    records = [json.loads(line) for line in (stream / "rd.jsonl").read_text().splitlines()]
    return {"size": size, "frames": num_frames, "raw_encode_s": raw_encode, "raw_decode_s": raw_decode,
            "process_encode_s": process_encode, "process_decode_s": process_decode,
            "process_encode_no_ms_ssim_s": process_encode_no_ms_ssim,
            "coding_encode_s": sum(r["enc_s"] for r in records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["512x256", "1920x1152"])
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    startup = min(timed_process([sys.executable, "-c", "import vidcodec.cli, vidcodec.pipeline"]) for _ in range(3))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for size in args.sizes:
            rows.append(bench_size(size, args.frames, args.threads, Path(work)))
    lines = [f"Machine: {platform.machine()}, torch {torch.__version__}, {args.threads} threads; ssf (random "
             f"weights), {args.frames} frames (1 I + {args.frames - 1} P); startup (interpreter + imports of the "
             f"pipeline, best of 3): {startup:.2f} s.", "",
             "| size | raw compress s | encode_sequence s | minus startup | ratio | with --no-ms-ssim, ratio | "
             "logged coding s | raw decompress s | decode_sequence s | minus startup | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        encode_net = row["process_encode_s"] - startup
        lean_net = row["process_encode_no_ms_ssim_s"] - startup
        decode_net = row["process_decode_s"] - startup
        lines.append(f"| {row['size']} | {row['raw_encode_s']:.2f} | {row['process_encode_s']:.2f} | "
                     f"{encode_net:.2f} | {encode_net / row['raw_encode_s']:.2f}x | "
                     f"{lean_net / row['raw_encode_s']:.2f}x | "
                     f"{row['coding_encode_s']:.2f} | "
                     f"{row['raw_decode_s']:.2f} | {row['process_decode_s']:.2f} | {decode_net:.2f} | "
                     f"{decode_net / row['raw_decode_s']:.2f}x |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
