"""Lattice in the training loop: fine-tune a hyperprior codec for the lattice quantizer it is coded with.

The shipped models are trained with scalar rounding (CompressAI: straight-through rounding for the
decoder, uniform noise for the entropy model) and coded with Oct/Hex-Quant without retraining. Here
the hyperprior of a latent (by default the P-frames' residual latent, the paper's scope) is trained
the way LVQ-VAE (seed 002, eq. 6 and its eq. 14 Monte-Carlo likelihood) trains a lattice:

- the latents are packed into v-tuples exactly as the lattice coder packs them (quant/grouping.py:
  same scale index of the hyperprior, scales whose table would be too large stay scalar);
- the decoder sees the nearest lattice point of each tuple of r = y - mu, with a straight-through
  gradient (d y_hat / d y = 1);
- the entropy model sees r + u with u uniform over the lattice's Voronoi cell (training) or the
  lattice point itself (evaluation), and the probability of the cell around it,
  P = integral over the cell of prod_i N(x_i; 0, sigma_i) dx, is estimated by quasi-Monte-Carlo
  (scrambled Sobol points mapped into the cell). The cells have unit volume, so P is the mean density.

The estimate is noisy where sigma is narrower than the spacing of the samples, which is most
latents at low rates. Measured by scripts/probes/lattice_loop_rate_check.py on a held-out P-frame of the
shipped q3 (Coffee, 416x240, 3 seeds) against the 4256 bits the Oct coder wrote for the residual
latent: 4578-18588 bits with M = 16 samples, 5882-8548 with M = 64, 4044-4998 with M = 256. Hence
M = 256, seed 002's training choice, by default.

Latents outside tuples keep CompressAI's scalar path. Only the forward of the hyperprior changes;
the weights, state-dict keys and coding path are untouched, so a fine-tuned model is an ordinary
checkpoint.
"""

from __future__ import annotations

import math

import torch
from compressai.models.base import get_scale_table
from compressai.ops import quantize_ste

from vidcodec.entropy.hyperprior_coder import HyperpriorCoder, hyperprior_parameters
from vidcodec.entropy.lattice_coder import lattice_tuples
from vidcodec.errors import ConfigError
from vidcodec.quant.lattice import get_lattice
from vidcodec.tools import QUANT_SCOPES


def cell_log_probability(centers: torch.Tensor, sigmas: torch.Tensor, cell_offsets: torch.Tensor) -> torch.Tensor:
    """log P(cell around each center) under independent zero-mean Gaussians, by quasi-Monte-Carlo.

    centers, sigmas: (T, dim); cell_offsets: (M, dim) points spread over a unit-volume cell.
    Returns (T,): log mean_j prod_i N(center_i + offset_ji; 0, sigma_i), computed in the log domain
    (logsumexp) so that tails far below float range keep a gradient."""
    x = centers.unsqueeze(1) + cell_offsets.to(centers.dtype).unsqueeze(0)  # (T, M, dim)
    log_density = -0.5 * (x / sigmas.unsqueeze(1)) ** 2 - torch.log(sigmas.unsqueeze(1)) - 0.5 * math.log(2 * math.pi)
    return torch.logsumexp(log_density.sum(-1), dim=1) - math.log(cell_offsets.shape[0])


