"""Training stages of a video codec, after the published recipes (OpenDVC, DCVC-UF's training.md).

Training the whole low-delay chain from the start spends most of every step on P-frames whose
reference is still a blur, and an I-frame that the chain trains only once per clip. The stages:

- ``intra``: the intra path alone, as an image codec on single frames (one frame per sample). An
  intra step costs about 1/6 of a 3-frame chain step (measured by scripts/bench/bench_training.py).
- ``pairs``: motion + residual on 2-frame pairs, the P-frame coded against the *uncompressed*
  first frame; the intra path is not used and stays frozen.
- ``chains``: clips of 2-5 frames, frame 0 intra and every next frame a P-frame against the model's
  own reconstruction of the previous one (CompressAI's ScaleSpaceFlow.forward), all parts trained.
- ``p-chains``: clips of 2-5 frames, frame 0 only the reference and every next frame a P-frame
  against the reconstruction of the previous one; the intra path frozen. Frame 0 is uncompressed, or
  decoded by a frozen image codec (the trainer's ``reference_codec``): P-frames then learn from
  the I-frames they will follow when coding (e.g. mbt2018-mean-small's, the shipped default).

A stage names the parameter groups it trains by role ("intra", "inter"); which parameters play a
role is the codec's business (its ``parameter_role``, e.g. ScaleSpaceFlowCodec.parameter_role).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    min_frames: int
    max_frames: int
    first_coded: int  # index of the first coded frame of a clip (pairs: the first frame is only a reference)
    frame_types: str  # frame type of each coded frame in order, the last one repeating ("IP": I, P, P, ...)
    trained_roles: tuple[str, ...]

    def coded_frames(self, clip_frames: int) -> slice:
        """The frames of a clip that the stage codes, in order."""
        return slice(self.first_coded, clip_frames)

    def coded_frame_types(self, clip_frames: int) -> list[str]:
        """'I' or 'P' per coded frame of a clip of ``clip_frames`` frames."""
        coded = len(range(clip_frames)[self.coded_frames(clip_frames)])
        types = list(self.frame_types[:coded])
        return types + [self.frame_types[-1]] * (coded - len(types))


STAGES: dict[str, Stage] = {
    "intra": Stage("intra", min_frames=1, max_frames=1, first_coded=0, frame_types="I", trained_roles=("intra",)),
    "pairs": Stage("pairs", min_frames=2, max_frames=2, first_coded=1, frame_types="P", trained_roles=("inter",)),
    "chains": Stage("chains", min_frames=2, max_frames=5, first_coded=0, frame_types="IP",
                    trained_roles=("intra", "inter")),
    "p-chains": Stage("p-chains", min_frames=2, max_frames=5, first_coded=1, frame_types="P",
                      trained_roles=("inter",)),
}


def get_stage(name: str) -> Stage:
    if name not in STAGES:
        raise ValueError(f"stage='{name}' (expected one of {', '.join(STAGES)})")
    return STAGES[name]


def frame_count_problem(stage: Stage, clip_frames: int) -> str | None:
    """A message when ``clip_frames`` does not suit ``stage``, else None."""
    if stage.min_frames <= clip_frames <= stage.max_frames:
        return None
    if stage.min_frames == stage.max_frames:
        expected = str(stage.min_frames)
    else:
        expected = f"{stage.min_frames}..{stage.max_frames}"
    return f"clip_frames={clip_frames} (stage '{stage.name}' expects {expected})"
