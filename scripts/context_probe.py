#!/usr/bin/env python
"""How much of its reference a P-frame uses: the bits of frame t coded against the previous frame's
context, and against a context made from frame t itself (a perfect reference: nothing moved, nothing
lost), next to frame t as an I-frame. A codec that exploits its reference codes the second almost for
free.

    python scripts/context_probe.py --model dcvc-small-detail --quality 3 \
        sequences/generated/Smptebars_416x240_30fps_420_8bit_YUV.yuv [--frame 2]

All are the training forward pass in eval mode (P-frames: stage "pairs", the reference is the
uncompressed frame; latents rounded, bits from the entropy model's likelihoods, no bitstream written),
on the top-left crop that is a multiple of the model's crop_multiple. The I-frame is coded by the model
that codes the shipped weights' I-frames (the registry's shipped_intra_model) at the same quality.
Prints bpp / PSNR-RGB for each.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from vidcodec.io.color import yuv420_to_rgb
from vidcodec.io.yuv import YuvReader
from vidcodec.models.registry import default_intra_model, load_model


def p_frame_cost(codec, reference: torch.Tensor, frame: torch.Tensor) -> tuple[float, float]:
    """(bpp, PSNR-RGB dB) of frame (1,3,H,W in [0,1]) coded as a P-frame whose reference is reference."""
    return last_frame_cost(codec, [reference, frame], "pairs")


def last_frame_cost(codec, frames: list[torch.Tensor], stage: str) -> tuple[float, float]:
    """(bpp, PSNR-RGB dB) of the last frame the training forward of stage codes."""
    frame = frames[-1]
    with torch.no_grad():
        output = codec(frames, stage=stage)
    # likelihoods of a frame: {latent role: {"y": tensor, "z": tensor}}
    bits = sum(-torch.log2(likelihood).sum().item()
               for role in output.likelihoods[-1].values() for likelihood in role.values())
    mse = F.mse_loss(output.x_hat[-1].clamp(0.0, 1.0), frame).item()
    return bits / (frame.shape[-2] * frame.shape[-1]), 10.0 * math.log10(1.0 / max(mse, 1e-10))


def read_pictures(path: Path, indexes: list[int], multiple: int) -> list[torch.Tensor]:
    """Frames of a raw YUV 4:2:0 file as RGB (1,3,H,W), cropped to multiples of multiple."""
    with YuvReader(path) as reader:
        if max(indexes) >= reader.num_frames:
            raise SystemExit(f"error: {path} has {reader.num_frames} frames; --frame needs {max(indexes) + 1}")
        pictures = []
        for index in indexes:
            picture = yuv420_to_rgb(reader.read_frame(index), reader.geometry.bit_depth)
            picture = picture.reshape(1, 3, *picture.shape[-2:])
            height, width = (picture.shape[-2] // multiple) * multiple, (picture.shape[-1] // multiple) * multiple
            pictures.append(picture[..., :height, :width])
        return pictures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sequences", nargs="+", type=Path, help="raw YUV 4:2:0 files (size in the name)")
    parser.add_argument("--model", default="dcvc-small-detail", help="a video model whose training forward has stage 'pairs'")
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--frame", type=int, default=1, help="frame t (>= 1); its reference is frame t-1")
    args = parser.parse_args()
    if args.frame < 1:
        raise SystemExit("error: --frame must be at least 1 (frame t-1 is its reference)")
    codec = load_model(args.model, quality=args.quality).codec.eval()
    intra_id = default_intra_model(args.model, own_weights=False) or args.model
    intra = load_model(intra_id, quality=args.quality).codec.eval()
    multiple = max(codec.crop_multiple, intra.crop_multiple)
    for path in args.sequences:
        previous, frame = read_pictures(path, [args.frame - 1, args.frame], multiple)
        costs = {f"against frame {args.frame - 1}": p_frame_cost(codec, previous, frame),
                 "against itself": p_frame_cost(codec, frame, frame),
                 f"as an I-frame of {intra_id}": last_frame_cost(intra, [frame], "intra")}
        print(f"{path.name}, frame {args.frame}: " + "; ".join(f"{name} {bpp:.4f} bpp / {psnr:.2f} dB"
                                                             for name, (bpp, psnr) in costs.items()))


if __name__ == "__main__":
    main()
