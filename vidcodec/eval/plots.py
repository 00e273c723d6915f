"""PNG plots of an evaluation run: RD curves per sequence and averaged, per-frame bits and quality.

Figures are built with matplotlib.figure.Figure and rendered by Agg directly, never through
pyplot: pyplot keeps global figure state and picks a GUI backend from the environment, which breaks
headless runs and leaks memory in long batch jobs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from matplotlib.figure import Figure

from vidcodec.eval.report import DISPLAY_NAMES, METRICS, ordered_configs, quality_db
from vidcodec.eval.results import ResultsError, average_over_sequences

AXIS_LABELS = {
    "psnr_rgb": "PSNR-RGB (dB)",
    "psnr_yuv": "PSNR-YUV 6:1:1 (dB)",
    "psnr_y": "PSNR-Y (dB)",
    "ms_ssim_rgb": "MS-SSIM-RGB (dB, -10 log10(1 - MS-SSIM))",
}


def rd_figure(rows: list[dict], sequence: str, metric: str = "psnr_rgb", configs: list[str] | None = None) -> Figure:
    """bpp (all frames) vs metric for one sequence of result rows, one line with markers per
    configuration, points in order of rate. sequence "Average" plots average_over_sequences(rows).
    Raises ValueError when there is nothing to plot."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (expected one of {', '.join(METRICS)})")
    selected = average_over_sequences(rows) if sequence == "Average" else [r for r in rows if r["sequence"] == sequence]
    if not selected:
        raise ValueError(f"no result rows for sequence {sequence!r}")
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    for config in configs or ordered_configs(r["config"] for r in selected):
        points = sorted((r["bpp"], quality_db(r, metric)) for r in selected
                        if r["config"] == config and r["bpp"] is not None and quality_db(r, metric) is not None)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=DISPLAY_NAMES.get(config, config))
    if not ax.lines:
        raise ValueError(f"no {metric} values for sequence {sequence!r}")
    title = sequence if sequence != "Average" else f"Average over {len({r['sequence'] for r in rows})} sequences"
    ax.set(xlabel="bpp (all frames)", ylabel=AXIS_LABELS[metric], title=title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_rd_curves(rows: list[dict], out_dir: Path, metric: str = "psnr_rgb",
                   configs: list[str] | None = None) -> list[Path]:
    """Write rd_<metric>_seq-<sequence>.png per sequence and rd_<metric>_average.png (when some
    (config, rate point) exists for every sequence) into out_dir. Returns the paths written."""
    if not rows:
        raise ValueError("no result rows to plot")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for sequence in sorted({r["sequence"] for r in rows}):
        path = out_dir / f"rd_{metric}_seq-{_safe_name(sequence)}.png"
        written.append(_save(rd_figure(rows, sequence, metric, configs), path))
    if average_over_sequences(rows):
        written.append(_save(rd_figure(rows, "Average", metric, configs), out_dir / f"rd_{metric}_average.png"))
    return written


def read_rd_log(path: Path) -> list[dict]:
    """The records of an rd.jsonl (one JSON object per line, blank lines skipped).
    Raises ResultsError naming the file and line on a malformed line."""
    path = Path(path)
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{path}:{number}: not JSON ({exc})") from None
        missing = [k for k in ("poc", "frame_type", "bits") if not isinstance(record, dict) or k not in record]
        if missing:
            raise ResultsError(f"{path}:{number}: missing fields {missing}")
        records.append(record)
    return records


def frame_figure(records: list[dict], metric: str = "psnr_rgb", title: str = "") -> Figure:
    """Two panels over poc: bits per frame (bars, I-frames in another colour) and metric per frame
    (line; I-frames as a separate "I-frame" marker series, and a dotted line at each I-frame in both
    panels). Raises ValueError on no records."""
    if not records:
        raise ValueError("no frame records to plot")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (expected one of {', '.join(METRICS)})")
    records = sorted(records, key=lambda r: r["poc"])
    pocs = [r["poc"] for r in records]
    intra = [r for r in records if r["frame_type"] == "I"]
    fig = Figure(figsize=(8.0, 5.6))
    ax_bits, ax_quality = fig.subplots(2, 1, sharex=True)
    ax_bits.bar(pocs, [r["bits"] / 1000.0 for r in records], width=0.8,
                color=["tab:red" if r["frame_type"] == "I" else "tab:blue" for r in records])
    ax_bits.set(ylabel="kbit per frame", title=title)
    values = [(r["poc"], quality_db(r, metric)) for r in records if quality_db(r, metric) is not None]
    ax_quality.plot([v[0] for v in values], [v[1] for v in values], marker=".", color="tab:blue", label="frame")
    intra_values = [(r["poc"], quality_db(r, metric)) for r in intra if quality_db(r, metric) is not None]
    ax_quality.plot([v[0] for v in intra_values], [v[1] for v in intra_values], linestyle="none", marker="s",
                    color="tab:red", label="I-frame")
    for r in intra:
        for ax in (ax_bits, ax_quality):
            ax.axvline(r["poc"], color="tab:red", linestyle=":", linewidth=0.8)
    ax_quality.set(xlabel="poc", ylabel=AXIS_LABELS[metric])
    ax_quality.legend()
    for ax in (ax_bits, ax_quality):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def plot_frame_rd(rd_jsonl: Path, png_path: Path, metric: str = "psnr_rgb") -> Path:
    """Render frame_figure of an rd.jsonl into png_path; the title is the job directory
    (SEQ/CONFIG/qQ). Raises ValueError on an empty log."""
    rd_jsonl = Path(rd_jsonl)
    records = read_rd_log(rd_jsonl)
    if not records:
        raise ValueError(f"{rd_jsonl}: no frame records")
    title = "/".join(rd_jsonl.resolve().parent.parts[-3:])
    return _save(frame_figure(records, metric, title), Path(png_path))


def _safe_name(name: str) -> str:
    """A file-name-safe form of a sequence name (anything but letters, digits, . _ - becomes _)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _save(fig: Figure, path: Path) -> Path:
    # Temporary name then rename, so an interrupted run never leaves a truncated PNG behind.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, format="png", dpi=100)
    os.replace(tmp, path)
    return path
