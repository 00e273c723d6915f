import pytest
import torch

from vidcodec.errors import ConfigError
from vidcodec.models.registry import build_model, load_model
from vidcodec.train.curriculum import STAGES, frame_count_problem, get_stage
from vidcodec.train.trainer import TrainConfig, Trainer, rd_loss

TINY = dict(model_config={"mid_planes": 8, "latent_planes": 8, "flow_in_pixels": True}, batch_size=1,
            crop=128, validation_clips=1, log_every=1, validate_every=1, num_threads=1, data_workers=0, steps=1)


def test_stages_code_the_frames_they_name():
    assert get_stage("intra").coded_frame_types(1) == ["I"]
    assert get_stage("pairs").coded_frame_types(2) == ["P"]
    assert get_stage("chains").coded_frame_types(4) == ["I", "P", "P", "P"]
    assert get_stage("p-chains").coded_frame_types(4) == ["P", "P", "P"]
    assert frame_count_problem(STAGES["intra"], 3) == "clip_frames=3 (stage 'intra' expects 1)"
    assert frame_count_problem(STAGES["chains"], 6) == "clip_frames=6 (stage 'chains' expects 2..5)"
    with pytest.raises(ValueError, match="expected one of intra, pairs, chains, p-chains"):
        get_stage("warp")


def test_config_names_the_stage_problem():
    with pytest.raises(ConfigError, match="clip_frames=2 \\(stage 'intra' expects 1\\)"):
        TrainConfig(stage="intra", clip_frames=2).validate()
    with pytest.raises(ConfigError, match="stage='all'"):
        TrainConfig(stage="all").validate()


def test_pairs_code_the_second_frame_against_the_uncompressed_first():
    torch.manual_seed(0)
    model = build_model("ssf-small", mid_planes=8, latent_planes=8, flow_in_pixels=True).eval()
    frames = [torch.rand(1, 3, 128, 128) for _ in range(2)]
    torch.manual_seed(1)
    terms = rd_loss(model, frames, lmbda=0.01, stage="pairs")
    x_hat, _ = model.forward_inter(frames[1], frames[0])  # eval: rounding, no noise
    assert terms["mse"].shape == (1,)
    assert torch.allclose(terms["mse"][0], torch.mean((x_hat - frames[1]) ** 2))


@pytest.mark.parametrize("model", ["ssf-small", "dcvc-small"])
def test_p_chains_code_every_frame_after_the_first_against_the_previous_reconstruction(model):
    torch.manual_seed(0)
    codec = build_model(model, **({"features": 16, "latent": 16} if model == "dcvc-small" else TINY["model_config"]))
    frames = [torch.rand(1, 3, 128, 128) for _ in range(4)]
    out = codec.eval()(frames, stage="p-chains")
    assert len(out.x_hat) == 3 and all("intra" not in frame for frame in out.likelihoods)
    # The first P-frame is the pairs stage's: coded against frame 0 as it is.
    assert torch.equal(out.x_hat[0], codec(frames[:2], stage="pairs").x_hat[0])


def test_a_reference_codec_decodes_frame_0_of_every_clip(tmp_path):
    image = dict(TINY, model_config={"N": 16, "M": 24}, stage="intra", clip_frames=1)
    intra = Trainer(TrainConfig(model="mbt2018-mean-small", **image), tmp_path / "mean")
    intra.run(progress=False)
    intra.export(tmp_path / "mean.pt")
    trainer = Trainer(TrainConfig(stage="p-chains", clip_frames=3, reference_codec=str(tmp_path / "mean.pt"), **TINY),
                      tmp_path / "run")
    frames = [torch.rand(1, 3, 128, 128) for _ in range(3)]
    prepared = trainer.with_reference(frames)
    decoded = load_model("mbt2018-mean-small", checkpoint=tmp_path / "mean.pt").codec.eval()(frames[:1], stage="intra")
    assert torch.equal(prepared[0], decoded.x_hat[0].clamp(0, 1)) and not torch.equal(prepared[0], frames[0])
    assert prepared[1:] == frames[1:]
    trainer.run(progress=False)
    trainer.export(tmp_path / "p.pt")
    record = load_model("ssf-small", checkpoint=tmp_path / "p.pt").provenance["curriculum"][-1]
    assert record["stage"] == "p-chains" and record["reference_codec"] == str(tmp_path / "mean.pt")
    with pytest.raises(ConfigError, match="reference_codec is for the stages whose frame 0 is only a reference"):
        TrainConfig(stage="chains", reference_codec="mean.pt").validate()


@pytest.mark.parametrize("stage, clip_frames, frozen_prefix, trained_prefix, val_key", [
    ("intra", 1, ("motion_", "res_"), "img_", "val_psnr_i"),
    ("pairs", 2, ("img_",), "res_", "val_psnr_p"),
    ("p-chains", 3, ("img_",), "res_", "val_psnr_p"),
])
def test_a_stage_trains_only_its_parts(tmp_path, stage, clip_frames, frozen_prefix, trained_prefix, val_key):
    trainer = Trainer(TrainConfig(stage=stage, clip_frames=clip_frames, **TINY), tmp_path / "run")
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not n.endswith("quantiles")}
    trainer.run(progress=False)
    after = dict(trainer.model.named_parameters())
    frozen = [n for n in before if n.startswith(frozen_prefix)]
    trained = [n for n in before if n.startswith(trained_prefix)]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)
    assert any(not torch.equal(before[n], after[n]) for n in trained)
    log = (tmp_path / "run" / "train_log.jsonl").read_text()
    assert val_key in log and ("val_psnr_p" in log) == (stage != "intra")


