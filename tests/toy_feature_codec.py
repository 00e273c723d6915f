"""A deliberately different model family, for tests only: a conditional (DCVC-style) toy codec whose
decoded state is a feature buffer, not a picture.

  I-frame   y = intra_analysis(x), x_hat = intra_synthesis(y_hat)          latent role "intra"
  state     features = state_update(x_hat, previous features)  (4 channels at full resolution;
            it carries history, so it is not a function of the last picture alone)
  P-frame   y = context_analysis(x, features), x_hat = context_synthesis(y_hat) + to_picture(features)
                                                                           latent role "contextual"

Tools reach it only through its latent roles (FrameCodec.attach_tools): with ``quant_scope``
residual, the contextual latent is lattice-coded and shifted, as SSF's residual latent is.
"""

from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from compressai.ops import quantize_ste
from torch import nn

from vidcodec.entropy.hyperprior_coder import HyperpriorCoder, entropy_hash
from vidcodec.models.interface import CodedFrame, FrameCodec, TrainingOutput, check_entropy_hash, check_part_count

# Analysis/synthesis latents are scaled up so that random weights give latents of several
# quantization steps (a toy that is never trained would otherwise code all zeros).
LATENT_GAIN = 8.0


def _down(cin: int, cout: int) -> nn.Module:
    return nn.Conv2d(cin, cout, 5, stride=2, padding=2)


def _up(cin: int, cout: int) -> nn.Module:
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


