#!/usr/bin/env python
"""Nearest-point speed and normalized second moment of every lattice quantizer.

    nice -n 10 python scripts/bench/bench_lattices.py [--threads 2] [--nsm-samples 200000]

For Z1, A2, A3*, D4, E8 (quant/lattice.py) and the Leech lattice (quant/leech.py): tuples per
second of ``nearest_point`` on N(0, 2^2) float64 tuples (best of --repeats runs, after one warm-up),
scalars per second (tuples x dim), and G measured by Sobol Monte Carlo
(quant.lattice.normalized_second_moment) against the known value. Prints a markdown table.
Timings depend on the machine and its load; say which when quoting them.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import torch

from vidcodec.quant.lattice import NearestPointLattice, get_lattice, normalized_second_moment
from vidcodec.quant.leech import leech_lattice

LATTICES = ("z1", "a2", "a3*", "d4", "e8", "leech")


def build(name: str) -> NearestPointLattice:
    return leech_lattice() if name == "leech" else get_lattice(name)


def tuples_per_second(lattice: NearestPointLattice, num_tuples: int, repeats: int) -> float:
    x = torch.randn(num_tuples, lattice.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    lattice.nearest_point(x[:256])  # warm-up: lazy initialisation, allocator
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        lattice.nearest_point(x)
        best = min(best, time.perf_counter() - start)
    return num_tuples / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nsm-samples", type=int, default=200_000)
    parser.add_argument("--leech-nsm-samples", type=int, default=1 << 16,
                        help="Sobol samples for the Leech G (its decoder is ~100x slower per tuple)")
    parser.add_argument("--lattices", nargs="+", default=list(LATTICES), choices=LATTICES)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}")
    print()
    print("| lattice | dim | tuples/s | scalars/s | G measured | G known | rel. error |")
    print("|---|---|---|---|---|---|---|")
    for name in args.lattices:
        lattice = build(name)
        num_tuples = 16_384 if name == "leech" else 262_144
        speed = tuples_per_second(lattice, num_tuples, args.repeats)
        samples = args.leech_nsm_samples if name == "leech" else args.nsm_samples
        nsm = normalized_second_moment(lattice, num_samples=samples, seed=1)
        rel = nsm / lattice.nsm_theory - 1
        print(f"| {lattice.name} | {lattice.dim} | {speed:,.0f} | {speed * lattice.dim:,.0f} | {nsm:.5f} "
              f"| {lattice.nsm_theory:.5f} | {rel:+.2%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
