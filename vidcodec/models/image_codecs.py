"""Image codecs of seed 000's Table 1 as intra-only FrameCodecs (models/interface.py).

They code a picture as one I-frame: ``encode_image`` (image_coding.py) writes it, and ``--intra-model``
makes one the I-frame codec of a video whose P-frames another model codes (the inter model's state
starts from its reconstruction). Their one latent has the role "intra", so the tools attach to it
with the scope "intra" (tools.QUANT_SCOPES, SHIFT_SCOPES).

The modules and state-dict keys are CompressAI's (g_a, g_s, h_a, h_s, entropy_bottleneck,
gaussian_conditional), so CompressAI zoo files load unchanged (registry: ``--pretrained``).

  bmshj2018-factorized  Balle et al. 2018's factorized prior: one learned density per channel of y,
                no side information (entropy/factorized_coder.py). The latent shift follows that
                density's gradient; Hex/Oct-Quant code tuples within a channel with tables
                integrated over its learned density (quant/learned_tables.py).
  mbt2018-mean  Minnen et al. 2018 without the context model: a hyperprior giving a mean and a scale
                per latent element. Its y is coded by the same HyperpriorCoder as SSF's latents, so
                Hex/Oct-Quant and the latent shift apply as in the video codec.
  mbt2018       Minnen et al. 2018's joint model: the hyperprior plus a masked 5x5 context model
                over decoded latents, so y is coded position by position
                (entropy/autoregressive_coder.py); a lattice tuple groups channels of one
                position, whose parameters the context model predicts together.
  cheng2020-attn  Cheng et al. 2020: mbt2018's entropy model (with N = M) under residual and
                attention transforms; coded as mbt2018.
"""

from __future__ import annotations

import torch
from compressai.models import (
    Cheng2020Attention,
    FactorizedPrior,
    JointAutoregressiveHierarchicalPriors,
    MeanScaleHyperprior,
)

from vidcodec.entropy.autoregressive_coder import AutoregressiveCoder
from vidcodec.entropy.factorized_coder import FactorizedCoder
from vidcodec.entropy.hyperprior_coder import HyperpriorCoder, entropy_hash
from vidcodec.errors import ConfigError
from vidcodec.io.color import PictureBox
from vidcodec.models.interface import CodedFrame, FrameCodec, TrainingOutput, check_entropy_hash, check_part_count


class MeanScaleView:
    """What HyperpriorCoder reads, over the modules of a CompressAI mean-scale hyperprior: a plain
    object, so that the model's modules are not registered (and saved) twice."""

    def __init__(self, model: MeanScaleHyperprior) -> None:
        self.model = model

    @property
    def entropy_bottleneck(self):
        return self.model.entropy_bottleneck

    @property
    def gaussian_conditional(self):
        return self.model.gaussian_conditional

    def hyper_encoder(self, y: torch.Tensor) -> torch.Tensor:
        return self.model.h_a(y)

    def entropy_parameters(self, z_hat: torch.Tensor, context: torch.Tensor | None = None):
        """(scales, means) of y: h_s gives both, stacked along the channels."""
        if context is not None:
            raise ValueError("an image hyperprior takes no context")
        scales, means = self.model.h_s(z_hat).chunk(2, 1)
        return scales, means


class ImageCodec(FrameCodec):
    """The intra-only part of the FrameCodec interface, shared by the image codecs."""

    intra_part_names = ("intra_z", "intra_y")
    inter_part_names = ()
    model_name = "image codec"

    def start_state(self, x_hat: torch.Tensor) -> torch.Tensor:
        return x_hat

    def _no_p_frames(self):
        raise ConfigError(f"{self.model_name} is an image codec: it codes I-frames only. Use it with "
                          "--intra-period 1, or as --intra-model of a video model")

    def encode_inter(self, x, state, picture=None):
        self._no_p_frames()

    def decode_inter(self, parts, state, frame_shape, expected_hash, shift_indexes=()):
        self._no_p_frames()

    @staticmethod
    def parameter_role(name: str) -> str:
        return "intra"


