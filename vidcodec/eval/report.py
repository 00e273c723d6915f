"""BD-rate, BD-PSNR and per-rate-point gain tables from result rows (vidcodec.eval.results).

Layout of seed 000's Table 2: one row per sequence plus "Average", one column per configuration
other than the anchor (default "baseline"); a cell is that configuration's BD against the anchor
on the same sequence. Rate is bpp over all frames; quality is one of METRICS (MS-SSIM is taken in
its dB form -10*log10(1 - ms_ssim) so that BD sees a quantity that grows like PSNR).
"Average" is the arithmetic mean of the per-sequence values, as in the paper, not the BD of
averaged curves. A cell that cannot be computed (too few rate points, a non-monotonic curve, no
overlap, no results) is "n/a" with a numbered note; it never stops the rest of the report.

Per-rate-point gains (seed 000 Fig. 4b): for each configuration and rate point Q, the change of bpp
(%) and of quality (dB) against the anchor at the same Q, averaged over the sequences having both.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from vidcodec.errors import VidcodecError
from vidcodec.eval.bdrate import BDRateError, bd_psnr, bd_rate
from vidcodec.eval.results import atomic_write_text

METRICS = ("psnr_rgb", "psnr_yuv", "psnr_y", "ms_ssim_rgb")
CONFIG_ORDER = ("baseline", "hex", "oct", "shift", "join", "x264", "x265", "svtav1")
DISPLAY_NAMES = {"baseline": "Baseline", "hex": "Hex", "oct": "Oct", "shift": "Shift", "join": "Join"}
# Published BD tables use >= 4 rate points per curve; the BD functions accept fewer (pchip: 2).
DEFAULT_MIN_POINTS = 4


class ReportError(VidcodecError, ValueError):
    """The report cannot be made at all (no rows, unknown metric, anchor configuration absent)."""


@dataclass(frozen=True)
class NotAvailable:
    """A cell without a value; ``reason`` becomes its note."""

    reason: str


@dataclass
class Table:
    """columns[0] labels the rows; cells are str / int / float / NotAvailable.
    formats: one format string per column for floats (e.g. "{:+.2f}%"); notes: table-level."""

    title: str
    columns: list[str]
    rows: list[list]
    formats: list[str]
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """Markdown: title, pipe table, then numbered notes of the n/a cells and the table notes."""
        cell_notes: list[str] = []
        lines = [f"### {self.title}", ""]
        header = [DISPLAY_NAMES.get(c, c) for c in self.columns]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            cells = []
            for value, fmt in zip(row, self.formats):
                if isinstance(value, NotAvailable):
                    cell_notes.append(value.reason)
                    cells.append(f"n/a [{len(cell_notes)}]")
                else:
                    cells.append(_format(value, fmt))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"- [{i}] {reason}" for i, reason in enumerate(cell_notes, 1)]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def to_csv(self) -> str:
        """CSV with raw column names, floats at full precision, "n/a" for missing cells (which
        pandas.read_csv reads as NaN)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["n/a" if isinstance(v, NotAvailable) else v for v in row])
        return buffer.getvalue()


def _format(value, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, float) else str(value)


def quality_db(row: dict, metric: str) -> float | None:
    """The row's quality on metric in dB (MS-SSIM as -10*log10(1 - ms_ssim)); None if missing."""
    value = row.get(metric)
    if value is None:
        return None
    if metric == "ms_ssim_rgb":
        # ms_ssim == 1 has no finite dB value; inf makes the BD refuse the curve with a message.
        return -10.0 * math.log10(1.0 - value) if value < 1.0 else math.inf
    return float(value)


def bdrate_table(rows: list[dict], anchor: str = "baseline", metric: str = "psnr_rgb", method: str = "pchip",
                 min_points: int = DEFAULT_MIN_POINTS, configs: list[str] | None = None) -> Table:
    """BD-rate (%) of each configuration against the anchor, per sequence and averaged."""
    return _bd_table(rows, bd_rate, "BD-rate", "{:+.2f}%", anchor, metric, method, min_points, configs)


def bdpsnr_table(rows: list[dict], anchor: str = "baseline", metric: str = "psnr_rgb", method: str = "pchip",
                 min_points: int = DEFAULT_MIN_POINTS, configs: list[str] | None = None) -> Table:
    """BD quality (dB of metric, MS-SSIM in dB form) of each configuration against the anchor."""
    return _bd_table(rows, bd_psnr, "BD-quality (dB)", "{:+.3f}", anchor, metric, method, min_points, configs)


