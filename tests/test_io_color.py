import numpy as np
import pytest
import torch

from vidcodec.io.color import pad_to_multiple, picture_box, rgb_to_yuv420, yuv420_to_rgb
from vidcodec.io.yuv import YuvFrame
from vidcodec.metrics import psnr_rgb_db


def smooth_image(height=64, width=96):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    rgb = torch.stack([0.2 + 0.6 * xx, 0.5 + 0.3 * torch.sin(6 * yy), 0.8 - 0.5 * xx * yy])
    return rgb.unsqueeze(0)


@pytest.mark.parametrize("bit_depth, min_psnr", [(8, 40.0), (10, 50.0)])
def test_rgb_yuv_rgb_round_trip_of_a_smooth_image(bit_depth, min_psnr):
    rgb = smooth_image()
    frame = rgb_to_yuv420(rgb, bit_depth)
    assert frame.y.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    assert frame.u.shape == (32, 48)
    assert psnr_rgb_db(rgb, yuv420_to_rgb(frame, bit_depth)) > min_psnr


def test_grey_black_and_white_are_exact():
    for code, value in [(128, (128 - 16) / 219), (16, 0.0), (235, 1.0)]:
        neutral_chroma = np.full((2, 2), 128, np.uint8)
        frame = YuvFrame(np.full((4, 4), code, np.uint8), neutral_chroma, neutral_chroma.copy())
        rgb = yuv420_to_rgb(frame, 8)
        assert torch.allclose(rgb, torch.full_like(rgb, value), atol=1e-6)
        back = rgb_to_yuv420(rgb, 8)
        assert (back.y == code).all() and (back.u == 128).all() and (back.v == 128).all()


def test_bt709_primaries():
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    frame = rgb_to_yuv420(red, 8)
    # BT.709: Y = 16 + 219 * 0.2126 = 62.6; Cr = 128 + 224 * 0.5 = 240
    assert frame.y[0, 0] == 63 and frame.v[0, 0] == 240


def test_pad_replicates_edges_and_crop_inverts():
    x = torch.rand(1, 3, 30, 50)
    padded = pad_to_multiple(x, 16)
    assert padded.shape[-2:] == (32, 64)
    assert torch.equal(padded[..., 29:, :50], x[..., 29:30, :].expand(-1, -1, 3, -1))
    assert torch.equal(padded[..., :30, 49:], x[..., :, 49:50].expand(-1, -1, -1, 15))
    assert torch.equal(padded[..., :30, :50], x)
    assert pad_to_multiple(padded, 16) is padded


@pytest.mark.parametrize("height, width, multiple, margin, expected", [
    (240, 416, 16, 8, (8, 8, 256, 432)),       # the stand-ins: 8 replicated pixels on every side
    (144, 176, 16, 8, (8, 8, 160, 192)),
    (1080, 1920, 16, 8, (12, 8, 1104, 1936)),  # 1080 + 16 rounded up to 1104: the rest split
    (30, 50, 16, 0, (1, 7, 32, 64)),           # no margin: only the rounding up, split around it
])
def test_picture_box_centres_the_picture_with_a_margin(height, width, multiple, margin, expected):
    box = picture_box(height, width, multiple, margin)
    assert (box.top, box.left, box.padded_height, box.padded_width) == expected
    x = torch.rand(1, 3, height, width)
    padded = box.pad(x)
    assert padded.shape[-2:] == (box.padded_height, box.padded_width)
    assert torch.equal(box.crop(padded), x)
    # Edge replication: the rows above the picture repeat its first row.
    assert torch.equal(padded[..., :box.top, box.left:box.left + width], x[..., :1, :].expand(-1, -1, box.top, -1))
