"""Quick proxies: centre crop on even offsets (chroma stays aligned), box downscale, clear errors."""

import numpy as np
import pytest

from vidcodec.errors import ConfigError
from vidcodec.eval.proxy import ProxySpec, proxy_frame, write_proxy
from vidcodec.io.yuv import SequenceGeometry, YuvFrame, YuvReader, YuvWriter


def ramp_frame(width: int, height: int, offset: int = 0) -> YuvFrame:
    """Samples that encode their own position, so a crop's origin can be read back."""
    rows, cols = np.mgrid[0:height, 0:width]
    y = ((rows * 7 + cols * 3 + offset) % 256).astype(np.uint8)
    crow, ccol = np.mgrid[0 : height // 2, 0 : width // 2]
    u = ((crow * 5 + ccol + offset) % 256).astype(np.uint8)
    v = ((crow + ccol * 11 + offset) % 256).astype(np.uint8)
    return YuvFrame(y, u, v)


def test_centre_crop_keeps_luma_and_chroma_aligned():
    source = SequenceGeometry(70, 50)
    frame = ramp_frame(70, 50)
    cropped = proxy_frame(frame, ProxySpec(crop=(40, 20)), source)
    # (70 - 40) / 2 = 15 and (50 - 20) / 2 = 15 are odd: both round down to 14.
    assert np.array_equal(cropped.y, frame.y[14:34, 14:54])
    assert np.array_equal(cropped.u, frame.u[7:17, 7:27]) and np.array_equal(cropped.v, frame.v[7:17, 7:27])


def test_box_downscale_averages_blocks_with_rounding_half_up():
    y = np.array([[0, 1, 10, 10], [1, 1, 10, 11]] * 2, dtype=np.uint8)
    frame = YuvFrame(y, np.full((2, 2), 7, np.uint8), np.array([[0, 1], [2, 3]], np.uint8))
    small = proxy_frame(frame, ProxySpec(downscale=2), SequenceGeometry(4, 4))
    assert small.y.tolist() == [[1, 10], [1, 10]]  # 0.75 -> 1, 10.25 -> 10
    assert small.u.tolist() == [[7]] and small.v.tolist() == [[2]]  # 1.5 -> 2


def test_invalid_proxies_name_the_problem():
    source = SequenceGeometry(64, 48)
    with pytest.raises(ConfigError, match="larger than"):
        ProxySpec(crop=(80, 48)).output_geometry(source)
    with pytest.raises(ConfigError, match="even"):
        ProxySpec(crop=(63, 48)).output_geometry(source)
    with pytest.raises(ConfigError, match="not divisible"):
        ProxySpec(downscale=3).output_geometry(source)
    assert ProxySpec(crop=(48, 32), downscale=2).output_geometry(source) == SequenceGeometry(24, 16)


def test_write_proxy_writes_the_first_frames(tmp_path):
    source = SequenceGeometry(64, 48)
    path = tmp_path / "clip.yuv"
    with YuvWriter(path, source) as writer:
        for index in range(5):
            writer.write_frame(ramp_frame(64, 48, offset=index))
    with YuvReader(path, source) as reader:
        geometry = write_proxy(reader, ProxySpec(frames=3, crop=(32, 32), downscale=2), tmp_path / "proxy.yuv")
        with pytest.raises(ConfigError, match="has 5 frames"):
            write_proxy(reader, ProxySpec(frames=6), tmp_path / "too_many.yuv")
    assert geometry == SequenceGeometry(16, 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.yuv", "proxy.yuv"]  # nothing half-written
    with YuvReader(tmp_path / "proxy.yuv", geometry) as proxy:
        assert proxy.num_frames == 3
        expected = proxy_frame(ramp_frame(64, 48, offset=2), ProxySpec(crop=(32, 32), downscale=2), source)
        assert np.array_equal(proxy.read_frame(2).y, expected.y)
