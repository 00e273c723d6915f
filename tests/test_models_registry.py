import urllib.error
import urllib.request

import pytest
import torch

from vidcodec.errors import CheckpointError
from vidcodec.models.registry import build_model, load_model, save_checkpoint, state_dict_hash


def test_checkpoint_round_trip_keeps_hash_and_provenance(tmp_path):
    torch.manual_seed(0)
    model = build_model("ssf-small", mid_planes=16, latent_planes=16)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, "ssf-small", {"steps": 12})
    first, second = load_model("ssf-small", checkpoint=path), load_model("ssf-small", checkpoint=path)
    assert first.checkpoint_hash == second.checkpoint_hash and len(first.checkpoint_hash) == 16
    assert first.provenance == {"steps": 12}
    assert first.codec.config()["latent_planes"] == 16
    # float16 storage: weights are the float16 rounding of the trained ones
    weight = model.img_encoder[0].weight
    assert torch.equal(first.codec.img_encoder[0].weight, weight.half().float())


@pytest.mark.parametrize("model_id, config", [("ssf-small", {"mid_planes": 16, "latent_planes": 16}),
                                              ("dcvc-small", {"features": 16, "latent": 16}),
                                              ("mbt2018-mean", {"N": 16, "M": 16})])
def test_loaded_model_holds_every_saved_tensor(tmp_path, model_id, config):
    """Loading skips random initialization where it can (the meta device; GDN models are built the
    ordinary way): every tensor of the loaded model is the file's, the derived CDF tables are rebuilt,
    and nothing is left on the meta device."""
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", build_model(model_id, **config), model_id, {})
    saved = torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"]
    loaded = load_model(model_id, checkpoint=tmp_path / "m.pt").codec
    tensors = [*loaded.parameters(), *loaded.buffers()]
    assert tensors and all(tensor.device.type == "cpu" for tensor in tensors)
    state = loaded.state_dict()
    for name, tensor in saved.items():
        assert torch.equal(state[name], tensor.to(state[name].dtype)), name
    tables = [name for name in state if name.endswith("_quantized_cdf") and name not in saved]
    assert tables and all(state[name].abs().sum() > 0 for name in tables)


def test_hash_changes_with_weights():
    torch.manual_seed(0)
    a = build_model("ssf-small", mid_planes=16, latent_planes=16)
    b = build_model("ssf-small", mid_planes=16, latent_planes=16)
    assert state_dict_hash(a) != state_dict_hash(b)


def test_checkpoint_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model("ssf-small", checkpoint=tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_model("ssf-small", checkpoint=tmp_path / "junk.pt")
    save_checkpoint(tmp_path / "small.pt", build_model("ssf-small", mid_planes=16, latent_planes=16), "ssf-small", {})
    with pytest.raises(CheckpointError, match="is for model 'ssf-small'"):
        load_model("ssf", checkpoint=tmp_path / "small.pt")
    with pytest.raises(CheckpointError, match="unknown model"):
        load_model("nope", quality=1)
    with pytest.raises(CheckpointError, match="no CompressAI zoo weights"):
        load_model("ssf-small", quality=1, pretrained=True)


def test_bare_state_dict_of_wrong_architecture_is_refused(tmp_path):
    torch.save(build_model("ssf-small", mid_planes=16, latent_planes=16).state_dict(), tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="does not fit model 'ssf'"):
        load_model("ssf", checkpoint=tmp_path / "bare.pt")


def test_zoo_path_reads_the_torch_hub_cache(tmp_path, monkeypatch):
    """--pretrained goes through torch.hub's cache under TORCH_HOME; a file placed there (as after a
    download) is loaded without network access."""
    from compressai.zoo.video import model_urls

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    state_dict = build_model("ssf").state_dict()
    file_name = model_urls["ssf2020"]["mse"][3].rsplit("/", 1)[-1]
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state_dict, tmp_path / "hub" / "checkpoints" / file_name)
    loaded = load_model("ssf", quality=3, pretrained=True)
    assert loaded.source == "CompressAI zoo ssf2020 mse q3"
    assert torch.equal(loaded.codec.img_encoder[0].weight, state_dict["img_encoder.0.weight"])


def test_zoo_without_network_names_the_cache_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(CheckpointError, match="hub/checkpoints/ssf2020-mse-1"):
        load_model("ssf", quality=1, pretrained=True)
