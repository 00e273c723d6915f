import pytest

from vidcodec.config import CodecConfig, load_config
from vidcodec.errors import ConfigError


def test_default_config_file_matches_the_dataclass_defaults():
    assert load_config() == CodecConfig()


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
    with pytest.raises(ConfigError, match="quant_scope='motion' \\(expected one of residual, residual\\+motion, all, intra\\)"):
        load_config(overrides={"quant_scope": "motion"})