class LatticeHyperpriorForward:
    """Replacement for a CompressAI-style hyperprior module's forward(y) -> (y_hat, likelihoods)
    (models/interface.py: the module of each role's latent coder).

    A plain callable rather than an nn.Module, so installing it does not register a submodule (the
    state dict stays the model's own)."""

    def __init__(self, hyperprior, lattice_name: str, samples: int) -> None:
        if samples < 1:
            raise ValueError(f"lattice_samples={samples} (expected >= 1)")
        self.hyperprior = hyperprior
        self.lattice = get_lattice(lattice_name)
        self.samples = samples

    def _cell_offsets(self, device) -> torch.Tensor:
        # A fresh scramble per call, seeded from torch's RNG: reproducible and resumable with the
        # trainer's saved RNG state, and unbiased over training steps.
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        sobol = torch.quasirandom.SobolEngine(self.lattice.dim, scramble=True, seed=seed)
        return self.lattice.to_cell(sobol.draw(self.samples, dtype=torch.float64)).to(device)

    def _tuples(self, scale_indexes: torch.Tensor) -> torch.Tensor:
        """(T, dim) flat positions into the whole (N,C,h,w) latent of the lattice-coded tuples,
        grouped per picture as the lattice coder groups them."""
        scale_table = self.hyperprior.gaussian_conditional.scale_table.tolist()
        per_picture = scale_indexes[0].numel()
        rows = [lattice_tuples(picture, self.lattice.dim, scale_table)[0] + n * per_picture
                for n, picture in enumerate(scale_indexes.cpu())]
        return torch.cat(rows).to(scale_indexes.device)

    def __call__(self, y: torch.Tensor, context: torch.Tensor | None = None):
        hp = self.hyperprior
        gc = hp.gaussian_conditional
        z = hp.hyper_encoder(y)
        z_hat, z_likelihoods = hp.entropy_bottleneck(z)
        scales, means = hyperprior_parameters(hp, z_hat, context)
        # The scalar path everywhere first (CompressAI's), then the tuples are overwritten.
        _, y_likelihoods = gc(y, scales, means)
        y_hat = quantize_ste(y - means) + means
        with torch.no_grad():
            tuples = self._tuples(gc.build_indexes(scales))
        if not len(tuples):
            return y_hat, {"y": y_likelihoods, "z": z_likelihoods}

        residual = (y - means).reshape(-1)[tuples]  # (T, dim)
        sigmas = gc.lower_bound_scale(scales).reshape(-1)[tuples]
        lattice_point = self.lattice.nearest_point(residual.detach().cpu().to(torch.float64))
        lattice_point = lattice_point.to(residual.device, residual.dtype)
        if hp.training:
            noise = self.lattice.to_cell(torch.rand(residual.shape, dtype=torch.float64))
            centers = residual + noise.to(residual.device, residual.dtype)
        else:
            centers = lattice_point
        # A few hundred samples overshoot 1 for sigmas narrower than their spacing; a probability
        # above 1 would pay the model for nothing.
        log_p = cell_log_probability(centers, sigmas, self._cell_offsets(residual.device)).clamp(max=0.0)
        # Each member of a tuple carries P^(1/dim), so the summed log-likelihood is log P; the
        # bound keeps CompressAI's per-latent floor (and its gradient rule) for escapes.
        per_member = torch.exp(log_p / self.lattice.dim).unsqueeze(-1).expand(-1, self.lattice.dim)
        if gc.use_likelihood_bound:
            per_member = gc.likelihood_lower_bound(per_member)
        y_likelihoods = y_likelihoods.reshape(-1).index_put((tuples.reshape(-1),), per_member.reshape(-1))
        straight_through = residual + (lattice_point - residual).detach()
        y_hat = y_hat.reshape(-1).index_put((tuples.reshape(-1),), (straight_through.reshape(-1)
                                                                      + means.reshape(-1)[tuples.reshape(-1)]))
        return y_hat.reshape(y.shape), {"y": y_likelihoods.reshape(y.shape), "z": z_likelihoods}


def install_lattice_in_the_loop(model, lattice_name: str, scope: str = "residual", samples: int = 256) -> None:
    """Make the hyperpriors of the latents whose roles are in ``scope`` (tools.QUANT_SCOPES) train
    (and validate) with the lattice, for any FrameCodec; weights are untouched."""
    if scope not in QUANT_SCOPES:
        raise ValueError(f"lattice scope '{scope}' (expected one of {', '.join(QUANT_SCOPES)})")
    in_scope = [role for role in model.latent_coders if role in QUANT_SCOPES[scope]]
    if not in_scope:
        raise ConfigError(f"--lattice {lattice_name}: no latent of this model is in the lattice scope '{scope}' "
                          f"(its latents: {', '.join(model.latent_coders)}); set lattice_scope in the config, "
                          "e.g. 'intra' for an image codec")
    for role, coder in model.latent_coders.items():
        if role not in QUANT_SCOPES[scope]:
            continue
        if not isinstance(coder, HyperpriorCoder) or coder.autoregressive:
            raise ConfigError(f"--lattice {lattice_name}: lattice training is built for Gaussian hyperpriors; "
                              f"the {role} latent of this model has a {type(coder).__name__}")
        hyperprior = coder.hyperprior
        gaussian_conditional = hyperprior.gaussian_conditional
        if gaussian_conditional.scale_table.numel() == 0:
            # A model that never went through update() (training from scratch): the grouping needs
            # the scale table that every checkpoint stores, CompressAI's default one.
            gaussian_conditional.update_scale_table(get_scale_table(), force=True)
        # An instance attribute shadows the class's forward; nn.Module.__call__ then uses it.
        hyperprior.forward = LatticeHyperpriorForward(hyperprior, lattice_name, samples)
