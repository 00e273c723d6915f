import numpy as np
import pytest

from clip_fixtures import frame_index, write_image_folder, write_video, write_vimeo
from vidcodec.errors import ConfigError
from vidcodec.train.clip_folder import folder_clip, open_data_folder

HEIGHT, WIDTH = 48, 80


def _videos(root, count=3, num_frames=12):
    root.mkdir()
    for index in range(count):
        write_video(root / f"clip{index}.mp4", num_frames, HEIGHT, WIDTH)
    (root / "README.txt").write_text("notes beside the videos are not tried as videos")
    return root


def _image_folders(root, count=3, num_frames=5):
    for index in range(count):
        write_image_folder(root / f"scene{index}", num_frames, HEIGHT, WIDTH)
    return root


def test_a_folder_of_videos_is_split_by_a_fixed_seed_whatever_the_training_seed(tmp_path):
    folder = open_data_folder(str(_videos(tmp_path / "videos")), 3, 32)
    assert folder.layout == "videos"
    assert (len(folder.train), len(folder.validation)) == (2, 1)
    assert {s.num_frames for s in folder.train + folder.validation} == {12}
    names = sorted(s.path.rsplit("/", 1)[1] for s in folder.train + folder.validation)
    assert names == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    held_out = folder.validation[0].path.rsplit("/", 1)[1]
    assert "1 of 3 sources held out" in folder.validation_rule and held_out in folder.validation_rule
    assert folder.summary()["files"] == 3


def test_folders_of_numbered_images_are_clips_in_numeric_order(tmp_path):
    root = _image_folders(tmp_path / "images", num_frames=12)  # frame_2.png before frame_10.png
    folder = open_data_folder(str(root), 3, 32)
    assert folder.layout == "image-folders" and len(folder.train + folder.validation) == 3
    rng = np.random.default_rng(4)
    for _ in range(5):
        clip = folder_clip(rng, folder, 3, 32)
        first = frame_index(clip[0])
        assert [frame_index(frame) for frame in clip] == [first, first + 1, first + 2]


def test_vimeo_septuplets_validate_on_their_test_list(tmp_path):
    root = write_vimeo(tmp_path / "vimeo_septuplet", ["00001/0001", "00001/0002"], ["00002/0001"], HEIGHT, WIDTH)
    folder = open_data_folder(str(root), 3, 32)
    assert folder.layout == "vimeo-septuplet"
    assert [s.path for s in folder.train] == [str(root / "sequences/00001/0001"), str(root / "sequences/00001/0002")]
    assert [s.path for s in folder.validation] == [str(root / "sequences/00002/0001")]
    assert "sep_testlist.txt" in folder.validation_rule
    clip = folder_clip(np.random.default_rng(0), folder, 3, 32, "heldout")
    assert clip.shape == (3, 32, 32, 3)


@pytest.mark.parametrize("layout", ["videos", "image-folders"])
def test_clips_have_the_shape_and_range_and_are_a_function_of_the_generator(tmp_path, layout):
    root = _videos(tmp_path / "data") if layout == "videos" else _image_folders(tmp_path / "data")
    folder = open_data_folder(str(root), 3, 32)
    clip = folder_clip(np.random.default_rng(7), folder, 3, 32)
    assert clip.shape == (3, 32, 32, 3) and clip.dtype == np.float32
    assert 0.0 <= clip.min() and clip.max() <= 1.0 and clip.max() > 0.0
    assert np.array_equal(clip, folder_clip(np.random.default_rng(7), folder, 3, 32))
    # Other seeds: other sources, starts or crop places (the ramp makes crop places differ).
    others = [folder_clip(np.random.default_rng(seed), folder, 3, 32) for seed in range(8, 12)]
    assert not all(np.array_equal(clip, other) for other in others)


def test_training_and_validation_clips_come_from_their_own_sources(tmp_path):
    root = tmp_path / "data"
    for index in range(3):  # scene k shows frames 4k .. 4k + 3: a clip's frame index names its folder
        write_image_folder(root / f"scene{index}", 4, HEIGHT, WIDTH, first_index=4 * index)
    folder = open_data_folder(str(root), 2, 32)
    held_out = int(folder.validation[0].path[-1])
    rng = np.random.default_rng(0)
    validation_scenes = {frame_index(folder_clip(rng, folder, 2, 32, "heldout")[0]) // 4 for _ in range(6)}
    training_scenes = {frame_index(folder_clip(rng, folder, 2, 32, "train")[0]) // 4 for _ in range(12)}
    assert validation_scenes == {held_out}
    assert training_scenes == {0, 1, 2} - {held_out}
    with pytest.raises(ValueError, match="split='test'"):
        folder_clip(rng, folder, 2, 32, "test")


def test_missing_empty_and_mixed_folders_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="does not exist or is not a folder .*video files .*Vimeo-90k"):
        open_data_folder(str(tmp_path / "nowhere"), 3, 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty holds no clips"):
        open_data_folder(str(tmp_path / "empty"), 3, 32)
    mixed = _videos(tmp_path / "mixed")
    write_image_folder(mixed / "scene", 4, HEIGHT, WIDTH)
    with pytest.raises(ConfigError, match="holds both video files .* give one kind per data folder"):
        open_data_folder(str(mixed), 3, 32)
    loose = write_image_folder(tmp_path / "loose", 4, HEIGHT, WIDTH)
    with pytest.raises(ConfigError, match="images directly in the folder .*a folder of its own"):
        open_data_folder(str(loose), 3, 32)
    single = _videos(tmp_path / "single", count=1)
    with pytest.raises(ConfigError, match="one clip source only; .*add another"):
        open_data_folder(str(single), 3, 32)


def test_unreadable_small_or_short_material_is_refused_naming_the_file(tmp_path):
    broken = _videos(tmp_path / "broken")
    (broken / "damaged.mkv").write_bytes(b"\x1a\x45\xdf\xa3 not really matroska" * 4)
    with pytest.raises(ConfigError, match="damaged.mkv: PyAV cannot open it"):
        open_data_folder(str(broken), 3, 32)
    with pytest.raises(ConfigError, match=r"clip0.mp4: frames of 80 x 48 pixels are smaller than crop=64; "
                                          r"lower crop to at most 48"):
        open_data_folder(str(_videos(tmp_path / "small")), 3, 64)
    images = _image_folders(tmp_path / "images", num_frames=2)
    with pytest.raises(ConfigError, match="scene0: has 2 frames, fewer than clip_frames=3"):
        open_data_folder(str(images), 3, 32)
    bad_image = _image_folders(tmp_path / "bad_image")
    (bad_image / "scene1" / "frame_1.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match=r"scene1/frame_1.png: cannot be read as an image"):
        open_data_folder(str(bad_image), 3, 32)


def test_an_incomplete_vimeo_folder_is_refused(tmp_path):
    root = write_vimeo(tmp_path / "vimeo", ["00001/0001"], ["00002/0001"], HEIGHT, WIDTH)
    (root / "sep_testlist.txt").unlink()
    with pytest.raises(ConfigError, match="has sep_trainlist.txt but no sep_testlist.txt"):
        open_data_folder(str(root), 3, 32)
    (root / "sep_testlist.txt").write_text("00009/0001\n")
    with pytest.raises(ConfigError, match="00009/0001 is listed but missing"):
        open_data_folder(str(root), 3, 32)
