"""Entropy coding of one hyperprior latent (z through its factorized prior, y through the Gaussian
conditional) with compressai's rANS coder.

The encoder keeps only what the decoder can rebuild: z_hat is taken from the *decoded* z symbols,
and mu, sigma and the scale indexes are recomputed from that z_hat, exactly as the decoder does. The
returned y_hat is the decoded symbols plus mu, so encoder reconstruction equals decoder output.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from compressai.ops import quantize_ste
from torch import nn

from vidcodec.bitstream.syntax import ENTROPY_HASH_BYTES


@dataclass
class EntropyParameters:
    """What the hyper-decoder gives the decoder: per-element mean, scale and scale-table index."""

    mu: torch.Tensor
    sigma: torch.Tensor
    scale_indexes: torch.Tensor


@dataclass
class CodedLatent:
    """One coded latent. Shapes for a (1,3,H,W) frame with SSF: y (1,C,H/16,W/16), z (1,C,ceil(H/128),ceil(W/128))."""

    z_bytes: bytes
    y_bytes: bytes
    y_hat: torch.Tensor  # float32, decoded symbols + mu
    mu: torch.Tensor
    sigma: torch.Tensor  # lower-bounded scales, as the Gaussian conditional uses them
    scale_indexes: torch.Tensor  # int32, index into the Gaussian conditional's scale table
    table_digest: bytes = b""  # hash of the lattice PMF tables used (empty for scalar coding)


def hyperprior_parameters(hyperprior: nn.Module, z_hat: torch.Tensor, context: torch.Tensor | None = None):
    """(scales, means) of y from z_hat: the hyper-decoders' output, or, for a hyperprior that fuses a
    prior from other decoded data (a method ``entropy_parameters(z_hat, context)``, e.g. the temporal
    prior of a conditional codec), that method's. Training and coding both call this. On a y whose
    size is not a multiple of the hyper stride, they are larger than y (HyperpriorCoder crops them);
    a method fusing them with a prior of y's size crops them first."""
    if hasattr(hyperprior, "entropy_parameters"):
        return hyperprior.entropy_parameters(z_hat, context)
    if context is not None:
        raise ValueError(f"{type(hyperprior).__name__} takes no context (it has no entropy_parameters method)")
    return hyperprior.hyper_decoder_scale(z_hat), hyperprior.hyper_decoder_mean(z_hat)


