import pytest

from vidcodec.config import CodecConfig, load_config, model_in_weights_dir, resolve_intra_model
from vidcodec.errors import ConfigError


def test_default_config_file_matches_the_dataclass_defaults():
    assert load_config() == CodecConfig().with_resolved_intra()


def test_shipped_weights_code_their_i_frames_with_the_registrys_image_codec():
    assert load_config().intra_model == "mbt2018-mean-small"  # hybrid-small's shipped q3
    assert load_config(overrides={"model": "ssf-small", "quality": 1}).intra_model == "mbt2018-mean-small"
    # Weights of one's own code their own I-frames.
    assert load_config(overrides={"checkpoint": "mine.pt"}).intra_model is None
    assert load_config(overrides={"model": "ssf", "pretrained": True}).intra_model is None
    assert load_config(overrides={"intra_checkpoint": "intra.pt"}).intra_model is None
    # A named model is kept; the model itself means its own I-frame path.
    assert load_config(overrides={"intra_model": "dcvc-small"}).intra_model == "dcvc-small"
    assert load_config(overrides={"intra_model": "x265-intra"}).intra_model == "x265-intra"


def test_the_intra_model_is_resolved_from_the_weights_and_what_the_user_named(tmp_path):
    """resolve_intra_model, the one rule the CLI, load_config and the evaluation share."""
    # Shipped weights: the registry's image codec; a model without one (an image codec) codes its own.
    assert resolve_intra_model("dcvc-small") == "mbt2018-mean-small"
    assert resolve_intra_model(None) == resolve_intra_model(CodecConfig().model) == "mbt2018-mean-small"
    assert resolve_intra_model("mbt2018-mean-small") is None
    assert resolve_intra_model("no-such-model") is None  # left for validate() to report
    # Weights of one's own (a file, a folder, the zoo) code their own I-frames, and so does an
    # I-frame checkpoint given without a model.
    assert resolve_intra_model("dcvc-small", checkpoint="mine.pt") is None
    assert resolve_intra_model("dcvc-small", weights_dir=tmp_path) is None
    assert resolve_intra_model("ssf", pretrained=True) is None
    assert resolve_intra_model("dcvc-small", intra_checkpoint="intra.pt") is None
    # What the user named wins, whatever the weights.
    assert resolve_intra_model("dcvc-small", checkpoint="mine.pt", intra_model="x265-intra") == "x265-intra"
    assert resolve_intra_model("dcvc-small", intra_model="dcvc-small") == "dcvc-small"
    # A folder of I-frame weights names the one model it holds; holding several, it names none.
    intra_dir = tmp_path / "intra"
    intra_dir.mkdir()
    (intra_dir / "bmshj2018-factorized-small-q1.pt").touch()
    assert resolve_intra_model("dcvc-small", weights_dir=tmp_path, intra_weights_dir=intra_dir) == \
        "bmshj2018-factorized-small"
    (intra_dir / "mbt2018-mean-small-q1.pt").touch()
    assert resolve_intra_model("dcvc-small", intra_weights_dir=intra_dir) == "mbt2018-mean-small"
    assert resolve_intra_model("dcvc-small", weights_dir=tmp_path, intra_weights_dir=intra_dir) is None


def test_the_model_defaults_to_the_one_the_weights_directory_holds(tmp_path):
    assert model_in_weights_dir(None) is None
    (tmp_path / "ssf-small-q1.pt").touch()
    (tmp_path / "ssf-small-q2.pt").touch()
    assert model_in_weights_dir(tmp_path) == "ssf-small"
    (tmp_path / "mbt2018-mean-small-q1.pt").touch()
    assert model_in_weights_dir(tmp_path) is None  # two models: the config's, as without --weights


def test_flags_override_the_file_and_none_means_not_given(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("intra_period: 16\nnum_threads: 1\n")
    config = load_config(path, {"intra_period": 4, "quality": None})
    assert config.intra_period == 4 and config.num_threads == 1 and config.quality == CodecConfig().quality


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"intra_period": 0}, "intra_period=0 (expected -1 or >= 1)"),
        ({"intra_period": -3}, "intra_period=-3"),
        ({"num_threads": 0}, "num_threads=0 (expected 1..255)"),
        ({"model": "nope"}, "model='nope'"),
        ({"quant": "lattice"}, "quant='lattice'"),
        ({"quality": 12}, "quality=12 (expected 1..9)"),
    ],
)
def test_invalid_values_name_the_field_and_range(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, overrides)


def test_unknown_keys_and_missing_files(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("intra_priod: 8\n")
    with pytest.raises(ConfigError, match="unknown keys intra_priod"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_quant_scope_is_validated():
    assert load_config(overrides={"quant": "oct", "quant_scope": "all"}).quant_scope == "all"
    expected = "quant_scope='motion' \\(expected one of residual, residual\\+motion, all, intra\\)"
    with pytest.raises(ConfigError, match=expected):
        load_config(overrides={"quant_scope": "motion"})
