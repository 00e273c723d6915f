#!/usr/bin/env python
"""Coded rate of the table-free lattice coder (quant/coset_coding.py) against the ideal rate.

    nice -n 10 python scripts/bench/bench_coset_coding.py [--sigmas 0.5 1 2 4]

For each lattice (Z1, A2, A3*, D4, E8, Leech) and sigma (per dimension, unit-volume lattice):
X ~ N(0, sigma^2 I) (Sobol), p = nearest point; the ideal rate is sum of -log2 P(cell of p)
(Gaussian mass of p's Voronoi cell by quasi-Monte Carlo, quant/cell_mass.py), the model rate
sum of -log2 Q(p) (what an ideal arithmetic coder would spend with the coset model), and the coded
rate the bytes of the real rANS stream (16-bit CDFs, flush included). All in bits per dimension,
with the excess over the ideal; plus encode / decode time per tuple (this machine, loaded; the
coder is Python-level per coordinate, not tuned). Every stream is decoded and checked bit-exact.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from vidcodec.quant.cell_mass import cell_offsets, gaussian_samples, log2_cell_mass
from vidcodec.quant.coset_coding import CosetModel, coset_form
from vidcodec.quant.lattice import NearestPointLattice, get_lattice
from vidcodec.quant.leech import leech_lattice

LATTICES = ("z1", "a2", "a3*", "d4", "e8", "leech")


def build(name: str) -> NearestPointLattice:
    return leech_lattice() if name == "leech" else get_lattice(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--lattices", nargs="+", default=list(LATTICES), choices=LATTICES)
    parser.add_argument("--scalars", type=int, default=1 << 16, help="latents per point (tuples = scalars / dim)")
    parser.add_argument("--log2-cell-points", type=int, default=13)
    args = parser.parse_args(argv)

    print("| lattice | sigma | ideal (bits/dim) | model (bits/dim) | coded (bits/dim) | coded - ideal "
          "| encode us/tuple | decode us/tuple | tables |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.lattices:
        lattice = build(name)
        form = coset_form(name)
        offsets = cell_offsets(lattice, args.log2_cell_points, seed=1)
        num_tuples = max(1, args.scalars // lattice.dim)
        for sigma in args.sigmas:
            points = lattice.nearest_point(gaussian_samples(lattice.dim, num_tuples, sigma, seed=5))
            ideal = -log2_cell_mass(points, sigma, offsets).sum().item()
            model = CosetModel(form, sigma)
            modelled = model.model_bits(points).sum().item()
            start = time.perf_counter()
            data = model.encode(points)
            encode_s = time.perf_counter() - start
            start = time.perf_counter()
            decoded = CosetModel(form, sigma).decode(data, num_tuples)
            decode_s = time.perf_counter() - start
            if not torch.allclose(decoded, points, atol=1e-9):
                raise SystemExit(f"{name} sigma={sigma}: decoded points differ")
            per_dim = num_tuples * lattice.dim
            coded = 8 * len(data)
            print(f"| {lattice.name} | {sigma:g} | {ideal / per_dim:.4f} | {modelled / per_dim:.4f} | "
                  f"{coded / per_dim:.4f} | {coded / ideal - 1:+.2%} | {1e6 * encode_s / num_tuples:.1f} | "
                  f"{1e6 * decode_s / num_tuples:.1f} | {model.num_tables} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
