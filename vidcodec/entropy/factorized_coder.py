"""Entropy coding of a latent under a factorized prior (bmshj2018-factorized): one learned density
per channel (compressai's EntropyBottleneck), no side information.

The same protocol as HyperpriorCoder (encode, decode_side, decode_main, entropy_gradient), so the
FrameCodec's tools treat both alike: ``mu`` is the channel's median (the EntropyBottleneck codes
y - median rounded, and adds the median back), ``scale_indexes`` the channel index of each element
(the CDF table it is coded with), and there is no z: the side parameters are the weights' alone.

Latent shift: the entropy gradient is d/dy [-log P(y)] of the discretized learned density,
P(y) = c(y + 1/2) - c(y - 1/2) with c the channel's learned CDF, by autograd through the bottleneck's
cumulative logits (the same operations and shapes on both sides, so the same bits).

Lattice quantization (seed 000 applies Hex-Quant to this model): tuples within a channel, coded with
tables integrated over the channel's learned density (quant/learned_tables.py) by the same
LatticeLatentCoder as Gaussian latents, with the bottleneck's own tables for the rounded latents.
The shift's gradient stays that of the discretized density: smooth, known to the decoder, and
close to the continuous density's on the lattice-coded channels, whose densities are narrow.
"""

from __future__ import annotations

import torch

from vidcodec.entropy.hyperprior_coder import (
    CodedLatent,
    EntropyParameters,
    bottleneck_likelihood,
    bottleneck_ste,
    uniform_noise,
    value_with_gradient_of,
)


class FactorizedCoder:
    refinable = True  # has differentiable_bits (latent_refinement.py)

    def __init__(self, entropy_bottleneck) -> None:
        self.entropy_bottleneck = entropy_bottleneck
        self.y_coder = None  # optional LatticeLatentCoder over the bottleneck; None = rounding

    @property
    def entropy_model(self):
        """The compressai entropy model whose tables code y's rounded latents (lattice_coder.py)."""
        return self.entropy_bottleneck

    def _parameters(self, y_shape: tuple[int, int]) -> EntropyParameters:
        eb = self.entropy_bottleneck
        channels = eb._quantized_cdf.size(0)
        medians = eb._get_medians().detach().reshape(1, channels, 1, 1).expand(1, channels, *y_shape)
        indexes = eb._build_indexes((1, channels, *y_shape)).to(torch.int32)
        return EntropyParameters(medians, None, indexes)

    def table_digest(self, scale_indexes: torch.Tensor) -> bytes:
        return self.y_coder.table_digest(scale_indexes) if self.y_coder is not None else b""

    def encode(self, y: torch.Tensor, context: torch.Tensor | None = None) -> CodedLatent:
        if context is not None:
            raise ValueError("a factorized prior takes no context")
        params = self._parameters(tuple(y.shape[-2:]))
        if self.y_coder is not None:
            y_bytes, y_hat, digest = self.y_coder.encode(y, params.mu, params.scale_indexes)
            return CodedLatent(b"", y_bytes, y_hat, params.mu, params.sigma, params.scale_indexes, digest)
        y_bytes = self.entropy_bottleneck.compress(y)[0]
        y_hat = torch.round(y - params.mu) + params.mu  # what decompress gives: symbols + median
        return CodedLatent(b"", y_bytes, y_hat, params.mu, params.sigma, params.scale_indexes)

    def decode_side(self, z_bytes: bytes, y_shape: tuple[int, int],
                    context: torch.Tensor | None = None) -> EntropyParameters:
        if z_bytes:
            raise ValueError(f"a factorized prior has no side information, got {len(z_bytes)} bytes")
        return self._parameters(y_shape)

    def decode_main(self, y_bytes: bytes, params: EntropyParameters) -> torch.Tensor:
        if self.y_coder is not None:
            return self.y_coder.decode(y_bytes, params.mu, params.scale_indexes)[0]
        return self.entropy_bottleneck.decompress([y_bytes], tuple(params.mu.shape[-2:]))

    def differentiable_bits(self, y: torch.Tensor, context: torch.Tensor | None = None,
                            noise: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(bits of y, y_hat) as ``encode`` would code y with rounding; the gradient is the
        uniform-noise proxy's (HyperpriorCoder.differentiable_bits)."""
        if context is not None:
            raise ValueError("a factorized prior takes no context")
        eb = self.entropy_bottleneck
        y_hat = bottleneck_ste(eb, y)
        rounded_bits = -torch.log2(bottleneck_likelihood(eb, y_hat)).sum()
        noisy_bits = -torch.log2(bottleneck_likelihood(eb, y + uniform_noise(y, noise))).sum()
        return value_with_gradient_of(rounded_bits, noisy_bits), y_hat

    def entropy_gradient(self, y_hat: torch.Tensor, params) -> torch.Tensor:
        """d/dy [-log P(y)] at y_hat under each channel's discretized learned density."""
        eb = self.entropy_bottleneck
        channels = y_hat.shape[1]
        with torch.enable_grad():
            y = y_hat.detach().to(torch.float32).clone().requires_grad_(True)
            values = y.permute(1, 0, 2, 3).reshape(channels, 1, -1)  # the bottleneck's layout
            likelihood = eb._likelihood(values)[0]
            # The bottleneck's own floor (likelihood_lower_bound) keeps -log finite in far tails.
            bits = -torch.log(torch.clamp(likelihood, min=1e-9)).sum()
            (gradient,) = torch.autograd.grad(bits, y)
        return gradient.to(y_hat.dtype)
