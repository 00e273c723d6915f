"""dcvc-small: the conditional codec's training forward, its feature state, its temporal prior under
the desync guard, and bit-exact coding with Oct-Quant and the latent shift on its contextual latent."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vidcodec.bitstream.errors import DecoderDesyncError
from vidcodec.config import load_config
from vidcodec.io.color import rgb_to_yuv420
from vidcodec.io.yuv import SequenceGeometry, YuvReader, YuvWriter
from vidcodec.models.dcvc_small import DcvcSmallCodec
from vidcodec.models.registry import build_model, load_model, save_checkpoint, shipped_checkpoint_path
from vidcodec.pipeline import decode_sequence, encode_sequence
from vidcodec.tools import CodingTools
from vidcodec.train.distributed import single_process_context
from vidcodec.train.synthetic import photo_clip
from vidcodec.train.trainer import TrainConfig, Trainer

SMALL = {"features": 16, "latent": 16}


@pytest.fixture(scope="module")
def codec() -> DcvcSmallCodec:
    torch.manual_seed(0)
    model = build_model("dcvc-small", **SMALL).eval()
    model.update(force=True)
    return model


@pytest.mark.parametrize("stage, coded, roles", [("intra", 1, [{"intra"}]), ("pairs", 1, [{"contextual"}]),
                                                 ("chains", 3, [{"intra"}, {"contextual"}, {"contextual"}])])
def test_training_forward_codes_the_frames_of_each_stage(codec, stage, coded, roles):
    frames = [torch.rand(1, 3, 64, 128) for _ in range(3)]
    out = codec(frames, stage=stage)
    assert len(out.x_hat) == coded and [set(frame) for frame in out.likelihoods] == roles
    assert all(x.shape == (1, 3, 64, 128) for x in out.x_hat)


def test_p_frames_decode_bit_exactly_with_a_feature_state(codec):
    torch.manual_seed(1)
    x0, x1 = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    intra = codec.encode_intra(x0)
    state = codec.start_state(codec.decode_intra(intra.parts, (64, 128), intra.entropy_hash))
    assert state.shape == (1, SMALL["features"], 8, 16)  # features at 1/8, not a picture
    inter = codec.encode_inter(x1, codec.start_state(intra.x_hat))
    x_hat, next_state = codec.decode_inter(inter.parts, state, (64, 128), inter.entropy_hash)
    assert torch.equal(x_hat, inter.x_hat) and torch.equal(next_state, inter.state)
    # The temporal prior reads the state: another state gives other entropy parameters, and the
    # desync guard refuses instead of decoding garbage.
    with pytest.raises(DecoderDesyncError):
        codec.decode_inter(inter.parts, state + 0.5, (64, 128), inter.entropy_hash)


@pytest.mark.parametrize("model_id, fixture", [("dcvc-small", "codec"), ("dcvc-small-gated", "gated_trained"),
                                               ("dcvc-small-detail", "detail_trained")])
def test_a_sequence_round_trips_with_oct_and_the_latent_shift_on_the_contextual_latent(model_id, fixture, request,
                                                                                        tmp_path):
    codec = request.getfixturevalue(fixture)
    checkpoint = tmp_path / "dcvc.pt"
    save_checkpoint(checkpoint, codec, model_id, {"purpose": "test"})
    geometry = SequenceGeometry(112, 72, 8, 30.0)
    sequence = tmp_path / "clip.yuv"
    with YuvWriter(sequence, geometry) as writer:
        for frame in photo_clip("coffee", 3, geometry.height, geometry.width, seed=5):
            writer.write_frame(rgb_to_yuv420(torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None], 8))
    config = load_config(None, {"model": model_id, "checkpoint": str(checkpoint), "quality": None,
                                "quant": "oct", "latent_shift": True, "num_threads": 1})
    result = encode_sequence(YuvReader(sequence, geometry), tmp_path / "out", config, recon_path=tmp_path / "rec.yuv",
                             progress=False)
    assert [r["rho"] is not None for r in result.records] == [False, True, True]
    assert all(r["bits_contextual_y"] > 0 for r in result.records[1:])
    decode_sequence(tmp_path / "out", tmp_path / "dec.yuv", checkpoint=checkpoint, progress=False)
    assert (tmp_path / "dec.yuv").read_bytes() == (tmp_path / "rec.yuv").read_bytes()
    codec.attach_tools(CodingTools())


def test_the_trainer_trains_it_with_the_lattice_in_the_loop(tmp_path):
    config = TrainConfig(model="dcvc-small", model_config=SMALL, steps=1, batch_size=1, clip_frames=2, crop=128,
                         validation_clips=1, validate_every=1, num_threads=1, data_workers=0, lattice="a3*",
                         lattice_samples=16)
    trainer = Trainer(config.validate(), tmp_path / "run", single_process_context())
    assert "forward" in vars(trainer.model.contextual_hyperprior)
    trainer.run(progress=False)
    trainer.export(tmp_path / "m.pt")
    assert load_model("dcvc-small", checkpoint=tmp_path / "m.pt").codec.config() == SMALL


def warm_started(model_id: str, codec: DcvcSmallCodec) -> DcvcSmallCodec:
    """model_id (a dcvc-small variant) with codec's weights, its own added parts as they start."""
    model = build_model(model_id, **SMALL).eval()
    model.load_state_dict(codec.state_dict(), strict=False)
    model.update(force=True)
    return model


