"""Bjontegaard delta rate (BD-rate, %) and delta quality (BD-PSNR, dB) between two RD curves.

Both compare an anchor curve and a test curve, each given as rate points and quality points:

* BD-rate: log-rate is modelled as a function of quality for each curve; the mean vertical gap
  between the two models over the quality interval both curves cover is a mean log-rate ratio
  ``delta``, reported as ``(exp(delta) - 1) * 100``: the average rate change of the test curve at
  equal quality, negative = test needs fewer bits.
* BD-PSNR: quality is modelled as a function of log-rate; the mean gap over the common log-rate
  interval is the average quality change at equal rate in the quality's unit (dB for PSNR),
  positive = test is better.

Methods:

* ``"pchip"`` (default): piecewise cubic Hermite interpolation through the points (monotone, so it
  does not overshoot between rate points like the polynomial can), integrated exactly. This is the
  variant CompressAI and the ``bjontegaard`` package use for learned codecs. Needs >= 2 points per
  curve (2 points = straight line in log-rate); the usual convention of >= 4 points is enforced by
  the report (``vidcodec.eval.report``), not here, so that early runs can still be inspected.
* ``"cubic"``: the original VCEG-M33 method, a least-squares cubic polynomial through the points
  (exact for 4 points), integrated exactly. Needs >= 4 points per curve.

The logarithm's base cancels out (exp of a mean of natural logs equals 10^ of a mean of log10s),
so the numbers match implementations that use log10. Rates may be in any unit (bpp, kbps) as long
as both curves use the same one.

Curves must be RD-monotonic: sorted by rate, quality must rise strictly. A curve that is not (an
encoder bug, or noise at high rate) makes both the interpolation and the polynomial meaningless,
so it is refused with the offending points named rather than averaged into a table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

from vidcodec.errors import VidcodecError

METHODS = ("pchip", "cubic")
MIN_POINTS = {"pchip": 2, "cubic": 4}


class BDRateError(VidcodecError, ValueError):
    """A BD computation is impossible: too few points, non-positive rates, non-monotonic curves or
    no overlap. The message names the curve and the problem."""


def bd_rate(
    anchor_rates: Sequence[float],
    anchor_qualities: Sequence[float],
    test_rates: Sequence[float],
    test_qualities: Sequence[float],
    method: str = "pchip",
) -> float:
    """BD-rate of the test curve against the anchor, in percent (negative = test saves rate).

    rates: > 0, any unit shared by both curves (bpp, kbps); qualities: PSNR in dB or any quality
    that rises with rate (MS-SSIM should be given as -10*log10(1 - ms_ssim) dB).
    Points may come in any order. Raises BDRateError (a ValueError) when it cannot be computed.
    """
    log_r_a, q_a = _curve("anchor", anchor_rates, anchor_qualities, method)
    log_r_t, q_t = _curve("test", test_rates, test_qualities, method)
    lo, hi = _overlap(q_a, q_t, "quality")
    delta = (_mean(q_t, log_r_t, lo, hi, method) - _mean(q_a, log_r_a, lo, hi, method))
    return (math.exp(delta) - 1.0) * 100.0


def bd_psnr(
    anchor_rates: Sequence[float],
    anchor_qualities: Sequence[float],
    test_rates: Sequence[float],
    test_qualities: Sequence[float],
    method: str = "pchip",
) -> float:
    """BD-PSNR of the test curve against the anchor: mean quality gain at equal rate, in the
    qualities' unit (dB for PSNR; positive = test is better). Same inputs and errors as bd_rate."""
    log_r_a, q_a = _curve("anchor", anchor_rates, anchor_qualities, method)
    log_r_t, q_t = _curve("test", test_rates, test_qualities, method)
    lo, hi = _overlap(log_r_a, log_r_t, "rate")
    return _mean(log_r_t, q_t, lo, hi, method) - _mean(log_r_a, q_a, lo, hi, method)


def _curve(name: str, rates, qualities, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated (log-rate, quality) of one curve, sorted by rate (and thus by quality)."""
    if method not in METHODS:
        raise BDRateError(f"unknown BD method {method!r} (expected one of {', '.join(METHODS)})")
    r = np.asarray(rates, dtype=np.float64)
    q = np.asarray(qualities, dtype=np.float64)
    if r.ndim != 1 or q.ndim != 1 or r.shape != q.shape:
        raise BDRateError(f"{name} curve: rates and qualities must be 1-D of equal length, "
                          f"got shapes {r.shape} and {q.shape}")
    need = MIN_POINTS[method]
    if len(r) < need:
        raise BDRateError(f"{name} curve has {len(r)} points; method {method!r} needs at least {need}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q))):
        raise BDRateError(f"{name} curve has non-finite values: rates {r.tolist()}, qualities {q.tolist()}")
    if np.any(r <= 0):
        raise BDRateError(f"{name} curve has non-positive rates {r[r <= 0].tolist()} (log-rate undefined)")
    order = np.argsort(r, kind="stable")
    r, q = r[order], q[order]
    for i in range(1, len(r)):
        if not (r[i] > r[i - 1] and q[i] > q[i - 1]):
            raise BDRateError(
                f"{name} curve is not monotonic: rate {r[i - 1]:g} -> quality {q[i - 1]:g} and "
                f"rate {r[i]:g} -> quality {q[i]:g} (quality must rise strictly with rate)"
            )
    return np.log(r), q


def _overlap(a: np.ndarray, b: np.ndarray, axis: str) -> tuple[float, float]:
    lo, hi = max(a[0], b[0]), min(a[-1], b[-1])
    if not hi > lo:
        if axis == "rate":
            a, b = np.exp(a), np.exp(b)
        raise BDRateError(
            f"anchor and test curves do not overlap in {axis}: anchor spans [{a[0]:g}, {a[-1]:g}], "
            f"test spans [{b[0]:g}, {b[-1]:g}]"
        )
    return float(lo), float(hi)


def _mean(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Mean of the model y(x) over [lo, hi]; x strictly increasing."""
    if method == "pchip":
        integral = PchipInterpolator(x, y, extrapolate=False).integrate(lo, hi)
    else:
        # Centre x before the fit: PSNRs around 35 raised to the 3rd power make the Vandermonde
        # matrix badly conditioned, and centring does not change the fitted function.
        centre = float(np.mean(x))
        antiderivative = np.polyint(np.polyfit(x - centre, y, 3))
        integral = np.polyval(antiderivative, hi - centre) - np.polyval(antiderivative, lo - centre)
    return float(integral) / (hi - lo)
