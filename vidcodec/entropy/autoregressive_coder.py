"""Entropy coding of a latent under a hyperprior joined with a spatial context model (Minnen et al.
2018's joint autoregressive prior: mbt2018, cheng2020-attn), with compressai's rANS coder.

The mean and scale of each latent element come from the hyperprior's parameters at its position
and a masked 5x5 convolution over the latents already decoded (above, and left on its row). So y
is coded position by position in raster order, and at each position all channels at once: the
context model predicts every channel of a position together. Encoder and decoder run the same
per-position operations on tensors of the same shapes, so they compute the same parameters bit
for bit; the training forward's whole-picture convolution is not used for coding.

With plain rounding the stream equals CompressAI's ``compress`` (symbols position by position,
channels within a position). With a lattice (entropy/lattice_coder.py) the tuples of a position
group channels whose scales are equal; the decoder knows every scale of a position before it
decodes that position, so it rebuilds the same tuples. Lattice tables join the CDF list as
positions first use them (SerialTables).

The scale indexes are known only once y is decoded: the codec checks the desync guard after
decoding y, before any picture is output (``autoregressive`` tells it so). The latent shift's
gradient uses the mean and scale each element was coded with, which the decoder computed while
decoding: parameters it has, never ones that depend on the shifted latents.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from compressai.ans import BufferedRansEncoder, RansDecoder

from vidcodec.entropy.hyperprior_coder import CodedLatent, HyperpriorCoder


@dataclass
class ContextParameters:
    """What the decoder knows of y: the hyperprior's parameters (1,2M,h,w) after decoding z; mean,
    scale and scale index of every element, and the lattice tables' digest, after decoding y."""

    hyper: torch.Tensor
    mu: torch.Tensor | None = None
    sigma: torch.Tensor | None = None
    scale_indexes: torch.Tensor | None = None
    table_digest: bytes = b""


