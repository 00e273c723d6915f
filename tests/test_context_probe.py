"""scripts/probes/context_probe.py: a P-frame's bits against its previous frame and against itself."""

import importlib.util
from pathlib import Path

import pytest
import torch

from vidcodec.io.color import rgb_to_yuv420
from vidcodec.io.yuv import SequenceGeometry, YuvWriter
from vidcodec.models.registry import build_model

REPO = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location("context_probe", REPO / "scripts" / "probes" / "context_probe.py")
probe = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(probe)


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return build_model("dcvc-small", features=16, latent=16).eval()


def test_the_cost_depends_on_the_reference_only_through_its_context(codec):
    torch.manual_seed(1)
    frame, other = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    against_itself = probe.p_frame_cost(codec, frame, frame)
    assert probe.p_frame_cost(codec, frame.clone(), frame) == against_itself  # a static scene: the same numbers
    against_other = probe.p_frame_cost(codec, other, frame)
    assert against_other[0] != against_itself[0] and against_other[0] > 0.0 and 0.0 < against_other[1] < 100.0


def test_pictures_are_cropped_to_the_multiple_and_a_short_file_is_refused(tmp_path):
    path = tmp_path / "clip_136x96.yuv"
    with YuvWriter(path, SequenceGeometry(136, 96)) as writer:
        for value in (0.2, 0.7):
            writer.write_frame(rgb_to_yuv420(torch.full((1, 3, 96, 136), value), 8))
    first, second = probe.read_pictures(path, [0, 1], 64)
    assert first.shape == second.shape == (1, 3, 64, 128) and second.mean() > first.mean()
    with pytest.raises(SystemExit, match="has 2 frames; --frame needs 3"):
        probe.read_pictures(path, [1, 2], 64)
