"""Encoder-side latent refinement: the encoder searches for a better latent than its analysis transform gives.

The analysis transform is amortized: one network maps every picture to a latent, and a small,
briefly trained one maps many pictures to latents that are not the best its own decoder could use.
Refinement runs gradient descent on the latent y of one frame, with the weights fixed, on the
frame's rate-distortion cost, the training loss of the codec:

    cost(y) = bits(y) / pixels + lmbda * 255^2 * MSE(synthesize(y_hat), x)   (on the picture, not its padding)

  * bits: the coder's ``differentiable_bits`` (entropy/hyperprior_coder.py): z and y rounded exactly as
    ``encode`` rounds them, so the cost of an iterate is what coding it costs (up to the rANS tables'
    precision); its gradient is that of the uniform-noise proxy of rounding the models were trained
    with, the synthesis sees y_hat with straight-through rounding;
  * lmbda: the codec's training lambda (the checkpoint's provenance), so the search trades rate
    for distortion as the codec was trained to;
  * Adam on y, its learning rate falling linearly to 0; the encoder keeps the iterate of lowest
    cost, the analysis transform's own y (iteration 0) included, so refinement never raises the
    cost it measures. The noise comes from a generator seeded per latent: the same input gives the
    same stream.

Why the noise proxy for the rate's gradient: the rounded rate is flat between rounding steps, and
with straight-through gradients alone the P-frames' cost stopped falling after about 10 steps
(dcvc-small q3, HeldoutCoffee and HeldoutAstronaut, 9 frames, 30 steps: 3.1% and 1.1% lower, against
6.0% and 2.1% with the proxy; the I-frames' 4.0% and 4.4% against 3.8% and 4.4%; README).

Nothing reaches the bitstream: the decoder decodes a refined frame like any other. A P-frame is
refined against the decoded state it is coded from (greedy: its effect on later frames is not in
the cost). After Campos et al. 2019 ("Content adaptive optimization for neural image compression")
and Yang et al. 2020 ("Improving inference for neural image compression"; their straight-through
variant, not the annealed one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vidcodec.errors import ConfigError
from vidcodec.io.color import PictureBox

DEFAULT_ITERATIONS = 60
DEFAULT_LEARNING_RATE = 0.005


@dataclass(frozen=True)
class RefineSettings:
    """iterations: gradient steps per latent; learning_rate: Adam's step (latent units);
    lmbda: the cost's trade-off, None until the models are known (pipeline.CodecModels fills it in
    per model from its checkpoint)."""

    iterations: int = DEFAULT_ITERATIONS
    learning_rate: float = DEFAULT_LEARNING_RATE
    lmbda: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.iterations, int) or not 1 <= self.iterations <= 10_000:
            problems.append(f"iterations={self.iterations} (expected 1..10000)")
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            problems.append(f"learning_rate={self.learning_rate} (expected a positive number)")
        if self.lmbda is not None and not (isinstance(self.lmbda, (int, float)) and math.isfinite(self.lmbda)
                                           and self.lmbda > 0):
            problems.append(f"lmbda={self.lmbda} (expected a positive number)")
        if problems:
            raise ConfigError("invalid latent refinement settings: " + "; ".join(problems))


@dataclass(frozen=True)
class RefineReport:
    """What refinement did to one latent: the cost (bits per pixel + lmbda-weighted MSE) of the
    analysis transform's y and of the y kept, the iteration that gave it (0: none better), and the
    cost of every iterate (scripts/probes/refine_sweep.py)."""

    cost_before: float
    cost_after: float
    best_iteration: int
    costs: tuple[float, ...] = ()


def refine_latent(bits: Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]],
                  y: torch.Tensor, synthesize: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                  picture: PictureBox | None, settings: RefineSettings) -> tuple[torch.Tensor, RefineReport]:
    """The y of lowest cost among ``settings.iterations`` Adam steps from ``y`` (y itself included).

    bits(y, noise) -> (bits, y_hat): a coder's differentiable_bits (with its context bound);
    synthesize(y_hat) -> the padded frame; x the padded original; picture where the picture sits
    (None: all of x)."""
    if settings.lmbda is None:
        raise ValueError("refine_latent needs settings.lmbda")
    picture = picture or PictureBox.whole(x)
    target = picture.crop(x).detach()
    pixels = picture.height * picture.width
    distortion_weight = settings.lmbda * 255**2
    with torch.enable_grad():
        latent = y.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([latent], lr=settings.learning_rate)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / settings.iterations)
        noise = torch.Generator().manual_seed(0)
        best_cost, best_latent, best_iteration, costs = math.inf, latent.detach().clone(), 0, []
        for iteration in range(settings.iterations + 1):
            frame_bits, y_hat = bits(latent, noise)
            cost = frame_bits / pixels + distortion_weight * F.mse_loss(picture.crop(synthesize(y_hat)), target)
            value = cost.item()
            costs.append(value)
            if value < best_cost:
                best_cost, best_latent, best_iteration = value, latent.detach().clone(), iteration
            if iteration == settings.iterations:
                break
            # The gradient of y alone: the weights' .grad stay untouched.
            (latent.grad,) = torch.autograd.grad(cost, latent)
            optimizer.step()
            schedule.step()
    return best_latent, RefineReport(costs[0], best_cost, best_iteration, tuple(costs))
