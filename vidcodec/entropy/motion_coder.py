"""Entropy coding of a block motion field (motion/block_motion.py) with compressai's rANS coder.

Each motion vector component is predicted from the block to its left (the first block of a row from
the first block of the row above), and the differences are coded with a two-parameter model fitted
by the encoder to this frame and sent in two bytes per component:

  P(0) = p0,  P(+-v) = (1 - p0) / 2 * (1 - a) * a^(v - 1)  for v >= 1   (a two-sided geometric law)

Why a per-frame fit and not a learned density: a field is a few hundred to a few thousand values
whose spread changes with the content (a still scene is all zeros: p0 = 254/256, about 0.01 bit a
value; a zoom has differences everywhere), and the model costs 4 bytes. Differences beyond +-LIMIT
go through compressai's escape symbol (bypass bits), so every field is codable.

Layout of the bytes: p0_x, a_x, p0_y, a_y (u8 each), then the rANS stream of all x differences in
raster order followed by all y differences.
"""

from __future__ import annotations

import math

import torch
from compressai._CXX import pmf_to_quantized_cdf
from compressai.ans import BufferedRansEncoder, RansDecoder

from vidcodec.bitstream.errors import BitstreamError

LIMIT = 64  # differences in [-LIMIT, LIMIT] are in the table; the rest are escaped
CDF_PRECISION_BITS = 16
HEADER_BYTES = 4


def differences(mv: torch.Tensor) -> torch.Tensor:
    """(2, Hb, Wb) int64 -> prediction residuals of the same shape (left neighbour; column 0: above)."""
    residual = mv.clone()
    residual[:, :, 1:] = mv[:, :, 1:] - mv[:, :, :-1]
    residual[:, 1:, 0] = mv[:, 1:, 0] - mv[:, :-1, 0]
    return residual


def undo_differences(residual: torch.Tensor) -> torch.Tensor:
    mv = residual.clone()
    mv[:, :, 0] = residual[:, :, 0].cumsum(dim=1)
    return mv.cumsum(dim=2)


def fit_parameters(values: torch.Tensor) -> tuple[int, int]:
    """(p0, a) as bytes for the differences of one component (maximum likelihood, then quantized)."""
    magnitudes = values.abs().to(torch.float64)
    p0 = float((magnitudes == 0).to(torch.float64).mean()) if values.numel() else 1.0
    nonzero = magnitudes[magnitudes > 0]
    mean_magnitude = float(nonzero.mean()) if nonzero.numel() else 1.0
    a = 1.0 - 1.0 / mean_magnitude  # mean of v >= 1 under a geometric law: 1 / (1 - a)
    return min(max(round(p0 * 256), 1), 254), min(max(round(a * 256), 1), 254)


def cdf_table(p0_byte: int, a_byte: int) -> list[int]:
    """Quantized CDF over [-LIMIT, LIMIT] plus compressai's escape symbol. Only integer inputs and
    float64 operations in a fixed order, so encoder and decoder build the same table."""
    p0, a = p0_byte / 256.0, a_byte / 256.0
    pmf = []
    for value in range(-LIMIT, LIMIT + 1):
        magnitude = abs(value)
        pmf.append(p0 if magnitude == 0 else (1.0 - p0) * 0.5 * (1.0 - a) * a ** (magnitude - 1))
    tail = max((1.0 - p0) * a ** LIMIT, 1e-9)  # mass beyond +-LIMIT: the escape symbol's
    total = sum(pmf) + tail
    return pmf_to_quantized_cdf([p / total for p in pmf] + [tail / total], CDF_PRECISION_BITS)


def encode(mv: torch.Tensor) -> bytes:
    """mv: (1, 2, Hb, Wb) int64 quarter pels -> bytes."""
    residual = differences(mv[0])
    parameters, symbols, indexes = [], [], []
    for component in range(2):
        values = residual[component].flatten()
        parameters.extend(fit_parameters(values))
        symbols.extend(values.tolist())
        indexes.extend([component] * values.numel())
    cdfs = [cdf_table(parameters[0], parameters[1]), cdf_table(parameters[2], parameters[3])]
    encoder = BufferedRansEncoder()
    encoder.encode_with_indexes(symbols, indexes, cdfs, [len(cdf) for cdf in cdfs], [-LIMIT, -LIMIT])
    return bytes(parameters) + encoder.flush()


def decode(data: bytes, blocks: tuple[int, int]) -> torch.Tensor:
    """bytes -> mv (1, 2, Hb, Wb) int64 for a field of ``blocks`` = (Hb, Wb)."""
    if len(data) < HEADER_BYTES:
        raise BitstreamError(f"motion field: {len(data)} bytes, shorter than its {HEADER_BYTES}-byte model")
    parameters = list(data[:HEADER_BYTES])
    if any(not 1 <= byte <= 254 for byte in parameters):
        raise BitstreamError(f"motion field: model parameters {parameters} outside 1..254")
    cdfs = [cdf_table(parameters[0], parameters[1]), cdf_table(parameters[2], parameters[3])]
    count = blocks[0] * blocks[1]
    decoder = RansDecoder()
    decoder.set_stream(data[HEADER_BYTES:])
    values = decoder.decode_stream([0] * count + [1] * count, cdfs, [len(cdf) for cdf in cdfs], [-LIMIT, -LIMIT])
    residual = torch.tensor(values, dtype=torch.int64).view(2, *blocks)
    return undo_differences(residual).unsqueeze(0)


def ideal_bits(mv: torch.Tensor) -> float:
    """-log2 of the field's probability under the fitted model, header included (for diagnostics)."""
    residual = differences(mv[0])
    bits = 8.0 * HEADER_BYTES
    for component in range(2):
        values = residual[component].flatten()
        p0, a = (byte / 256.0 for byte in fit_parameters(values))
        for value in values.tolist():
            magnitude = abs(value)
            bits -= math.log2(p0 if magnitude == 0 else (1.0 - p0) * 0.5 * (1.0 - a) * a ** (magnitude - 1))
    return bits
