"""The codec interface carries any model family (models/interface.py), shown with a toy conditional
codec whose decoded state is a feature tensor (tests/toy_feature_codec.py):
  * it round-trips bit-exactly through encode_sequence / decode_sequence with Oct-Quant and the
    latent shift on its contextual latent, the tools attached by role;
  * an SSF intra model starts its state: two models of two families in one stream;
  * the trainer and the lattice in the training loop train it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from toy_feature_codec import ToyFeatureCodec
from vidcodec.bitstream.syntax import read_frame, sequence_id
from vidcodec.config import load_config
from vidcodec.errors import CheckpointError
from vidcodec.io.color import rgb_to_yuv420
from vidcodec.io.yuv import SequenceGeometry, YuvReader, YuvWriter
from vidcodec.models.registry import MODELS, ModelSpec, load_model, save_checkpoint
from vidcodec.pipeline import decode_sequence, encode_sequence, read_stream_header
from vidcodec.train.distributed import single_process_context
from vidcodec.train.synthetic import photo_clip
from vidcodec.train.trainer import TrainConfig, Trainer

SSF_FIXTURE = Path(__file__).parent / "fixtures" / "reference_streams" / "model.pt"
GEOMETRY = SequenceGeometry(112, 72, 8, 30.0)  # padded to 128 x 96 with the toy (SSF alone: 112 x 80)


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """The toy family registered, a random-weight checkpoint of it, and a 4-frame sequence."""
    monkeypatch.setitem(MODELS, "toy-feature", ModelSpec(ToyFeatureCodec, {}, "test-only conditional codec"))
    torch.manual_seed(0)
    checkpoint = tmp_path / "toy.pt"
    save_checkpoint(checkpoint, ToyFeatureCodec(), "toy-feature", {"purpose": "test"})
    sequence = tmp_path / "clip.yuv"
    with YuvWriter(sequence, GEOMETRY) as writer:
        for frame in photo_clip("coffee", 4, GEOMETRY.height, GEOMETRY.width, seed=3):
            writer.write_frame(rgb_to_yuv420(torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None], 8))
    return checkpoint, sequence


def encode(sequence: Path, out: Path, **overrides) -> Path:
    config = load_config(None, {"quality": None, "intra_period": 8, "num_threads": 1, **overrides})
    encode_sequence(YuvReader(sequence, GEOMETRY), out, config, recon_path=out.with_suffix(".recon.yuv"),
                    progress=False)
    return out.with_suffix(".recon.yuv")


def frame_headers_and_parts(stream: Path):
    stream_id = sequence_id((stream / "sequence.hdr").read_bytes())
    return [read_frame(p.read_bytes(), p.name, stream_id) for p in sorted((stream / "frames").iterdir())]


def test_a_feature_state_codec_round_trips_with_oct_and_the_latent_shift(toy, tmp_path):
    checkpoint, sequence = toy
    recon = encode(sequence, tmp_path / "oct", model="toy-feature", checkpoint=str(checkpoint), quant="oct",
                   latent_shift=True)
    decode_sequence(tmp_path / "oct", tmp_path / "decoded.yuv", checkpoint=checkpoint, progress=False)
    assert (tmp_path / "decoded.yuv").read_bytes() == recon.read_bytes()
    frames = frame_headers_and_parts(tmp_path / "oct")
    # The shift attached to the contextual latent (one step per P-frame), not to the intra one; a
    # frame header carries the step's index unless it is zero (FrameCodec.header_shift_indexes).
    records = [json.loads(line) for line in (tmp_path / "oct" / "rd.jsonl").read_text().splitlines()]
    assert [record["rho"] is None for record in records] == [True, False, False, False]
    assert [len(header.shift_indexes) for header, _ in frames] == [0] + [
        0 if record["rho"] == [0.0] else 1 for record in records[1:]]
    # Oct-Quant coded the contextual latents alone: the I-frame is the same as with rounding.
    encode(sequence, tmp_path / "sq", model="toy-feature", checkpoint=str(checkpoint), quant="sq")
    rounded = frame_headers_and_parts(tmp_path / "sq")
    assert frames[0][1] == rounded[0][1]
    assert all(lattice[1][1] != plain[1][1] for lattice, plain in zip(frames[1:], rounded[1:]))


def test_an_ssf_intra_model_starts_the_toys_feature_state(toy, tmp_path):
    checkpoint, sequence = toy
    recon = encode(sequence, tmp_path / "mixed", model="toy-feature", checkpoint=str(checkpoint),
                   intra_model="ssf-small", intra_checkpoint=str(SSF_FIXTURE), quant="hex", latent_shift=True)
    header, _ = read_stream_header(tmp_path / "mixed")
    assert (header.intra_model.model_id, header.inter_model.model_id) == ("ssf-small", "toy-feature")
    assert header.intra_model.checkpoint_hash == load_model("ssf-small", checkpoint=SSF_FIXTURE).checkpoint_hash
    assert header.pad_multiple == 32  # a multiple of both models' (16 and 32)
    assert [h.frame_type for h, _ in frame_headers_and_parts(tmp_path / "mixed")] == ["I", "P", "P", "P"]
    with pytest.raises(CheckpointError, match="--intra-checkpoint"):
        decode_sequence(tmp_path / "mixed", tmp_path / "x.yuv", checkpoint=checkpoint, progress=False)
    decode_sequence(tmp_path / "mixed", tmp_path / "decoded.yuv", checkpoint=checkpoint,
                    intra_checkpoint=SSF_FIXTURE, progress=False)
    assert (tmp_path / "decoded.yuv").read_bytes() == recon.read_bytes()


def test_the_trainer_and_the_lattice_loop_train_the_toy(toy, tmp_path):
    config = TrainConfig(model="toy-feature", steps=2, batch_size=1, clip_frames=2, crop=128, validation_clips=1,
                         validate_every=2, num_threads=1, data_workers=0, lattice="a3*", lattice_samples=16)
    trainer = Trainer(config.validate(), tmp_path / "run", single_process_context())
    hyperpriors = trainer.model.latent_coders
    assert "forward" in vars(hyperpriors["contextual"].hyperprior)  # the lattice, installed by role
    assert "forward" not in vars(hyperpriors["intra"].hyperprior)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run(progress=False)
    changed = {k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("context_") for k in changed) and any(k.startswith("intra_") for k in changed)
    trainer.export(tmp_path / "trained.pt")
    assert load_model("toy-feature", checkpoint=tmp_path / "trained.pt").provenance["steps"] == 2
