"""Scale-space flow (Agustsson et al., CVPR 2020) as a FrameCodec, on CompressAI's ScaleSpaceFlow.

``ScaleSpaceFlowCodec()`` with default widths is exactly CompressAI's ``ssf2020`` architecture (same
modules, same state-dict keys, loads the zoo weights). Other widths rebuild the same sub-networks
(CompressAI's own Encoder / Decoder / Hyperprior classes) with fewer channels, for CPU training.

Training uses CompressAI's ``forward(frames)``; coding goes through HyperpriorCoder so that the
encoder's reconstruction is built from the decoded latents only (bit-exact with the decoder).
"""

from __future__ import annotations

import torch
from compressai.models.video import ScaleSpaceFlow

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.entropy.hyperprior_coder import CodedLatent, EntropyParameters, HyperpriorCoder, entropy_hash
from vidcodec.latent_shift import SCOPE_INTRA, SCOPE_RESIDUAL, ShiftSettings, choose_shift, shifted
from vidcodec.models.base import CodedFrame, FrameCodec, check_entropy_hash, check_part_count

SSF_MID_PLANES = 128
SSF_LATENT_PLANES = 192


class ScaleSpaceFlowCodec(ScaleSpaceFlow, FrameCodec):
    """SSF with configurable widths.

    mid_planes: channels of the hidden layers of the analysis/synthesis transforms.
    latent_planes: channels of y (and of the hyperprior's z and hidden layers).
    flow_in_pixels: CompressAI's SSF expresses flow in grid_sample's normalized [-1, 1] coordinates,
        so a model trained on 256x256 crops predicts motion mis-scaled at 1080p (CompressAI issue
        307). With True the motion decoder's flow is in pixels and converted here, so the motion
        model does not depend on the frame size. False for "ssf" (the zoo weights need it).
    """

    # 4 stride-2 analysis layers then 3 stride-2 hyper-analysis layers: 2^7 = 128.
    pad_multiple = 128
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
        self._intra_coder = HyperpriorCoder(self.img_hyperprior)
        self._motion_coder = HyperpriorCoder(self.motion_hyperprior)
        self._residual_coder = HyperpriorCoder(self.res_hyperprior)
        self.shift_settings: ShiftSettings | None = None
        self._lattice_coders: dict[tuple, object] = {}

    def set_latent_shift(self, settings: ShiftSettings | None) -> None:
        """Shift decoded latents along their entropy gradient (latent_shift.py); None = off."""
        self.shift_settings = settings

    def set_residual_quantizer(self, lattice_name: str | None, cache=None, scope: str = "residual") -> None:
        """Quantize latents on a lattice (e.g. "a2", "a3*"); None = rounding everywhere.

        ``scope`` (ablations, config.QUANT_SCOPES): "residual" = P-frame residual latents (the paper),
        "residual+motion" also the motion latents, "all" also the I-frame latents. No retraining:
        the hyperprior's Gaussians are integrated over the lattice cells."""
        scoped = {"residual": (self._residual_coder,),
                  "residual+motion": (self._residual_coder, self._motion_coder),
                  "all": (self._residual_coder, self._motion_coder, self._intra_coder)}
        if scope not in scoped:
            raise ValueError(f"quantizer scope '{scope}' (expected one of {', '.join(scoped)})")
        for coder in (self._intra_coder, self._motion_coder, self._residual_coder):
            in_scope = lattice_name is not None and coder in scoped[scope]
            coder.y_coder = self._lattice_coder(lattice_name, coder, cache) if in_scope else None

    def _lattice_coder(self, lattice_name: str, coder: HyperpriorCoder, cache):
        from vidcodec.entropy.lattice_coder import LatticeLatentCoder

        # Coders are kept per (lattice, cache, CDF tables): they hold per-scale CDFs that are slow
        # to rebuild; new weights (update() writes new CDF buffers) give a new coder.
        gc = coder.hyperprior.gaussian_conditional
        key = (lattice_name, id(cache), id(gc), gc._quantized_cdf.data_ptr(), gc._quantized_cdf._version)
        lattice_coder = self._lattice_coders.get(key)
        if lattice_coder is None or (cache is not None and lattice_coder.cache is not cache) or lattice_coder.gc is not gc:
            lattice_coder = LatticeLatentCoder(lattice_name, gc, cache)
            self._lattice_coders[key] = lattice_coder
        return lattice_coder

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
    def forward(self, frames: list[torch.Tensor], stage: str = "chains") -> dict:
        """Training forward of one curriculum stage (train/curriculum.py).

        frames: list of (N,3,H,W) float in [0,1]. Returns CompressAI's dict: "x_hat" (one
        reconstruction per coded frame) and "likelihoods" (one dict per coded frame).
        "intra" codes frames[0] as an I-frame; "pairs" codes frames[1] as a P-frame against the
        uncompressed frames[0]; "chains" is CompressAI's I, P, P, ... against own reconstructions.
        A keyword, so DDP (which only hooks forward()) passes it through."""
        if stage == "intra":
            x_hat, likelihoods = self.forward_keyframe(frames[0])
        elif stage == "pairs":
            x_hat, likelihoods = self.forward_inter(frames[1], frames[0])
        elif stage == "chains":
            return super().forward(frames)
        else:
            raise ValueError(f"stage='{stage}' (expected intra, pairs or chains)")
        return {"x_hat": [x_hat], "likelihoods": [likelihoods]}

    @staticmethod
    def parameter_role(name: str) -> str:
        """'intra' for the I-frame path's parameters, 'inter' for motion and residual ones."""
        return "intra" if name.startswith("img_") else "inter"

    # --- shapes ---------------------------------------------------------------------------
    def _z_shape(self, frame_shape: tuple[int, int]) -> tuple[int, int]:
        height, width = frame_shape
        return height // self.pad_multiple, width // self.pad_multiple

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

    # --- latent shift -------------------------------------------------------------------------
    def _shifts(self, scope: int) -> bool:
        return self.shift_settings is not None and bool(self.shift_settings.scope_mask & scope)

    def _encode_with_shift(self, scope, coder, latent: CodedLatent, synthesize, x, picture_size):
        """(x_hat, shift indexes, ShiftChoice or None) of one latent; no shift outside the scope."""
        if not self._shifts(scope):
            return synthesize(latent.y_hat), (), None
        g = coder.entropy_gradient(latent.y_hat, latent.mu, latent.sigma)
        choice = choose_shift(synthesize, latent.y_hat, g, x, picture_size or tuple(x.shape[-2:]), self.shift_settings)
        return choice.x_hat, choice.indexes, choice

    def _decode_with_shift(self, scope, coder, y_hat, params: EntropyParameters, shift_indexes) -> torch.Tensor:
        expected = self.shift_settings.groups if self._shifts(scope) else 0
        if len(shift_indexes) != expected:
            raise BitstreamError(f"frame header holds {len(shift_indexes)} shift indexes, expected {expected}")
        if not expected:
            return y_hat
        if max(shift_indexes) >= len(self.shift_settings.candidates):
            raise BitstreamError(
                f"shift index {max(shift_indexes)} beyond the {len(self.shift_settings.candidates)} candidates"
            )
        g = coder.entropy_gradient(y_hat, params.mu, params.sigma)
        return shifted(y_hat, g, self.shift_settings, shift_indexes)

    # --- FrameCodec -----------------------------------------------------------------------
    # no_grad rather than inference_mode: the fast shift search takes Jacobian-vector products.
    @torch.no_grad()
    def encode_intra(self, x: torch.Tensor, picture_size: tuple[int, int] | None = None) -> CodedFrame:
        intra = self._intra_coder.encode(self.img_encoder(x))
        x_hat, shift_indexes, shift = self._encode_with_shift(
            SCOPE_INTRA, self._intra_coder, intra, self._synthesize_intra, x, picture_size
        )
        return CodedFrame(
            part_names=self.intra_part_names,
            parts=[intra.z_bytes, intra.y_bytes],
            x_hat=x_hat,
            entropy_hash=entropy_hash([intra.scale_indexes], intra.table_digest),
            shift_indexes=shift_indexes,
            shift=shift,
            latents={"intra": intra},
        )

    @torch.no_grad()
    def encode_inter(
        self, x: torch.Tensor, x_ref: torch.Tensor, picture_size: tuple[int, int] | None = None
    ) -> CodedFrame:
        motion = self._motion_coder.encode(self.motion_encoder(torch.cat((x, x_ref), dim=1)))
        x_pred = self._predict(x_ref, motion.y_hat)
        residual = self._residual_coder.encode(self.res_encoder(x - x_pred))

        def synthesize(y_res: torch.Tensor) -> torch.Tensor:
            return self._synthesize_inter(x_pred, y_res, motion.y_hat)

        x_hat, shift_indexes, shift = self._encode_with_shift(
            SCOPE_RESIDUAL, self._residual_coder, residual, synthesize, x, picture_size
        )
        return CodedFrame(
            part_names=self.inter_part_names,
            parts=[motion.z_bytes, motion.y_bytes, residual.z_bytes, residual.y_bytes],
            x_hat=x_hat,
            entropy_hash=entropy_hash([motion.scale_indexes, residual.scale_indexes],
                                      residual.table_digest + motion.table_digest),
            shift_indexes=shift_indexes,
            shift=shift,
            latents={"motion": motion, "residual": residual, "x_pred": x_pred},
        )

    @torch.no_grad()
    def decode_intra(
        self, parts: list[bytes], frame_shape: tuple[int, int], expected_hash: bytes,
        shift_indexes: tuple[int, ...] = (),
    ) -> torch.Tensor:
        check_part_count(parts, self.intra_part_names, "I")
        z_bytes, y_bytes = parts
        params = _decode_side(self._intra_coder, z_bytes, self._z_shape(frame_shape), "intra")
        check_entropy_hash([params.scale_indexes], expected_hash, self._intra_coder.table_digest(params.scale_indexes))
        y_hat = self._intra_coder.decode_main(y_bytes, params)
        return self._synthesize_intra(
            self._decode_with_shift(SCOPE_INTRA, self._intra_coder, y_hat, params, shift_indexes)
        )

    @torch.no_grad()
    def decode_inter(
        self, parts: list[bytes], x_ref: torch.Tensor, expected_hash: bytes, shift_indexes: tuple[int, ...] = ()
    ) -> torch.Tensor:
        check_part_count(parts, self.inter_part_names, "P")
        motion_z, motion_y, residual_z, residual_y = parts
        z_shape = self._z_shape(tuple(x_ref.shape[-2:]))
        motion_params = _decode_side(self._motion_coder, motion_z, z_shape, "motion")
        residual_params = _decode_side(self._residual_coder, residual_z, z_shape, "residual")
        check_entropy_hash(
            [motion_params.scale_indexes, residual_params.scale_indexes],
            expected_hash,
            self._residual_coder.table_digest(residual_params.scale_indexes)
            + self._motion_coder.table_digest(motion_params.scale_indexes),
        )
        y_motion_hat = self._motion_coder.decode_main(motion_y, motion_params)
        x_pred = self._predict(x_ref, y_motion_hat)
        y_res_hat = self._residual_coder.decode_main(residual_y, residual_params)
        y_res_hat = self._decode_with_shift(
            SCOPE_RESIDUAL, self._residual_coder, y_res_hat, residual_params, shift_indexes
        )
        return self._synthesize_inter(x_pred, y_res_hat, y_motion_hat)


def _decode_side(coder: HyperpriorCoder, z_bytes: bytes, z_shape: tuple[int, int], name: str):
    # A corrupted but CRC-valid stream cannot reach here (the CRC catches it), yet a stream written
    # by a buggy or hostile encoder can: rANS on garbage returns garbage, it does not raise, and
    # compressai raises ValueError/RuntimeError on some inputs. Name the part either way.
    try:
        return coder.decode_side(z_bytes, z_shape)
    except (ValueError, RuntimeError) as error:
        raise BitstreamError(f"{name} z could not be decoded: {error}") from None