@pytest.fixture(scope="module")
def gated(codec) -> DcvcSmallCodec:
    """dcvc-small-gated with codec's weights, its gate zero as a warm start leaves it."""
    return warm_started("dcvc-small-gated", codec)


@pytest.fixture(scope="module")
def detail(codec) -> DcvcSmallCodec:
    """dcvc-small-detail with codec's weights, its head's last layer zero as a warm start leaves it."""
    return warm_started("dcvc-small-detail", codec)


@pytest.mark.parametrize("fixture, added, config", [
    ("gated", {"gate"}, {"reference_gate": True}),
    ("detail", {"detail"}, {"detail_head": True}),
])
def test_a_variant_adds_only_its_part_and_a_warm_start_codes_as_dcvc_small(codec, fixture, added, config, request):
    variant = request.getfixturevalue(fixture)
    assert {name.split(".")[0] for name in set(variant.state_dict()) - set(codec.state_dict())} == added
    assert variant.config() == {**SMALL, **config}
    torch.manual_seed(2)
    frames = [torch.rand(1, 3, 64, 128) for _ in range(3)]
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(codec(frames).x_hat, variant(frames).x_hat))


@pytest.fixture(scope="module")
def gated_trained(gated) -> DcvcSmallCodec:
    """``gated`` with a non-zero gate, as training leaves it: its pictures depend on the reference."""
    gated = copy.deepcopy(gated)
    torch.manual_seed(3)
    with torch.no_grad():
        gated.gate.weight.normal_(0.0, 0.05)
        gated.gate.bias.fill_(0.5)
    gated.update(force=True)
    return gated


def test_gated_p_frames_keep_the_reference_picture_in_their_state_and_decode_bit_exactly(gated_trained):
    gated = gated_trained
    x0, x1, x2 = (torch.rand(1, 3, 64, 128) for _ in range(3))
    intra = gated.encode_intra(x0)
    state = gated.start_state(intra.x_hat)
    features, reference = state
    assert features.shape == (1, SMALL["features"], 8, 16) and torch.equal(reference, intra.x_hat)
    first = gated.encode_inter(x1, state)
    second = gated.encode_inter(x2, first.state)
    decoded_state = gated.start_state(gated.decode_intra(intra.parts, (64, 128), intra.entropy_hash))
    for frame in (first, second):
        x_hat, decoded_state = gated.decode_inter(frame.parts, decoded_state, (64, 128), frame.entropy_hash)
        assert torch.equal(x_hat, frame.x_hat) and torch.equal(decoded_state[1], x_hat)
        assert torch.equal(decoded_state[0], frame.state[0])
    # Another reference picture gives another P-frame picture from the same parts.
    other, _ = gated.decode_inter(first.parts, (state[0], 1.0 - state[1]), (64, 128), first.entropy_hash)
    assert not torch.equal(other, first.x_hat)


