#!/usr/bin/env python
"""Seconds per frame (encode, decode) and peak memory of the codec, per model and picture size.

    python scripts/bench/bench_codec.py --model ssf --sizes 416x240 1920x1080 --frames 3
    python scripts/bench/bench_codec.py --model dcvc-small --intra-model mbt2018-mean-small  # I-frames: image codec

Each (model, size) runs in its own process (so peak RSS is that run's alone): a generated sequence
(held-out photo with synthetic motion) is encoded with verification on, i.e. every frame file is
decoded right after it is written; enc_s and dec_s are the per-frame coding times from rd.jsonl
(network + entropy coding, no file or colour conversion). Weights are random unless --checkpoint
is given: the networks' cost does not depend on the weights, entropy coding time only slightly.
Prints a Markdown table and writes it to --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def random_checkpoint(model: str, path: Path) -> str:
    import torch

    from vidcodec.models.registry import build_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(path, build_model(model), model, {})
    return str(path)


def run_one(model: str, size: str, num_frames: int, threads: int, checkpoint: str | None,
            intra_model: str | None) -> dict:
    """Runs in a child process: encode + verify-decode, return timings and peak RSS."""
    import numpy as np
    import torch

    from vidcodec.config import CodecConfig
    from vidcodec.io.color import rgb_to_yuv420
    from vidcodec.io.yuv import SequenceGeometry, YuvReader, YuvWriter
    from vidcodec.models.registry import load_model
    from vidcodec.pipeline import CodecModels, encode_sequence
    from vidcodec.train.synthetic import photo_clip

    width, height = (int(v) for v in size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / f"bench_{size}.yuv"
        geometry = SequenceGeometry(width, height)
        with YuvWriter(path, geometry) as writer:
            for frame in photo_clip("coffee", num_frames, height, width, seed=1):
                rgb = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None]
                writer.write_frame(rgb_to_yuv420(rgb, 8))
        checkpoint = checkpoint or random_checkpoint(model, tmp / "random.pt")
        inter = load_model(model, checkpoint=checkpoint)
        models = CodecModels.single(inter)
        intra_checkpoint = None
        if intra_model:
            intra_checkpoint = random_checkpoint(intra_model, tmp / "random_intra.pt")
            models = CodecModels(load_model(intra_model, checkpoint=intra_checkpoint), inter)
        config = CodecConfig(model=model, quality=None, checkpoint=checkpoint, intra_model=intra_model,
                             intra_checkpoint=intra_checkpoint, num_threads=threads).validate()
        result = encode_sequence(YuvReader(path, geometry), tmp / "out", config, num_frames=num_frames,
                                 progress=False, models=models)
    average = result.summary["average"]
    return {
        "model": model + (f" (I: {intra_model})" if intra_model else ""),
        "size": size,
        "frames": num_frames,
        "threads": threads,
        "enc_s_I": average["I"]["enc_s"],
        "enc_s_P": average["P"]["enc_s"],
        "dec_s_I": average["I"]["dec_s"],
        "dec_s_P": average["P"]["dec_s"],
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ssf")
    parser.add_argument("--sizes", nargs="+", default=["416x240", "1920x1080"])
    parser.add_argument("--frames", type=int, default=3, help="frames per run (1 I + the rest P)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint")
    parser.add_argument("--intra-model", help="code the I-frames with this model (random weights too)")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(args.model, args.child, args.frames, args.threads, args.checkpoint,
                                 args.intra_model)))
        return 0
    rows = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--model", args.model, "--frames", str(args.frames),
                   "--threads", str(args.threads), "--child", size]
        if args.checkpoint:
            command += ["--checkpoint", args.checkpoint]
        if args.intra_model:
            command += ["--intra-model", args.intra_model]
        output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
        rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
        print(f"done {size}", file=sys.stderr)
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, torch threads {args.threads}; "
        f"{args.frames} frames per run (1 I, {args.frames - 1} P); seconds per frame.",
        "",
        "| model | size | enc I s | enc P s | dec I s | dec P s | peak RSS GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['size']} | {r['enc_s_I']:.2f} | {r['enc_s_P']:.2f} | {r['dec_s_I']:.2f} | "
            f"{r['dec_s_P']:.2f} | {r['peak_rss_gib']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
