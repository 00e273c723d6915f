import pytest

from vidcodec.config import CodecConfig, load_config, with_default_intra
from vidcodec.errors import ConfigError


def test_default_config_file_matches_the_dataclass_defaults():
    assert load_config() == with_default_intra(CodecConfig())


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