def _bd_table(rows, bd_function, what: str, fmt: str, anchor: str, metric: str, method: str, min_points: int,
              configs: list[str] | None) -> Table:
    configs = _check(rows, anchor, metric, configs)
    sequences = sorted({row["sequence"] for row in rows})
    curves = _curves(rows, metric)
    table_rows, per_config = [], {config: {} for config in configs}
    for sequence in sequences:
        cells = [sequence]
        for config in configs:
            cell = _bd_cell(curves, sequence, anchor, config, bd_function, method, min_points, metric)
            if isinstance(cell, float):
                per_config[config][sequence] = cell
            cells.append(cell)
        table_rows.append(cells)
    on = f"{metric} as -10*log10(1 - ms_ssim) dB" if metric == "ms_ssim_rgb" else metric
    notes = [f"{what} of each configuration vs {anchor!r} on {on} (rate: bpp over all frames), method "
             f"{method}, >= {min_points} rate points per curve. Average: arithmetic mean of the per-sequence "
             "values."]
    average = ["Average"]
    for config in configs:
        values = per_config[config]
        if not values:
            average.append(NotAvailable(f"Average, {config}: no sequence has a value"))
            continue
        average.append(sum(values.values()) / len(values))
        missing = [s for s in sequences if s not in values]
        if missing:
            notes.append(f"Average of {config} is over {len(values)} of {len(sequences)} sequences "
                         f"(without {', '.join(missing)}).")
    table_rows.append(average)
    return Table(title=f"{what} vs {anchor}, {metric}", columns=["sequence", *configs], rows=table_rows,
                 formats=["{}"] + [fmt] * len(configs), notes=notes)


def _bd_cell(curves, sequence, anchor, config, bd_function, method, min_points, metric):
    anchor_points, test_points = curves.get((sequence, anchor), []), curves.get((sequence, config), [])
    for name, points in ((anchor, anchor_points), (config, test_points)):
        if not points:
            return NotAvailable(f"{sequence}, {config}: no results of {name} with {metric}")
        if len(points) < min_points:
            qualities = ", ".join(f"q{q}" for q, _, _ in points)
            return NotAvailable(f"{sequence}, {config}: {name} has {len(points)} rate points with {metric} "
                                f"({qualities}), {min_points} needed")
    try:
        return float(bd_function([p[1] for p in anchor_points], [p[2] for p in anchor_points],
                                 [p[1] for p in test_points], [p[2] for p in test_points], method=method))
    except BDRateError as exc:
        return NotAvailable(f"{sequence}, {config}: {exc}")


def grouped_bdrate_table(groups: dict[str, list[dict]], anchor: str = "baseline", metric: str = "psnr_rgb",
                         method: str = "pchip", min_points: int = DEFAULT_MIN_POINTS,
                         configs: tuple[str, ...] = ("hex", "oct", "shift", "join")) -> Table:
    """Seed 000's Table 2 with one column group per codec family: ``groups`` maps a group label
    (e.g. "SSF", "DCVC") to the rows of that family's eval run; each group's configurations are
    measured against its own anchor. Columns "GROUP Config"; a group lacking a configuration gets
    n/a cells. Rows: the sequences of any group, then "Average" (each group's own average)."""
    if not groups:
        raise ReportError("no groups (expected LABEL=RUN for each codec family)")
    tables = {}
    for label, rows in groups.items():
        present = {row["config"] for row in rows}
        tables[label] = bdrate_table(rows, anchor, metric, method, min_points, [c for c in configs if c in present])
    sequences = sorted({row[0] for table in tables.values() for row in table.rows[:-1]})
    columns, formats, notes = ["sequence"], ["{}"], []
    by_row: dict[str, list] = {sequence: [sequence] for sequence in [*sequences, "Average"]}
    for label, table in tables.items():
        cells = {row[0]: dict(zip(table.columns[1:], row[1:])) for row in table.rows}
        for config in configs:
            columns.append(f"{label} {DISPLAY_NAMES.get(config, config)}")
            formats.append("{:+.2f}%")
            for sequence, row in by_row.items():
                missing = NotAvailable(f"{label}, {sequence}, {config}: no results in this group's run")
                row.append(cells.get(sequence, {}).get(config, missing))
        notes += [f"{label}: {note}" for note in table.notes[1:]]
    notes.insert(0, f"BD-rate of each configuration vs its group's {anchor!r} on {metric} (rate: bpp over all "
                    f"frames), method {method}, >= {min_points} rate points per curve. Average: arithmetic mean "
                    "of the per-sequence values of the group.")
    return Table(title=f"BD-rate vs {anchor}, {metric}, by codec family", columns=columns,
                 rows=list(by_row.values()), formats=formats, notes=notes)