def test_a_gate_of_one_copies_the_reference_picture_whatever_was_coded(gated):
    """The gate blends to_pixels' picture (0) with the reference (1): at 1 a P-frame is its reference."""
    copying = copy.deepcopy(gated)
    with torch.no_grad():
        copying.gate.weight.zero_()
        copying.gate.bias.fill_(1.0)
    copying.update(force=True)
    torch.manual_seed(4)
    x0, x1 = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    intra = copying.encode_intra(x0)
    reference = copying.decode_intra(intra.parts, (64, 128), intra.entropy_hash)
    coded = copying.encode_inter(x1, copying.start_state(reference))
    assert torch.allclose(coded.x_hat, reference, atol=1e-6)


@pytest.mark.parametrize("model_id", ["dcvc-small", "dcvc-small-detail"])
@pytest.mark.parametrize("quality, lmbda", [(1, 0.0018), (2, 0.0035), (3, 0.0067), (4, 0.013)])
def test_the_shipped_ladder_loads_with_its_provenance(model_id, quality, lmbda):
    """vidcodec/weights/dcvc-small-qN.pt: each rate point fine-tuned from the 17,440-step q3 (README);
    dcvc-small-detail-qN.pt: warm-started from dcvc-small-qN.pt, whose curriculum it carries on, then
    trained on in a second detail stage."""
    loaded = load_model(model_id, quality=quality)
    assert shipped_checkpoint_path(model_id, quality).stat().st_size < 10 * 2**20
    stages = loaded.provenance["curriculum"]
    assert [(s["stage"], s["steps"], s["lmbda"]) for s in stages[:2]] == [("chains", 11706, 0.0067),
                                                                          ("chains", 5734, 0.0067)]
    assert stages[-1]["lmbda"] == lmbda and loaded.provenance["train_config"]["lmbda"] == lmbda
    if model_id == "dcvc-small-detail":
        # dcvc-small's stages carry the warm start that began the detail stages after them; those run
        # p-chains against the I-frames of mbt2018-mean-small at the same rate point, the last one
        # continuing the detail ladder shipped before it.
        first_detail = next(i for i, stage in enumerate(stages) if "warm_start" not in stage)
        assert all(stage["warm_start"]["model"] == "dcvc-small" for stage in stages[:first_detail])
        assert [stage["stage"] for stage in stages[first_detail:]] == ["p-chains", "p-chains"]
        assert all(stage["reference_codec"] == f"vidcodec/weights/mbt2018-mean-small-q{quality}.pt"
                   for stage in stages[first_detail:])
        assert stages[-1]["init_from"] == f"vidcodec/weights/dcvc-small-detail-q{quality}.pt"
        assert loaded.codec.detail[-1].weight.abs().max() > 0  # a trained head, not the zero warm start


@pytest.fixture(scope="module")
def detail_trained(detail) -> DcvcSmallCodec:
    """``detail`` with a non-zero head, as training leaves it: its P-frame pictures differ from codec's."""
    detail = copy.deepcopy(detail)
    torch.manual_seed(5)
    with torch.no_grad():
        detail.detail[-1].weight.normal_(0.0, 0.05)
    detail.update(force=True)
    return detail


def test_a_trained_detail_head_changes_p_frames_only(codec, detail_trained):
    torch.manual_seed(6)
    frames = [torch.rand(1, 3, 64, 128) for _ in range(3)]
    with torch.no_grad():
        plain, with_head = codec(frames).x_hat, detail_trained(frames).x_hat
    assert torch.equal(plain[0], with_head[0])  # the I-frame path has no head
    assert not torch.equal(plain[1], with_head[1])
