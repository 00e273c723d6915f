"""How well the lattice-in-the-loop rate estimate (train/lattice_loop.py) predicts the coded bits.

For the first P-frame of held-out sequences, codes the residual latent of a shipped model with
scalar rounding and with a lattice, and prints the real bits next to the training forward's
estimates (evaluation mode: lattice points, quasi-Monte-Carlo cell probabilities) for several
sample counts M and seeds.

    .venv/bin/python scripts/probes/lattice_loop_rate_check.py [--quality 3] [--lattice a3*]
"""

from __future__ import annotations

import argparse

import torch

import vidcodec.compat  # noqa: F401  (compressai without torchvision)
from vidcodec.io.color import pad_to_multiple, yuv420_to_rgb
from vidcodec.io.yuv import YuvReader, geometry_from_filename
from vidcodec.models.registry import load_model
from vidcodec.quant.tables import TableCache
from vidcodec.tools import CodingTools
from vidcodec.train.lattice_loop import LatticeHyperpriorForward

SEQUENCES = ("HeldoutCoffee", "HeldoutAstronaut")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--lattice", default="a3*")
    parser.add_argument("--samples", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| sequence | SQ coded bits | SQ estimate | lattice coded bits | M | lattice estimates (one per seed) |")
    print("|---|---|---|---|---|---|")
    for name in SEQUENCES:
        path = f"sequences/generated/{name}_416x240_30fps_420_8bit_YUV.yuv"
        with YuvReader(path, geometry_from_filename(path)) as reader:
            x_ref, x = (pad_to_multiple(yuv420_to_rgb(reader.read_frame(i), 8), 128) for i in range(2))
        model = load_model("ssf-small", quality=args.quality).codec.eval()
        with torch.no_grad():
            motion = model.latent_coders["motion"].encode(model.motion_encoder(torch.cat((x, x_ref), 1)))
            y_residual = model.res_encoder(x - model._predict(x_ref, motion.y_hat))
            sq_bits = 8 * len(model.latent_coders["residual"].encode(y_residual).y_bytes)
            sq_estimate = -model.res_hyperprior(y_residual)[1]["y"].log2().sum().item()
            model.attach_tools(CodingTools(lattice=args.lattice, cache=TableCache()))
            lattice_bits = 8 * len(model.latent_coders["residual"].encode(y_residual).y_bytes)
            for samples in args.samples:
                forward = LatticeHyperpriorForward(model.res_hyperprior, args.lattice, samples)
                estimates = []
                for seed in range(args.seeds):
                    torch.manual_seed(seed)
                    estimates.append(round(-forward(y_residual)[1]["y"].log2().sum().item()))
                print(f"| {name} | {sq_bits} | {sq_estimate:.0f} | {lattice_bits} | {samples} | {estimates} |")


if __name__ == "__main__":
    main()
