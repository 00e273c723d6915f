import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidcodec.train.dead_leaves import dead_leaves_clip
from vidcodec.train.synthetic import (
    HELDOUT_PHOTOS,
    TRAIN_PHOTOS,
    clip_mix_problem,
    lavfi_clip,
    load_photo,
    photo_clip,
    random_clip,
    training_palette,
)

REPO = Path(__file__).resolve().parent.parent


def test_photo_clips_are_deterministic_and_seed_dependent():
    a = photo_clip("rocket", 3, 64, 96, seed=5)
    assert np.array_equal(a, photo_clip("rocket", 3, 64, 96, seed=5))
    assert not np.array_equal(a, photo_clip("rocket", 3, 64, 96, seed=6))
    assert a.shape == (3, 64, 96, 3) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_held_out_photos_are_never_training_photos_and_all_load():
    assert not set(TRAIN_PHOTOS) & set(HELDOUT_PHOTOS)
    for name in TRAIN_PHOTOS + HELDOUT_PHOTOS:
        assert load_photo(name).shape[2] == 3


def test_clips_move_but_stay_correlated():
    rng = np.random.default_rng(0)
    moving, unrelated = [], []
    for seed in range(6):
        clip = photo_clip(TRAIN_PHOTOS[seed], 3, 96, 96, seed)
        other = photo_clip(TRAIN_PHOTOS[seed + 1], 3, 96, 96, seed + 100)
        moving.append(np.mean((clip[1] - clip[0]) ** 2))
        unrelated.append(np.mean((clip[0] - other[0]) ** 2))
    assert np.mean(moving) > 0
    assert np.mean(moving) < 0.5 * np.mean(unrelated)
    assert rng is not None


def test_tripod_clips_keep_a_still_background():
    """The same seeds with the camera standing still: far less change between frames, and where a seed
    draws no noise and no brightness ramp, most pixels (all but the moving patches) repeat exactly."""
    still_sq, moving_sq, mostly_still, mostly_still_moving = 0.0, 0.0, 0, 0
    for seed in range(8):
        tripod = photo_clip(TRAIN_PHOTOS[seed], 3, 96, 96, seed, tripod=True)
        moving = photo_clip(TRAIN_PHOTOS[seed], 3, 96, 96, seed)
        still_sq += np.mean((tripod[1:] - tripod[:-1]) ** 2)
        moving_sq += np.mean((moving[1:] - moving[:-1]) ** 2)
        mostly_still += np.mean(tripod[1] == tripod[0]) > 0.8
        mostly_still_moving += np.mean(moving[1] == moving[0]) > 0.8
    assert still_sq < 0.5 * moving_sq
    assert mostly_still >= 3 and mostly_still_moving == 0


def test_a_tripod_mix_draws_tripod_photo_clips():
    draws, rng = np.random.default_rng(9), np.random.default_rng(9)
    seed = int(draws.integers(0, 10**6))
    draws.choice(["tripod"], p=[1.0])
    photo = str(draws.choice(TRAIN_PHOTOS))
    clip = random_clip(rng, 2, 64, 64, "train", {"tripod": 1.0})
    assert np.array_equal(clip, photo_clip(photo, 2, 64, 64, seed, tripod=True))


@pytest.mark.parametrize("source", ["mandelbrot", "life", "cellauto", "testsrc2"])
def test_lavfi_sources(source):
    clip = lavfi_clip(source, 2, 64, 80, seed=3)
    assert clip.shape == (2, 64, 80, 3) and clip.dtype == np.float32
    assert np.array_equal(clip, lavfi_clip(source, 2, 64, 80, seed=3))


@pytest.mark.parametrize("source", ["life", "cellauto"])
def test_cellular_sources_draw_cells_wider_than_a_pixel(source):
    for seed in range(4):
        clip = lavfi_clip(source, 2, 70, 90, seed=seed)  # sizes that are not a multiple of a cell
        assert clip.shape == (2, 70, 90, 3)
        # Every pixel repeats its left and upper neighbour within a cell of at least 4 pixels.
        assert np.array_equal(clip[:, :, 0::4], clip[:, :, 1::4]) and np.array_equal(clip[:, 0::4], clip[:, 1::4])


def test_random_clip_splits():
    rng = np.random.default_rng(1)
    for split in ("train", "heldout"):
        assert random_clip(rng, 2, 64, 64, split).shape == (2, 64, 64, 3)
    with pytest.raises(ValueError, match="split"):
        random_clip(rng, 2, 64, 64, "test")


def test_a_clip_mix_draws_only_its_sources():
    """A mix of dead leaves alone gives the dead-leaves clip of the seed drawn (no PyAV needed)."""
    seed_rng, rng = np.random.default_rng(4), np.random.default_rng(4)
    seed = int(seed_rng.integers(0, 10**6))
    clip = random_clip(rng, 2, 64, 64, "train", {"dead_leaves": 1.0})
    assert np.array_equal(clip, dead_leaves_clip(2, 64, 64, seed, training_palette()))
    assert clip_mix_problem({"photo": 0.6, "dead_leaves": 0.4}) is None
    assert "known: photo, tripod, dead_leaves, lavfi" in clip_mix_problem({"video": 1.0})
    assert "positive sum" in clip_mix_problem({"photo": 0.0})
    with pytest.raises(ValueError, match="positive sum"):
        random_clip(rng, 2, 64, 64, "train", {"photo": -1.0, "lavfi": 1.0})


def test_demo_sequence_script_writes_the_expected_file(tmp_path):
    script = REPO / "scripts" / "data" / "make_sequences.py"
    result = subprocess.run([sys.executable, str(script), "--demo", "--out-dir", str(tmp_path)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    files = list(tmp_path.glob("Demo_416x240_30fps_420_8bit_YUV.yuv"))
    assert len(files) == 1 and files[0].stat().st_size == 416 * 240 * 3 // 2 * 17
