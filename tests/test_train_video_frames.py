import numpy as np
import pytest

from clip_fixtures import frame_index, write_video
from vidcodec.errors import ConfigError
from vidcodec.train.video_frames import probe_video, read_video_frames

# (file name, codec): mp4 stores its frame count, y4m only a duration in frames, Matroska only the
# container's duration.
FORMATS = [("clip.mp4", "mpeg4"), ("clip.y4m", "rawvideo"), ("clip.mkv", "ffv1")]


def _grey_levels(frames: np.ndarray) -> list[int]:
    return [frame_index(frame) for frame in frames]


@pytest.mark.parametrize("name,codec", FORMATS)
def test_probe_gives_the_frame_count_and_size(tmp_path, name, codec):
    probe = probe_video(write_video(tmp_path / name, 20, 48, 64, codec))
    assert (probe.num_frames, probe.height, probe.width) == (20, 48, 64)


@pytest.mark.parametrize("name,codec", FORMATS)
def test_a_clip_from_the_middle_or_the_start_is_those_frames(tmp_path, name, codec):
    path = write_video(tmp_path / name, 20, 48, 64, codec)
    frames = read_video_frames(path, start=10, count=3)
    assert frames.shape == (3, 48, 64, 3) and frames.dtype == np.uint8
    assert _grey_levels(frames) == [10, 11, 12]
    assert _grey_levels(read_video_frames(path, start=0, count=2)) == [0, 1]
    assert _grey_levels(read_video_frames(path, start=17, count=3)) == [17, 18, 19]


def test_a_start_past_the_end_gives_the_last_frames(tmp_path):
    """A frame count estimated from a duration can be one too many: the clip ends at the last frame."""
    path = write_video(tmp_path / "clip.y4m", 8, 48, 64, "rawvideo")
    assert _grey_levels(read_video_frames(path, start=7, count=3)) == [5, 6, 7]


def test_a_video_shorter_than_a_clip_and_an_unreadable_file_are_named(tmp_path):
    short = write_video(tmp_path / "short.mp4", 2, 48, 64)
    with pytest.raises(ConfigError, match=r"short.mp4: has 2 frames, fewer than clip_frames=3; remove it"):
        read_video_frames(short, start=0, count=3)
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"not a video" * 10)
    with pytest.raises(ConfigError, match=r"broken.mp4: PyAV cannot open it .*remove it from the data folder"):
        probe_video(garbage)
