import numpy as np

from vidcodec.train.dead_leaves import MIN_RADIUS_PX, dead_leaves_clip, power_law_radii

PALETTE = np.random.default_rng(0).random((64, 3)).astype(np.float32)


def test_clips_are_deterministic_seed_dependent_and_in_range():
    clip = dead_leaves_clip(3, 64, 80, seed=4, palette=PALETTE)
    assert clip.shape == (3, 64, 80, 3) and clip.dtype == np.float32
    assert 0.0 <= clip.min() and clip.max() <= 1.0
    assert np.array_equal(clip, dead_leaves_clip(3, 64, 80, seed=4, palette=PALETTE))
    assert not np.array_equal(clip, dead_leaves_clip(3, 64, 80, seed=5, palette=PALETTE))


def test_radii_follow_the_r_cubed_law():
    radii = power_law_radii(np.random.default_rng(1), 200_000, 2.0, 100.0)
    assert radii.min() >= 2.0 and radii.max() <= 100.0
    # P(r > 2 r_min) = (r_min^-2 - (2 r_min)^-2) complement: 1/4 * (1 - (r_min/r_max)^2 * 4) / (1 - (r_min/r_max)^2)
    expected = (4.0**-1 - 100.0**-2 * 4.0) / (1 - (2.0 / 100.0) ** 2)
    assert abs(np.mean(radii > 4.0) - expected) < 0.01


def test_shapes_cover_the_frame_with_many_sizes():
    clip = dead_leaves_clip(1, 128, 128, seed=2, palette=PALETTE)[0]
    # Many distinct colours (shapes) and edges at every scale: neither flat nor noise.
    assert len(np.unique(clip.reshape(-1, 3), axis=0)) > 200
    horizontal_steps = np.abs(np.diff(clip, axis=1)).mean(axis=2)
    # Heavy-tailed steps, as in photographs: mostly smooth, a few sharp occluding edges.
    assert np.mean(horizontal_steps < 0.02) > 0.5
    assert 0.005 < np.mean(horizontal_steps > 0.1) < 0.3
    assert MIN_RADIUS_PX >= 1.0


def test_layers_move_so_consecutive_frames_differ_but_correlate():
    differences, unrelated = [], []
    for seed in range(8):
        clip = dead_leaves_clip(2, 96, 96, seed=seed, palette=PALETTE)
        other = dead_leaves_clip(1, 96, 96, seed=seed + 50, palette=PALETTE)
        differences.append(np.mean((clip[1] - clip[0]) ** 2))
        unrelated.append(np.mean((clip[0] - other[0]) ** 2))
    assert np.mean(differences) > 0
    assert np.mean(differences) < 0.6 * np.mean(unrelated)
