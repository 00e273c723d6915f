"""Learning curve over consecutive training runs (e.g. the chunks of scripts/train/device_train.sh): held-out
validation of each rate point against its cumulative steps, one PNG, and the logs joined into one
JSON-lines file per rate point.

    python scripts/train/plot_training_chunks.py --runs pairs=RUN1 chains=RUN2 chains=RUN3 \
        --out docs/training/gpu-learning-curve.png --logs-dir docs/training

RUN: a directory with q1/ .. q4/ run directories (train_log.jsonl each), as device_train.sh leaves them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def joined_logs(runs: list[tuple[str, Path]], quality: int) -> list[dict]:
    """The validation records of rate point ``quality`` over all runs, steps made cumulative."""
    records, offset = [], 0
    for chunk, (stage, run) in enumerate(runs, start=1):
        log = [json.loads(line) for line in (run / f"q{quality}" / "train_log.jsonl").read_text().splitlines() if line]
        records += [{**r, "stage": stage, "chunk": chunk, "cumulative_step": offset + r["step"]}
                    for r in log if any(k.startswith("val_") for k in r)]
        offset += log[-1]["step"] if log else 0
    return records


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, metavar="STAGE=DIR")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--logs-dir", type=Path)
    args = parser.parse_args()
    runs = [(stage, Path(path)) for stage, _, path in (item.partition("=") for item in args.runs)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for quality in range(1, 5):
        records = joined_logs(runs, quality)
        if args.logs_dir:
            (args.logs_dir / f"gpu-q{quality}-train_log.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in records))
        # One segment per run: the stages validate on different clips (their own seed and clip
        # length) against different references, so values across a boundary do not compare.
        for chunk in range(1, len(runs) + 1):
            p_frames = [r for r in records if "val_psnr_p" in r and r["chunk"] == chunk]
            for ax, key in zip(axes, ("val_psnr_p", "val_bpp_p")):
                ax.plot([r["cumulative_step"] for r in p_frames], [r[key] for r in p_frames], marker=".",
                        color=f"C{quality - 1}", label=f"q{quality}" if chunk == 1 else None)
    boundaries, offset = [], 0
    for _stage, run in runs[:-1]:
        log = (run / "q3" / "train_log.jsonl").read_text().splitlines()
        offset += json.loads(log[-1])["step"]
        boundaries.append(offset)
    for ax, label in zip(axes, ("held-out P-frames, PSNR-RGB (dB)", "held-out P-frames, bpp")):
        for step in boundaries:
            ax.axvline(step, color="grey", lw=0.5, ls="--")
        ax.set_xlabel("steps (" + " | ".join(stage for stage, _ in runs) + ")")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle("Noise-proxy validation on held-out clips, 256 x 256 (each stage its own clips and references)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
