#!/usr/bin/env python
"""Write the starting checkpoint of hybrid-small at one rate point: both of its hyperpriors (I-frames
and residual) copied from a mbt2018-mean-small checkpoint, and the encoder's lambda from that
checkpoint's training. Training (configs/train/hybrid-small-pairs.yaml, init_from) starts from it.

    python scripts/train/init_hybrid_small.py --quality 3 --out runs/hybrid-small-q3-init.pt
    python scripts/train/init_hybrid_small.py --image-checkpoint my-mbt.pt --out init.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidcodec.models.hybrid_small import HybridSmallCodec
from vidcodec.models.registry import load_model, save_checkpoint, shipped_checkpoint_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", type=int, default=3, help="rate point of the shipped mbt2018-mean-small")
    parser.add_argument("--image-checkpoint", type=Path,
                        help="a mbt2018-mean-small checkpoint instead of the shipped one")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    path = args.image_checkpoint or shipped_checkpoint_path("mbt2018-mean-small", args.quality)
    image = load_model("mbt2018-mean-small", checkpoint=path)
    lmbda = image.provenance.get("train_config", {}).get("lmbda")
    if lmbda is None:
        raise SystemExit(f"error: {path} records no training lambda (provenance.train_config.lmbda)")
    codec = HybridSmallCodec.from_image_codec(image.codec, lmbda)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out, codec, "hybrid-small", {
        "init": {"from": str(path), "model": "mbt2018-mean-small", "modules": ["intra", "residual"],
                 "image_provenance": image.provenance},
        "train_config": {"lmbda": lmbda},
    })
    print(f"wrote {args.out} (lambda {lmbda}, both hyperpriors from {path})")


if __name__ == "__main__":
    main()
