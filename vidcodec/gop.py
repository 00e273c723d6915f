"""GOP scheduler: which frames are intra, and what each inter frame references. Pure, no torch.

Low-delay P (the setting of the SSF and DCVC papers): frames are coded in display order; an I-frame
starts every ``intra_period`` frames and every other frame is a P-frame predicted from the
previous *decoded* frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class FrameType(str, Enum):
    INTRA = "I"
    INTER = "P"


@dataclass(frozen=True)
class FramePlan:
    poc: int  # picture order count = display index
    frame_type: FrameType
    ref_poc: int | None  # reference picture for P-frames, None for I-frames


class GopScheduler:
    """intra_period: -1 = only the first frame is intra; N >= 1 = an I-frame at every poc % N == 0."""

    def __init__(self, intra_period: int) -> None:
        if not isinstance(intra_period, int) or isinstance(intra_period, bool) or not (
            intra_period == -1 or intra_period >= 1
        ):
            raise ValueError(f"intra_period={intra_period} (expected -1 or >= 1)")
        self.intra_period = intra_period

    def plan(self, poc: int) -> FramePlan:
        if poc < 0:
            raise ValueError(f"poc={poc} (expected >= 0)")
        is_intra = poc == 0 if self.intra_period == -1 else poc % self.intra_period == 0
        if is_intra:
            return FramePlan(poc, FrameType.INTRA, None)
        return FramePlan(poc, FrameType.INTER, poc - 1)

    def plans(self, num_frames: int) -> list[FramePlan]:
        return [self.plan(poc) for poc in range(num_frames)]
