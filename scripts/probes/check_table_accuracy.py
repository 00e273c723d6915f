#!/usr/bin/env python
"""Accuracy of the quasi-Monte Carlo lattice tables against a 16x larger reference run.

    python scripts/probes/check_table_accuracy.py --lattice a3* --sigmas 0.11 0.3 1 2 --log2-points 10 12 14

For each sigma, cell probabilities with 2^m Sobol points are compared with 2^(m+4) points (same
seed): the largest relative error over cells with P >= 1e-4, the total variation, and the rate
error in bits per tuple, sum P_ref * log2(P_ref / P). vidcodec.quant.tables.QMC_LOG2_POINTS is the
smallest m whose rate error stays below 1e-4 bit per tuple for every sigma tried.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from vidcodec.quant.lattice import get_lattice
from vidcodec.quant.tables import PRUNE_PROBABILITY, _enumeration_radius, cell_probabilities


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lattice", default="a3*")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.11, 0.3, 1.0, 2.0])
    parser.add_argument("--log2-points", type=int, nargs="+", default=[10, 12, 14])
    args = parser.parse_args(argv)
    lattice = get_lattice(args.lattice)
    print("| lattice | sigma | Sobol points | reference points | max rel. error (P>=1e-4) | total variation "
          "| rate error bits/tuple |")
    print("|---|---|---|---|---|---|---|")
    for sigma in args.sigmas:
        points = lattice.points_within(_enumeration_radius(lattice, sigma, PRUNE_PROBABILITY))
        for m in args.log2_points:
            estimate = cell_probabilities(lattice, points, sigma, qmc_log2_points=m)
            reference = cell_probabilities(lattice, points, sigma, qmc_log2_points=m + 4)
            big = reference >= 1e-4
            rel = float(np.max(np.abs(estimate[big] / reference[big] - 1)))
            tv = 0.5 * float(np.abs(estimate - reference).sum())
            keep = (reference > 0) & (estimate > 0)
            kl = float((reference[keep] * np.log2(reference[keep] / estimate[keep])).sum())
            print(f"| {lattice.name} | {sigma:g} | 2^{m} | 2^{m + 4} | {rel:.2e} | {tv:.2e} | {kl:.2e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
