"""Per-frame rate-distortion records (rd.jsonl) and their summary (summary.json).

Schema of one rd.jsonl line (RD_LOG_VERSION 4; 3 had no refine columns, 2 no contextual columns):
    poc, frame_type ("I" | "P"),
    bits            8 x the frame file size (everything the decoder reads for the frame),
    bits_header     bits - sum of the entropy-coded parts (frame header and CRC),
    bits_intra_y, bits_intra_z, bits_motion_y, bits_motion_z, bits_residual_y, bits_residual_z,
    bits_contextual_y, bits_contextual_z
                    entropy-coded bits per part, named by the latent's role (tools.ROLES); 0 for
                    parts the frame type or model family does not have; a traditional intra codec
                    (x265-intra, svtav1-intra) puts its whole coded picture in bits_intra_y,
    bpp             bits / (W x H) of the original picture (not the padded one),
    psnr_rgb        dB, RGB in [0,1]: original (YUV->RGB) vs reconstruction before YUV rounding,
    psnr_y, psnr_u, psnr_v, psnr_yuv ((6Y+U+V)/8)
                    dB, on the written YUV (peak 2^bit_depth - 1); identical planes give 100 dB,
    ms_ssim_rgb     MS-SSIM on RGB in [0,1],
    enc_s, dec_s    seconds of frame coding (dec_s null when the run did not verify),
    quantizer,
    rho             latent-shift steps chosen for the frame, one per channel group (null when the
                    frame's latents are not shifted),
    shift_gain_db   PSNR-RGB gain of the shift over rho = 0 on the same latents (null: no shift),
    shift_corr      Pearson correlation of the entropy gradient g with the true gradient of the
                    MSE w.r.t. the shifted latent (seed 000, Fig. 4c); null unless shift_diagnostics,
    refine_cost_before, refine_cost_after
                    encoder-side latent refinement (latent_refinement.py): the frame's estimated
                    rate-distortion cost (bpp + lambda * 255^2 * MSE, summed over its refined latents)
                    of the analysis transform's latents and of those coded; null without refinement.
"""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from vidcodec.metrics import bpp, ms_ssim_rgb, psnr_planes_db, psnr_rgb_db
from vidcodec.tools import ROLES

RD_LOG_VERSION = 4
# A codec names its parts "<role>_y" and "<role>_z" (models/interface.py).
PART_NAMES = tuple(f"{role}_{latent}" for role in ROLES for latent in ("y", "z"))
AVERAGED_FIELDS = (
    "bits", "bpp", "psnr_rgb", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ms_ssim_rgb", "enc_s", "dec_s",
    "shift_gain_db", "shift_corr", "refine_cost_before", "refine_cost_after",
)


def frame_record(
    *,
    poc: int,
    frame_type: str,
    bits: int,
    part_bits: dict[str, int],
    bpp: float,
    psnr_rgb: float,
    planes: dict[str, float],
    ms_ssim_rgb: float,
    enc_s: float,
    dec_s: float | None,
    quantizer: str,
    shift=None,
    refine: dict | None = None,
) -> dict:
    """One rd.jsonl line; ``shift`` is the frame's latent_shift.ShiftChoice (None without shift),
    ``refine`` its role -> latent_refinement.RefineReport (empty or None: not refined)."""
    unknown = set(part_bits) - set(PART_NAMES)
    if unknown:
        raise ValueError(f"unknown part names {sorted(unknown)}")
    record = {"poc": poc, "frame_type": frame_type, "bits": bits}
    record["bits_header"] = bits - sum(part_bits.values())
    record.update({f"bits_{name}": part_bits.get(name, 0) for name in PART_NAMES})
    record.update(
        {
            "bpp": bpp,
            "psnr_rgb": psnr_rgb,
            "psnr_y": planes["psnr_y"],
            "psnr_u": planes["psnr_u"],
            "psnr_v": planes["psnr_v"],
            "psnr_yuv": planes["psnr_yuv"],
            "ms_ssim_rgb": ms_ssim_rgb,
            "enc_s": enc_s,
            "dec_s": dec_s,
            "quantizer": quantizer,
            "rho": None,
            "shift_gain_db": None,
            "shift_corr": None,
            "refine_cost_before": sum(r.cost_before for r in refine.values()) if refine else None,
            "refine_cost_after": sum(r.cost_after for r in refine.values()) if refine else None,
        }
    )
    if shift is not None:
        record["rho"] = list(shift.rhos)
        record["shift_gain_db"] = shift.gain_db
        record["shift_corr"] = shift.gradient_correlation
    return record


def measured_frame_record(*, poc: int, frame_type: str, bits: int, part_bits: dict[str, int], frame, frame_hat,
                          bit_depth: int, x, x_hat, enc_s: float, dec_s: float | None, quantizer: str,
                          shift=None, refine: dict | None = None, ms_ssim: bool = True) -> dict:
    """frame_record of a coded frame, its metrics measured: ``frame`` / ``frame_hat`` the original
    and written YuvFrames, ``x`` / ``x_hat`` (1,3,H,W) RGB in [0,1] (the reconstruction before YUV
    rounding where the codec has one). The same for vidcodec and anchor codecs. ``ms_ssim=False``
    leaves ms_ssim_rgb None: at 1080p it costs more than coding a frame with ssf-small (measured
    1.8 s against 1.4 s a frame on 2 cores)."""
    height, width = frame.y.shape[-2:]
    return frame_record(
        poc=poc, frame_type=frame_type, bits=bits, part_bits=part_bits, bpp=bpp(bits, width, height),
        psnr_rgb=psnr_rgb_db(x, x_hat), planes=psnr_planes_db(frame, frame_hat, bit_depth),
        ms_ssim_rgb=ms_ssim_rgb(x, x_hat) if ms_ssim else None, enc_s=enc_s, dec_s=dec_s, quantizer=quantizer,
        shift=shift, refine=refine,
    )


def write_rd_files(directory: Path, records: list[dict], summary: dict) -> None:
    """rd.jsonl (one record a line) and summary.json into ``directory``."""
    with open(Path(directory) / "rd.jsonl", "w") as log:
        for record in records:
            log.write(json.dumps(record) + "\n")
    (Path(directory) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def _average(records: list[dict]) -> dict:
    averages: dict = {"frames": len(records)}
    for name in AVERAGED_FIELDS:
        values = [r[name] for r in records if r.get(name) is not None]
        averages[name] = sum(values) / len(values) if values else None
    return averages


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for package in ("vidcodec", "torch", "compressai", "numpy", "av", "pytorch-msssim"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def git_commit() -> str | None:
    """Commit of the vidcodec source tree, with "-dirty" when it has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def summarize(records: list[dict], *, config: dict, model: dict, sequence: dict, run_info: dict) -> dict:
    return {
        "rd_log_version": RD_LOG_VERSION,
        "average": {
            "all": _average(records),
            "I": _average([r for r in records if r["frame_type"] == "I"]),
            "P": _average([r for r in records if r["frame_type"] == "P"]),
        },
        "sequence": sequence,
        "config": config,
        "model": model,
        "versions": package_versions(),
        "git_commit": git_commit(),
        **run_info,
    }
