"""Image codecs (models/image_codecs.py): CompressAI's modules and bytes, zoo loading, intra only."""

import pytest
import torch
from compressai.models import (
    Cheng2020Attention,
    FactorizedPrior,
    JointAutoregressiveHierarchicalPriors,
    MeanScaleHyperprior,
)
from compressai.zoo.image import model_urls

from vidcodec.errors import ConfigError
from vidcodec.models.registry import build_model, load_model, shipped_checkpoint_path
from vidcodec.tools import CodingTools, ShiftSettings, roles_mask


@pytest.fixture(scope="module")
def twins():
    """Our mbt2018-mean and CompressAI's, with the same weights."""
    torch.manual_seed(0)
    reference = MeanScaleHyperprior(N=32, M=48).eval()
    ours = build_model("mbt2018-mean", N=32, M=48).eval()
    ours.load_state_dict(reference.state_dict())
    reference.update(force=True)
    ours.update(force=True)
    return ours, reference


def test_coding_gives_compressais_bytes(twins):
    ours, reference = twins
    x = torch.rand(1, 3, 128, 192)
    coded = ours.encode_intra(x)
    strings = reference.compress(x)["strings"]
    assert coded.parts == [strings[1][0], strings[0][0]]  # z, then y
    assert torch.equal(coded.x_hat, reference.decompress(strings, (2, 3))["x_hat"])
    assert torch.equal(ours.decode_intra(coded.parts, (128, 192), coded.entropy_hash), coded.x_hat)


@pytest.mark.parametrize("tools", [CodingTools(lattice="a2", quant_roles=frozenset({"intra"})),
                                   CodingTools(lattice="a3*", quant_roles=frozenset({"intra"}),
                                               shift=ShiftSettings(scope_mask=roles_mask({"intra"})))])
def test_the_tools_attach_to_the_image_latent(twins, tools):
    ours, _ = twins
    x = torch.rand(1, 3, 128, 128)
    plain = ours.encode_intra(x)
    ours.attach_tools(tools)
    try:
        coded = ours.encode_intra(x)
        assert coded.parts[1] != plain.parts[1]  # y is lattice-coded
        assert len(coded.shift_indexes) == (1 if tools.shift else 0)
        decoded = ours.decode_intra(coded.parts, (128, 128), coded.entropy_hash, coded.shift_indexes)
        assert torch.equal(decoded, coded.x_hat)
    finally:
        ours.attach_tools(CodingTools())


def test_training_forward_is_compressais(twins):
    ours, reference = twins
    x = torch.rand(2, 3, 64, 64)
    torch.manual_seed(1)
    output = ours([x], stage="intra")
    torch.manual_seed(1)
    expected = reference(x)
    assert torch.equal(output.x_hat[0], expected["x_hat"])
    assert torch.equal(output.likelihoods[0]["intra"]["y"], expected["likelihoods"]["y"])
    with pytest.raises(ValueError, match="only stage is 'intra'"):
        ours([x, x], stage="chains")


def test_p_frames_are_refused_with_a_way_out(twins):
    ours, _ = twins
    with pytest.raises(ConfigError, match="--intra-model"):
        ours.encode_inter(torch.rand(1, 3, 64, 64), None)


@pytest.mark.slow
@pytest.mark.parametrize("model_id, reference_class, config", [
    ("mbt2018", JointAutoregressiveHierarchicalPriors, {"N": 32, "M": 48}),
    ("cheng2020-attn", Cheng2020Attention, {"N": 32}),
])
def test_autoregressive_codecs_code_train_and_refuse_p_frames(model_id, reference_class, config):
    torch.manual_seed(0)
    reference = reference_class(**config).eval()
    ours = build_model(model_id, **config).eval()
    ours.load_state_dict(reference.state_dict())
    reference.update(force=True)
    ours.update(force=True)
    x = torch.rand(1, 3, 64, 128)
    coded = ours.encode_intra(x)
    assert coded.parts == [*reversed([s[0] for s in reference.compress(x)["strings"]])]
    assert torch.equal(ours.decode_intra(coded.parts, (64, 128), coded.entropy_hash), coded.x_hat)
    torch.manual_seed(1)
    output = ours([x], stage="intra")
    torch.manual_seed(1)
    expected = reference(x)
    assert torch.equal(output.x_hat[0], expected["x_hat"])
    assert torch.equal(output.likelihoods[0]["intra"]["y"], expected["likelihoods"]["y"])
    with pytest.raises(ConfigError, match="--intra-model"):
        ours.encode_inter(x, None)


@pytest.mark.parametrize("model_id, reference_class, quality, widths", [
    ("bmshj2018-factorized", FactorizedPrior, 6, {"N": 192, "M": 320}),
    ("mbt2018-mean", MeanScaleHyperprior, 5, {"N": 192, "M": 320}),
    ("mbt2018", JointAutoregressiveHierarchicalPriors, 5, {"N": 192, "M": 320}),
    ("cheng2020-attn", Cheng2020Attention, 4, {"N": 192}),
])
def test_zoo_weights_load_with_the_zoos_widths(tmp_path, monkeypatch, model_id, reference_class, quality, widths):
    """--pretrained --quality Q builds the zoo's widths (its cfgs) and reads torch.hub's cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    state_dict = reference_class(**widths).state_dict()
    file_name = model_urls[model_id]["mse"][quality].rsplit("/", 1)[-1]
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state_dict, tmp_path / "hub" / "checkpoints" / file_name)
    loaded = load_model(model_id, quality=quality, pretrained=True)
    assert loaded.codec.config() == widths
    first_analysis_weight = next(key for key in state_dict if key.startswith("g_a."))
    assert torch.equal(loaded.codec.state_dict()[first_analysis_weight], state_dict[first_analysis_weight])

@pytest.mark.parametrize("model_id", ["bmshj2018-factorized-small", "mbt2018-mean-small"])
@pytest.mark.parametrize("quality, lmbda", [(1, 0.0018), (2, 0.0035), (3, 0.0067), (4, 0.013)])
def test_the_shipped_small_image_codecs_load_with_their_provenance(model_id, quality, lmbda):
    """vidcodec/weights/<model>-qN.pt: trained as image codecs (stage intra), each rate point fine-tuned at
    its lambda (docs/models/mbt2018-mean-small.md); mbt2018-mean-small started from the factorized transforms."""
    loaded = load_model(model_id, quality=quality)
    assert shipped_checkpoint_path(model_id, quality).stat().st_size < 10 * 2**20
    assert loaded.codec.config() == {"N": 64, "M": 96}
    stages = loaded.provenance["curriculum"]
    assert {s["stage"] for s in stages} == {"intra"}
    assert stages[-1]["lmbda"] == lmbda and loaded.provenance["train_config"]["lmbda"] == lmbda
    assert ("warm_start" in stages[0]) == (model_id == "mbt2018-mean-small")
