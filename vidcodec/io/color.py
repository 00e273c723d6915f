"""BT.709 YUV 4:2:0 <-> RGB conversion, padding and cropping, in torch float32.

Range: limited ("video") range, as UVG and most test sequences: Y in [16, 235], U and V in
[16, 240], scaled by 2^(bit_depth - 8) for 10-bit.

Chroma resampling: downsampling takes the mean of each 2x2 block, i.e. chroma is sited at the
centre of its 2x2 luma block (JPEG / MPEG-1 siting). Upsampling is bilinear with half-pixel centres
(``F.interpolate(..., mode="bilinear", align_corners=False)``) and replicated edges, which matches
that siting. MPEG-2 / H.264 default ("left") siting differs by a quarter chroma pixel horizontally;
the difference is far below coding noise but means PSNR on RGB is not bit-identical to tools using
that siting.

Both the encoder (for --recon and metrics) and the decoder call the same functions with the same
shapes and thread count, so their YUV outputs are identical byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vidcodec.io.yuv import YuvFrame

# BT.709 luma coefficients.
KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB


def _ranges(bit_depth: int) -> tuple[float, float, float, float]:
    """(luma offset, luma span, chroma centre, chroma span) in code values."""
    scale = float(2 ** (bit_depth - 8))
    return 16.0 * scale, 219.0 * scale, 128.0 * scale, 224.0 * scale


def yuv420_to_rgb(frame: YuvFrame, bit_depth: int) -> torch.Tensor:
    """YUV 4:2:0 integer planes -> (1,3,H,W) float32 RGB in [0,1]."""
    y_offset, y_span, c_centre, c_span = _ranges(bit_depth)
    y = (torch.from_numpy(frame.y.astype(np.float32)) - y_offset) / y_span
    uv = torch.from_numpy(np.stack([frame.u, frame.v]).astype(np.float32))
    uv = (uv - c_centre) / c_span
    uv = F.interpolate(uv.unsqueeze(0), scale_factor=2, mode="bilinear", align_corners=False)[0]
    cb, cr = uv[0], uv[1]
    r = y + 2 * (1 - KR) * cr
    b = y + 2 * (1 - KB) * cb
    g = (y - KR * r - KB * b) / KG
    return torch.stack([r, g, b]).unsqueeze(0).clamp(0.0, 1.0)


def rgb_to_yuv420(rgb: torch.Tensor, bit_depth: int) -> YuvFrame:
    """(1,3,H,W) float RGB in [0,1] (clamped) -> YUV 4:2:0 planes, uint8 or uint16."""
    y_offset, y_span, c_centre, c_span = _ranges(bit_depth)
    r, g, b = rgb.clamp(0.0, 1.0)[0].float()
    luma = KR * r + KG * g + KB * b
    cb = (b - luma) / (2 * (1 - KB))
    cr = (r - luma) / (2 * (1 - KR))
    chroma = F.avg_pool2d(torch.stack([cb, cr]).unsqueeze(0), kernel_size=2)[0]
    max_code = float(2**bit_depth - 1)
    dtype = np.uint8 if bit_depth == 8 else np.uint16

    def to_codes(values: torch.Tensor, offset: float, span: float) -> np.ndarray:
        return torch.round(values * span + offset).clamp(0.0, max_code).numpy().astype(dtype)

    return YuvFrame(
        y=to_codes(luma, y_offset, y_span),
        u=to_codes(chroma[0], c_centre, c_span),
        v=to_codes(chroma[1], c_centre, c_span),
    )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate the last row/column so that H and W of (N,C,H,W) become multiples of ``multiple``."""
    height, width = x.shape[-2:]
    pad_h = -height % multiple
    pad_w = -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


@dataclass(frozen=True)
class PictureBox:
    """Where a H x W picture sits in its coded frame of padded_height x padded_width (picture_box)."""

    top: int
    left: int
    height: int
    width: int
    padded_height: int
    padded_width: int

    @classmethod
    def whole(cls, x: torch.Tensor) -> PictureBox:
        height, width = x.shape[-2:]
        return cls(0, 0, height, width, height, width)

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.top:self.top + self.height, self.left:self.left + self.width]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Edge replication of (N,C,H,W) around the picture, out to the coded frame."""
        bottom = self.padded_height - self.height - self.top
        right = self.padded_width - self.width - self.left
        if not (self.top or self.left or bottom or right):
            return x
        return F.pad(x, (self.left, right, self.top, bottom), mode="replicate")


def picture_box(height: int, width: int, multiple: int, margin: int) -> PictureBox:
    """The coded frame of a H x W picture: at least ``margin`` replicated pixels on every side, sizes
    rounded up to ``multiple``, the picture centred (the left/top share is the smaller half).

    Why a margin: a network reconstructs a pixel worse when its receptive field reaches the frame's
    edge (the convolutions' zero padding); a few replicated pixels move that edge out of the picture.
    Measured on I-frames (shipped ssf-small q3, the stand-ins' first frames): margin 8 against none,
    +0.1 to +0.6 dB at 416x240 for +1% to +8% bits (README, "Padding")."""
    padded_height = -(-(height + 2 * margin) // multiple) * multiple
    padded_width = -(-(width + 2 * margin) // multiple) * multiple
    return PictureBox((padded_height - height) // 2, (padded_width - width) // 2, height, width,
                      padded_height, padded_width)
