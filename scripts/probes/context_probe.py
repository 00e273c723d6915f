#!/usr/bin/env python
"""How much of its reference a P-frame uses: the bits of frame t coded against the previous frame,
and against frame t itself (a perfect reference: nothing moved, nothing lost), next to frame t as an
I-frame. A codec that exploits its reference codes the second almost for free.

    python scripts/probes/context_probe.py --model hybrid-small --qualities 1 2 3 4 \
        sequences/generated/Smptebars_416x240_30fps_420_8bit_YUV.yuv [--frame 2] [--markdown]
    python scripts/probes/context_probe.py --model hybrid-small --checkpoint-template 'runs/hybrid-small-q{q}.pt' ...

Real coding (default): every frame is entropy coded as the codec codes it in a stream (encode_intra,
start_state of the reference, encode_inter), and bits are the lengths of the coded parts: motion,
side information and skip decisions included. ``--forward``: the training forward pass in eval mode
instead (latents rounded, bits from the entropy model's likelihoods; how the figures before
hybrid-small were measured). On the top-left crop that is a multiple of the model's crop_multiple. The
I-frame is coded by the model that codes the shipped weights' I-frames (the registry's
shipped_intra_model) at the same quality. Prints bpp / PSNR-RGB for each, and the share of the
I-frame's bits the frame coded against itself costs.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from vidcodec.config import resolve_intra_model
from vidcodec.io.color import yuv420_to_rgb
from vidcodec.io.yuv import YuvReader
from vidcodec.models.registry import load_model


def p_frame_cost(codec, reference: torch.Tensor, frame: torch.Tensor) -> tuple[float, float]:
    """(bpp, PSNR-RGB dB) of frame (1,3,H,W in [0,1]) through the training forward as a P-frame whose
    reference is reference."""
    return last_frame_cost(codec, [reference, frame], "pairs")


def coded_p_frame_cost(codec, reference: torch.Tensor, frame: torch.Tensor) -> tuple[float, float]:
    """(bpp, PSNR-RGB dB) of frame entropy coded as a P-frame against the state of reference."""
    coded = codec.encode_inter(frame, codec.start_state(reference))
    return _coded_cost(coded, frame)


def coded_i_frame_cost(codec, frame: torch.Tensor) -> tuple[float, float]:
    return _coded_cost(codec.encode_intra(frame), frame)


def _coded_cost(coded, frame: torch.Tensor) -> tuple[float, float]:
    bits = 8 * sum(len(part) for part in coded.parts)
    mse = F.mse_loss(coded.x_hat.clamp(0.0, 1.0), frame).item()
    return bits / (frame.shape[-2] * frame.shape[-1]), 10.0 * math.log10(1.0 / max(mse, 1e-10))


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
    parser.add_argument("--model", default="dcvc-small-detail", help="a video model")
    parser.add_argument("--qualities", type=int, nargs="+", default=[3], help="rate points (shipped weights)")
    parser.add_argument("--quality", type=int, help="one rate point (same as --qualities Q)")
    parser.add_argument("--checkpoint-template", help="checkpoint of each rate point instead of the shipped "
                        "weights, with {q} for the quality, e.g. 'runs/hybrid-small-q{q}.pt'")
    parser.add_argument("--frame", type=int, default=1, help="frame t (>= 1); its reference is frame t-1")
    parser.add_argument("--forward", action="store_true", help="bits from the training forward, not real coding")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table row per sequence and rate")
    args = parser.parse_args()
    if args.frame < 1:
        raise SystemExit("error: --frame must be at least 1 (frame t-1 is its reference)")
    qualities = [args.quality] if args.quality is not None else args.qualities
    if args.markdown:
        print("| sequence | q | vs frame t-1 (bpp / dB) | vs itself | I-frame | itself / I-frame bits |")
        print("|---|---|---|---|---|---|")
    for quality in qualities:
        checkpoint = args.checkpoint_template.format(q=quality) if args.checkpoint_template else None
        codec = load_model(args.model, quality=None if checkpoint else quality, checkpoint=checkpoint).codec.eval()
        intra_id = resolve_intra_model(args.model) or args.model
        intra = load_model(intra_id, quality=quality).codec.eval()
        multiple = max(codec.crop_multiple, intra.crop_multiple)
        for path in args.sequences:
            previous, frame = read_pictures(path, [args.frame - 1, args.frame], multiple)
            if args.forward:
                costs = [p_frame_cost(codec, previous, frame), p_frame_cost(codec, frame, frame),
                         last_frame_cost(intra, [frame], "intra")]
            else:
                costs = [coded_p_frame_cost(codec, previous, frame), coded_p_frame_cost(codec, frame, frame),
                         coded_i_frame_cost(intra, frame)]
            share = costs[1][0] / costs[2][0]
            if args.markdown:
                cells = " | ".join(f"{bpp:.4f} / {psnr:.2f}" for bpp, psnr in costs)
                print(f"| {path.name.split('_')[0]} | {quality} | {cells} | {100 * share:.1f}% |", flush=True)
                continue
            names = [f"against frame {args.frame - 1}", "against itself", f"as an I-frame of {intra_id}"]
            print(f"{path.name}, q{quality}, frame {args.frame}: "
                  + "; ".join(f"{name} {bpp:.4f} bpp / {psnr:.2f} dB" for name, (bpp, psnr) in zip(names, costs))
                  + f"; itself / I-frame bits {100 * share:.1f}%", flush=True)


if __name__ == "__main__":
    main()
