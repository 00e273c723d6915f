import pytest
import torch

from vidcodec.errors import ConfigError
from vidcodec.models.registry import build_model
from vidcodec.quant.grouping import group_by_scale
from vidcodec.quant.lattice import get_lattice
from vidcodec.quant.tables import cell_probabilities
from vidcodec.train.lattice_loop import LatticeHyperpriorForward, cell_log_probability, install_lattice_in_the_loop


def tiny_model():
    torch.manual_seed(0)
    model = build_model("ssf-small", mid_planes=8, latent_planes=8, flow_in_pixels=True)
    model.update(force=True)  # scale tables, as every checkpoint carries them
    return model


@pytest.mark.parametrize("name", ["a2", "a3*", "e8"])
def test_to_cell_gives_uniform_points_of_the_voronoi_cell(name):
    lattice = get_lattice(name)
    uniform = torch.rand(50_000, lattice.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    points = lattice.to_cell(uniform)
    assert torch.equal(lattice.quantize_coords(points), torch.zeros_like(points, dtype=torch.int64))
    # Uniform over a unit-volume cell: E||u||^2 / dim is the lattice's normalized second moment.
    assert (points**2).sum(-1).mean().item() / lattice.dim == pytest.approx(lattice.nsm_theory, rel=0.02)


def test_qmc_cell_probability_matches_the_exact_hexagon_integral():
    lattice = get_lattice("a2")
    sobol = torch.quasirandom.SobolEngine(2, scramble=True, seed=3).draw(4096, dtype=torch.float64)
    offsets = lattice.to_cell(sobol)
    for sigma in (0.3, 0.8, 2.5):
        points = lattice.points_within(3 * sigma + 1)
        exact = torch.from_numpy(cell_probabilities(lattice, points, sigma))  # Gauss-Legendre, 1e-9
        estimate = cell_log_probability(points, torch.full_like(points, sigma), offsets).exp()
        keep = exact > 1e-4
        assert torch.allclose(estimate[keep], exact[keep], rtol=1e-2), sigma


def test_forward_codes_tuples_on_the_lattice_with_straight_through_gradients():
    model = tiny_model()
    hyperprior = model.res_hyperprior
    lattice_forward = LatticeHyperpriorForward(hyperprior, "a3*", samples=256)
    y = (0.3 * torch.randn(2, 8, 8, 8)).requires_grad_()
    hyperprior.eval()
    torch.manual_seed(5)
    y_hat, likelihoods = lattice_forward(y)

    with torch.no_grad():
        z_hat = hyperprior.entropy_bottleneck(hyperprior.hyper_encoder(y))[0]
        means = hyperprior.hyper_decoder_mean(z_hat)
        scales = hyperprior.hyper_decoder_scale(z_hat)
        tuples = lattice_forward._tuples(hyperprior.gaussian_conditional.build_indexes(scales))
    assert len(tuples) > 0
    lattice = get_lattice("a3*")
    residual_hat = (y_hat - means).reshape(-1)[tuples].detach().to(torch.float64)
    # Tuple members hold the nearest lattice point of their residual ...
    residual = (y - means).reshape(-1)[tuples].detach().double()
    assert torch.allclose(residual_hat, lattice.nearest_point(residual), atol=1e-5)
    # ... the others CompressAI's rounding.
    scalar = torch.ones(y.numel(), dtype=torch.bool)
    scalar[tuples.reshape(-1)] = False
    assert torch.allclose((y_hat - means).reshape(-1)[scalar], torch.round((y - means).reshape(-1)[scalar]), atol=1e-5)
    # The members' likelihoods multiply to the quasi-Monte-Carlo cell probability of the tuple
    # (the same scrambled Sobol points: the forward's first draw from torch's RNG), at most 1.
    torch.manual_seed(5)
    offsets = lattice_forward._cell_offsets("cpu")
    tuple_likelihood = likelihoods["y"].reshape(-1)[tuples].double().prod(-1)
    sigmas = hyperprior.gaussian_conditional.lower_bound_scale(scales).reshape(-1)[tuples]
    reference = cell_log_probability(residual_hat, sigmas.double(), offsets).clamp(max=0).exp()
    assert (reference > 1e-3).sum() >= 10 and tuple_likelihood.max() <= 1 + 1e-6
    assert torch.allclose(tuple_likelihood, reference.clamp(min=1e-27), rtol=1e-4)
    # Straight-through: the decoder's input has gradient 1 w.r.t. y.
    (y_hat * 2).sum().backward()
    assert torch.allclose(y.grad, torch.full_like(y, 2.0))


def test_training_mode_rate_term_has_gradients_for_the_hyperprior():
    model = tiny_model()
    install_lattice_in_the_loop(model, "a3*", samples=16)
    model.train()
    frames = [torch.rand(1, 3, 128, 128) for _ in range(2)]
    out = model(frames)
    sum(out.frame_bits()).backward()
    grads = [p.grad for n, p in model.res_hyperprior.named_parameters() if "hyper_decoder_scale" in n]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_installing_keeps_the_state_dict_and_fills_a_missing_scale_table():
    model = tiny_model()
    keys = list(model.state_dict())
    install_lattice_in_the_loop(model, "hex", scope="all")
    assert list(model.state_dict()) == keys
    fresh = build_model("ssf-small", mid_planes=8, latent_planes=8)
    install_lattice_in_the_loop(fresh, "a3*")
    assert torch.equal(fresh.res_hyperprior.gaussian_conditional.scale_table,
                       model.res_hyperprior.gaussian_conditional.scale_table)
    with pytest.raises(ValueError, match="scope"):
        install_lattice_in_the_loop(model, "a3*", scope="motion")


def test_grouping_matches_the_lattice_coder_per_picture():
    model = tiny_model()
    lattice_forward = LatticeHyperpriorForward(model.res_hyperprior, "a2", samples=4)
    scale_indexes = torch.randint(0, 10, (2, 8, 4, 4))
    tuples = lattice_forward._tuples(scale_indexes)
    per_picture = 8 * 4 * 4
    for n in range(2):
        expected = group_by_scale(scale_indexes[n], 2).tuples + n * per_picture
        mine = tuples[(tuples[:, 0] // per_picture) == n]
        assert torch.equal(mine, expected)
    assert len(tuples) == sum(len(group_by_scale(s, 2).tuples) for s in scale_indexes)


def test_trainer_fine_tunes_with_the_lattice_and_records_it(tmp_path):
    from vidcodec.errors import ConfigError
    from vidcodec.models.registry import load_model
    from vidcodec.train.trainer import TrainConfig, Trainer

    tiny = dict(model_config={"mid_planes": 8, "latent_planes": 8, "flow_in_pixels": True}, batch_size=1,
                clip_frames=2, crop=128, validation_clips=1, log_every=1, validate_every=2, num_threads=1,
                lattice="oct", lattice_samples=16)
    trainer = Trainer(TrainConfig(steps=2, **tiny), tmp_path / "run")
    assert isinstance(trainer.model.res_hyperprior.forward, LatticeHyperpriorForward)
    assert not isinstance(trainer.model.img_hyperprior.forward, LatticeHyperpriorForward)
    trainer.run(progress=False)
    trainer.export(tmp_path / "m.pt")
    assert load_model("ssf-small", checkpoint=tmp_path / "m.pt").provenance["train_config"]["lattice"] == "oct"
    for bad in ({"lattice": "a7"}, {"lattice": "oct", "lattice_scope": "motion"},
                {"lattice": "oct", "lattice_samples": 0}):
        with pytest.raises(ConfigError, match="lattice"):
            TrainConfig(**{**tiny, **bad}).validate()


def test_a_run_saved_under_a_lattice_alias_resumes_under_the_quantizer_name(tmp_path):
    """Runs saved before quant/registry.py hold the lattice as written ("a3*"); it is the same
    quantizer as "oct", so resuming must not refuse the run as started otherwise."""
    from vidcodec.train.trainer import TrainConfig, Trainer

    tiny = dict(model_config={"mid_planes": 8, "latent_planes": 8, "flow_in_pixels": True}, batch_size=1,
                clip_frames=2, crop=128, validation_clips=1, log_every=1, validate_every=2, num_threads=1,
                data_workers=0, lattice_samples=16, steps=2)
    run = tmp_path / "run"
    Trainer(TrainConfig(lattice="oct", **tiny), run).run(progress=False, max_steps=1)
    state = torch.load(run / "last.pt", weights_only=False)
    state["config"]["lattice"] = "a3*"
    torch.save(state, run / "last.pt")
    assert Trainer(TrainConfig(lattice="oct", **tiny), run).step == 1
    with pytest.raises(ConfigError, match="lattice: run has 'oct', asked 'hex'"):
        Trainer(TrainConfig(lattice="hex", **tiny), run)


def test_a_model_with_nothing_to_train_with_the_lattice_is_refused():
    factorized = build_model("bmshj2018-factorized", N=16, M=16)
    with pytest.raises(ConfigError, match="no latent of this model is in the lattice scope 'residual'"):
        install_lattice_in_the_loop(factorized, "a2")
    with pytest.raises(ConfigError, match="built for Gaussian hyperpriors.*FactorizedCoder"):
        install_lattice_in_the_loop(factorized, "a2", scope="intra")
    with pytest.raises(ConfigError, match="built for Gaussian hyperpriors.*AutoregressiveCoder"):
        install_lattice_in_the_loop(build_model("mbt2018", N=16, M=24), "a2", scope="intra")
