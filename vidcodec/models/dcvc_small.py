"""dcvc-small: a conditional (DCVC-style) video codec small enough to train on a CPU.

After DCVC-RT's implicit-motion design (microsoft/DCVC; this is our own, much smaller code): frames
are folded to 1/8 resolution by pixel_unshuffle, and a P-frame is coded *conditionally* on the
decoder's features of the previous frame instead of as a motion-compensated residual:

  context  c = the decoder features of the previous frame (F channels at 1/8): the decoded state,
           carried from frame to frame (after an I-frame: features of its reconstruction, so any
           intra model can start it)
  encoder  y = g_a(unshuffle(x), c)                                 (C channels at 1/16)
  prior    mean and scale of y fuse the hyperprior (z through an EntropyBottleneck) with a temporal
           prior computed from c (ContextualHyperprior.entropy_parameters): the decoder has c, so
           the entropy parameters depend on decoded data only; the desync guard hashes the scale
           indexes they give
  decoder  features f = g_s(y_hat, c); x_hat = shuffle(to_pixels(f)); the next context is f

With ``reference_gate`` (registry id dcvc-small-gated) the state also holds the previous decoded picture
r and, with p = to_pixels(f), x_hat = shuffle(p + gate(f) * (unshuffle(r) - p)): a blend that keeps p
where the gate is 0 and copies the reference where it is 1. to_pixels alone makes every 8x8x3 block a
linear map of 64 features (rank 64 of 192; measured on the stand-ins, P-frames fell back to the same
~35 dB after a 38 dB x265 I-frame), while the gate lets a P-frame keep the reference's detail wherever
the features say so. The gate starts at zero, so a dcvc-small checkpoint warm-starts it with unchanged
output. A blend rather than p + gate(f) * unshuffle(r): where the content stands still (x = r), the
squared error's gradient on a blend's gate at 0 is -2 (unshuffle(r) - p)^2, always towards copying,
while an added reference also adds its brightness, so that gate only pays together with an opposite
change of p (measured: that form's gate stayed at 0.001-0.009 over 2,000 and 1,000 steps, and over 420
steps at a 10x learning rate).

With ``detail_head`` (registry id dcvc-small-detail) the P-frame picture is to_pixels(f) + detail(f), a
small non-linear 3x3 head whose last layer starts at zero (a dcvc-small checkpoint warm-starts it with
unchanged output). Why: to_pixels' rank-64 subspace caps a P-frame whatever the latent says; with the
shipped q1..q4 the best features (least squares per block, scripts/probes/picture_ceiling.py, first frame)
reach only 28.6-29.2 dB on HeldoutMandelbrot, 31.7-32.7 on testsrc2, 36.6-37.3 on smptebars and
38.6-39.4 on HeldoutAstronaut.
A non-linear map of each block's neighbourhood of features is not confined to a subspace.

The I-frame path is the same fold with a plain hyperprior. Latent roles: "intra" and "contextual";
the coding tools (lattice quantizer, latent shift) attach to "contextual" by default, the paper's
scope for DCVC. Frames are padded to multiples of 64 (1/16 for y, then two stride-2 steps for z).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from compressai.ops import quantize_ste
from torch import nn

from vidcodec.entropy.hyperprior_coder import HyperpriorCoder, hyperprior_parameters
from vidcodec.io.color import PictureBox
from vidcodec.models.interface import CodedFrame, FrameCodec, TrainingOutput

FOLD = 8  # pixel_unshuffle factor: 3 x 64 values per position
HYPER_STRIDE = 4  # two stride-2 hyper-analysis layers


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels), nn.LeakyReLU(0.1), _conv(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Hyperprior(nn.Module):
    """z = h_a(y) at 1/4 of y's resolution; mean and scale of y from z (CompressAI's interface)."""

    def __init__(self, latent: int) -> None:
        super().__init__()
        self.entropy_bottleneck = EntropyBottleneck(latent)
        self.hyper_encoder = nn.Sequential(_conv(latent, latent), nn.LeakyReLU(0.1), _conv(latent, latent, 5, 2),
                                           nn.LeakyReLU(0.1), _conv(latent, latent, 5, 2))
        self.hyper_decoder_mean = nn.Sequential(_deconv(latent, latent), nn.LeakyReLU(0.1), _deconv(latent, latent))
        self.hyper_decoder_scale = nn.Sequential(_deconv(latent, latent), nn.LeakyReLU(0.1), _deconv(latent, latent),
                                                 nn.Softplus())
        self.gaussian_conditional = GaussianConditional(None)

    def forward(self, y: torch.Tensor, context: torch.Tensor | None = None):
        z_hat, z_likelihoods = self.entropy_bottleneck(self.hyper_encoder(y))
        scales, means = hyperprior_parameters(self, z_hat, context)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means)
        return quantize_ste(y - means) + means, {"y": y_likelihoods, "z": z_likelihoods}


class ContextualHyperprior(Hyperprior):
    """A hyperprior whose mean and scale also see a temporal prior from the context features."""

    def __init__(self, latent: int, features: int) -> None:
        super().__init__(latent)
        self.temporal_prior = nn.Sequential(_conv(features, latent, 5, 2), nn.LeakyReLU(0.1), _conv(latent, 2 * latent))
        self.fuse = nn.Sequential(_conv(4 * latent, 2 * latent, 1), nn.LeakyReLU(0.1), _conv(2 * latent, 2 * latent, 1))

    def entropy_parameters(self, z_hat: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prior = self.temporal_prior(context)
        hyper = torch.cat((self.hyper_decoder_scale(z_hat), self.hyper_decoder_mean(z_hat)), dim=1)
        hyper = hyper[..., :prior.shape[-2], :prior.shape[-1]]  # z of a y padded to the hyper stride
        scales, means = self.fuse(torch.cat((hyper, prior), dim=1)).chunk(2, dim=1)
        return F.softplus(scales), means


class DcvcSmallCodec(CompressionModel, FrameCodec):
    pad_multiple = 16  # fold 8, then a stride-2 analysis
    crop_multiple = 16 * HYPER_STRIDE
    intra_part_names = ("intra_z", "intra_y")
    inter_part_names = ("contextual_z", "contextual_y")

    def __init__(self, features: int = 64, latent: int = 96, reference_gate: bool = False,
                 detail_head: bool = False) -> None:
        super().__init__()
        self.features, self.latent = features, latent
        self.reference_gate, self.detail_head = reference_gate, detail_head
        folded = 3 * FOLD * FOLD
        # I-frames
        self.intra_analysis = nn.Sequential(_conv(folded, features, 1), ResidualBlock(features),
                                            _conv(features, latent, 5, 2))
        self.intra_synthesis = nn.Sequential(_deconv(latent, features), ResidualBlock(features),
                                             _conv(features, folded, 1))
        self.intra_hyperprior = Hyperprior(latent)
        # P-frames
        self.context_from_picture = nn.Sequential(_conv(folded, features, 1), ResidualBlock(features))
        self.context_analysis = nn.Sequential(_conv(folded + features, features, 1), ResidualBlock(features),
                                              _conv(features, latent, 5, 2))
        self.context_synthesis_up = _deconv(latent, features)
        self.context_synthesis = nn.Sequential(_conv(2 * features, features), ResidualBlock(features),
                                               ResidualBlock(features))
        self.to_pixels = _conv(features, folded, 1)
        if reference_gate:
            self.gate = _conv(features, folded)
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)
        if detail_head:
            self.detail = nn.Sequential(_conv(features, features), nn.LeakyReLU(0.1), _conv(features, features),
                                        nn.LeakyReLU(0.1), _conv(features, folded, 1))
            nn.init.zeros_(self.detail[-1].weight)
            nn.init.zeros_(self.detail[-1].bias)
        self.contextual_hyperprior = ContextualHyperprior(latent, features)
        self.latent_coders = {"intra": HyperpriorCoder(self.intra_hyperprior, HYPER_STRIDE),
                              "contextual": HyperpriorCoder(self.contextual_hyperprior, HYPER_STRIDE)}

    def config(self) -> dict:
        config = {"features": self.features, "latent": self.latent}
        if self.reference_gate:
            config["reference_gate"] = True
        if self.detail_head:
            config["detail_head"] = True
        return config

    @staticmethod
    def parameter_role(name: str) -> str:
        return "intra" if name.startswith("intra_") else "inter"

    # --- synthesis, shared by encoder, decoder and training -------------------------------------
    def _intra_picture(self, y_hat: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.intra_synthesis(y_hat), FOLD).clamp(0.0, 1.0)

    def _features(self, y_hat: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.context_synthesis(torch.cat((self.context_synthesis_up(y_hat), context), dim=1))

    def _picture(self, features: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        folded = self.to_pixels(features)
        if self.detail_head:
            folded = folded + self.detail(features)
        if self.reference_gate:
            folded = folded + self.gate(features) * (F.pixel_unshuffle(reference, FOLD) - folded)
        return F.pixel_shuffle(folded, FOLD).clamp(0.0, 1.0)

    # The decoded state: the features, and with reference_gate also the picture they decoded to.
    def _state(self, features: torch.Tensor, picture: torch.Tensor):
        return (features, picture) if self.reference_gate else features

    def _split(self, state) -> tuple[torch.Tensor, torch.Tensor | None]:
        return state if self.reference_gate else (state, None)

    def _contextual_y(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.context_analysis(torch.cat((F.pixel_unshuffle(x, FOLD), context), dim=1))

    def start_state(self, x_hat: torch.Tensor):
        return self._state(self.context_from_picture(F.pixel_unshuffle(x_hat, FOLD)), x_hat)

    # --- training ---------------------------------------------------------------------------------
    def forward(self, frames: list[torch.Tensor], stage: str = "chains") -> TrainingOutput:
        """Curriculum stages (train/curriculum.py): "intra" codes frames[0]; "pairs" codes frames[1]
        against the state of frames[0] as it is; "p-chains" codes frames[1:] that way, each against the
        previous one's state; "chains" codes I, P, P, ..."""
        if stage not in ("intra", "pairs", "p-chains", "chains"):
            raise ValueError(f"stage='{stage}' (expected intra, pairs, p-chains or chains)")
        outputs = TrainingOutput([], [])
        if stage in ("pairs", "p-chains"):
            state = self.start_state(frames[0])
        else:
            y_hat, likelihoods = self.intra_hyperprior(self.intra_analysis(F.pixel_unshuffle(frames[0], FOLD)))
            x_hat = self._intra_picture(y_hat)
            outputs.x_hat.append(x_hat)
            outputs.likelihoods.append({"intra": likelihoods})
            if stage == "intra":
                return outputs
            state = self.start_state(x_hat)
        for x in frames[1:2] if stage == "pairs" else frames[1:]:
            context, reference = self._split(state)
            y_hat, likelihoods = self.contextual_hyperprior(self._contextual_y(x, context), context)
            context = self._features(y_hat, context)
            x_hat = self._picture(context, reference)
            state = self._state(context, x_hat)
            outputs.x_hat.append(x_hat)
            outputs.likelihoods.append({"contextual": likelihoods})
        return outputs

    # --- coding -------------------------------------------------------------------------------------
    def _y_shape(self, frame_shape: tuple[int, int]) -> tuple[int, int]:
        return frame_shape[0] // self.pad_multiple, frame_shape[1] // self.pad_multiple

    @torch.no_grad()
    def encode_intra(self, x: torch.Tensor, picture: PictureBox | None = None) -> CodedFrame:
        y = self.intra_analysis(F.pixel_unshuffle(x, FOLD))
        return self.encode_single_latent("intra", self.intra_part_names, y, self._intra_picture, x, picture)[0]

    @torch.no_grad()
    def decode_intra(self, parts: list[bytes], frame_shape: tuple[int, int], expected_hash: bytes,
                     shift_indexes: tuple[int, ...] = (), picture: PictureBox | None = None) -> torch.Tensor:
        return self._intra_picture(self.decode_single_latent("intra", self.intra_part_names, "I", parts,
                                                             self._y_shape(frame_shape), expected_hash, shift_indexes))

    @torch.no_grad()
    def encode_inter(self, x: torch.Tensor, state, picture: PictureBox | None = None) -> CodedFrame:
        context, reference = self._split(state)

        def synthesize(y_hat: torch.Tensor) -> torch.Tensor:
            return self._picture(self._features(y_hat, context), reference)

        frame, encoded = self.encode_single_latent("contextual", self.inter_part_names,
                                                   self._contextual_y(x, context), synthesize, x, picture,
                                                   context=context)
        # The next state from the latent as the decoder will hold it (shifted when it is); frame.x_hat
        # is synthesize(that latent).
        frame.state = self._state(self._features(encoded.y_hat, context), frame.x_hat)
        return frame

    @torch.no_grad()
    def decode_inter(self, parts: list[bytes], state, frame_shape: tuple[int, int],
                     expected_hash: bytes, shift_indexes: tuple[int, ...] = ()) -> tuple[torch.Tensor, object]:
        context, reference = self._split(state)
        y_hat = self.decode_single_latent("contextual", self.inter_part_names, "P", parts, self._y_shape(frame_shape),
                                          expected_hash, shift_indexes, context=context)
        features = self._features(y_hat, context)
        x_hat = self._picture(features, reference)
        return x_hat, self._state(features, x_hat)
