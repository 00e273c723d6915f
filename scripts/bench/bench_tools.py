#!/usr/bin/env python
"""Overhead of the coding tools against the SQ path: lattice quantization (seed 000, section 3) and
latent shift (section 4), P-frame encode and decode seconds, in one run on one machine.

    python scripts/bench/bench_tools.py --size 832x480 --frames 7 --rounds 3 --out docs/bench_tools.md

One process, one model (the shipped ssf-small q3 unless --model/--checkpoint say otherwise), one
generated sequence (held-out photo with synthetic motion). The P-frames are coded against a fixed
chain of references (the SQ reconstructions), so every tool codes exactly the same inputs. Tools
are interleaved frame by frame and the rounds repeated, so slow drifts of the machine (other load,
frequency) hit all of them alike; the table gives the median seconds per P-frame (network +
entropy coding, as enc_s/dec_s in rd.jsonl) and the ratio to SQ.

Lattice tables: "first use" is a P-frame encode with an empty table cache directory (tables built
by integration and written to disk), "cached" the same with the tables on disk but not in memory,
and "all scales" builds every table of the scale table from scratch.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import vidcodec  # noqa: E402,F401  (before compressai: see vidcodec/compat.py)
from vidcodec.io.color import PictureBox, pad_to_multiple  # noqa: E402
from vidcodec.models.registry import load_model  # noqa: E402
from vidcodec.quant.tables import TableCache, TableSpec  # noqa: E402
from vidcodec.tools import CodingTools, ShiftSettings  # noqa: E402
from vidcodec.train.synthetic import photo_clip  # noqa: E402

# name -> (lattice or None, shift search or None)
TOOLS = {
    "sq": (None, None),
    "hex": ("a2", None),
    "oct": ("a3*", None),
    "shift-fast": (None, "fast"),
    "shift-jvp": (None, "jvp"),
    "shift-brute": (None, "brute"),
    "join (oct+shift-fast)": ("a3*", "fast"),
}


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def table_timings(codec, lattice: str, frame, reference, picture, all_scales: bool) -> dict:
    """Seconds of one P-frame encode with an empty table cache vs with tables on disk (and, when
    ``all_scales``, of building every scale's table: minutes for A3*, so off by default)."""
    with tempfile.TemporaryDirectory() as tmp:
        codec.attach_tools(CodingTools(lattice=lattice, cache=TableCache(Path(tmp))))
        _, first = timed(codec.encode_inter, frame, reference, picture)
        codec.attach_tools(CodingTools(lattice=lattice, cache=TableCache(Path(tmp))))  # fresh memory, same disk
        _, cached = timed(codec.encode_inter, frame, reference, picture)
        gc = codec.latent_coders["residual"].hyperprior.gaussian_conditional
        all_scales_s = None
        if all_scales:
            start = time.perf_counter()
            empty = TableCache(Path(tmp) / "all")
            for sigma in gc.scale_table.tolist():
                empty.get(TableSpec(lattice, float(sigma)))
            all_scales_s = time.perf_counter() - start
    codec.attach_tools(CodingTools())
    return {"first_use_s": first, "cached_s": cached, "all_scales_s": all_scales_s,
            "num_scales": len(gc.scale_table)}


def tools_of(tool: str, caches: dict) -> CodingTools:
    lattice, search = TOOLS[tool]
    return CodingTools(lattice=lattice, cache=caches.get(lattice),
                       shift=ShiftSettings(search=search) if search else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ssf-small")
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--checkpoint")
    parser.add_argument("--size", default="832x480")
    parser.add_argument("--frames", type=int, default=7, help="1 I-frame + frames-1 P-frames")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    parser.add_argument("--all-scales", action="store_true",
                        help="also time building the table of every scale from scratch (A3*: minutes)")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    model = load_model(args.model, None if args.checkpoint else args.quality, args.checkpoint)
    codec = model.codec
    clip = photo_clip("coffee", args.frames, height, width, seed=1)
    frames = [pad_to_multiple(torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1)))[None], codec.pad_multiple)
              for f in clip]
    picture = PictureBox(0, 0, height, width, *frames[0].shape[-2:])  # padding at the bottom and right

    # Fixed reference chain: SQ reconstructions.
    references = [codec.encode_intra(frames[0]).x_hat]
    for frame in frames[1:-1]:
        references.append(codec.encode_inter(frame, references[-1]).x_hat)

    table_rows = {name: table_timings(codec, lattice, frames[1], references[0], picture, args.all_scales)
                  for name, lattice in (("hex", "a2"), ("oct", "a3*"))}

    caches = {lattice: TableCache(Path(tempfile.mkdtemp())) for lattice in ("a2", "a3*")}
    enc = {name: [] for name in args.tools}
    dec = {name: [] for name in args.tools}
    gains = {name: [] for name in args.tools}
    for tool in args.tools:  # warm-up: tables in memory, first-call costs out of the timings
        codec.attach_tools(tools_of(tool, caches))
        codec.encode_inter(frames[1], references[0], picture)
    memories = {tool: {} for tool in args.tools}  # each tool remembers its own previous frame
    for round_index in range(args.rounds):
        for poc in range(1, args.frames):
            for tool in args.tools:
                codec.attach_tools(tools_of(tool, caches))
                codec.start_sequence(memories[tool])
                coded, enc_s = timed(codec.encode_inter, frames[poc], references[poc - 1], picture)
                (decoded, _), dec_s = timed(codec.decode_inter, coded.parts, references[poc - 1],
                                            tuple(frames[poc].shape[-2:]), coded.entropy_hash, coded.shift_indexes)
                if not torch.equal(decoded, coded.x_hat):
                    raise SystemExit(f"{tool}: decoder output differs from the encoder's reconstruction")
                enc[tool].append(enc_s)
                dec[tool].append(dec_s)
                if round_index == 0 and coded.shift is not None:
                    gains[tool].append(coded.shift.gain_db)
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)

    base_enc, base_dec = statistics.median(enc["sq"]), statistics.median(dec["sq"])
    lines = [
        f"Machine: {platform.machine()}, torch {torch.__version__}, {args.threads} threads; model {model.model_id} "
        f"q{model.quality}; {args.size}, {args.frames - 1} P-frames x {args.rounds} rounds, tools interleaved; "
        "median seconds per P-frame.",
        "",
        "| tool | enc P s | enc ratio | dec P s | dec ratio | mean shift gain dB |",
        "|---|---|---|---|---|---|",
    ]
    for tool in args.tools:
        e, d = statistics.median(enc[tool]), statistics.median(dec[tool])
        gain = f"{statistics.mean(gains[tool]):.4f}" if gains[tool] else "-"
        lines.append(f"| {tool} | {e:.3f} | {e / base_enc:.3f}x | {d:.3f} | {d / base_dec:.3f}x | {gain} |")
    lines += ["", "Lattice tables (seconds):", "",
              "| quantizer | P-frame encode, empty cache | P-frame encode, tables on disk | build all scales |",
              "|---|---|---|---|"]
    for name, row in table_rows.items():
        all_scales = "not measured" if row["all_scales_s"] is None else f"{row['all_scales_s']:.1f}"
        lines.append(f"| {name} | {row['first_use_s']:.2f} | {row['cached_s']:.2f} | "
                     f"{all_scales} ({row['num_scales']} scales) |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
