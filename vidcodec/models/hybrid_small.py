"""hybrid-small: block motion compensation in the pixel domain plus a learned residual codec.

The P-frame path of a classical hybrid codec with learned transforms (SSF's structure, with the flow
network replaced by a block search):

  motion     mv = block search of x against the decoded reference r (motion/block_motion.py; encoder
             only), one quarter-pel vector per 16x16 block, coded by entropy/motion_coder.py
  prediction p = r sampled at the vectors, full resolution, the same on both sides
  residual   y = g_a(x - p + 1/2), coded by a mean-scale hyperprior (role "residual", so the lattice
             quantizers and the latent shift attach to it as to SSF's residual)
  picture    x_hat = clamp(p + g_s(y_hat) - 1/2)

Why this shape: dcvc-small's P-frames saw their reference only through 64 features per 8x8x3 block,
so a frame coded against itself still cost 43-64% of an I-frame (README). Here the decoder holds the
reference pixels and the prediction is added back, so "nothing changed" costs the motion field only:
the encoder codes the residual only when it pays (``lmbda`` x 255^2 x MSE + bpp of the frame with and
without it, the training loss), and a frame whose residual is skipped sends two empty parts.

The offset 1/2 lets the residual codec start from an image codec's weights (mbt2018-mean-small,
scripts/train/init_hybrid_small.py): a zero residual is a flat mid-grey picture to it, which it codes
cheaply and decodes to about 1/2. Training on residuals (configs/train/hybrid-small-pairs.yaml) then
teaches it their statistics. The I-frame path is a second mean-scale hyperprior (role "intra").
Frames are padded to multiples of 16 (g_a's stride; the motion blocks are 16x16 too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.models import CompressionModel, MeanScaleHyperprior

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.entropy import motion_coder
from vidcodec.entropy.hyperprior_coder import HyperpriorCoder, entropy_hash
from vidcodec.io.color import PictureBox
from vidcodec.models.image_codecs import MeanScaleView
from vidcodec.models.interface import CodedFrame, FrameCodec, TrainingOutput, check_part_count
from vidcodec.motion import block_motion, global_motion, weighted_prediction

BLOCK = 16  # pixels per side of the smallest motion block
# Block sizes the encoder chooses from per frame (2-bit code in the flags byte): larger blocks send
# a sixteenth of the vectors where the motion is smooth or the rate is low.
BLOCK_SIZES = (16, 32, 64)
BLOCK_SIZE_SHIFT = 2  # flags bits 2-3: index into BLOCK_SIZES
RESIDUAL_OFFSET = 0.5  # a zero residual is mid-grey to the residual codec
# Bits of the motion part's first byte. After it: the weighted prediction's two bytes when flagged,
# the global motion's parameters when flagged, then the block field (as deviations from the global
# motion's field when flagged; motion_coder.py).
FLAG_RESIDUAL_CODED = 1
FLAG_GLOBAL_MOTION = 2
FLAG_WEIGHTED_PREDICTION = 16


class HybridSmallCodec(CompressionModel, FrameCodec):
    pad_multiple = 16  # g_a: 4 stride-2 layers; motion blocks of 16
    crop_multiple = 64  # h_a: 2 more
    intra_part_names = ("intra_z", "intra_y")
    inter_part_names = ("motion_y", "residual_z", "residual_y")  # motion_y: the block motion field
    #: "rd": the encoder codes the residual when it lowers the frame's rate-distortion cost; "always":
    #: it always does (ablations of the skip, and tests of the residual path with untrained weights).
    residual_decision = "rd"

    def __init__(self, N: int = 64, M: int = 96, lmbda: float = 0.0067, coarse_range: int = 8) -> None:
        """N, M: channels of both hyperpriors (CompressAI's names); lmbda: the rate-distortion
        trade-off of the encoder's residual decision (the training lambda of the rate point);
        coarse_range: motion search range at 1/4 resolution (+-4 x coarse_range pixels)."""
        super().__init__()
        self.N, self.M, self.lmbda, self.coarse_range = N, M, lmbda, coarse_range
        self.intra = MeanScaleHyperprior(N=N, M=M)
        self.residual = MeanScaleHyperprior(N=N, M=M)
        self.latent_coders = {"intra": HyperpriorCoder(MeanScaleView(self.intra), hyper_stride=4),
                              "residual": HyperpriorCoder(MeanScaleView(self.residual), hyper_stride=4)}

    def config(self) -> dict:
        return {"N": self.N, "M": self.M, "lmbda": self.lmbda, "coarse_range": self.coarse_range}

    @classmethod
    def from_image_codec(cls, image_codec: MeanScaleHyperprior, lmbda: float) -> HybridSmallCodec:
        """Both hyperpriors from a trained mean-scale image codec (mbt2018-mean-small) and the encoder's
        lambda from its training: the starting point of training, and the weights shipped until a
        trained residual beats them (registry: derived_from)."""
        codec = cls(N=image_codec.N, M=image_codec.M, lmbda=lmbda)
        weights = image_codec.state_dict()
        codec.intra.load_state_dict(weights)
        codec.residual.load_state_dict(weights)
        codec.update(force=False)
        return codec.eval()

    @staticmethod
    def parameter_role(name: str) -> str:
        return "intra" if name.startswith("intra.") else "inter"

    # --- shared by encoder, decoder and training ----------------------------------------------
    def _intra_picture(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.intra.g_s(y_hat).clamp(0.0, 1.0)

    @staticmethod
    def _residual_input(x: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        return x - prediction + RESIDUAL_OFFSET

    def _picture(self, prediction: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        return self._with_residual(prediction, self.residual.g_s(y_hat))

    @staticmethod
    def _with_residual(prediction: torch.Tensor, residual_picture: torch.Tensor) -> torch.Tensor:
        """The decoded frame: the prediction plus the residual codec's picture less its offset."""
        return (prediction + residual_picture - RESIDUAL_OFFSET).clamp(0.0, 1.0)

    def _motion(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Block vectors only (training: a global model changes the bits, hardly the prediction)."""
        return block_motion.search(x, reference, BLOCK, self.coarse_range, self.lmbda)

    def _coded_motion(self, x: torch.Tensor, reference: torch.Tensor) -> tuple[int, bytes, torch.Tensor]:
        """(flags, bytes, prediction) of the cheapest motion by rate-distortion cost of the prediction:
        a block size of BLOCK_SIZES (the larger ones from the 16x16 search's field, pooled and
        refined), each alone and against a global affine model fitted to the 16x16 field, then a gain
        and offset."""
        field16 = self._motion(x, reference)
        frame_shape = tuple(x.shape[-2:])
        # one camera model for every block size (a zoom is often best coded as large blocks on it)
        parameters = global_motion.fit(field16, BLOCK, frame_shape)
        fine = global_motion.field(parameters, frame_shape, 1)
        with_global = any(parameters)
        # room for any block's vector on top of the model (the deviations a polish may choose)
        reach = int(field16.abs().max()) + (int(fine.abs().max()) if with_global else 0)
        context = block_motion.SearchContext(x, reference, self.lmbda, reach)
        options = []  # (flags, block, data, field, fine)
        for size_code, block in enumerate(BLOCK_SIZES):
            if block == BLOCK:
                mv = field16
            else:
                mv = block_motion.pooled(field16, block // BLOCK)
                mv = context.polish(mv, torch.zeros_like(mv), block, steps=(4, 2, 1))
            options.append((size_code << BLOCK_SIZE_SHIFT, block, motion_coder.encode(mv), mv, None))
            if with_global:
                base = global_motion.field(parameters, frame_shape, block)
                # the decoder predicts with the deviations from base plus the model per pixel
                deviation = context.polish(mv, base, block, fine=fine) - base
                options.append((size_code << BLOCK_SIZE_SHIFT | FLAG_GLOBAL_MOTION, block,
                                global_motion.to_bytes(parameters) + motion_coder.encode(deviation), deviation, fine))
        # ranked on the colour prediction: ranking on the grey search picture lost 33% BD-rate on a
        # colourful zoom (HeldoutMandelbrot)
        best = None
        for flags, block, data, field, field_fine in options:
            prediction = block_motion.predict(reference, field, block, field_fine)
            cost = self._prediction_cost(x, prediction, data)
            if best is None or cost < best[0]:
                best = (cost, flags, data, prediction)
        cost, flags, data, prediction = best
        codes = weighted_prediction.fit(x, prediction)
        if any(codes):
            weighted = weighted_prediction.apply(prediction, codes)
            weighted_data = weighted_prediction.to_bytes(codes) + data
            if self._prediction_cost(x, weighted, weighted_data) < cost:
                return flags | FLAG_WEIGHTED_PREDICTION, weighted_data, weighted
        return flags, data, prediction

    def _prediction_cost(self, x: torch.Tensor, prediction: torch.Tensor, data: bytes) -> float:
        """The training loss of the frame were it the prediction (over the whole padded frame)."""
        return self._rd_cost(x, prediction, len(data), PictureBox.whole(x))

    def _decoded_motion(self, flags: int, data: bytes, reference: torch.Tensor,
                        frame_shape: tuple[int, int]) -> torch.Tensor:
        """The prediction from the motion part (after its flags byte)."""
        size_code = (flags >> BLOCK_SIZE_SHIFT) & 3
        if size_code >= len(BLOCK_SIZES):
            raise BitstreamError(f"P-frame motion part: block size code {size_code} "
                                 f"(expected 0..{len(BLOCK_SIZES) - 1})")
        block = BLOCK_SIZES[size_code]
        blocks = block_motion.blocks_of(frame_shape, block)
        codes = None
        if flags & FLAG_WEIGHTED_PREDICTION:
            if len(data) < weighted_prediction.PARAMETER_BYTES:
                raise BitstreamError(f"P-frame motion part: {len(data)} bytes, shorter than the weighted "
                                     f"prediction's {weighted_prediction.PARAMETER_BYTES}")
            codes = weighted_prediction.from_bytes(data)
            data = data[weighted_prediction.PARAMETER_BYTES:]
        if flags & FLAG_GLOBAL_MOTION:
            if len(data) < global_motion.PARAMETER_BYTES:
                raise BitstreamError(f"P-frame motion part: {len(data)} bytes, shorter than the global motion's "
                                     f"{global_motion.PARAMETER_BYTES}")
            parameters = global_motion.from_bytes(data)
            fine = global_motion.field(parameters, frame_shape, 1)
            mv = motion_coder.decode(data[global_motion.PARAMETER_BYTES:], blocks)
        else:
            fine, mv = None, motion_coder.decode(data, blocks)
        prediction = block_motion.predict(reference, mv, block, fine)
        return weighted_prediction.apply(prediction, codes) if codes else prediction

    def start_state(self, x_hat: torch.Tensor) -> torch.Tensor:
        return x_hat  # the decoded picture is the whole state

    # --- training ---------------------------------------------------------------------------------
    def forward(self, frames: list[torch.Tensor], stage: str = "chains") -> TrainingOutput:
        """Curriculum stages as dcvc-small's (train/curriculum.py). The motion search runs on the
        reference each P-frame is coded against (no gradient: it is not learned)."""
        if stage not in ("intra", "pairs", "p-chains", "chains"):
            raise ValueError(f"stage='{stage}' (expected intra, pairs, p-chains or chains)")
        outputs = TrainingOutput([], [])
        if stage in ("pairs", "p-chains"):
            reference = frames[0]
        else:
            intra = self.intra(frames[0])
            reference = intra["x_hat"].clamp(0.0, 1.0)
            outputs.x_hat.append(reference)
            outputs.likelihoods.append({"intra": intra["likelihoods"]})
            if stage == "intra":
                return outputs
        for x in frames[1:2] if stage == "pairs" else frames[1:]:
            prediction = block_motion.predict(reference, self._motion(x, reference.detach()), BLOCK)
            coded = self.residual(self._residual_input(x, prediction))
            x_hat = self._with_residual(prediction, coded["x_hat"])
            outputs.x_hat.append(x_hat)
            outputs.likelihoods.append({"residual": coded["likelihoods"]})
            reference = x_hat
        return outputs

    # --- coding -------------------------------------------------------------------------------------
    def _y_shape(self, frame_shape: tuple[int, int]) -> tuple[int, int]:
        return frame_shape[0] // self.pad_multiple, frame_shape[1] // self.pad_multiple

    @torch.no_grad()
    def encode_intra(self, x: torch.Tensor, picture: PictureBox | None = None) -> CodedFrame:
        return self.encode_single_latent("intra", self.intra_part_names, self.intra.g_a(x), self._intra_picture,
                                         x, picture)[0]

    @torch.no_grad()
    def decode_intra(self, parts: list[bytes], frame_shape: tuple[int, int], expected_hash: bytes,
                     shift_indexes: tuple[int, ...] = (), picture: PictureBox | None = None) -> torch.Tensor:
        return self._intra_picture(self.decode_single_latent("intra", self.intra_part_names, "I", parts,
                                                             self._y_shape(frame_shape), expected_hash, shift_indexes))

    def _rd_cost(self, x: torch.Tensor, x_hat: torch.Tensor, num_bytes: int, picture: PictureBox) -> float:
        """The training loss of one frame: lmbda x 255^2 x MSE + bpp, over the picture."""
        mse = F.mse_loss(picture.crop(x_hat), picture.crop(x)).item()
        return self.lmbda * 255**2 * mse + 8.0 * num_bytes / (picture.height * picture.width)

    @torch.no_grad()
    def encode_inter(self, x: torch.Tensor, state: torch.Tensor, picture: PictureBox | None = None) -> CodedFrame:
        picture = picture or PictureBox.whole(x)
        motion_flags, motion_bytes, prediction = self._coded_motion(x, state)
        coded, _ = self.encode_single_latent(
            "residual", self.inter_part_names[1:], self.residual.g_a(self._residual_input(x, prediction)),
            lambda y_hat: self._picture(prediction, y_hat), x, picture)
        skipped = prediction.clamp(0.0, 1.0)
        coded_cost = self._rd_cost(x, coded.x_hat, 1 + len(motion_bytes) + sum(map(len, coded.parts)), picture)
        if self.residual_decision == "always" or coded_cost < self._rd_cost(x, skipped, 1 + len(motion_bytes), picture):
            coded.part_names = self.inter_part_names
            coded.parts = [bytes([motion_flags | FLAG_RESIDUAL_CODED]) + motion_bytes, *coded.parts]
            coded.state = coded.x_hat
            return coded
        # the residual is not worth its bits: the frame is the prediction, with no latent to shift (the
        # frame header then carries no shift index: --latent-shift costs such a frame nothing)
        return CodedFrame(self.inter_part_names, [bytes([motion_flags]) + motion_bytes, b"", b""], skipped,
                          entropy_hash([]), (), state=skipped)

    @torch.no_grad()
    def decode_inter(self, parts: list[bytes], state: torch.Tensor, frame_shape: tuple[int, int],
                     expected_hash: bytes, shift_indexes: tuple[int, ...] = ()) -> tuple[torch.Tensor, object]:
        check_part_count(parts, self.inter_part_names, "P")
        known = FLAG_RESIDUAL_CODED | FLAG_GLOBAL_MOTION | 3 << BLOCK_SIZE_SHIFT | FLAG_WEIGHTED_PREDICTION
        if not parts[0] or parts[0][0] & ~known:
            raise BitstreamError(f"P-frame motion part: flags byte {parts[0][:1].hex() or 'missing'} "
                                 f"(known bits {known:02x})")
        flags = parts[0][0]
        prediction = self._decoded_motion(flags, parts[0][1:], state, frame_shape)
        if flags & FLAG_RESIDUAL_CODED:
            y_hat = self.decode_single_latent("residual", self.inter_part_names[1:], "P", parts[1:],
                                              self._y_shape(frame_shape), expected_hash, shift_indexes)
            x_hat = self._picture(prediction, y_hat)
            return x_hat, x_hat
        if parts[1] or parts[2]:
            raise BitstreamError("P-frame without a residual carries residual bytes")
        self.check_shift_indexes(shift_indexes, ())  # no latent, no shift index
        if expected_hash != entropy_hash([]):
            raise BitstreamError("P-frame without a residual: its entropy hash is not that of no latent")
        x_hat = prediction.clamp(0.0, 1.0)
        return x_hat, x_hat
