import pytest

from vidcodec.rd_log import PART_NAMES, frame_record, summarize

PLANES = {"psnr_y": 40.0, "psnr_u": 44.0, "psnr_v": 46.0, "psnr_yuv": 41.25}


def record(poc, frame_type, bits, part_bits, dec_s=0.1):
    return frame_record(poc=poc, frame_type=frame_type, bits=bits, part_bits=part_bits, bpp=bits / 100,
                        psnr_rgb=35.0 + poc, planes=PLANES, ms_ssim_rgb=0.98, enc_s=0.2, dec_s=dec_s,
                        quantizer="sq")


def test_record_lists_every_part_and_the_header_overhead():
    r = record(1, "P", 1000, {"motion_y": 300, "residual_y": 500, "motion_z": 50, "residual_z": 40})
    assert all(f"bits_{name}" in r for name in PART_NAMES)
    assert r["bits_intra_y"] == 0 and r["bits_header"] == 1000 - 890
    assert r["rho"] is None
    with pytest.raises(ValueError, match="unknown part"):
        record(0, "I", 10, {"bogus": 1})


def test_summary_averages_by_frame_type():
    records = [record(0, "I", 2000, {"intra_y": 1800}), record(1, "P", 500, {"residual_y": 400}),
               record(2, "P", 700, {"residual_y": 600}, dec_s=None)]
    summary = summarize(records, config={"a": 1}, model={"m": 2}, sequence={}, run_info={"command": ["x"]})
    assert summary["average"]["I"]["bits"] == 2000
    assert summary["average"]["P"]["bits"] == 600 and summary["average"]["P"]["frames"] == 2
    assert summary["average"]["all"]["psnr_rgb"] == pytest.approx(36.0)
    assert summary["average"]["P"]["dec_s"] == pytest.approx(0.1)  # frames without dec_s are skipped
    assert summary["config"] == {"a": 1} and summary["command"] == ["x"]
    assert summary["versions"]["torch"]
