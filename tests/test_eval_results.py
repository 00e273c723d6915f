import csv
import json

import pytest

from vidcodec.eval.results import (
    COLUMNS,
    RESULTS_SCHEMA_VERSION,
    ResultsError,
    average_over_sequences,
    collect_results,
    load_results,
    write_results,
)


def averages(frames, bpp, psnr_rgb=35.0, dec_s=0.05):
    """One section of summary.json's "average" as vidcodec.rd_log.summarize writes it."""
    if frames == 0:
        return {"frames": 0, **{k: None for k in ("bits", "bpp", "psnr_rgb", "psnr_y", "psnr_u", "psnr_v",
                                                   "psnr_yuv", "ms_ssim_rgb", "enc_s", "dec_s",
                                                   "shift_gain_db", "shift_corr")}}
    return {"frames": frames, "bits": bpp * 416 * 240, "bpp": bpp, "psnr_rgb": psnr_rgb, "psnr_y": psnr_rgb + 3,
            "psnr_u": psnr_rgb + 5, "psnr_v": psnr_rgb + 6, "psnr_yuv": psnr_rgb + 3.5, "ms_ssim_rgb": 0.97,
            "enc_s": 0.2, "dec_s": dec_s, "shift_gain_db": None, "shift_corr": None}


def write_job(run, sequence, config, quality, bpp=0.1, i_frames=1, p_frames=7, summary=True):
    job = run / sequence / config / f"q{quality}"
    job.mkdir(parents=True)
    (job / "rd.jsonl").write_text("")
    if summary:
        frames = i_frames + p_frames
        document = {
            "rd_log_version": 2,
            "average": {"all": averages(frames, bpp), "I": averages(i_frames, bpp * 3, 33.0),
                        "P": averages(p_frames, bpp * 0.7, 35.5, dec_s=None)},
            "sequence": {"path": f"/data/{sequence}.yuv", "width": 416, "height": 240, "bit_depth": 8,
                         "fps": 30.0, "frames": frames},
            "config": {}, "model": {},
        }
        (job / "summary.json").write_text(json.dumps(document))
    return job


def test_one_sorted_row_per_finished_job(tmp_path):
    write_job(tmp_path, "Jockey", "oct", 2, bpp=0.2)
    write_job(tmp_path, "Beauty", "oct", 1)
    write_job(tmp_path, "Beauty", "baseline", 10)
    write_job(tmp_path, "Beauty", "baseline", 2)
    write_job(tmp_path, "Beauty", "hex", 3, summary=False)  # unfinished: no summary.json
    (tmp_path / "run.json").write_text("{}")
    rows = collect_results(tmp_path)
    # quality sorts as an integer (q10 after q2), unfinished jobs are absent
    assert [(r["sequence"], r["config"], r["quality"]) for r in rows] == [
        ("Beauty", "baseline", 2), ("Beauty", "baseline", 10), ("Beauty", "oct", 1), ("Jockey", "oct", 2)]
    row = rows[-1]
    assert list(row) == list(COLUMNS)
    assert row["bpp"] == 0.2 and row["bpp_I"] == pytest.approx(0.6) and row["bpp_P"] == pytest.approx(0.14)
    assert row["psnr_rgb_I"] == 33.0 and row["psnr_yuv"] == 38.5 and row["psnr_y_P"] == 38.5
    assert row["frames"] == 8 and row["frames_I"] == 1 and row["frames_P"] == 7
    assert (row["width"], row["height"]) == (416, 240)
    assert row["dec_s_P"] is None and row["ms_ssim_rgb"] == 0.97


def test_run_without_intra_frames_has_null_intra_fields(tmp_path):
    write_job(tmp_path, "Beauty", "baseline", 1, i_frames=0, p_frames=4)
    (row,) = collect_results(tmp_path)
    assert row["frames_I"] == 0 and row["bpp_I"] is None and row["psnr_rgb_I"] is None
    assert row["bpp"] == 0.1


def _set(obj, path, value):
    *parents, last = path.split(".")
    for key in parents:
        obj = obj[key]
    if value is KeyError:
        del obj[last]
    else:
        obj[last] = value


@pytest.mark.parametrize("field, value, match", [
    ("average", KeyError, "missing field average"),
    ("average.P.bpp", KeyError, r"missing field average\.P\.bpp"),
    ("average.I.frames", None, r"field average\.I\.frames = None has the wrong type"),
    ("sequence.width", "416", r"field sequence\.width = '416' has the wrong type"),
    ("average.all.psnr_rgb", True, r"field average\.all\.psnr_rgb = True has the wrong type"),
    ("average.all.frames", 0, "average.all has no frames"),
])
def test_malformed_summary_names_the_file_and_field(tmp_path, field, value, match):
    summary = write_job(tmp_path, "Beauty", "baseline", 1) / "summary.json"
    document = json.loads(summary.read_text())
    _set(document, field, value)
    summary.write_text(json.dumps(document))
    with pytest.raises(ResultsError, match=match) as info:
        collect_results(tmp_path)
    assert str(summary) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unreadable_summary_names_the_file(tmp_path):
    summary = write_job(tmp_path, "Beauty", "baseline", 1) / "summary.json"
    summary.write_text('{"average": ')  # a writer killed mid-file
    with pytest.raises(ResultsError, match="cannot read summary") as info:
        collect_results(tmp_path)
    assert str(summary) in str(info.value)


def test_bad_rate_point_directory_and_missing_run_are_errors(tmp_path):
    write_job(tmp_path, "Beauty", "baseline", "x")
    with pytest.raises(ResultsError, match="'qx' is not of the form q<integer>"):
        collect_results(tmp_path)
    with pytest.raises(ResultsError, match="does not exist"):
        collect_results(tmp_path / "nowhere")


def test_written_json_and_csv_round_trip_and_leave_no_temporary_files(tmp_path):
    write_job(tmp_path, "Beauty", "baseline", 1, i_frames=0, p_frames=4)
    write_job(tmp_path, "Beauty", "oct", 1, bpp=0.09)
    rows = collect_results(tmp_path)
    json_path, csv_path = write_results(rows, tmp_path)
    document = json.loads(json_path.read_text())
    assert document["schema_version"] == RESULTS_SCHEMA_VERSION == 1
    assert document["rows"] == rows == load_results(tmp_path)
    with csv_path.open() as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(COLUMNS) and len(table) == 2
    assert table[0]["bpp_I"] == "" and float(table[1]["bpp"]) == 0.09  # null -> empty cell
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Beauty", "results.csv", "results.json"]
    write_results(rows[:1], tmp_path)  # rewriting replaces
    assert len(load_results(tmp_path / "results.json")) == 1


def test_load_refuses_another_schema_version(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"schema_version": 2, "rows": []}))
    with pytest.raises(ResultsError, match="schema_version 2, this vidcodec reads 1"):
        load_results(tmp_path)


def test_average_over_sequences_keeps_only_rate_points_every_sequence_has(tmp_path):
    write_job(tmp_path, "A", "baseline", 1, bpp=0.1)
    write_job(tmp_path, "B", "baseline", 1, bpp=0.3)
    write_job(tmp_path, "A", "baseline", 2, bpp=0.2)  # B has no q2: a mean over A alone would mislead
    pooled = average_over_sequences(collect_results(tmp_path))
    assert len(pooled) == 1
    assert pooled[0]["sequence"] == "Average" and pooled[0]["quality"] == 1
    assert pooled[0]["bpp"] == pytest.approx(0.2) and pooled[0]["bpp_I"] == pytest.approx(0.6)
    assert pooled[0]["dec_s_P"] is None
