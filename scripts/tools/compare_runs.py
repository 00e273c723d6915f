"""BD-rate tables across eval runs, e.g. the same configurations coded with two sets of weights.

`vidcodec bdrate` compares the configurations of one run. This merges several runs (each made by
`vidcodec eval --weights ...`), renaming each configuration to LABEL:CONFIG, and writes the same
tables (bdrate.md, bdrate.csv, bdpsnr.csv, gains_per_rate.csv) against one of them, and the RD curves
of all of them (plots/rd_<metric>_seq-<sequence>.png, plots/rd_<metric>_average.png):

    .venv/bin/python scripts/tools/compare_runs.py sq=results/sq oct=results/oct --anchor sq:baseline --out results/cmp

`--frame-type I` (or P) compares the curves of one frame type only (bpp_I and psnr_rgb_I of each
job), e.g. the I-frames of two weight sets.

A run may be given several times with the same label (its rate points are then pooled), so rate
points evaluated in separate runs form one curve.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidcodec.eval.plots import plot_rd_curves
from vidcodec.eval.report import write_report
from vidcodec.eval.results import load_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR (an eval run with results.json)")
    parser.add_argument("--anchor", required=True, help="LABEL:CONFIG every other curve is compared with")
    parser.add_argument("--only", help="comma-separated configurations to keep (default: all)")
    parser.add_argument("--metric", default="psnr_rgb")
    parser.add_argument("--frame-type", choices=("I", "P"), help="compare this frame type's rate and quality only")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows, seen = [], set()
    for spec in args.runs:
        label, sep, run = spec.partition("=")
        if not sep or not label or ":" in label:
            parser.error(f"{spec!r}: expected LABEL=RUN_DIR with a label without ':'")
        for row in load_results(Path(run)):
            if args.only and row["config"] not in args.only.split(","):
                continue
            key = (label, row["config"], row["sequence"], row["quality"])
            if key in seen:
                parser.error(f"{spec}: {row['sequence']} {row['config']} q{row['quality']} "
                             f"is already given for {label}")
            seen.add(key)
            if args.frame_type:
                suffix = f"_{args.frame_type}"
                if row.get("bpp" + suffix) is None:
                    parser.error(f"{spec}: {row['sequence']} {row['config']} q{row['quality']} "
                                 f"has no {args.frame_type}-frames")
                row = {**row, "bpp": row["bpp" + suffix], args.metric: row[args.metric + suffix]}
            rows.append({**row, "config": f"{label}:{row['config']}"})
    written = write_report(rows, args.out, anchor=args.anchor, metric=args.metric)
    plot_rd_curves(rows, Path(args.out) / "plots", metric=args.metric)
    print(Path(written["bdrate.md"]).read_text())


if __name__ == "__main__":
    main()
