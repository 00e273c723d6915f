"""Quality and rate metrics.

PSNR of identical pictures is infinite; JSON has no infinity, so PSNR is capped at PSNR_CAP_DB.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pytorch_msssim import ms_ssim

PSNR_CAP_DB = 100.0
MS_SSIM_WINDOW = 11
MS_SSIM_MIN_SIDE = 33  # (3 - 1) * 2^4 + 1: the smallest window after four halvings


def mse_to_psnr_db(mse: float, peak: float = 1.0) -> float:
    if mse <= 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(peak * peak / mse))


def psnr_rgb_db(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """x, x_hat: (1,3,H,W) float in [0,1]."""
    mse = torch.mean((x.double() - x_hat.double()) ** 2).item()
    return mse_to_psnr_db(mse, 1.0)


def psnr_planes_db(frame, frame_hat, bit_depth: int) -> dict[str, float]:
    """PSNR of the Y, U, V planes of two YUV 4:2:0 frames (objects with .y .u .v integer arrays),
    and the (6 Y + U + V) / 8 weighted average used in JVET/DCVC reports."""
    peak = float(2**bit_depth - 1)
    result = {}
    for plane in ("y", "u", "v"):
        a = getattr(frame, plane).astype(np.float64)
        b = getattr(frame_hat, plane).astype(np.float64)
        result[f"psnr_{plane}"] = mse_to_psnr_db(float(np.mean((a - b) ** 2)), peak)
    result["psnr_yuv"] = (6 * result["psnr_y"] + result["psnr_u"] + result["psnr_v"]) / 8
    return result


def ms_ssim_rgb(x: torch.Tensor, x_hat: torch.Tensor) -> float | None:
    """MS-SSIM (5 scales) of (1,3,H,W) float images in [0,1]; None below MS_SSIM_MIN_SIDE pixels.

    The standard 11-tap window needs a short side above 160 pixels (pytorch_msssim checks
    (win - 1) * 2^4 < side). For smaller pictures the window shrinks to the largest odd size that
    fits, so the metric stays defined; such values are not comparable to published MS-SSIM. Below
    33 pixels not even a 3-tap window survives four halvings: the metric is undefined there (None,
    null in rd.jsonl), which must not stop the coding of a picture the codec accepts (16x16 up).
    """
    short_side = min(x.shape[-2:])
    if short_side < MS_SSIM_MIN_SIDE:
        return None
    window = MS_SSIM_WINDOW
    while window > 3 and (window - 1) * 16 >= short_side:
        window -= 2
    with torch.no_grad():
        return float(ms_ssim(x.float(), x_hat.float(), data_range=1.0, win_size=window))


def bpp(num_bits: int, width: int, height: int) -> float:
    """Bits per pixel over the original (unpadded) W x H luma picture."""
    return num_bits / (width * height)
