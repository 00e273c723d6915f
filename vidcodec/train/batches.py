"""Training clips, one batch per (seed, rank, step), made ahead of time in worker processes.

A batch is a pure function of (seed, rank, step): resuming at step k draws exactly the clips an
uninterrupted run draws at step k, whoever made them and whenever. That is what lets workers
generate batches ahead while the trainer computes: clip generation (warping photographs, drawing
dead leaves, decoding lavfi) costs 15-40% of a training step on two cores when it runs in line
(measured by scripts/bench/bench_training.py).

No torch here: workers import numpy, scipy, PyAV and Pillow only; the trainer turns arrays into tensors.
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from vidcodec.train.clip_folder import folder_clip, open_data_folder
from vidcodec.train.synthetic import random_clip


@dataclass(frozen=True)
class BatchSpec:
    """What a training batch looks like: batch_size clips of clip_frames frames, crop x crop pixels."""

    batch_size: int
    clip_frames: int
    crop: int
    seed: int
    # (source, fraction) pairs, a tuple to stay hashable; None: synthetic.CLIP_MIX.
    clip_mix: tuple[tuple[str, float], ...] | None = None
    # A user's data folder (clip_folder.py) instead of the generated clips; None: generated.
    data: str | None = None


def training_batch(spec: BatchSpec, rank: int, step: int) -> np.ndarray:
    """(clip_frames, batch_size, crop, crop, 3) float32 RGB in [0,1]: the clips of training process
    ``rank`` at ``step`` (training split)."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, rank, step]))
    if spec.data is not None:
        folder = open_data_folder(spec.data, spec.clip_frames, spec.crop)
        clips = [folder_clip(rng, folder, spec.clip_frames, spec.crop, "train") for _ in range(spec.batch_size)]
    else:
        mix = dict(spec.clip_mix) if spec.clip_mix is not None else None
        clips = [random_clip(rng, spec.clip_frames, spec.crop, spec.crop, "train", mix)
                 for _ in range(spec.batch_size)]
    return np.ascontiguousarray(np.stack(clips, axis=1))


def _leave_interrupts_to_the_trainer() -> None:
    """A terminal's Ctrl-C reaches the whole process group: the trainer finishes its step and
    checkpoints (stop_request.py), which needs its workers alive until it closes them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class BatchPrefetcher:
    """``get(step)`` returns training_batch(spec, rank, step); with ``workers`` > 0 the next ``depth``
    batches are being made in worker processes meanwhile (in line with 0 workers)."""

    def __init__(self, spec: BatchSpec, rank: int, workers: int = 1, depth: int = 2) -> None:
        self.spec, self.rank, self.depth = spec, rank, max(depth, 1)
        # spawn, not fork: the trainer process holds OpenMP threads (torch) that a fork would copy
        # in a locked state.
        self._pool = (ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                          initializer=_leave_interrupts_to_the_trainer)
                      if workers > 0 else None)
        self._pending: dict[int, Future] = {}

    def get(self, step: int) -> np.ndarray:
        if self._pool is None:
            return training_batch(self.spec, self.rank, step)
        for ahead in range(step, step + self.depth + 1):
            if ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(training_batch, self.spec, self.rank, ahead)
        # Batches of steps already passed (after a jump) are never asked for again.
        for stale in [s for s in self._pending if s < step]:
            self._pending.pop(stale).cancel()
        return self._pending.pop(step).result()

    def close(self) -> None:
        if self._pool is not None:
            for future in self._pending.values():
                future.cancel()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._pending.clear()
