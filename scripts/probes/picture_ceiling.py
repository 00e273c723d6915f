#!/usr/bin/env python
"""The PSNR a dcvc-small P-frame cannot pass, whatever its latent: its picture is to_pixels(f), one
linear map of 64 features per 8x8x3 block, so the best it can do is the least-squares projection of
each true block onto that map's affine subspace (rank 64 of 192 values).

    python scripts/probes/picture_ceiling.py --checkpoint vidcodec/weights/dcvc-small-q3.pt \
        sequences/generated/HeldoutMandelbrot_416x240_30fps_420_8bit_YUV.yuv [--frames 4]

Prints PSNR-RGB of that projection per sequence (mean over the first --frames frames). A model with
``detail_head`` adds a non-linear term and is refused: this bound is for the linear map alone.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from vidcodec.io.color import yuv420_to_rgb
from vidcodec.io.yuv import YuvReader
from vidcodec.models.dcvc_small import FOLD
from vidcodec.models.registry import checkpoint_model_id, load_model


def projection_psnr(picture: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> float:
    """PSNR (dB, peak 1) of picture (1,3,H,W in [0,1], H and W multiples of FOLD) against its best
    approximation shuffle(weight @ f + bias) over all features f, clamped to [0,1] as the decoder clamps."""
    blocks = F.pixel_unshuffle(picture.double(), FOLD)[0]  # (192, H/8, W/8)
    targets = blocks.flatten(1) - bias.double()[:, None]
    features = torch.linalg.lstsq(weight.double(), targets).solution
    best = (weight.double() @ features + bias.double()[:, None]).reshape(blocks.shape)
    best = F.pixel_shuffle(best[None], FOLD).clamp(0.0, 1.0)
    mse = torch.mean((best - picture.double()) ** 2).item()
    return 10.0 * math.log10(1.0 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sequences", nargs="+", type=Path, help="raw YUV 4:2:0 files (size in the name)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="a dcvc-small checkpoint")
    parser.add_argument("--frames", type=int, default=1)
    args = parser.parse_args()
    codec = load_model(checkpoint_model_id(args.checkpoint), checkpoint=args.checkpoint).codec
    if getattr(codec, "detail_head", False) or not hasattr(codec, "to_pixels"):
        raise SystemExit(f"error: {args.checkpoint} is not a plain dcvc-small (no linear to_pixels alone); "
                         "the bound holds for dcvc-small and dcvc-small-gated's picture before the gate")
    weight, bias = codec.to_pixels.weight.detach()[:, :, 0, 0], codec.to_pixels.bias.detach()
    for path in args.sequences:
        with YuvReader(path) as reader:
            values = []
            for index in range(min(args.frames, reader.num_frames)):
                picture = yuv420_to_rgb(reader.read_frame(index), reader.geometry.bit_depth)
                picture = picture.reshape(1, 3, *picture.shape[-2:])
                height, width = (picture.shape[-2] // FOLD) * FOLD, (picture.shape[-1] // FOLD) * FOLD
                values.append(projection_psnr(picture[..., :height, :width], weight, bias))
        print(f"{path.name}: {sum(values) / len(values):.2f} dB (best features, {len(values)} frames)")


if __name__ == "__main__":
    main()
