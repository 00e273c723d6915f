import csv
import io
import json
import math

import pytest

from vidcodec.eval.report import (
    NotAvailable,
    ReportError,
    bdpsnr_table,
    bdrate_table,
    gains_per_rate_table,
    grouped_bdrate_table,
    write_report,
)
from vidcodec.eval.results import collect_results

QUALITIES = (1, 2, 3, 4)
BPP = {1: 0.05, 2: 0.09, 3: 0.16, 4: 0.28}
PSNR = {1: 30.0, 2: 32.2, 3: 34.1, 4: 35.8}
MS_SSIM = {1: 0.93, 2: 0.955, 3: 0.97, 4: 0.98}


def row(sequence, config, quality, rate_factor=1.0, d_db=0.0, ms_ssim=None):
    return {"sequence": sequence, "config": config, "quality": quality, "bpp": BPP[quality] * rate_factor,
            "psnr_rgb": PSNR[quality] + d_db, "psnr_yuv": PSNR[quality] + 3.0 + d_db,
            "ms_ssim_rgb": MS_SSIM[quality] if ms_ssim is None else ms_ssim}


def curve(sequence, config, rate_factor=1.0, d_db=0.0, qualities=QUALITIES):
    return [row(sequence, config, q, rate_factor, d_db) for q in qualities]


def column(table, config):
    return [r[table.columns.index(config)] for r in table.rows]


def test_table_2_layout_with_average_as_mean_of_sequences():
    rows = (curve("Beauty", "baseline") + curve("Jockey", "baseline") + curve("Beauty", "join", 0.97)
            + curve("Jockey", "join", 0.95) + curve("Beauty", "oct", 0.98) + curve("Jockey", "oct", 0.98)
            + curve("Beauty", "hex", 0.99) + curve("Jockey", "hex", 0.99) + curve("Beauty", "shift", 1.01)
            + curve("Jockey", "shift", 1.01))
    table = bdrate_table(rows)
    # the paper's column order, not alphabetical; the anchor is not a column
    assert table.columns == ["sequence", "hex", "oct", "shift", "join"]
    assert [r[0] for r in table.rows] == ["Beauty", "Jockey", "Average"]
    assert column(table, "join") == pytest.approx([-3.0, -5.0, -4.0], abs=1e-9)
    assert column(table, "shift") == pytest.approx([1.0, 1.0, 1.0], abs=1e-9)
    markdown = table.to_markdown()
    assert "| sequence | Hex | Oct | Shift | Join |" in markdown
    assert "| Average | -1.00% | -2.00% | +1.00% | -4.00% |" in markdown
    assert "mean of the per-sequence values" in markdown


def test_anchor_and_columns_can_be_chosen():
    rows = curve("Beauty", "x264") + curve("Beauty", "x265", 0.6) + curve("Beauty", "baseline", 2.0)
    table = bdrate_table(rows, anchor="x264", configs=["x265"])
    assert table.columns == ["sequence", "x265"]
    assert column(table, "x265") == pytest.approx([-40.0, -40.0], abs=1e-9)


def test_too_few_rate_points_gives_na_with_a_note_not_a_crash():
    rows = (curve("Beauty", "baseline") + curve("Jockey", "baseline") + curve("Beauty", "oct", 0.98)
            + curve("Jockey", "oct", 0.9, qualities=(1, 2, 3)))
    table = bdrate_table(rows)
    beauty, jockey, average = column(table, "oct")
    assert beauty == pytest.approx(-2.0) and average == pytest.approx(-2.0)  # mean over Beauty only
    assert isinstance(jockey, NotAvailable)
    markdown = table.to_markdown()
    assert "| Jockey | n/a [1] |" in markdown
    assert "- [1] Jockey, oct: oct has 3 rate points with psnr_rgb (q1, q2, q3), 4 needed" in markdown
    assert "Average of oct is over 1 of 2 sequences (without Jockey)" in markdown
    assert "n/a" in table.to_csv().splitlines()[2]
    # The 4-point convention is the report's; pchip itself can use the 3 points (not exactly -10%:
    # near q3 the 3-point interpolant's end slope differs from the 4-point anchor's inner slope).
    assert column(bdrate_table(rows, min_points=3), "oct")[1] == pytest.approx(-10.0, abs=0.1)


def test_non_monotonic_curve_gives_na_with_the_reason():
    rows = curve("Beauty", "baseline") + curve("Beauty", "hex", 0.98)
    rows[-1]["psnr_rgb"] = 33.0  # q4 below q3
    (cell, average) = column(bdrate_table(rows), "hex")
    assert isinstance(cell, NotAvailable) and "not monotonic" in cell.reason
    assert isinstance(average, NotAvailable)


def test_bd_psnr_table_and_metrics():
    rows = curve("Beauty", "baseline") + curve("Beauty", "hex", d_db=0.2)
    assert column(bdpsnr_table(rows), "hex") == pytest.approx([0.2, 0.2], abs=1e-9)
    assert column(bdpsnr_table(rows, metric="psnr_yuv"), "hex") == pytest.approx([0.2, 0.2], abs=1e-9)
    # MS-SSIM is compared in dB: a test curve 0.5 dB better in -10*log10(1 - ms_ssim) at every rate
    # has BD-quality 0.5 (on raw MS-SSIM the gap would be a few thousandths).
    better = [row("Beauty", "oct", q, ms_ssim=1 - (1 - MS_SSIM[q]) * 10 ** -0.05) for q in QUALITIES]
    rows = curve("Beauty", "baseline") + better
    assert column(bdpsnr_table(rows, metric="ms_ssim_rgb"), "oct") == pytest.approx([0.5, 0.5], abs=1e-9)
    assert column(bdrate_table(rows, metric="ms_ssim_rgb"), "oct")[0] < -1.0


