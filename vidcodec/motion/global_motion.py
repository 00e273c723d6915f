"""Global motion: an affine model of a frame's block motion field, sent once, that the block vectors are
coded against.

A camera pan, zoom or roll moves every block by a slightly different vector; coded as differences to
the left neighbour (entropy/motion_coder.py) most of them are then +-1 quarter pel, a few bits a block.
Against the affine prediction those blocks differ by 0, and only moving objects cost bits.

The model, in integer arithmetic so that both sides compute the same field on any machine:

  g(block) = round((t * 2^S + A (c - centre)) / 2^S)   quarter pels

with c the block's centre and centre the frame's (in pixels, both doubled to stay integers), t two
int16 translations in quarter pels, A four int16 entries in 2^-S quarter pels per pixel (S = SHIFT: a
1% zoom is 0.04 quarter pel per pixel, about 655). Twelve bytes on the wire (PARAMETER_BYTES).
"""

from __future__ import annotations

import struct

import torch

SHIFT = 14
PARAMETER_BYTES = 12  # six int16, little-endian: tx, ty, a_xx, a_xy, a_yx, a_yy
INT16 = (-32768, 32767)


def field(parameters: tuple[int, ...], blocks: tuple[int, int], block: int) -> torch.Tensor:
    """The model's vectors (1, 2, Hb, Wb) int64 quarter pels for a frame of Hb x Wb blocks of ``block`` pixels."""
    tx, ty, a_xx, a_xy, a_yx, a_yy = (int(p) for p in parameters)
    rows, cols = blocks
    # doubled coordinates relative to the frame's centre: 2c - 2 centre = (2b + 1) block - size
    dx2 = (torch.arange(cols, dtype=torch.int64) * 2 + 1) * block - cols * block
    dy2 = (torch.arange(rows, dtype=torch.int64) * 2 + 1) * block - rows * block
    dx2, dy2 = dx2.view(1, cols).expand(rows, cols), dy2.view(rows, 1).expand(rows, cols)
    half = 1 << SHIFT  # the doubling divides by 2: round(v / 2^(S+1)) = (v + 2^S) >> (S + 1)
    gx = (2 * (tx << SHIFT) + a_xx * dx2 + a_xy * dy2 + half) >> (SHIFT + 1)
    gy = (2 * (ty << SHIFT) + a_yx * dx2 + a_yy * dy2 + half) >> (SHIFT + 1)
    return torch.stack((gx, gy)).unsqueeze(0)


def fit(mv: torch.Tensor, block: int, iterations: int = 4, inlier_quarter_pels: float = 3.0) -> tuple[int, ...]:
    """Least-squares affine parameters of a block field (1, 2, Hb, Wb), refitted on the blocks it
    predicts within ``inlier_quarter_pels`` (moving objects are outliers of the camera's motion)."""
    rows, cols = mv.shape[-2:]
    xs = ((torch.arange(cols, dtype=torch.float64) * 2 + 1) * block - cols * block) / 2
    ys = ((torch.arange(rows, dtype=torch.float64) * 2 + 1) * block - rows * block) / 2
    design = torch.stack((torch.ones(rows * cols, dtype=torch.float64), xs.repeat(rows), ys.repeat_interleave(cols)), 1)
    targets = mv[0].reshape(2, -1).to(torch.float64).T  # (blocks, 2)
    inliers = torch.ones(rows * cols, dtype=torch.bool)
    solution = torch.zeros(3, 2, dtype=torch.float64)
    for _ in range(iterations):
        if int(inliers.sum()) < 3:
            break
        solution = torch.linalg.lstsq(design[inliers], targets[inliers]).solution
        error = (design @ solution - targets).abs().max(dim=1).values
        inliers = error <= inlier_quarter_pels
    (tx, ty), (a_xx, a_yx), (a_xy, a_yy) = solution.tolist()
    scale = float(1 << SHIFT)
    values = (round(tx), round(ty), round(a_xx * scale), round(a_xy * scale), round(a_yx * scale), round(a_yy * scale))
    return tuple(min(max(v, INT16[0]), INT16[1]) for v in values)


def to_bytes(parameters: tuple[int, ...]) -> bytes:
    return struct.pack("<6h", *parameters)


def from_bytes(data: bytes) -> tuple[int, ...]:
    return struct.unpack("<6h", data[:PARAMETER_BYTES])