class _HyperpriorImageCodec(ImageCodec):
    """Coding, decoding and training forward of CompressAI's hyperprior image models (mbt2018-mean,
    mbt2018, cheng2020-attn): listed first among a codec's bases, before ``compressai_class``, whose
    training forward it runs. A frame is one latent's z and y; the codec sets latent_coders."""

    pad_multiple = 16  # g_a: 4 stride-2 layers
    crop_multiple = 64  # h_a: 2 more
    compressai_class: type

    def forward(self, frames: list[torch.Tensor], stage: str = "intra") -> TrainingOutput:
        """Codes frames[0] (an image codec has the curriculum stage "intra" only)."""
        if stage != "intra":
            raise ValueError(f"stage='{stage}': {self.model_name} is an image codec, its only stage is 'intra'")
        output = self.compressai_class.forward(self, frames[0])
        return TrainingOutput([output["x_hat"]], [{"intra": output["likelihoods"]}])

    def _picture(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.g_s(y_hat).clamp(0.0, 1.0)

    @torch.no_grad()
    def encode_intra(self, x: torch.Tensor, picture: PictureBox | None = None) -> CodedFrame:
        return self.encode_single_latent("intra", self.intra_part_names, self.g_a(x), self._picture, x, picture)[0]

    @torch.no_grad()
    def decode_intra(self, parts: list[bytes], frame_shape: tuple[int, int], expected_hash: bytes,
                     shift_indexes: tuple[int, ...] = (), picture: PictureBox | None = None) -> torch.Tensor:
        y_shape = (frame_shape[0] // self.pad_multiple, frame_shape[1] // self.pad_multiple)
        return self._picture(self.decode_single_latent("intra", self.intra_part_names, "I", parts, y_shape,
                                                       expected_hash, shift_indexes))


class Mbt2018MeanCodec(_HyperpriorImageCodec, MeanScaleHyperprior):
    """CompressAI's mbt2018-mean (N, M channels; the zoo's q1..q4 are N=128, M=192)."""

    model_name = "mbt2018-mean"
    compressai_class = MeanScaleHyperprior

    def __init__(self, N: int = 128, M: int = 192) -> None:
        super().__init__(N=N, M=M)
        self.N, self.M = N, M
        self.latent_coders = {"intra": HyperpriorCoder(MeanScaleView(self), hyper_stride=4)}

    def config(self) -> dict:
        return {"N": self.N, "M": self.M}


class Bmshj2018FactorizedCodec(FactorizedPrior, ImageCodec):
    """CompressAI's bmshj2018-factorized (N, M channels; the zoo's q1..q5 are N=128, M=192). A frame
    is one part, y: a factorized prior has no z."""

    pad_multiple = 16  # g_a: 4 stride-2 layers
    crop_multiple = 16
    model_name = "bmshj2018-factorized"
    intra_part_names = ("intra_y",)

    def __init__(self, N: int = 128, M: int = 192) -> None:
        super().__init__(N=N, M=M)
        self.N, self.M = N, M
        self.latent_coders = {"intra": FactorizedCoder(self.entropy_bottleneck)}

    def config(self) -> dict:
        return {"N": self.N, "M": self.M}

    def forward(self, frames: list[torch.Tensor], stage: str = "intra") -> TrainingOutput:
        """Codes frames[0] (an image codec has the curriculum stage "intra" only)."""
        if stage != "intra":
            raise ValueError(f"stage='{stage}': {self.model_name} is an image codec, its only stage is 'intra'")
        y_hat, y_likelihoods = self.entropy_bottleneck(self.g_a(frames[0]))
        return TrainingOutput([self.g_s(y_hat)], [{"intra": {"y": y_likelihoods}}])

    def _picture(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.g_s(y_hat).clamp(0.0, 1.0)

    @torch.no_grad()
    def encode_intra(self, x: torch.Tensor, picture: PictureBox | None = None) -> CodedFrame:
        encoded = self.encode_latent("intra", self.g_a(x), self._picture, x, picture)
        latent = encoded.coded
        return CodedFrame(self.intra_part_names, [latent.y_bytes], encoded.x_hat,
                          entropy_hash([latent.scale_indexes], latent.table_digest),
                          encoded.shift_indexes, encoded.shift, latents={"intra": latent},
                          refine=encoded.refine_reports("intra"))

    @torch.no_grad()
    def decode_intra(self, parts: list[bytes], frame_shape: tuple[int, int], expected_hash: bytes,
                     shift_indexes: tuple[int, ...] = (), picture: PictureBox | None = None) -> torch.Tensor:
        check_part_count(parts, self.intra_part_names, "I")
        self.check_shift_indexes(shift_indexes, ("intra",))
        y_shape = (frame_shape[0] // self.pad_multiple, frame_shape[1] // self.pad_multiple)
        params = self.decode_side("intra", b"", y_shape)
        # No side information: the hash guards the latent's shape and the channel count.
        check_entropy_hash([params.scale_indexes], expected_hash, self.table_digest("intra", params.scale_indexes))
        return self._picture(self.decode_latent("intra", parts[0], params, shift_indexes)[0])


class _JointView(MeanScaleView):
    """What AutoregressiveCoder reads, over the modules of a CompressAI joint autoregressive model."""

    def hyper_decoder(self, z_hat: torch.Tensor) -> torch.Tensor:
        return self.model.h_s(z_hat)

    @property
    def context_prediction(self):
        return self.model.context_prediction

    @property
    def entropy_parameters(self):
        return self.model.entropy_parameters


class Mbt2018Codec(_HyperpriorImageCodec, JointAutoregressiveHierarchicalPriors):
    """CompressAI's mbt2018 (N, M channels; the zoo's q1..q4 are N=M=192)."""

    model_name = "mbt2018"
    compressai_class = JointAutoregressiveHierarchicalPriors

    def __init__(self, N: int = 192, M: int = 192) -> None:
        super().__init__(N=N, M=M)
        self.N, self.M = N, M
        self.latent_coders = {"intra": AutoregressiveCoder(_JointView(self), hyper_stride=4)}

    def config(self) -> dict:
        return {"N": self.N, "M": self.M}


class Cheng2020AttnCodec(_HyperpriorImageCodec, Cheng2020Attention):
    """CompressAI's cheng2020-attn (N channels throughout; the zoo's q1..q3 are N=128, q4..q6 N=192)."""

    model_name = "cheng2020-attn"
    compressai_class = Cheng2020Attention

    def __init__(self, N: int = 128) -> None:
        super().__init__(N=N)
        self.latent_coders = {"intra": AutoregressiveCoder(_JointView(self), hyper_stride=4)}

    def config(self) -> dict:
        return {"N": self.N}
