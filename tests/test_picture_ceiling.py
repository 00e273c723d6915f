"""scripts/probes/picture_ceiling.py: the least-squares bound of a rank-64 picture map."""

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location("picture_ceiling", REPO / "scripts" / "probes" / "picture_ceiling.py")
ceiling = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(ceiling)


def test_a_picture_inside_the_subspace_is_reached_and_one_outside_is_not():
    torch.manual_seed(0)
    weight, bias = torch.randn(192, 64) * 0.01, torch.full((192,), 0.5)
    features = torch.randn(64, 4 * 6)
    inside = F.pixel_shuffle((weight @ features + bias[:, None]).reshape(1, 192, 4, 6), 8)
    assert ceiling.projection_psnr(inside, weight, bias) > 100.0
    outside = (inside + 0.05 * torch.randn_like(inside)).clamp(0.0, 1.0)
    # Two thirds of the noise's 192 dimensions per block lie outside the 64-dimensional subspace.
    noise_psnr = 10.0 * torch.log10(1.0 / torch.mean((outside - inside) ** 2)).item()
    assert noise_psnr < ceiling.projection_psnr(outside, weight, bias) < noise_psnr + 3.0