class ToyHyperprior(nn.Module):
    """The CompressAI-style hyperprior module the interface expects (two stride-2 steps)."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.entropy_bottleneck = EntropyBottleneck(planes)
        self.hyper_encoder = nn.Sequential(_down(planes, planes), nn.ReLU(), _down(planes, planes))
        self.hyper_decoder_mean = nn.Sequential(_up(planes, planes), nn.ReLU(), _up(planes, planes))
        self.hyper_decoder_scale = nn.Sequential(_up(planes, planes), nn.ReLU(), _up(planes, planes), nn.ReLU())
        self.gaussian_conditional = GaussianConditional(None)

    def forward(self, y: torch.Tensor):
        z_hat, z_likelihoods = self.entropy_bottleneck(self.hyper_encoder(y))
        scales, means = self.hyper_decoder_scale(z_hat), self.hyper_decoder_mean(z_hat)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means)
        return quantize_ste(y - means) + means, {"y": y_likelihoods, "z": z_likelihoods}


class ToyFeatureCodec(CompressionModel, FrameCodec):
    # 4 stride-2 analysis steps need 16; 32 differs from SSF's 16, so that a stream with both shows the
    # header's pad_multiple as the least common multiple of the two.
    pad_multiple = 32
    crop_multiple = 64  # then 2 in the hyperprior
    intra_part_names = ("intra_z", "intra_y")
    inter_part_names = ("contextual_z", "contextual_y")

    def __init__(self, planes: int = 8, feature_planes: int = 4) -> None:
        super().__init__()
        self.planes, self.feature_planes = planes, feature_planes
        self.intra_analysis = nn.Sequential(_down(3, planes), nn.ReLU(), _down(planes, planes), nn.ReLU(),
                                            _down(planes, planes), nn.ReLU(), _down(planes, planes))
        self.intra_synthesis = nn.Sequential(_up(planes, planes), nn.ReLU(), _up(planes, planes), nn.ReLU(),
                                             _up(planes, planes), nn.ReLU(), _up(planes, 3))
        self.intra_hyperprior = ToyHyperprior(planes)
        self.state_update = nn.Conv2d(3 + feature_planes, feature_planes, 3, padding=1)
        self.to_picture = nn.Conv2d(feature_planes, 3, 1)
        self.context_analysis = nn.Sequential(_down(3 + feature_planes, planes), nn.ReLU(), _down(planes, planes),
                                              nn.ReLU(), _down(planes, planes), nn.ReLU(), _down(planes, planes))
        self.context_synthesis = nn.Sequential(_up(planes, planes), nn.ReLU(), _up(planes, planes), nn.ReLU(),
                                               _up(planes, planes), nn.ReLU(), _up(planes, 3))
        self.context_hyperprior = ToyHyperprior(planes)
        self.latent_coders = {"intra": HyperpriorCoder(self.intra_hyperprior, hyper_stride=4),
                              "contextual": HyperpriorCoder(self.context_hyperprior, hyper_stride=4)}

    def config(self) -> dict:
        return {"planes": self.planes, "feature_planes": self.feature_planes}

    @staticmethod
    def parameter_role(name: str) -> str:
        return "intra" if name.startswith("intra_") else "inter"

    # --- shared by encoder and decoder ---------------------------------------------------------
    def _intra_picture(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.intra_synthesis(y_hat / LATENT_GAIN).clamp(0.0, 1.0)

    def _context_picture(self, y_hat: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return (self.context_synthesis(y_hat / LATENT_GAIN) + self.to_picture(features)).clamp(0.0, 1.0)

    def _next_state(self, x_hat: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.state_update(torch.cat((x_hat, features), dim=1))) + 0.5 * features

    def start_state(self, x_hat: torch.Tensor) -> torch.Tensor:
        return self._next_state(x_hat, x_hat.new_zeros(x_hat.shape[0], self.feature_planes, *x_hat.shape[-2:]))

    # --- training --------------------------------------------------------------------------------
    def forward(self, frames: list[torch.Tensor], stage: str = "chains") -> TrainingOutput:
        y_hat, likelihoods = self.intra_hyperprior(self.intra_analysis(frames[0]) * LATENT_GAIN)
        x_hat = self._intra_picture(y_hat)
        outputs = TrainingOutput([x_hat], [{"intra": likelihoods}])
        if stage == "intra":
            return outputs
        state = self.start_state(x_hat if stage == "chains" else frames[0])
        for x in frames[1:]:
            y = self.context_analysis(torch.cat((x, state), dim=1)) * LATENT_GAIN
            y_hat, likelihoods = self.context_hyperprior(y)
            x_hat = self._context_picture(y_hat, state)
            state = self._next_state(x_hat, state)
            outputs.x_hat.append(x_hat)
            outputs.likelihoods.append({"contextual": likelihoods})
        if stage == "pairs":
            return TrainingOutput(outputs.x_hat[1:2], outputs.likelihoods[1:2])
        return outputs

    # --- coding ---------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_intra(self, x: torch.Tensor, picture=None) -> CodedFrame:
        encoded = self.encode_latent("intra", self.intra_analysis(x) * LATENT_GAIN, self._intra_picture, x,
                                     picture)
        latent = encoded.coded
        return CodedFrame(self.intra_part_names, [latent.z_bytes, latent.y_bytes], encoded.x_hat,
                          entropy_hash([latent.scale_indexes], latent.table_digest), encoded.shift_indexes,
                          encoded.shift)

    @torch.no_grad()
    def decode_intra(self, parts, frame_shape, expected_hash, shift_indexes=(), picture=None) -> torch.Tensor:
        check_part_count(parts, self.intra_part_names, "I")
        self.check_shift_indexes(shift_indexes, ("intra",))
        params = self.decode_side("intra", parts[0], self._y_shape(frame_shape))
        check_entropy_hash([params.scale_indexes], expected_hash, self.table_digest("intra", params.scale_indexes))
        y_hat, _ = self.decode_latent("intra", parts[1], params, shift_indexes)
        return self._intra_picture(y_hat)

    @torch.no_grad()
    def encode_inter(self, x: torch.Tensor, state: torch.Tensor, picture=None) -> CodedFrame:
        y = self.context_analysis(torch.cat((x, state), dim=1)) * LATENT_GAIN
        encoded = self.encode_latent("contextual", y, lambda y_hat: self._context_picture(y_hat, state), x,
                                     picture)
        latent = encoded.coded
        return CodedFrame(self.inter_part_names, [latent.z_bytes, latent.y_bytes], encoded.x_hat,
                          entropy_hash([latent.scale_indexes], latent.table_digest), encoded.shift_indexes,
                          encoded.shift, state=self._next_state(encoded.x_hat, state))

    @torch.no_grad()
    def decode_inter(self, parts, state, frame_shape, expected_hash, shift_indexes=()):
        check_part_count(parts, self.inter_part_names, "P")
        self.check_shift_indexes(shift_indexes, ("contextual",))
        params = self.decode_side("contextual", parts[0], self._y_shape(frame_shape))
        check_entropy_hash([params.scale_indexes], expected_hash,
                           self.table_digest("contextual", params.scale_indexes))
        y_hat, _ = self.decode_latent("contextual", parts[1], params, shift_indexes)
        x_hat = self._context_picture(y_hat, state)
        return x_hat, self._next_state(x_hat, state)

    def _y_shape(self, frame_shape: tuple[int, int]) -> tuple[int, int]:
        return frame_shape[0] // 16, frame_shape[1] // 16