def test_cubic_method_is_passed_through():
    rows = curve("Beauty", "baseline") + [row("Beauty", "hex", q, 1.0 - 0.01 * q) for q in QUALITIES]
    pchip, cubic = column(bdrate_table(rows), "hex")[0], column(bdrate_table(rows, method="cubic"), "hex")[0]
    assert pchip != cubic and pchip == pytest.approx(cubic, abs=0.2)


def test_gains_per_rate_point_average_over_sequences_having_both():
    rows = (curve("Beauty", "baseline") + curve("Jockey", "baseline", qualities=(1, 2, 3))
            + [row("Beauty", "oct", q, 0.96, 0.1) for q in QUALITIES]
            + [row("Jockey", "oct", q, 0.98, 0.3) for q in QUALITIES])
    table = gains_per_rate_table(rows)
    assert table.columns == ["config", "quality", "sequences", "d_bpp_pct", "d_psnr_rgb_db"]
    by_quality = {r[1]: r for r in table.rows}
    assert by_quality[1][:3] == ["oct", 1, 2]
    assert by_quality[1][3:] == pytest.approx([-3.0, 0.2])
    assert by_quality[4][2:] == pytest.approx([1, -4.0, 0.1])  # Jockey has no baseline q4


def test_report_errors():
    with pytest.raises(ReportError, match="no result rows"):
        bdrate_table([])
    with pytest.raises(ReportError,
                       match=r"anchor configuration 'baseline' has no results \(configurations: hex, x264\)"):
        bdrate_table(curve("A", "x264") + curve("A", "hex"))
    with pytest.raises(ReportError, match="unknown metric 'psnr'"):
        bdrate_table(curve("A", "baseline"), metric="psnr")
    with pytest.raises(ReportError, match=r"configurations \['oct'\] have no results"):
        gains_per_rate_table(curve("A", "baseline") + curve("A", "hex"), configs=["oct"])


def test_report_files_from_a_run_directory(tmp_path):
    run = tmp_path / "run"
    for config, factor in (("baseline", 1.0), ("oct", 0.98)):
        for q in QUALITIES:
            job = run / "Beauty" / config / f"q{q}"
            job.mkdir(parents=True)
            section = {"frames": 4, "bits": 1.0, "bpp": BPP[q] * factor, "psnr_rgb": PSNR[q], "psnr_y": 40.0,
                       "psnr_u": 42.0, "psnr_v": 43.0, "psnr_yuv": 41.0, "ms_ssim_rgb": 0.97, "enc_s": 0.1,
                       "dec_s": 0.1, "shift_gain_db": None, "shift_corr": None}
            summary = {"average": {"all": section, "I": section, "P": section},
                       "sequence": {"path": "x", "width": 64, "height": 64, "bit_depth": 8, "fps": 30, "frames": 4}}
            (job / "summary.json").write_text(json.dumps(summary))
    written = write_report(collect_results(run), tmp_path / "report")
    assert sorted(written) == ["bdpsnr.csv", "bdrate.csv", "bdrate.md", "gains_per_rate.csv"]
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(written)
    bdrate = list(csv.reader(io.StringIO(written["bdrate.csv"].read_text())))
    assert bdrate[0] == ["sequence", "oct"] and bdrate[2][0] == "Average"
    assert float(bdrate[1][1]) == pytest.approx(-2.0, abs=1e-9)
    assert not math.isnan(float(list(csv.reader(written["bdpsnr.csv"].open()))[1][1]))
    markdown = written["bdrate.md"].read_text()
    assert "### BD-rate vs baseline, psnr_rgb" in markdown and "### Gains per rate point" in markdown


def test_table_2_with_a_column_group_per_codec_family():
    """Seed 000's Table 2 layout: SSF and DCVC groups, each against its own baseline; a group without
    a configuration (here DCVC without shift) gets n/a cells, not an error."""
    ssf = (curve("Beauty", "baseline") + curve("Beauty", "hex", 0.98) + curve("Beauty", "oct", 0.97)
           + curve("Beauty", "shift", 0.99) + curve("Beauty", "join", 0.96))
    dcvc = [row("Beauty", config, q, 0.5 * factor)
            for config, factor in [("baseline", 1.0), ("hex", 0.99), ("oct", 0.985), ("join", 0.98)] for q in QUALITIES]
    table = grouped_bdrate_table({"SSF": ssf, "DCVC": dcvc})
    assert table.columns == ["sequence", "SSF Hex", "SSF Oct", "SSF Shift", "SSF Join",
                             "DCVC Hex", "DCVC Oct", "DCVC Shift", "DCVC Join"]
    beauty, average = table.rows
    assert beauty[1:5] == pytest.approx([-2.0, -3.0, -1.0, -4.0], abs=1e-9)
    # DCVC's bits are half of SSF's, but each group is measured against its own baseline.
    assert [beauty[5], beauty[6], beauty[8]] == pytest.approx([-1.0, -1.5, -2.0], abs=1e-9)
    assert isinstance(beauty[7], NotAvailable) and "DCVC" in beauty[7].reason
    assert average[1:5] == pytest.approx(beauty[1:5], abs=1e-9)
    assert "| sequence | SSF Hex |" in table.to_markdown()
