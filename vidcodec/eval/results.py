"""Results of an evaluation run: one flat row per finished job, as results.json and results.csv.

RESULTS_SCHEMA_VERSION 1. A run directory holds ``RUN/SEQ/CONFIG/qQ/summary.json`` per finished
job (a job directory without summary.json is unfinished and skipped). Each becomes one row:

    sequence        str, the sequence name (directory SEQ)
    config          str, the configuration name (directory CONFIG: baseline, hex, oct, shift, join, x264 ...)
    quality         int, the rate point Q of directory qQ (1 = lowest rate)
    frames, frames_I, frames_P
                    int, coded frames in all / of each type
    width, height   int, luma size of the original sequence in pixels
    then for all frames (no suffix) and per frame type (suffix _I or _P), averaged over frames:
    bpp             bits per pixel of the original W x H (all bits the decoder reads)
    psnr_rgb        dB, RGB in [0,1]
    psnr_yuv        dB, (6 Y + U + V) / 8 on the written YUV
    psnr_y          dB, luma only
    ms_ssim_rgb     MS-SSIM on RGB in [0,1] (linear, not dB)
    enc_s, dec_s    seconds of coding per frame (dec_s null when the run did not verify)

A value is null (empty in the CSV) when no frame had it, e.g. every _I field of a run without
I-frames. Rows are sorted by (sequence, config, quality).

The same numbers under their names elsewhere, for those coming from other tools:

    here            CompressAI results JSON     DCVC test output
    bpp             "bpp"                       "ave_all_frame_bpp"
    psnr_rgb        "psnr-rgb"                  "ave_all_frame_psnr"
    ms_ssim_rgb     "ms-ssim-rgb"               "ave_all_frame_msssim"
    bpp_I, bpp_P    -                           "ave_i_frame_bpp", "ave_p_frame_bpp"
    psnr_rgb_P      -                           "ave_p_frame_psnr"
    frames_I        -                           "i_frame_num"

CompressAI stores one list per metric over rate points, pooled over a dataset; DCVC one dict per
sequence and rate point. Rows here are the DCVC granularity in a flat table (one line per
sequence x config x rate point), so pandas.read_csv or a list of dicts is all a reader needs;
``average_over_sequences`` gives the CompressAI-style pooled curve.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

from vidcodec.errors import VidcodecError

RESULTS_SCHEMA_VERSION = 1
RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
AVERAGED_KEYS = ("bpp", "psnr_rgb", "psnr_yuv", "psnr_y", "ms_ssim_rgb", "enc_s", "dec_s")
FRAME_TYPES = ("I", "P")
COLUMNS = (
    ("sequence", "config", "quality", "frames", "frames_I", "frames_P", "width", "height")
    + AVERAGED_KEYS
    + tuple(f"{key}_{t}" for t in FRAME_TYPES for key in AVERAGED_KEYS)
)
# The averaged measures (all frames, then per type), i.e. every column after the identifiers.
MEASURE_COLUMNS = COLUMNS[8:]
_QUALITY_DIR = re.compile(r"q(\d+)")


class ResultsError(VidcodecError, ValueError):
    """A summary.json or results.json is malformed; the message names the file and the field."""


def collect_results(run_dir: Path) -> list[dict]:
    """One row per finished job under run_dir (layout RUN/SEQ/CONFIG/qQ/summary.json), sorted by
    (sequence, config, quality). Raises ResultsError naming the file on a malformed summary."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"run directory {run_dir} does not exist")
    rows = []
    for path in run_dir.glob("*/*/q*/summary.json"):
        match = _QUALITY_DIR.fullmatch(path.parent.name)
        if match is None:
            raise ResultsError(f"{path}: rate point directory {path.parent.name!r} is not of the form q<integer>")
        rows.append(_row(path, sequence=path.parents[2].name, config=path.parents[1].name,
                         quality=int(match.group(1))))
    return sorted(rows, key=_sort_key)


def _sort_key(row: dict) -> tuple:
    return row["sequence"], row["config"], row["quality"]


def _row(path: Path, *, sequence: str, config: str, quality: int) -> dict:
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read summary ({exc})") from None
    average = _field(summary, "average", dict, path)
    info = _field(summary, "sequence", dict, path)
    row = {"sequence": sequence, "config": config, "quality": quality}
    for suffix, part in (("", "all"), ("_I", "I"), ("_P", "P")):
        section = _field(average, part, dict, path, f"average.{part}")
        row[f"frames{suffix}"] = _field(section, "frames", int, path, f"average.{part}.frames")
        for key in AVERAGED_KEYS:
            row[key + suffix] = _field(section, key, (int, float, type(None)), path, f"average.{part}.{key}")
    if row["frames"] < 1 or row["bpp"] is None:
        raise ResultsError(f"{path}: average.all has no frames (frames={row['frames']}, bpp={row['bpp']})")
    for key in ("width", "height"):
        row[key] = _field(info, key, int, path, f"sequence.{key}")
    return {column: row[column] for column in COLUMNS}


def _field(obj: dict, key: str, types, path: Path, where: str | None = None):
    where = where or key
    if key not in obj:
        raise ResultsError(f"{path}: missing field {where}")
    value = obj[key]
    # bool is an int subclass; a true/false where a number belongs means a broken writer.
    if isinstance(value, bool) or not isinstance(value, types):
        raise ResultsError(f"{path}: field {where} = {value!r} has the wrong type")
    return value


def write_results(rows: list[dict], run_dir: Path) -> tuple[Path, Path]:
    """Write run_dir/results.json ({"schema_version", "rows"}) and run_dir/results.csv (columns
    COLUMNS, null as empty), each atomically (temporary file, then rename), so a reader never
    sees half a file. Returns both paths."""
    run_dir = Path(run_dir)
    json_path, csv_path = run_dir / RESULTS_JSON, run_dir / RESULTS_CSV
    document = {"schema_version": RESULTS_SCHEMA_VERSION, "rows": rows}
    atomic_write_text(json_path, json.dumps(document, indent=1) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(csv_path, buffer.getvalue())
    return json_path, csv_path


def load_results(path: Path) -> list[dict]:
    """Rows of a results.json (or of RUN/results.json when path is a run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_JSON
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read results ({exc})") from None
    if not isinstance(document, dict) or document.get("schema_version") != RESULTS_SCHEMA_VERSION:
        version = document.get("schema_version") if isinstance(document, dict) else None
        raise ResultsError(f"{path}: schema_version {version!r}, this vidcodec reads {RESULTS_SCHEMA_VERSION}")
    return _field(document, "rows", list, path)


def average_over_sequences(rows: list[dict]) -> list[dict]:
    """CompressAI-style pooled curve: per (config, quality), a row with sequence "Average" and the
    mean over sequences of every MEASURE_COLUMNS field (frame counts and sizes are left out).
    A (config, quality) is kept only when every sequence of the rows has it, since a mean over a
    different subset per rate point would bend the curve. A field is None when a sequence lacks it."""
    sequences = {row["sequence"] for row in rows}
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["config"], row["quality"]), []).append(row)
    pooled = []
    for (config, quality), group in sorted(groups.items()):
        if {row["sequence"] for row in group} != sequences:
            continue
        out = {"sequence": "Average", "config": config, "quality": quality}
        for key in MEASURE_COLUMNS:
            values = [row.get(key) for row in group]
            out[key] = None if None in values else sum(values) / len(values)
        pooled.append(out)
    return pooled


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to path through a temporary file in the same directory and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
