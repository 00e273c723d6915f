"""Encoder-side latent refinement: its rate model against the coded bytes, the never-worse
guarantee, a real gain on a shipped model, bit-exact decoding, and the refusals."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from vidcodec.cli import decode_main, encode_main
from vidcodec.config import CodecConfig
from vidcodec.errors import ConfigError
from vidcodec.io.color import rgb_to_yuv420
from vidcodec.io.yuv import SequenceGeometry, YuvWriter
from vidcodec.latent_refinement import RefineSettings, refine_latent
from vidcodec.models.registry import build_model, load_model
from vidcodec.pipeline import CodecModels, load_models
from vidcodec.tools import CodingTools
from vidcodec.train.synthetic import photo_clip

LMBDA_Q3 = 0.0067  # mbt2018-mean-small q3's training lambda


@pytest.fixture(scope="module")
def picture() -> torch.Tensor:
    """A 128 x 192 photograph, (1,3,H,W) in [0,1]."""
    return torch.from_numpy(photo_clip("coffee", 1, 128, 192, seed=3)[0]).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.fixture(scope="module")
def image_codec():
    return load_model("mbt2018-mean-small", 3).codec


def rd_cost(codec, frame, x) -> float:
    """Coded bits per pixel (the bytes written) + lambda * 255^2 * MSE."""
    bits = 8 * sum(len(part) for part in frame.parts)
    return bits / x[0, 0].numel() + LMBDA_Q3 * 255**2 * F.mse_loss(frame.x_hat, x).item()


@pytest.mark.parametrize("settings", [dict(iterations=0), dict(iterations=10_001), dict(learning_rate=0.0),
                                      dict(learning_rate=float("nan")), dict(lmbda=-1.0)])
def test_bad_settings_are_refused(settings):
    with pytest.raises(ConfigError, match="latent refinement settings"):
        RefineSettings(**settings)


@pytest.mark.parametrize("model_id", ["mbt2018-mean-small", "bmshj2018-factorized-small"])
def test_the_rate_model_rounds_as_the_coder_and_predicts_its_bytes(model_id, picture):
    codec = load_model(model_id, 3).codec
    y = codec.g_a(picture).detach()
    coder = codec.latent_coders["intra"]
    with torch.no_grad():
        bits, y_hat = coder.differentiable_bits(y)
        coded = coder.encode(y)
    assert torch.equal(y_hat, coded.y_hat)
    coded_bits = 8 * (len(coded.z_bytes) + len(coded.y_bytes))
    assert abs(bits.item() - coded_bits) < 0.03 * coded_bits + 64  # rANS tables' precision, stream ends


def test_refinement_lowers_the_coded_cost_of_a_shipped_image_codec(image_codec, picture):
    plain = image_codec.encode_intra(picture)
    image_codec.attach_tools(CodingTools(refine=RefineSettings(iterations=15, lmbda=LMBDA_Q3)))
    try:
        refined = image_codec.encode_intra(picture)
        again = image_codec.encode_intra(picture)
    finally:
        image_codec.attach_tools(CodingTools())
    assert again.parts == refined.parts  # the noise is seeded: the same picture, the same stream
    report = refined.refine["intra"]
    assert report.cost_after < 0.99 * report.cost_before and report.best_iteration > 0
    assert rd_cost(image_codec, refined, picture) < 0.99 * rd_cost(image_codec, plain, picture)
    # Decoding needs nothing new: the plain decoder gives the encoder's picture.
    decoded = image_codec.decode_intra(refined.parts, tuple(picture.shape[-2:]), refined.entropy_hash)
    assert torch.equal(decoded, refined.x_hat)


def test_the_analysis_latent_is_kept_when_no_step_lowers_the_cost(image_codec, picture):
    coder = image_codec.latent_coders["intra"]
    y = image_codec.g_a(picture).detach()
    # Steps of 20 latent units throw every element far off: each iterate costs more than y.
    settings = RefineSettings(iterations=3, learning_rate=20.0, lmbda=LMBDA_Q3)
    kept, report = refine_latent(lambda latent, noise: coder.differentiable_bits(latent, None, noise), y,
                                 image_codec._picture, picture, None, settings)
    assert report.best_iteration == 0 and report.cost_after == report.cost_before
    assert torch.equal(kept, y)


def test_refined_p_frames_decode_bit_exactly():
    torch.manual_seed(0)
    codec = build_model("dcvc-small", features=16, latent=16).eval()
    codec.update(force=True)
    codec.attach_tools(CodingTools(refine=RefineSettings(iterations=3, lmbda=LMBDA_Q3)))
    x0, x1 = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    intra = codec.encode_intra(x0)
    inter = codec.encode_inter(x1, codec.start_state(intra.x_hat))
    assert set(intra.refine) == {"intra"} and set(inter.refine) == {"contextual"}
    with torch.no_grad():
        state = codec.start_state(codec.decode_intra(intra.parts, (64, 128), intra.entropy_hash))
    x_hat, next_state = codec.decode_inter(inter.parts, state, (64, 128), inter.entropy_hash)
    assert torch.equal(x_hat, inter.x_hat) and torch.equal(next_state, inter.state)
    # Refinement needs no gradient of the weights: none was accumulated.
    assert all(parameter.grad is None for parameter in codec.parameters())


def test_each_model_refines_with_its_own_training_lambda():
    config = CodecConfig(model="dcvc-small", quality=3, intra_quality=2,
                         refine_iterations=2).with_resolved_intra().validate()
    models = load_models(config)
    models.attach_tools(config.coding_tools())
    assert models.intra.codec.tools.refine.lmbda == pytest.approx(0.0035)
    assert models.inter.codec.tools.refine.lmbda == pytest.approx(0.0067)
    # An explicit lambda is the same for both.
    config = dataclasses.replace(config, refine_lambda=0.01)
    models.attach_tools(config.coding_tools())
    assert models.intra.codec.tools.refine.lmbda == models.inter.codec.tools.refine.lmbda == 0.01


def test_refusals_name_the_problem():
    tools = CodingTools(refine=RefineSettings(iterations=2))
    # A model whose checkpoint records no training lambda (here: one just built).
    unnamed = load_model("mbt2018-mean-small", 3)
    unnamed = dataclasses.replace(unnamed, provenance={})
    with pytest.raises(ConfigError, match="--refine-lambda"):
        CodecModels.single(unnamed).attach_tools(tools)
    with_lambda = dataclasses.replace(tools, refine=RefineSettings(iterations=2, lmbda=0.01))
    # Lattice-coded latents.
    codec = load_model("dcvc-small", 3).codec
    with pytest.raises(ConfigError, match="lattice-coded contextual latent"):
        codec.attach_tools(dataclasses.replace(with_lambda, lattice="a2"))
    # An autoregressive prior.
    joint = build_model("mbt2018", N=8, M=8)
    with pytest.raises(ConfigError, match="not implemented for this model's intra latent"):
        joint.attach_tools(with_lambda)
    # A model with no learned latent at all.
    x265 = load_model("x265-intra", 3)
    with pytest.raises(ConfigError, match="would act on no latent"):
        CodecModels.single(x265).attach_tools(with_lambda)
    # A negative iteration count in a configuration.
    with pytest.raises(ConfigError, match="refine_iterations"):
        CodecConfig(refine_iterations=-1).validate()


def test_encode_refines_every_frame_and_logs_what_it_bought(tmp_path):
    """`vidcodec encode --refine 3` with the shipped default models: a stream that the plain decoder
    decodes to the encoder's pictures (encode verifies every frame), and the costs in rd.jsonl."""
    clip = photo_clip("coffee", 3, 64, 96, seed=5)
    sequence = tmp_path / "Clip_96x64_30fps_420_8bit_YUV.yuv"
    with YuvWriter(sequence, SequenceGeometry(96, 64)) as writer:
        for frame in clip:
            writer.write_frame(rgb_to_yuv420(torch.from_numpy(frame.transpose(2, 0, 1).copy())[None], 8))
    stream = tmp_path / "stream"
    assert encode_main([str(sequence), "--refine", "3", "--intra-period", "2", "--no-ms-ssim", "--out", str(stream),
                        "--quiet"]) == 0
    records = [json.loads(line) for line in (stream / "rd.jsonl").read_text().splitlines()]
    assert [r["frame_type"] for r in records] == ["I", "P", "I"]
    # every coded latent is refined; a P-frame that is its prediction alone (hybrid-small skipped its
    # residual) codes none and logs null
    assert all(r["refine_cost_before"] is not None or (r["frame_type"] == "P" and r["bits_residual_y"] == 0)
               for r in records)
    assert all(r["refine_cost_after"] <= r["refine_cost_before"]
               for r in records if r["refine_cost_before"] is not None)
    summary = json.loads((stream / "summary.json").read_text())
    assert summary["config"]["refine_iterations"] == 3 and summary["rd_log_version"] == 4
    assert decode_main([str(stream), "-o", str(tmp_path / "decoded.yuv"), "--quiet"]) == 0
