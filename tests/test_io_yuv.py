import numpy as np
import pytest

from vidcodec.io.yuv import (
    SequenceError,
    SequenceGeometry,
    YuvFrame,
    YuvReader,
    YuvWriter,
    check_frame_count,
    geometry_from_filename,
    parse_size,
    resolve_geometry,
)


def random_frames(geometry: SequenceGeometry, count: int, seed: int = 0) -> list[YuvFrame]:
    rng = np.random.default_rng(seed)
    high = 2**geometry.bit_depth
    dtype = np.uint8 if geometry.bit_depth == 8 else np.uint16
    w, h = geometry.width, geometry.height
    return [
        YuvFrame(*(rng.integers(0, high, shape).astype(dtype)
                   for shape in [(h, w), (h // 2, w // 2), (h // 2, w // 2)]))
        for _ in range(count)
    ]


@pytest.mark.parametrize("bit_depth", [8, 10])
@pytest.mark.parametrize("suffix", [".yuv", ".y4m"])
def test_write_then_read_is_identical(tmp_path, bit_depth, suffix):
    geometry = SequenceGeometry(48, 32, bit_depth, 25.0)
    frames = random_frames(geometry, 3)
    path = tmp_path / f"clip_48x32{suffix}"
    with YuvWriter(path, geometry) as writer:
        for frame in frames:
            writer.write_frame(frame)
    with YuvReader(path, geometry if suffix == ".yuv" else None) as reader:
        assert reader.num_frames == 3
        assert reader.geometry.bit_depth == bit_depth
        for index in (2, 0, 1):  # random access
            read = reader.read_frame(index)
            for plane in ("y", "u", "v"):
                assert np.array_equal(getattr(read, plane), getattr(frames[index], plane))
    if suffix == ".yuv":
        assert path.stat().st_size == 3 * geometry.frame_num_bytes


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Beauty_1920x1080_120fps_420_8bit_YUV.yuv", (1920, 1080, 8, 120.0)),
        ("Bosphorus_1920x1080_120fps_420_10bit_YUV.yuv", (1920, 1080, 10, 120.0)),
        ("BQMall_832x480_60.yuv", (832, 480, 8, 60.0)),
        ("foo_416x240_30fps_10bit.yuv", (416, 240, 10, 30.0)),
        ("RaceHorses_416x240_30.yuv", (416, 240, 8, 30.0)),
    ],
)
def test_geometry_from_file_name(name, expected):
    g = geometry_from_filename(name)
    assert (g.width, g.height, g.bit_depth, g.fps) == expected


def test_uvg_names_resolve_through_the_dataset_file_without_the_file():
    for name, frames_fps in [("Beauty.yuv", 120.0), ("ShakeNDry.yuv", 120.0), ("YachtRide.yuv", 120.0)]:
        g = resolve_geometry(name)
        assert (g.width, g.height, g.bit_depth, g.fps) == (1920, 1080, 8, frames_fps)


def test_size_flag_and_overrides():
    g = resolve_geometry("anything.yuv", size="64x48", fps=50, bit_depth=10)
    assert (g.width, g.height, g.fps, g.bit_depth) == (64, 48, 50, 10)
    with pytest.raises(SequenceError, match="WxH"):
        parse_size("64by48")


def test_missing_file(tmp_path):
    with pytest.raises(SequenceError, match="not found"):
        YuvReader(tmp_path / "none_64x48.yuv")


def test_size_not_a_multiple_of_the_frame_size(tmp_path):
    path = tmp_path / "clip_64x48.yuv"
    path.write_bytes(bytes(64 * 48 * 3 // 2 * 2 + 100))
    with pytest.raises(SequenceError, match=r"4608-byte frame of 64x48.*2 whole frames fit with 100 bytes"):
        YuvReader(path)


def test_unknown_geometry_says_how_to_pass_size(tmp_path):
    path = tmp_path / "mystery.yuv"
    path.write_bytes(bytes(100))
    with pytest.raises(SequenceError, match="--size WxH"):
        YuvReader(path)


@pytest.mark.parametrize("size, message",
                         [("65x48", "even dimensions"), ("64x47", "even dimensions"), ("8x8", "too small")])
def test_odd_or_tiny_dimensions(tmp_path, size, message):
    path = tmp_path / "clip.yuv"
    path.write_bytes(bytes(1000))
    with pytest.raises(SequenceError, match=message):
        YuvReader(path, size=size)


def test_frames_beyond_the_file():
    assert check_frame_count(None, 5, "x") == 5
    assert check_frame_count(3, 5, "x") == 3
    with pytest.raises(SequenceError, match="--frames 6 exceeds the 5 frames"):
        check_frame_count(6, 5, "x")
    with pytest.raises(SequenceError, match="expected >= 1"):
        check_frame_count(0, 5, "x")


def test_y4m_size_must_agree_with_size_flag(tmp_path):
    geometry = SequenceGeometry(48, 32)
    path = tmp_path / "clip.y4m"
    with YuvWriter(path, geometry) as writer:
        writer.write_frame(random_frames(geometry, 1)[0])
    with pytest.raises(SequenceError, match="disagrees with the y4m header"):
        YuvReader(path, size="64x48")


def test_ten_bit_file_with_out_of_range_samples_is_refused(tmp_path):
    geometry = SequenceGeometry(32, 32, 10)
    path = tmp_path / "clip.yuv"
    path.write_bytes(np.full(geometry.frame_num_bytes // 2, 4000, "<u2").tobytes())
    with pytest.raises(SequenceError, match="above 1023"):
        YuvReader(path, geometry).read_frame(0)


@pytest.mark.parametrize("text, message", [
    ("sequences: {A: {file: a.yuv, width: 64\n", "is not valid YAML"),
    ("sequences: [a.yuv]\n", "no 'sequences' mapping"),
    ("sequences: {A: a.yuv}\n", "sequence 'A' is not a mapping"),
    ("sequences: {A: {file: a.yuv, height: 64}}\n", "sequence 'A' lacks the field 'width'"),
    ("sequences: {A: {file: a.yuv, width: sixty-four, height: 64}}\n",
     "sequence 'A' field width='sixty-four' (expected a positive integer)"),
    ("sequences: {A: {file: a.yuv, width: 64, height: 64, fps: fast}}\n",
     "field fps='fast' (expected a positive number)"),
    ("sequences: {A: {file: a.yuv, width: 64, height: 64, frames: 2.5}}\n", "field frames=2.5"),
    ("sequences: {A: {file: 7, width: 64, height: 64}}\n", "field file=7 (expected a file name)"),
])
def test_a_broken_dataset_file_is_named_with_its_field(tmp_path, text, message):
    """Issue 34 item 10: YAML that does not parse, or ``width: sixty-four``, gave tracebacks in eval."""
    from vidcodec.io.yuv import load_dataset

    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(SequenceError, match=f"dataset file {path}") as error:
        load_dataset(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_valid_dataset_file_loads():
    from vidcodec.io.yuv import DATASET_DIR, load_dataset

    assert len(load_dataset(DATASET_DIR / "uvg.yaml")["sequences"]) == 7


def test_ten_bit_samples_in_a_file_named_8_bit_give_a_warning(tmp_path):
    """Issue 34 item 6: a size check cannot see it (a 10-bit frame is two 8-bit frames); the bytes can."""
    ten_bit = SequenceGeometry(64, 48, 10)
    with YuvWriter(tmp_path / "clip_64x48_8bit.yuv", ten_bit) as writer:
        for frame in random_frames(ten_bit, 2):
            writer.write_frame(frame)
    with YuvReader(tmp_path / "clip_64x48_8bit.yuv") as reader:
        assert reader.geometry.bit_depth == 8 and reader.num_frames == 4
        assert len(reader.warnings) == 1 and "--bit-depth 10" in reader.warnings[0]
    with YuvReader(tmp_path / "clip_64x48_8bit.yuv", bit_depth=10) as reader:
        assert reader.warnings == []
    eight_bit = SequenceGeometry(64, 48, 8)
    with YuvWriter(tmp_path / "real_64x48_8bit.yuv", eight_bit) as writer:
        for frame in random_frames(eight_bit, 2):
            writer.write_frame(frame)
    with YuvReader(tmp_path / "real_64x48_8bit.yuv") as reader:
        assert reader.warnings == []
