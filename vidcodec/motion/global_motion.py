"""Global motion: an affine model of a frame's motion, sent once, applied per pixel, that the block
vectors are coded against as deviations.

A camera pan, zoom or roll moves every pixel by a slightly different vector. Block vectors alone
cannot follow a zoom inside a block, and coded as differences to the left neighbour
(entropy/motion_coder.py) most of them are +-1 quarter pel, a few bits a block. With the model the
prediction follows the camera pixel by pixel (as AV1's global motion warps), the blocks that move with
the camera deviate by 0, and only moving objects cost bits.

The model, in integer arithmetic so that both sides compute the same field on any machine:

  g(block) = round((t * 2^S + A (c - centre)) / 2^S)   quarter pels

with c the block's (or pixel's) centre and centre the frame's (in pixels, both doubled to stay
integers), t two
int16 translations in quarter pels, A four int16 entries in 2^-S quarter pels per pixel (S = SHIFT: a
1% zoom is 0.04 quarter pel per pixel, about 655). Twelve bytes on the wire (PARAMETER_BYTES).
"""

from __future__ import annotations

import struct

import torch

SHIFT = 14
PARAMETER_BYTES = 12  # six int16, little-endian: tx, ty, a_xx, a_xy, a_yx, a_yy
INT16 = (-32768, 32767)


def _doubled_centres(count: int, block: int, size: int) -> torch.Tensor:
    """2 x (centre of each of ``count`` blocks - centre of a picture side of ``size`` pixels)."""
    return (torch.arange(count, dtype=torch.int64) * 2 + 1) * block - size


def field(parameters: tuple[int, ...], frame_shape: tuple[int, int], block: int) -> torch.Tensor:
    """The model's vectors (1, 2, Hb, Wb) int64 quarter pels at the centres of the blocks of ``block``
    pixels covering a frame of ``frame_shape`` (H, W); block 1: a vector per pixel."""
    tx, ty, a_xx, a_xy, a_yx, a_yy = (int(p) for p in parameters)
    rows, cols = -(-frame_shape[0] // block), -(-frame_shape[1] // block)
    dx2 = _doubled_centres(cols, block, frame_shape[1]).view(1, cols).expand(rows, cols)
    dy2 = _doubled_centres(rows, block, frame_shape[0]).view(rows, 1).expand(rows, cols)
    half = 1 << SHIFT  # the doubling divides by 2: round(v / 2^(S+1)) = (v + 2^S) >> (S + 1)
    gx = (2 * (tx << SHIFT) + a_xx * dx2 + a_xy * dy2 + half) >> (SHIFT + 1)
    gy = (2 * (ty << SHIFT) + a_yx * dx2 + a_yy * dy2 + half) >> (SHIFT + 1)
    return torch.stack((gx, gy)).unsqueeze(0)


def fit(mv: torch.Tensor, block: int, frame_shape: tuple[int, int], iterations: int = 4,
        inlier_quarter_pels: float = 3.0) -> tuple[int, ...]:
    """Least-squares affine parameters of a block field (1, 2, Hb, Wb) of a frame of ``frame_shape``,
    refitted on the blocks it predicts within ``inlier_quarter_pels`` (moving objects are outliers of
    the camera's motion)."""
    rows, cols = mv.shape[-2:]
    xs = _doubled_centres(cols, block, frame_shape[1]).to(torch.float64) / 2
    ys = _doubled_centres(rows, block, frame_shape[0]).to(torch.float64) / 2
    design = torch.stack((torch.ones(rows * cols, dtype=torch.float64), xs.repeat(rows), ys.repeat_interleave(cols)), 1)
    targets = mv[0].reshape(2, -1).to(torch.float64).T  # (blocks, 2)
    # start from the median vector (the camera's, where it covers most of the frame), so that a large
    # moving object cannot pull the first fit towards itself
    solution = torch.zeros(3, 2, dtype=torch.float64)
    solution[0] = targets.median(dim=0).values
    for _ in range(iterations):
        error = (design @ solution - targets).abs().max(dim=1).values
        inliers = error <= inlier_quarter_pels
        if int(inliers.sum()) < 3:
            break
        solution = torch.linalg.lstsq(design[inliers], targets[inliers]).solution
    (tx, ty), (a_xx, a_yx), (a_xy, a_yy) = solution.tolist()
    scale = float(1 << SHIFT)
    values = (round(tx), round(ty), round(a_xx * scale), round(a_xy * scale), round(a_yx * scale), round(a_yy * scale))
    return tuple(min(max(v, INT16[0]), INT16[1]) for v in values)


def to_bytes(parameters: tuple[int, ...]) -> bytes:
    return struct.pack("<6h", *parameters)


def from_bytes(data: bytes) -> tuple[int, ...]:
    return struct.unpack("<6h", data[:PARAMETER_BYTES])
