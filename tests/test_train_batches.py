import numpy as np

from clip_fixtures import write_image_folder
from vidcodec.train.batches import BatchPrefetcher, BatchSpec, training_batch

SPEC = BatchSpec(batch_size=2, clip_frames=2, crop=64, seed=3)


def test_a_batch_is_a_function_of_seed_rank_and_step():
    batch = training_batch(SPEC, rank=0, step=5)
    assert batch.shape == (2, 2, 64, 64, 3) and batch.dtype == np.float32
    assert np.array_equal(batch, training_batch(SPEC, rank=0, step=5))
    assert not np.array_equal(batch, training_batch(SPEC, rank=1, step=5))
    assert not np.array_equal(batch, training_batch(SPEC, rank=0, step=6))


def test_prefetching_workers_give_the_batches_made_in_line():
    prefetcher = BatchPrefetcher(SPEC, rank=1, workers=1, depth=2)
    try:
        # Steps in order, then a jump (a resumed run starts at its checkpoint's step).
        for step in (0, 1, 2, 7):
            assert np.array_equal(prefetcher.get(step), training_batch(SPEC, rank=1, step=step)), step
    finally:
        prefetcher.close()
    inline = BatchPrefetcher(SPEC, rank=1, workers=0)
    assert np.array_equal(inline.get(4), training_batch(SPEC, rank=1, step=4))


def test_a_batch_from_a_data_folder_is_a_function_of_seed_rank_and_step_in_any_process(tmp_path):
    """--data: a clip-making process opens the folder itself and draws the clips the trainer would."""
    for index in range(3):
        write_image_folder(tmp_path / f"scene{index}", 4, 40, 48, first_index=4 * index)
    spec = BatchSpec(batch_size=2, clip_frames=2, crop=32, seed=3, data=str(tmp_path))
    batch = training_batch(spec, rank=0, step=5)
    assert batch.shape == (2, 2, 32, 32, 3) and batch.dtype == np.float32
    assert np.array_equal(batch, training_batch(spec, rank=0, step=5))
    assert not np.array_equal(batch, training_batch(spec, rank=0, step=6))
    prefetcher = BatchPrefetcher(spec, rank=0, workers=1, depth=1)
    try:
        assert np.array_equal(prefetcher.get(5), batch)
    finally:
        prefetcher.close()
