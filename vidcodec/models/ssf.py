"""Scale-space flow (Agustsson et al., CVPR 2020) as a FrameCodec, on CompressAI's ScaleSpaceFlow.

``ScaleSpaceFlowCodec()`` with default widths is exactly CompressAI's ``ssf2020`` architecture (same
modules, same state-dict keys, loads the zoo weights). Other widths rebuild the same sub-networks
(CompressAI's own Encoder / Decoder / Hyperprior classes) with fewer channels, for CPU training.

Training uses CompressAI's ``forward(frames)``; coding goes through HyperpriorCoder so that the
encoder's reconstruction is built from the decoded latents only (bit-exact with the decoder). The
decoded state is the previous reconstruction (a picture); the latents' roles are intra, motion and
residual.
"""

from __future__ import annotations

import torch
from compressai.models.video import ScaleSpaceFlow

from vidcodec.entropy.hyperprior_coder import HyperpriorCoder, entropy_hash
from vidcodec.io.color import PictureBox
from vidcodec.models.interface import CodedFrame, FrameCodec, TrainingOutput, check_entropy_hash, check_part_count

SSF_MID_PLANES = 128
SSF_LATENT_PLANES = 192
HYPER_STRIDE = 8  # 3 stride-2 hyper-analysis layers


class ScaleSpaceFlowCodec(ScaleSpaceFlow, FrameCodec):
    """SSF with configurable widths.

    mid_planes: channels of the hidden layers of the analysis/synthesis transforms.
    latent_planes: channels of y (and of the hyperprior's z and hidden layers).
    flow_in_pixels: CompressAI's SSF expresses flow in grid_sample's normalized [-1, 1] coordinates,
        so a model trained on 256x256 crops predicts motion mis-scaled at 1080p (CompressAI issue
        307). With True the motion decoder's flow is in pixels and converted here, so the motion
        model does not depend on the frame size. False for "ssf" (the zoo weights need it).
    """

    # 4 stride-2 analysis layers (pictures: multiples of 16) then 3 stride-2 hyper-analysis layers.
    pad_multiple = 16
    crop_multiple = 128
    intra_part_names = ("intra_z", "intra_y")
    inter_part_names = ("motion_z", "motion_y", "residual_z", "residual_y")

    def __init__(
        self,
        mid_planes: int = SSF_MID_PLANES,
        latent_planes: int = SSF_LATENT_PLANES,
        num_levels: int = 5,
        sigma0: float = 1.5,
        scale_field_shift: float = 1.0,
        flow_in_pixels: bool = False,
    ) -> None:
        super().__init__(num_levels=num_levels, sigma0=sigma0, scale_field_shift=scale_field_shift)
        self.mid_planes = mid_planes
        self.latent_planes = latent_planes
        self.flow_in_pixels = flow_in_pixels
        if (mid_planes, latent_planes) != (SSF_MID_PLANES, SSF_LATENT_PLANES):
            self._rebuild_with_widths(mid_planes, latent_planes)
        self.latent_coders = {
            "intra": HyperpriorCoder(self.img_hyperprior, HYPER_STRIDE),
            "motion": HyperpriorCoder(self.motion_hyperprior, HYPER_STRIDE),
            "residual": HyperpriorCoder(self.res_hyperprior, HYPER_STRIDE),
        }

    def _rebuild_with_widths(self, mid: int, latent: int) -> None:
        # CompressAI defines these classes inside ScaleSpaceFlow.__init__; reuse them through the
        # instances so that the structure stays exactly CompressAI's.
        encoder_cls = type(self.img_encoder)
        decoder_cls = type(self.img_decoder)
        hyperprior_cls = type(self.img_hyperprior)
        self.img_encoder = encoder_cls(3, mid, latent)
        self.img_decoder = decoder_cls(3, latent, mid)
        self.img_hyperprior = hyperprior_cls(latent, latent)
        self.res_encoder = encoder_cls(3, mid, latent)
        self.res_decoder = decoder_cls(3, 2 * latent, mid)
        self.res_hyperprior = hyperprior_cls(latent, latent)
        self.motion_encoder = encoder_cls(2 * 3, mid, latent)
        self.motion_decoder = decoder_cls(2 + 1, latent, mid)
        self.motion_hyperprior = hyperprior_cls(latent, latent)

    def config(self) -> dict:
        """Constructor arguments, stored in checkpoints to rebuild the model."""
        return {
            "mid_planes": self.mid_planes,
            "latent_planes": self.latent_planes,
            "num_levels": self.num_levels,
            "sigma0": self.sigma0,
            "scale_field_shift": self.scale_field_shift,
            "flow_in_pixels": self.flow_in_pixels,
        }

    def forward_prediction(self, x_ref: torch.Tensor, motion_info: torch.Tensor) -> torch.Tensor:
        """Warp the scale-space volume of x_ref by (flow_x, flow_y, scale) = motion_info (N,3,H,W)."""
        if self.flow_in_pixels:
            height, width = x_ref.shape[-2:]
            # grid_sample spans [-1, 1] over the frame: one pixel is 2/W horizontally, 2/H vertically.
            to_normalized = motion_info.new_tensor([2.0 / width, 2.0 / height, 1.0]).view(1, 3, 1, 1)
            motion_info = motion_info * to_normalized
        return super().forward_prediction(x_ref, motion_info)

    # --- training ------------------------------------------------------------------------------
    def forward(self, frames: list[torch.Tensor], stage: str = "chains") -> TrainingOutput:
        """Training forward of one curriculum stage (train/curriculum.py); frames: list of (N,3,H,W)
        float in [0,1]. "intra" codes frames[0] as an I-frame; "pairs" codes frames[1] as a P-frame
        against frames[0] as it is; "p-chains" codes frames[1:] so, each against the previous
        reconstruction; "chains" is CompressAI's I, P, P, ... against own reconstructions. Here in
        forward() (DDP only hooks forward()), stage as a keyword."""
        if stage == "intra":
            x_hat, likelihoods = self.forward_keyframe(frames[0])
            return TrainingOutput([x_hat], [{"intra": likelihoods["keyframe"]}])
        if stage in ("pairs", "p-chains"):
            outputs, reference = TrainingOutput([], []), frames[0]
            for x in frames[1:2] if stage == "pairs" else frames[1:]:
                reference, likelihoods = self.forward_inter(x, reference)
                outputs.x_hat.append(reference)
                outputs.likelihoods.append(likelihoods)
            return outputs
        if stage == "chains":
            out = super().forward(frames)
            by_role = [{"intra": out["likelihoods"][0]["keyframe"]}] + out["likelihoods"][1:]
            return TrainingOutput(out["x_hat"], by_role)
        raise ValueError(f"stage='{stage}' (expected intra, pairs, p-chains or chains)")

    @staticmethod
    def parameter_role(name: str) -> str:
        """'intra' for the I-frame path's parameters, 'inter' for motion and residual ones."""
        return "intra" if name.startswith("img_") else "inter"

    # --- shapes ---------------------------------------------------------------------------
    def _y_shape(self, frame_shape: tuple[int, int]) -> tuple[int, int]:
        return frame_shape[0] // self.pad_multiple, frame_shape[1] // self.pad_multiple

    # --- synthesis shared by encoder and decoder (the only place reconstructions are made) ----
    def _synthesize_intra(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.img_decoder(y_hat).clamp(0.0, 1.0)

    def _predict(self, x_ref: torch.Tensor, y_motion_hat: torch.Tensor) -> torch.Tensor:
        return self.forward_prediction(x_ref, self.motion_decoder(y_motion_hat))

    def _synthesize_inter(
        self, x_pred: torch.Tensor, y_res_hat: torch.Tensor, y_motion_hat: torch.Tensor
    ) -> torch.Tensor:
        x_res_hat = self.res_decoder(torch.cat((y_res_hat, y_motion_hat), dim=1))
        return (x_pred + x_res_hat).clamp(0.0, 1.0)

    # --- FrameCodec -----------------------------------------------------------------------
    # no_grad rather than inference_mode: the fast shift search takes Jacobian-vector products.
    @torch.no_grad()
    def encode_intra(self, x: torch.Tensor, picture: PictureBox | None = None) -> CodedFrame:
        encoded = self.encode_latent("intra", self.img_encoder(x), self._synthesize_intra, x, picture)
        intra = encoded.coded
        return CodedFrame(
            part_names=self.intra_part_names,
            parts=[intra.z_bytes, intra.y_bytes],
            x_hat=encoded.x_hat,
            entropy_hash=entropy_hash([intra.scale_indexes], intra.table_digest),
            shift_indexes=encoded.shift_indexes,
            shift=encoded.shift,
            latents={"intra": intra},
            refine=encoded.refine_reports("intra"),
        )

    def start_state(self, x_hat: torch.Tensor) -> torch.Tensor:
        return x_hat

    @torch.no_grad()
    def encode_inter(
        self, x: torch.Tensor, state: torch.Tensor, picture: PictureBox | None = None
    ) -> CodedFrame:
        x_ref = state
        motion = self.latent_coders["motion"].encode(self.motion_encoder(torch.cat((x, x_ref), dim=1)))
        x_pred = self._predict(x_ref, motion.y_hat)

        def synthesize(y_res: torch.Tensor) -> torch.Tensor:
            return self._synthesize_inter(x_pred, y_res, motion.y_hat)

        encoded = self.encode_latent("residual", self.res_encoder(x - x_pred), synthesize, x, picture)
        residual = encoded.coded
        return CodedFrame(
            part_names=self.inter_part_names,
            parts=[motion.z_bytes, motion.y_bytes, residual.z_bytes, residual.y_bytes],
            x_hat=encoded.x_hat,
            entropy_hash=entropy_hash([motion.scale_indexes, residual.scale_indexes],
                                      residual.table_digest + motion.table_digest),
            shift_indexes=encoded.shift_indexes,
            shift=encoded.shift,
            latents={"motion": motion, "residual": residual, "x_pred": x_pred},
            state=encoded.x_hat,
            refine=encoded.refine_reports("residual"),
        )

    @torch.no_grad()
    def decode_intra(
        self, parts: list[bytes], frame_shape: tuple[int, int], expected_hash: bytes,
        shift_indexes: tuple[int, ...] = (), picture: PictureBox | None = None,
    ) -> torch.Tensor:
        check_part_count(parts, self.intra_part_names, "I")
        self.check_shift_indexes(shift_indexes, ("intra",))
        z_bytes, y_bytes = parts
        params = self.decode_side("intra", z_bytes, self._y_shape(frame_shape))
        check_entropy_hash([params.scale_indexes], expected_hash, self.table_digest("intra", params.scale_indexes))
        y_hat, _ = self.decode_latent("intra", y_bytes, params, shift_indexes)
        return self._synthesize_intra(y_hat)

    @torch.no_grad()
    def decode_inter(
        self, parts: list[bytes], state: torch.Tensor, frame_shape: tuple[int, int], expected_hash: bytes,
        shift_indexes: tuple[int, ...] = (),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_part_count(parts, self.inter_part_names, "P")
        self.check_shift_indexes(shift_indexes, ("residual",))
        motion_z, motion_y, residual_z, residual_y = parts
        y_shape = self._y_shape(frame_shape)
        motion_params = self.decode_side("motion", motion_z, y_shape)
        residual_params = self.decode_side("residual", residual_z, y_shape)
        check_entropy_hash(
            [motion_params.scale_indexes, residual_params.scale_indexes],
            expected_hash,
            self.table_digest("residual", residual_params.scale_indexes)
            + self.table_digest("motion", motion_params.scale_indexes),
        )
        # The motion latent is never shifted: its effect on the frame passes through the residual.
        y_motion_hat = self.latent_coders["motion"].decode_main(motion_y, motion_params)
        x_pred = self._predict(state, y_motion_hat)
        y_res_hat, _ = self.decode_latent("residual", residual_y, residual_params, shift_indexes)
        x_hat = self._synthesize_inter(x_pred, y_res_hat, y_motion_hat)
        return x_hat, x_hat