class AutoregressiveCoder(HyperpriorCoder):
    """Codes the y (and z) of a module with entropy_bottleneck, gaussian_conditional,
    hyper_encoder(y), hyper_decoder(z_hat) -> (1,2M,h,w) parameters, context_prediction (a
    compressai MaskedConv2d) and entropy_parameters (1x1 convolutions), such as CompressAI's
    JointAutoregressiveHierarchicalPriors. z, its padding and the lattice hook (y_coder) are
    HyperpriorCoder's; y's parameters and coding are its own."""

    autoregressive = True
    refinable = False  # latent_refinement.py: no differentiable rate over the serial context model yet

    def differentiable_bits(self, y: torch.Tensor, context: torch.Tensor | None = None, noise=None):
        raise NotImplementedError("latent refinement of an autoregressive prior is not implemented")

    def _hyper_parameters(self, z_hat: torch.Tensor, y_shape: tuple[int, int]) -> torch.Tensor:
        return self.hyperprior.hyper_decoder(z_hat)[..., :y_shape[0], :y_shape[1]]

    def _serial(self, hyper: torch.Tensor, code_position) -> tuple[torch.Tensor, ContextParameters]:
        """Runs the context model position by position. ``code_position(i, j, mu, indexes)`` codes
        the position's channels (mu (C,) float32, indexes (C,) int64) and returns their y_hat (C,)."""
        hp = self.hyperprior
        context = hp.context_prediction
        kernel = context.weight.shape[-1]
        pad = kernel // 2
        channels = context.weight.shape[1]
        height, width = hyper.shape[-2:]
        y_hat = torch.zeros(1, channels, height + 2 * pad, width + 2 * pad)
        mu = torch.empty(1, channels, height, width)
        scales = torch.empty(1, channels, height, width)
        indexes = torch.empty(1, channels, height, width, dtype=torch.int32)
        masked_weight = context.weight * context.mask
        for i in range(height):
            for j in range(width):
                context_parameters = F.conv2d(y_hat[:, :, i:i + kernel, j:j + kernel], masked_weight, bias=context.bias)
                gaussian = hp.entropy_parameters(torch.cat((hyper[:, :, i:i + 1, j:j + 1], context_parameters), dim=1))
                scales_here, mu_here = gaussian.squeeze(3).squeeze(2).chunk(2, 1)
                indexes_here = hp.gaussian_conditional.build_indexes(scales_here)
                y_hat[0, :, i + pad, j + pad] = code_position(i, j, mu_here[0], indexes_here[0].to(torch.int64))
                mu[0, :, i, j], scales[0, :, i, j], indexes[0, :, i, j] = mu_here[0], scales_here[0], indexes_here[0]
        sigma = hp.gaussian_conditional.lower_bound_scale(scales)
        return y_hat[:, :, pad:pad + height, pad:pad + width], ContextParameters(hyper, mu, sigma, indexes)

    def _gaussian_tables(self):
        gc = self.hyperprior.gaussian_conditional
        return gc.quantized_cdf.tolist(), gc.cdf_length.tolist(), gc.offset.tolist()

    def encode(self, y: torch.Tensor, context: torch.Tensor | None = None) -> CodedLatent:
        """y: (1,M,h,w) float32 latent from the analysis transform."""
        if context is not None:
            raise ValueError("an autoregressive image prior takes no context")
        z_bytes, z_hat = self._code_z(y)
        hyper = self._hyper_parameters(z_hat, tuple(y.shape[-2:]))
        symbols: list[int] = []
        table_ids: list[int] = []
        tables = self.y_coder.serial_tables() if self.y_coder is not None else None

        def code_position(i, j, mu, indexes):
            if tables is None:
                y_symbols = torch.round(y[0, :, i, j] - mu)
                symbols.extend(y_symbols.to(torch.int64).tolist())
                table_ids.extend(indexes.tolist())
                return y_symbols + mu
            residual = (y[0, :, i, j] - mu).to(torch.float64)
            position_symbols, position_ids, r_hat = self.y_coder.encode_position(residual, indexes, tables)
            symbols.extend(position_symbols)
            table_ids.extend(position_ids)
            return mu + r_hat.to(mu.dtype)

        y_hat, params = self._serial(hyper, code_position)
        if tables:
            cdfs, lengths, offsets = tables.cdfs, tables.cdf_lengths, tables.offsets
        else:
            cdfs, lengths, offsets = self._gaussian_tables()
        encoder = BufferedRansEncoder()
        encoder.encode_with_indexes(symbols, table_ids, cdfs, lengths, offsets)
        return CodedLatent(z_bytes, encoder.flush(), y_hat, params.mu, params.sigma, params.scale_indexes,
                           tables.digest if tables else b"")

    def decode_side(self, z_bytes: bytes, y_shape: tuple[int, int],
                    context: torch.Tensor | None = None) -> ContextParameters:
        """Decode z: the hyperprior's part of the parameters (the rest comes with y, decode_main)."""
        if context is not None:
            raise ValueError("an autoregressive image prior takes no context")
        z_hat = self.hyperprior.entropy_bottleneck.decompress([z_bytes], self.z_shape(y_shape))
        return ContextParameters(self._hyper_parameters(z_hat, y_shape))

    def decode_main(self, y_bytes: bytes, params: ContextParameters) -> torch.Tensor:
        """Decode y position by position; fills params' mu, sigma, scale_indexes and table_digest."""
        decoder = RansDecoder()
        decoder.set_stream(y_bytes)
        tables = self.y_coder.serial_tables() if self.y_coder is not None else None
        cdfs, lengths, offsets = self._gaussian_tables() if tables is None else (None, None, None)

        def code_position(i, j, mu, indexes):
            if tables is None:
                values = decoder.decode_stream(indexes.tolist(), cdfs, lengths, offsets)
                return torch.tensor(values, dtype=mu.dtype) + mu
            return mu + self.y_coder.decode_position(decoder, indexes, tables).to(mu.dtype)

        y_hat, decoded = self._serial(params.hyper, code_position)
        params.mu, params.sigma, params.scale_indexes = decoded.mu, decoded.sigma, decoded.scale_indexes
        params.table_digest = tables.digest if tables else b""
        return y_hat

    def table_digest(self, scale_indexes: torch.Tensor) -> bytes:
        raise NotImplementedError("an autoregressive coder's table digest is known after decoding y "
                                  "(ContextParameters.table_digest)")