def test_provenance_lists_every_stage(tmp_path):
    intra = Trainer(TrainConfig(stage="intra", clip_frames=1, **TINY), tmp_path / "intra")
    intra.run(progress=False)
    intra.export(tmp_path / "intra.pt")
    chains = Trainer(TrainConfig(stage="chains", clip_frames=2, init_from=str(tmp_path / "intra.pt"), **TINY),
                     tmp_path / "chains")
    chains.run(progress=False)
    chains.export(tmp_path / "chains.pt")
    curriculum = load_model("ssf-small", checkpoint=tmp_path / "chains.pt").provenance["curriculum"]
    assert [(s["stage"], s["steps"], s["clip_frames"]) for s in curriculum] == [("intra", 1, 1), ("chains", 1, 2)]
    assert curriculum[1]["init_from"] == str(tmp_path / "intra.pt")


def test_a_rate_point_can_be_assembled_from_the_roles_of_two_checkpoints(tmp_path):
    paths = {}
    for seed in (1, 2):
        trainer = Trainer(TrainConfig(stage="chains", clip_frames=2, **{**TINY, "seed": seed}), tmp_path / f"run{seed}")
        if seed == 2:  # a wider density of z: longer CDF tables than the other checkpoint's
            with torch.no_grad():
                trainer.model.img_hyperprior.entropy_bottleneck.matrices[0].mul_(0.1)
        trainer.export(tmp_path / f"m{seed}.pt")
        paths[seed] = tmp_path / f"m{seed}.pt"
    assembled = Trainer(TrainConfig(stage="chains", clip_frames=2, init_from=str(paths[1]),
                                    init_roles_from={"intra": str(paths[2])}, **TINY), tmp_path / "assembled")
    donors = {seed: load_model("ssf-small", checkpoint=path).codec.state_dict() for seed, path in paths.items()}
    state = assembled.model.state_dict()
    assert torch.equal(state["img_encoder.0.weight"], donors[2]["img_encoder.0.weight"])
    cdf = "img_hyperprior.entropy_bottleneck._quantized_cdf"
    assert donors[1][cdf].shape != donors[2][cdf].shape and torch.equal(state[cdf], donors[2][cdf])
    assert torch.equal(state["res_encoder.0.weight"], donors[1]["res_encoder.0.weight"])
    assert not torch.equal(donors[1]["img_encoder.0.weight"], donors[2]["img_encoder.0.weight"])
    assert [record.get("role") for record in assembled.earlier_stages] == [None, "intra"]
    with pytest.raises(ConfigError, match="init_roles_from has roles motion"):
        TrainConfig(init_from="a.pt", init_roles_from={"motion": "b.pt"}).validate()


def test_cli_names_a_malformed_init_role(tmp_path, capsys):
    from vidcodec.cli import main

    assert main(["train", "--out", str(tmp_path), "--init-role", "intra"]) != 0
    assert "--init-role 'intra' (expected ROLE=PATH" in capsys.readouterr().err


def test_crops_too_small_for_the_hyperprior_are_warned_about():
    with pytest.warns(UserWarning, match="crop=128: the hyperprior's z is 1 x 1"):
        TrainConfig(crop=128).validate()


def test_warm_start_copies_the_transforms_another_model_shares(tmp_path):
    image = dict(TINY, model_config={"N": 16, "M": 24}, stage="intra", clip_frames=1)
    donor = Trainer(TrainConfig(model="bmshj2018-factorized-small", **image), tmp_path / "fact")
    donor.run(progress=False)
    donor.export(tmp_path / "fact.pt")
    fact = load_model("bmshj2018-factorized-small", checkpoint=tmp_path / "fact.pt").codec.state_dict()
    mean = Trainer(TrainConfig(model="mbt2018-mean-small", warm_start_from=str(tmp_path / "fact.pt"), **image),
                   tmp_path / "mean")
    state = mean.model.state_dict()
    assert torch.equal(state["g_a.0.weight"], fact["g_a.0.weight"])
    assert torch.equal(state["g_s.6.weight"], fact["g_s.6.weight"])
    # The factorized prior's density (over y's 24 channels) does not fit the hyperprior's (z's 16).
    assert state["entropy_bottleneck.matrices.0"].shape != fact["entropy_bottleneck.matrices.0"].shape
    [stage] = mean.earlier_stages
    assert stage["stage"] == "intra" and stage["warm_start"]["modules"] == ["g_a", "g_s"]
    with pytest.raises(ConfigError, match="warm_start_from and init_from exclude each other"):
        TrainConfig(model="mbt2018-mean-small", init_from="a.pt", warm_start_from="b.pt").validate()
    with pytest.raises(ConfigError, match="no parameter of model 'bmshj2018-factorized-small' has a name"):
        Trainer(TrainConfig(warm_start_from=str(tmp_path / "fact.pt"), **TINY), tmp_path / "ssf")
