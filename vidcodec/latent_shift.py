"""Latent shift (seed 000, section 4), in one unit: the entropy gradient the decoder knows for
free, and the step the encoder picks and signals.

The gradient. After decoding y_hat with its hyperprior parameters (mu, sigma), the decoder can evaluate
g = d/dy [-log P(y)] at y_hat, where P is the *discretized* Gaussian the entropy coder used:

    P(y) = Phi((y - mu + 1/2) / sigma) - Phi((y - mu - 1/2) / sigma).

We use this form (not the continuous density) because it is the likelihood the rate is actually
measured with; the continuous density's gradient (y - mu) / sigma^2 is its large-|y - mu| limit.

    g = -(phi(a) - phi(b)) / (sigma * P),   a = (y - mu + 1/2) / sigma,  b = (y - mu - 1/2) / sigma.

Evaluated in log space with the tail reflected to the side where Phi is not close to 1, so it
stays finite where P underflows in float32/float64.

Lattice-coded latents (quant/) are not on the integer grid, and the likelihood the coder used is a
v-dimensional cell integral; for them we use the product of the continuous Gaussian densities,
g = (y - mu) / sigma^2 (``entropy_gradient_density``): the large-|y - mu| limit of both forms, in
closed form, and a function of each coordinate alone so the decoder needs no lattice integrals.

The step. The decoder reconstructs from y_hat + rho * g, where rho is one of a few candidate steps
signalled by index in the frame header (the candidates are in the sequence header). The encoder
picks the index whose finished frame has the lowest MSE on the picture (padding excluded). The
candidates must hold 0.0 and ties go to the lower MSE found first, starting from rho = 0, so the
shift never makes the measured distortion worse at the same latent bits.

With ``groups`` > 1 the latent's channels are split into that many contiguous groups, each with its
own signalled index (beyond the paper).

Searches:
  brute  one synthesis per candidate (per group: coordinate descent, one pass), as in the paper.
  fast   linearize the synthesis around y_hat: x(rho) ~ x(0) + sum_k rho_k d_k, so the MSE-optimal
         steps solve the K x K least-squares system  <d_i, d_j> rho = <x - x(0), d_i>. The direction
         d_k is a secant: (x(probe on group k) - x(0)) / probe, one synthesis per group at a middle
         candidate (which is itself a candidate, so it is also considered). The solution is snapped
         to the nearest candidates and kept only if a real synthesis confirms it beats the best so
         far. Cost: K + 1 syntheses instead of 7K. Given the previous frame's choice, a group probes
         at its step there (unless 0): steps change little from frame to frame, and when the
         solution snaps to the probe, the probe's synthesis is the confirmation (K syntheses).
  jvp    as fast, with d_k = J g_k from a forward-mode Jacobian-vector product (the exact tangent;
         slower on CPU than a secant synthesis, kept for comparison).

Settings (candidates and why, groups, roles): tools.ShiftSettings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vidcodec.errors import ConfigError
from vidcodec.io.color import PictureBox
from vidcodec.tools import ShiftSettings

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def entropy_gradient_gaussian(y_hat: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """d/dy [-log P(y)] at y_hat for the discretized Gaussian; all tensors broadcastable, float."""
    u = (y_hat - mu).to(torch.float64)
    s = sigma.to(torch.float64)
    # Reflect to u <= 0: P is symmetric in u, the gradient antisymmetric.
    sign = torch.where(u > 0, -1.0, 1.0).to(torch.float64)
    u = u * sign
    a = (u + 0.5) / s  # upper limit, a > b
    b = (u - 0.5) / s
    log_cdf_a = torch.special.log_ndtr(a)
    log_cdf_b = torch.special.log_ndtr(b)
    # log P = log(Phi(a) - Phi(b)) = log Phi(a) + log(1 - exp(log Phi(b) - log Phi(a)))
    log_p = log_cdf_a + torch.log(-torch.expm1(log_cdf_b - log_cdf_a))
    log_phi_a = -0.5 * a * a - _LOG_SQRT_2PI
    log_phi_b = -0.5 * b * b - _LOG_SQRT_2PI
    gradient = -(torch.exp(log_phi_a - log_p) - torch.exp(log_phi_b - log_p)) / s
    return (gradient * sign).to(y_hat.dtype)


def entropy_gradient_density(y_hat: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """d/dy [-log N(y; mu, sigma^2)] = (y - mu) / sigma^2 at y_hat (for lattice-coded latents)."""
    u = (y_hat - mu).to(torch.float64)
    return (u / sigma.to(torch.float64) ** 2).to(y_hat.dtype)


def entropy_gradient(y_hat: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, lattice_coded: bool) -> torch.Tensor:
    """g = d/dy [-log P(y_hat)] under the likelihood y was coded with: the discretized Gaussian
    for rounded latents, the continuous density for lattice-coded ones."""
    if lattice_coded:
        return entropy_gradient_density(y_hat, mu, sigma)
    return entropy_gradient_gaussian(y_hat, mu, sigma)


def group_slices(channels: int, groups: int) -> list[slice]:
    """Contiguous channel groups of near-equal size (the first ``channels % groups`` one larger)."""
    if groups > channels:
        raise ConfigError(f"{groups} shift groups for a latent of {channels} channels (expected <= {channels})")
    bounds = np.linspace(0, channels, groups + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def shifted(y_hat: torch.Tensor, g: torch.Tensor, settings: ShiftSettings, indexes: tuple[int, ...]) -> torch.Tensor:
    """y_hat + rho_k * g on the channels of group k; identical on encoder and decoder."""
    rho = torch.zeros(1, y_hat.shape[1], 1, 1, dtype=y_hat.dtype)
    for channels, index in zip(group_slices(y_hat.shape[1], settings.groups), indexes):
        rho[:, channels] = settings.candidates[index]
    return y_hat + rho * g


@dataclass
class ShiftChoice:
    indexes: tuple[int, ...]
    x_hat: torch.Tensor  # synthesis of the shifted latent (what the decoder will output)
    mse_unshifted: float  # on the picture, rho = 0
    mse: float  # on the picture, chosen steps
    gradient_correlation: float | None = None  # Pearson corr(g, d MSE / d y) at y_hat
    rhos: tuple[float, ...] = ()  # the chosen steps, one per group

    @property
    def gain_db(self) -> float:
        return 10.0 * float(np.log10(self.mse_unshifted / self.mse)) if self.mse > 0 else 0.0


def picture_mse(x_hat: torch.Tensor, x: torch.Tensor, picture: PictureBox) -> float:
    error = (picture.crop(x_hat) - picture.crop(x)).to(torch.float64)
    return float(torch.mean(error * error))


def choose_shift(
    synthesize: Callable[[torch.Tensor], torch.Tensor],
    y_hat: torch.Tensor,
    g: torch.Tensor,
    x: torch.Tensor,
    picture: PictureBox,
    settings: ShiftSettings,
    previous: tuple[int, ...] | None = None,
) -> ShiftChoice:
    """Pick the step indexes for one latent. ``synthesize(y)`` -> finished padded frame; the
    distortion is measured on ``picture``, the picture's place in it. ``previous``: the indexes
    chosen for this latent in the previous frame (the fast search probes there)."""
    zero = (settings.zero_index,) * settings.groups
    x_zero = synthesize(y_hat)
    mse_zero = picture_mse(x_zero, x, picture)
    best = ShiftChoice(zero, x_zero, mse_zero, mse_zero)

    def consider(indexes: tuple[int, ...]) -> None:
        nonlocal best
        if indexes == best.indexes:
            return
        x_hat = synthesize(shifted(y_hat, g, settings, indexes))
        mse = picture_mse(x_hat, x, picture)
        if mse < best.mse:
            best = ShiftChoice(indexes, x_hat, best.mse_unshifted, mse)

    if settings.search == "brute":
        for group in range(settings.groups):
            current = best.indexes
            for index in range(len(settings.candidates)):
                consider(current[:group] + (index,) + current[group + 1 :])
    else:
        directions, probes = [], {zero}
        for group, channels in enumerate(group_slices(y_hat.shape[1], settings.groups)):
            tangent = torch.zeros_like(g)
            tangent[:, channels] = g[:, channels]
            if settings.search == "jvp":
                directions.append(torch.func.jvp(synthesize, (y_hat,), (tangent,))[1])
            else:
                index = settings.probe_index
                if previous is not None and len(previous) == settings.groups and previous[group] != zero[group]:
                    index = previous[group]
                probe = zero[:group] + (index,) + zero[group + 1 :]
                x_probe = synthesize(shifted(y_hat, g, settings, probe))
                mse = picture_mse(x_probe, x, picture)
                if mse < best.mse:
                    best = ShiftChoice(probe, x_probe, best.mse_unshifted, mse)
                probes.add(probe)
                directions.append((x_probe - x_zero) / settings.candidates[index])
        steps = _least_squares_steps(directions, x - x_zero, picture)
        solution = _snap(settings, steps)
        if solution not in probes:  # a probe's MSE is known already
            consider(solution)
    best.rhos = tuple(settings.candidates[index] for index in best.indexes)
    if settings.diagnostics:
        best.gradient_correlation = _gradient_correlation(synthesize, y_hat, g, x, picture)
    return best


def _least_squares_steps(directions: list[torch.Tensor], error: torch.Tensor, picture: PictureBox) -> np.ndarray:
    """Steps rho minimizing ||error - sum_k rho_k directions_k||^2 on the picture."""
    basis = torch.stack([picture.crop(d).to(torch.float64).flatten() for d in directions], dim=1)
    target = picture.crop(error).to(torch.float64).flatten()
    # A group whose direction is zero (g = 0, or invisible after clamping) makes the system
    # singular; the minimum-norm solution (gelsd) gives it step 0.
    return torch.linalg.lstsq(basis.T @ basis, basis.T @ target, driver="gelsd").solution.numpy()


def _snap(settings: ShiftSettings, steps: np.ndarray) -> tuple[int, ...]:
    candidates = np.asarray(settings.candidates)
    return tuple(int(np.argmin(np.abs(candidates - step))) for step in steps)


def _gradient_correlation(synthesize, y_hat, g, x, picture: PictureBox) -> float:
    """Pearson correlation between g and the true distortion gradient (seed 000, Fig. 4c)."""
    with torch.enable_grad():
        y = y_hat.detach().clone().requires_grad_(True)
        error = picture.crop(synthesize(y)) - picture.crop(x)
        (distortion_gradient,) = torch.autograd.grad(torch.mean(error * error), y)
    a = g.flatten().to(torch.float64)
    b = distortion_gradient.flatten().to(torch.float64)
    a, b = a - a.mean(), b - b.mean()
    denominator = float(torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b))
    return float(a @ b) / denominator if denominator > 0 else 0.0
