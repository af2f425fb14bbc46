import pytest

from neuroadda.config import PretrainConfig, default_config_dir, load_config
from neuroadda.errors import ConfigError


def test_shipped_config_validates_and_overrides_apply():
    cfg = load_config(default_config_dir() / "pretrain.yaml", overrides={"train.max_steps": 7, "seed": None})
    assert isinstance(cfg, PretrainConfig) and cfg.train.max_steps == 7 and cfg.seed == 0


def test_mistyped_key_is_an_error_naming_field_and_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  max_stpes: 10\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: field 'train\.max_stpes': Extra inputs are not permitted"):
        load_config(p)


def test_bad_value_and_missing_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  thresholds: [0.5, 1.5]\n")
    with pytest.raises(ConfigError, match="train.thresholds"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
