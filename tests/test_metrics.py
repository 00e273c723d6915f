from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vidcodec.metrics import PSNR_CAP_DB, bpp, ms_ssim_rgb, psnr_planes_db, psnr_rgb_db


def planes(y, u, v, dtype=np.uint8):
    return SimpleNamespace(y=np.asarray(y, dtype), u=np.asarray(u, dtype), v=np.asarray(v, dtype))


def test_psnr_rgb_of_a_constant_error():
    x = torch.full((1, 3, 8, 8), 0.5)
    assert psnr_rgb_db(x, x + 0.1) == pytest.approx(20.0, abs=1e-4)
    assert psnr_rgb_db(x, x) == PSNR_CAP_DB


def test_psnr_yuv_weights_luma_six_times():
    frame = planes(np.zeros((4, 4)), np.zeros((2, 2)), np.zeros((2, 2)))
    # errors of 255/10, 255/100, 255/1000 give 20, 40, 60 dB
    frame_hat = planes(np.full((4, 4), 25.5), np.full((2, 2), 2.55), np.full((2, 2), 0.255), np.float64)
    result = psnr_planes_db(frame, frame_hat, 8)
    assert result["psnr_y"] == pytest.approx(20.0)
    assert result["psnr_u"] == pytest.approx(40.0)
    assert result["psnr_v"] == pytest.approx(60.0)
    assert result["psnr_yuv"] == pytest.approx((6 * 20 + 40 + 60) / 8)


def test_10_bit_peak_is_1023():
    frame = planes(np.zeros((4, 4)), np.zeros((2, 2)), np.zeros((2, 2)), np.uint16)
    frame_hat = planes(np.full((4, 4), 102.3), np.zeros((2, 2)), np.zeros((2, 2)), np.float64)
    assert psnr_planes_db(frame, frame_hat, 10)["psnr_y"] == pytest.approx(20.0)


@pytest.mark.parametrize("shape", [(64, 64), (240, 416), (256, 256)])
def test_ms_ssim_is_one_for_identical_and_drops_with_noise(shape):
    torch.manual_seed(0)
    x = torch.rand(1, 3, *shape) * 0.5 + 0.25
    assert ms_ssim_rgb(x, x) == pytest.approx(1.0, abs=1e-6)
    light = ms_ssim_rgb(x, (x + 0.02 * torch.randn_like(x)).clamp(0, 1))
    heavy = ms_ssim_rgb(x, (x + 0.2 * torch.randn_like(x)).clamp(0, 1))
    assert 1.0 > light > heavy


def test_bpp_uses_the_original_size():
    assert bpp(416 * 240 * 2, 416, 240) == 2.0


@pytest.mark.parametrize("shape", [(16, 16), (32, 32), (32, 96)])
def test_ms_ssim_of_a_picture_too_small_for_five_scales_is_none_not_an_error(shape):
    """Issue 34 item 7: 16x16 is the smallest picture the codec takes; its MS-SSIM is undefined."""
    x = torch.rand(1, 3, *shape)
    assert ms_ssim_rgb(x, x) is None


def test_ms_ssim_is_defined_from_33_pixels():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 33, 40) * 0.5 + 0.25
    assert ms_ssim_rgb(x, x) == pytest.approx(1.0, abs=1e-6)
