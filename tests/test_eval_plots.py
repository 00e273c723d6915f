import json
import math

import pytest
from matplotlib.image import imread

from vidcodec.eval.plots import frame_figure, plot_frame_rd, plot_rd_curves, rd_figure, read_rd_log
from vidcodec.eval.results import ResultsError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def row(sequence, config, quality, bpp, psnr_rgb):
    return {"sequence": sequence, "config": config, "quality": quality, "bpp": bpp, "psnr_rgb": psnr_rgb,
            "psnr_yuv": psnr_rgb + 3, "psnr_y": psnr_rgb + 2, "ms_ssim_rgb": 0.95 + 0.01 * quality}


def rows():
    out = []
    for sequence, offset in (("Beauty", 0.0), ("Jockey", 2.0)):
        for config, factor in (("baseline", 1.0), ("oct", 0.98), ("hex", 0.99)):
            # listed from high to low rate: the plot must sort points by rate, not keep file order
            for q in (3, 2, 1):
                out.append(row(sequence, config, q, 0.05 * 2 ** q * factor, 30 + 2 * q + offset))
    return out


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    height, width = imread(path).shape[:2]
    assert width > 100 and height > 100


def test_rd_curves_one_png_per_sequence_and_the_average(tmp_path):
    written = plot_rd_curves(rows(), tmp_path / "plots")
    assert [p.name for p in written] == ["rd_psnr_rgb_seq-Beauty.png", "rd_psnr_rgb_seq-Jockey.png",
                                        "rd_psnr_rgb_average.png"]
    for path in written:
        assert_png(path)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(p.name for p in written)


def test_rd_figure_has_one_line_per_config_sorted_by_rate():
    ax = rd_figure(rows(), "Jockey").axes[0]
    assert [line.get_label() for line in ax.lines] == ["Baseline", "Hex", "Oct"]
    baseline = ax.lines[0]
    assert list(baseline.get_xdata()) == pytest.approx([0.1, 0.2, 0.4])
    assert list(baseline.get_ydata()) == pytest.approx([34.0, 36.0, 38.0])
    assert baseline.get_marker() == "o"
    average = rd_figure(rows(), "Average").axes[0].lines[0]
    assert list(average.get_ydata()) == pytest.approx([33.0, 35.0, 37.0])  # mean of Beauty and Jockey
    assert list(rd_figure(rows(), "Beauty", configs=["oct"]).axes[0].lines[0].get_xdata()) == pytest.approx(
        [0.098, 0.196, 0.392])


def test_rd_figure_ms_ssim_in_db():
    line = rd_figure(rows(), "Beauty", metric="ms_ssim_rgb").axes[0].lines[0]
    assert line.get_ydata()[0] == pytest.approx(-10 * math.log10(1 - 0.96))


def test_rd_plots_refuse_empty_or_unknown_input(tmp_path):
    with pytest.raises(ValueError, match="no result rows to plot"):
        plot_rd_curves([], tmp_path)
    with pytest.raises(ValueError, match="no result rows for sequence 'Bosphorus'"):
        rd_figure(rows(), "Bosphorus")
    with pytest.raises(ValueError, match="unknown metric 'vmaf'"):
        rd_figure(rows(), "Beauty", metric="vmaf")


def write_rd_log(path, frame_types):
    lines = []
    for poc, frame_type in enumerate(frame_types):
        bits = 40000 if frame_type == "I" else 9000 + 100 * poc
        lines.append(json.dumps({"poc": poc, "frame_type": frame_type, "bits": bits, "bpp": bits / 99840,
                                 "psnr_rgb": 33.0 if frame_type == "I" else 32.0 - 0.1 * (poc % 4),
                                 "psnr_yuv": 36.0, "psnr_y": 35.0, "ms_ssim_rgb": 0.97, "enc_s": 0.1,
                                 "dec_s": None}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_frame_plot_marks_intra_frames(tmp_path):
    log = write_rd_log(tmp_path / "Beauty" / "oct" / "q2" / "rd.jsonl", "IPPPIPPPIPP")
    png = plot_frame_rd(log, tmp_path / "frames.png")
    assert_png(png)
    fig = frame_figure(read_rd_log(log))
    ax_bits, ax_quality = fig.axes
    assert len(ax_bits.patches) == 11
    intra_bars = [p for p in ax_bits.patches if p.get_height() == pytest.approx(40.0)]  # kbit
    assert [round(p.get_x() + p.get_width() / 2) for p in intra_bars] == [0, 4, 8]
    assert intra_bars[0].get_facecolor() != ax_bits.patches[1].get_facecolor()
    (intra,) = [line for line in ax_quality.lines if line.get_label() == "I-frame"]
    assert list(intra.get_xdata()) == [0, 4, 8] and list(intra.get_ydata()) == [33.0, 33.0, 33.0]


def test_frame_plot_refuses_empty_or_malformed_logs(tmp_path):
    empty = tmp_path / "rd.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no frame records"):
        plot_frame_rd(empty, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"poc": 0, "frame_type": "I", "bits": 10}\n{"poc": 1, "frame_')
    with pytest.raises(ResultsError, match=r"broken.jsonl:2: not JSON"):
        read_rd_log(broken)
    broken.write_text('{"poc": 0, "bits": 10}\n')
    with pytest.raises(ResultsError, match=r"broken.jsonl:1: missing fields \['frame_type'\]"):
        read_rd_log(broken)
    with pytest.raises(ValueError, match="no frame records"):
        frame_figure([])