class HyperpriorCoder:
    """Codes latents of a compressai-style hyperprior module (entropy_bottleneck, hyper_encoder,
    hyper_decoder_mean, hyper_decoder_scale, gaussian_conditional), such as the three of SSF. A
    ``context`` (decoded data both sides hold, e.g. temporal context features) reaches the entropy
    parameters of a hyperprior that takes one (hyperprior_parameters).

    The module's CDF tables must be up to date (``model.update(force=True)`` after loading weights).
    """

    autoregressive = False  # y coded all at once (AutoregressiveCoder: position by position)
    refinable = True  # has differentiable_bits (latent_refinement.py)

    def __init__(self, hyperprior: nn.Module, hyper_stride: int) -> None:
        self.hyperprior = hyperprior
        # z is 1/hyper_stride of y per side. y of any size is coded: the hyper-encoder sees y padded
        # to a multiple of it by edge replication, and the entropy parameters are cropped back to y,
        # so the picture needs padding to the analysis stride only, not to analysis x hyper stride.
        self.hyper_stride = hyper_stride
        # Optional lattice coder of y (entropy/lattice_coder.py); None = scalar rounding.
        self.y_coder = None

    @property
    def entropy_model(self):
        """The compressai entropy model whose tables code y's rounded latents (lattice_coder.py)."""
        return self.hyperprior.gaussian_conditional

    def z_shape(self, y_shape: tuple[int, int]) -> tuple[int, int]:
        return -(-y_shape[0] // self.hyper_stride), -(-y_shape[1] // self.hyper_stride)

    def table_digest(self, scale_indexes: torch.Tensor) -> bytes:
        """Hash of the lattice tables y will be coded with (known from the scale indexes alone)."""
        return self.y_coder.table_digest(scale_indexes) if self.y_coder is not None else b""

    def _entropy_parameters(self, z_hat: torch.Tensor, y_shape: tuple[int, int], context: torch.Tensor | None = None):
        hp = self.hyperprior
        sigma, mu = hyperprior_parameters(hp, z_hat, context)
        sigma, mu = sigma[..., :y_shape[0], :y_shape[1]], mu[..., :y_shape[0], :y_shape[1]]
        scale_indexes = hp.gaussian_conditional.build_indexes(sigma)
        sigma = hp.gaussian_conditional.lower_bound_scale(sigma)
        return mu, sigma, scale_indexes

    def encode(self, y: torch.Tensor, context: torch.Tensor | None = None) -> CodedLatent:
        """y: (1,C,h,w) float32 latent from the analysis transform."""
        hp = self.hyperprior
        y_shape = tuple(y.shape[-2:])
        z_bytes, z_hat = self._code_z(y)
        mu, sigma, scale_indexes = self._entropy_parameters(z_hat, y_shape, context)
        if self.y_coder is not None:
            y_bytes, y_hat, digest = self.y_coder.encode(y, mu, scale_indexes)
            return CodedLatent(z_bytes, y_bytes, y_hat, mu, sigma, scale_indexes, digest)
        y_symbols = torch.round(y - mu)
        y_bytes = hp.gaussian_conditional.compress(y_symbols + mu, scale_indexes, mu)[0]
        return CodedLatent(z_bytes, y_bytes, y_symbols + mu, mu, sigma, scale_indexes)

    def _z(self, y: torch.Tensor) -> torch.Tensor:
        """The hyper-analysis of y (1,C,h,w), padded by edge replication to the hyper stride."""
        y_shape = tuple(y.shape[-2:])
        z_shape = self.z_shape(y_shape)
        pad = (0, z_shape[1] * self.hyper_stride - y_shape[1], 0, z_shape[0] * self.hyper_stride - y_shape[0])
        return self.hyperprior.hyper_encoder(F.pad(y, pad, mode="replicate") if any(pad) else y)

    def _code_z(self, y: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        """(z's bytes, z_hat as the decoder will hold it) of a latent y (1,C,h,w)."""
        z = self._z(y)
        z_bytes = self.hyperprior.entropy_bottleneck.compress(z)[0]
        return z_bytes, self.hyperprior.entropy_bottleneck.decompress([z_bytes], z.shape[-2:])

    def differentiable_bits(self, y: torch.Tensor, context: torch.Tensor | None = None,
                            noise: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(bits of z and y, y_hat) as ``encode`` would code y with rounding (latent_refinement.py):
        z and y rounded as the coder rounds them, the bits -log2 of the likelihoods the rANS tables
        approximate. The gradient is that of the uniform-noise proxy the models are trained with
        (``noise`` draws it): the rounded cost is flat between rounding steps. y_hat passes gradients
        straight through its rounding."""
        z = self._z(y)
        rounded_bits, y_hat = self._bits(bottleneck_ste(self.hyperprior.entropy_bottleneck, z), y, context,
                                         y_noise=None)
        noisy_bits, _ = self._bits(z + uniform_noise(z, noise), y, context, y_noise=uniform_noise(y, noise))
        return value_with_gradient_of(rounded_bits, noisy_bits), y_hat

    def _bits(self, z_tilde: torch.Tensor, y: torch.Tensor, context: torch.Tensor | None,
              y_noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Bits of z_tilde and of y_tilde under the parameters z_tilde gives, y_tilde = y + y_noise, or
        y rounded around its mean (straight through) when y_noise is None; and y_tilde."""
        hp = self.hyperprior
        y_shape = tuple(y.shape[-2:])
        z_bits = -torch.log2(bottleneck_likelihood(hp.entropy_bottleneck, z_tilde)).sum()
        sigma, mu = hyperprior_parameters(hp, z_tilde, context)
        sigma, mu = sigma[..., :y_shape[0], :y_shape[1]], mu[..., :y_shape[0], :y_shape[1]]
        y_tilde = quantize_ste(y - mu) + mu if y_noise is None else y + y_noise
        gc = hp.gaussian_conditional
        y_bits = -torch.log2(gc.likelihood_lower_bound(gc._likelihood(y_tilde, sigma, mu))).sum()
        return z_bits + y_bits, y_tilde

    def decode_side(self, z_bytes: bytes, y_shape: tuple[int, int],
                    context: torch.Tensor | None = None) -> EntropyParameters:
        """Decode z and derive (mu, sigma, scale_indexes) of a y of y_shape = (h, w). Split from
        decode_main so the decoder can check the desync guard before it decodes any y."""
        z_hat = self.hyperprior.entropy_bottleneck.decompress([z_bytes], self.z_shape(y_shape))
        return EntropyParameters(*self._entropy_parameters(z_hat, y_shape, context))

    def entropy_gradient(self, y_hat: torch.Tensor, params) -> torch.Tensor:
        """d/dy [-log P(y)] at y_hat (latent shift) under the likelihood y was coded with; ``params``
        has mu and sigma (EntropyParameters or CodedLatent)."""
        from vidcodec.latent_shift import entropy_gradient

        return entropy_gradient(y_hat, params.mu, params.sigma, self.y_coder is not None)

    def decode_main(self, y_bytes: bytes, params: EntropyParameters) -> torch.Tensor:
        """Decode y given its entropy parameters; returns y_hat = symbols + mu."""
        if self.y_coder is not None:
            return self.y_coder.decode(y_bytes, params.mu, params.scale_indexes)[0]
        gc = self.hyperprior.gaussian_conditional
        return gc.decompress([y_bytes], params.scale_indexes, params.mu.dtype, params.mu)


def value_with_gradient_of(value: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, ``proxy``'s gradient in the backward pass."""
    return proxy + (value - proxy).detach()


def uniform_noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U(-1/2, 1/2) noise of ``like``'s shape: the training proxy of rounding."""
    return torch.rand(like.shape, generator=generator, dtype=like.dtype) - 0.5


def bottleneck_ste(entropy_bottleneck, values: torch.Tensor) -> torch.Tensor:
    """values (N,C,h,w) rounded around the bottleneck's medians as compress() rounds them, with a
    straight-through gradient."""
    medians = entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)
    return quantize_ste(values - medians) + medians


def bottleneck_likelihood(entropy_bottleneck, values: torch.Tensor) -> torch.Tensor:
    """Likelihoods (N,C,h,w) of values under the bottleneck's per-channel densities, floored as in
    its training forward."""
    channels = values.shape[1]
    flat = values.permute(1, 0, 2, 3).reshape(channels, 1, -1)  # the bottleneck's layout
    likelihood = entropy_bottleneck.likelihood_lower_bound(entropy_bottleneck._likelihood(flat)[0])
    return likelihood.reshape(channels, values.shape[0], *values.shape[2:]).permute(1, 0, 2, 3)


def entropy_hash(scale_indexes: list[torch.Tensor], table_digests: bytes = b"") -> bytes:
    """ENTROPY_HASH_BYTES-byte hash of the scale indexes of a frame's latents, in coding order, and of
    the lattice tables in use (desync guard; bitstream/syntax.py says why that many bytes)."""
    digest = hashlib.blake2b(digest_size=4)
    for indexes in scale_indexes:
        digest.update(indexes.to(torch.int32).contiguous().numpy().tobytes())
    digest.update(table_digests)
    return digest.digest()[:ENTROPY_HASH_BYTES]  # a prefix: hashes of syntax versions 2 and 3 compare
