"""Latent shift (seed 000, section 4): the entropy gradient the decoder knows for free.

After decoding y_hat with its hyperprior parameters (mu, sigma), the decoder can evaluate
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
"""

from __future__ import annotations

import math

import torch

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