def gains_per_rate_table(rows: list[dict], anchor: str = "baseline", metric: str = "psnr_rgb",
                         configs: list[str] | None = None) -> Table:
    """Per configuration and rate point Q: mean over sequences of the bpp change (%) and of the
    quality change (dB) against the anchor at the same Q (seed 000 Fig. 4b)."""
    configs = _check(rows, anchor, metric, configs)
    sequences = sorted({row["sequence"] for row in rows})
    by_key = {(r["sequence"], r["config"], r["quality"]): r for r in rows}
    table_rows = []
    notes = [f"Changes vs {anchor!r} at the same rate point, mean over the sequences having both "
             f"(column sequences); quality {metric}{' in dB form' if metric == 'ms_ssim_rgb' else ''}."]
    for config in configs:
        for quality in sorted({r["quality"] for r in rows if r["config"] == config}):
            d_bpp, d_db = [], []
            for sequence in sequences:
                anchor_row, test_row = by_key.get((sequence, anchor, quality)), by_key.get((sequence, config, quality))
                if anchor_row is None or test_row is None:
                    continue
                q_anchor, q_test = quality_db(anchor_row, metric), quality_db(test_row, metric)
                if q_anchor is None or q_test is None or anchor_row["bpp"] <= 0:
                    continue
                d_bpp.append((test_row["bpp"] / anchor_row["bpp"] - 1.0) * 100.0)
                d_db.append(q_test - q_anchor)
            if not d_bpp:
                cells = [NotAvailable(f"{config}, q{quality}: no sequence has {anchor} at q{quality}")] * 2
            else:
                cells = [sum(d_bpp) / len(d_bpp), sum(d_db) / len(d_db)]
            table_rows.append([config, quality, len(d_bpp), *cells])
    return Table(title=f"Gains per rate point vs {anchor}, {metric}",
                 columns=["config", "quality", "sequences", "d_bpp_pct", f"d_{metric}_db"], rows=table_rows,
                 formats=["{}", "{}", "{}", "{:+.2f}", "{:+.3f}"], notes=notes)


def write_report(rows: list[dict], out_dir: Path, anchor: str = "baseline", metric: str = "psnr_rgb",
                 method: str = "pchip", min_points: int = DEFAULT_MIN_POINTS) -> dict[str, Path]:
    """Write bdrate.md (all three tables with notes), bdrate.csv, bdpsnr.csv and gains_per_rate.csv
    into out_dir (created if missing), each atomically. Returns {file name: path}."""
    tables = {
        "bdrate.csv": bdrate_table(rows, anchor, metric, method, min_points),
        "bdpsnr.csv": bdpsnr_table(rows, anchor, metric, method, min_points),
        "gains_per_rate.csv": gains_per_rate_table(rows, anchor, metric),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, table in tables.items():
        atomic_write_text(out_dir / name, table.to_csv())
        written[name] = out_dir / name
    markdown = "\n".join(table.to_markdown() for table in tables.values())
    atomic_write_text(out_dir / "bdrate.md", markdown)
    written["bdrate.md"] = out_dir / "bdrate.md"
    return written


def ordered_configs(names) -> list[str]:
    """Configuration names in the paper's order (baseline, hex, oct, shift, join, anchors), others after."""
    return sorted(set(names), key=lambda n: (CONFIG_ORDER.index(n) if n in CONFIG_ORDER else len(CONFIG_ORDER), n))


def _check(rows: list[dict], anchor: str, metric: str, configs: list[str] | None) -> list[str]:
    if not rows:
        raise ReportError("no result rows (no finished jobs in the run?)")
    if metric not in METRICS:
        raise ReportError(f"unknown metric {metric!r} (expected one of {', '.join(METRICS)})")
    present = ordered_configs(row["config"] for row in rows)
    if anchor not in present:
        raise ReportError(f"anchor configuration {anchor!r} has no results (configurations: {', '.join(present)})")
    if configs is None:
        return [c for c in present if c != anchor]
    unknown = [c for c in configs if c not in present]
    if unknown:
        raise ReportError(f"configurations {unknown} have no results (configurations: {', '.join(present)})")
    return list(configs)


def _curves(rows: list[dict], metric: str) -> dict[tuple[str, str], list[tuple[int, float, float]]]:
    """(sequence, config) -> [(quality, bpp, quality in dB)] sorted by Q, points lacking metric dropped."""
    curves: dict = {}
    for row in sorted(rows, key=lambda r: r["quality"]):
        value = quality_db(row, metric)
        if value is not None and row.get("bpp") is not None:
            curves.setdefault((row["sequence"], row["config"]), []).append((row["quality"], row["bpp"], value))
    return curves
