#!/usr/bin/env python
"""Entropy coding alone: the lattice coder's encode and decode of one real residual latent against
compressai's scalar path (the only part of a P-frame that Hex/Oct-Quant changes), median ms.

    python scripts/bench/bench_lattice_coding.py --size 832x480 --lattice a3* --repeats 30

The whole-frame benchmark (bench_tools.py) varies by several percent from run to run on a shared
2-core machine, more than a 1% target; this one times only what differs. Lattice tables come from
the default cache (built on first use, as in coding).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import vidcodec  # noqa: E402,F401  (before compressai: see vidcodec/compat.py)
from vidcodec.io.color import pad_to_multiple  # noqa: E402
from vidcodec.models.registry import load_model  # noqa: E402
from vidcodec.tools import CodingTools  # noqa: E402
from vidcodec.train.synthetic import photo_clip  # noqa: E402


def median_ms(function, repeats: int) -> float:
    function()  # first-call costs out
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="832x480")
    parser.add_argument("--lattice", default="a3*")
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    codec = load_model("ssf-small", args.quality).codec
    clip = photo_clip("coffee", 2, height, width, seed=1)
    frames = [pad_to_multiple(torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1)))[None], codec.pad_multiple)
              for f in clip]
    reference = codec.encode_intra(frames[0]).x_hat
    codec.attach_tools(CodingTools(lattice=args.lattice))
    latent = codec.encode_inter(frames[1], reference).latents["residual"]
    coder = codec.latent_coders["residual"]
    lattice, gc = coder.y_coder, coder.hyperprior.gaussian_conditional
    y = latent.y_hat  # any real latent of this frame's statistics
    mu, scale_indexes = latent.mu, latent.scale_indexes
    data = lattice.encode(y, mu, scale_indexes)[0]
    scalar = gc.compress(y, scale_indexes, means=mu)[0]

    def lattice_encode():
        lattice._last_plan = None  # the grouping is made once per frame: include it
        lattice.encode(y, mu, scale_indexes)

    def lattice_decode():
        lattice._last_plan = None
        lattice.decode(data, mu, scale_indexes)

    rows = {
        "scalar encode (compressai)": median_ms(lambda: gc.compress(y, scale_indexes, means=mu), args.repeats),
        "scalar decode (compressai)": median_ms(lambda: gc.decompress([scalar], scale_indexes, mu.dtype, mu),
                                                args.repeats),
        f"lattice {args.lattice} encode": median_ms(lattice_encode, args.repeats),
        f"lattice {args.lattice} decode": median_ms(lattice_decode, args.repeats),
    }
    print(f"ssf-small q{args.quality} residual latent {tuple(y.shape)} of a {args.size} P-frame, "
          f"{args.threads} threads, median of {args.repeats}:")
    for name, ms in rows.items():
        print(f"  {name}: {ms:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
