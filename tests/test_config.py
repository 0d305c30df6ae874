import pytest

from engine.config import Config, ConfigError, from_dict, load_config, with_overrides


def test_defaults_are_valid_and_regime_fusion_is_the_default():
    cfg = Config()
    assert cfg.fusion.method == "regime"
    assert cfg.walk_forward.train_window == 1000 and cfg.walk_forward.step == 21


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"lstm": {"lookbak": 3}}, "unknown key `lstm.lookbak`"),
        ({"lstmm": {}}, "unknown section `lstmm`"),
        ({"walk_forward": {"train_window": 10}}, "`walk_forward.train_window` must be > `lstm.lookback` (got 10 <= 20)"),
        ({"lstm": {"device": "gpu"}}, "`lstm.device` must be one of"),
        ({"walk_forward": {"mode": "sliding"}}, "`walk_forward.mode` must be one of"),
        ({"lstm": {"epochs": "ten"}}, "`lstm.epochs` must be an integer (got 'ten')"),
        ({"lstm": {"dropout": 1.5}}, "`lstm.dropout` must be in [0, 1) (got 1.5)"),
        ({"regime": {"alpha_calm": 2}}, "`regime.alpha_calm` must be in [0, 1]"),
        ({"execution": {"cash": -1}}, "`execution.cash` must be > 0"),
        ({"signal": {"long_only": "yes"}}, "`signal.long_only` must be true or false"),
    ],
)
def test_bad_values_are_errors_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        from_dict(raw)
    assert message in str(err.value)


def test_toml_file_loads_and_names_the_file_in_errors(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text("seed = 3\n[lstm]\nlookback = [10, 60]\n[fusion]\nmethod = \"stacking\"\n")
    cfg = load_config(good)
    assert cfg.seed == 3 and cfg.lookbacks == [10, 60] and cfg.fusion.method == "stacking"
    bad = tmp_path / "bad.toml"
    bad.write_text("[knn]\nk = 5\n")
    with pytest.raises(ConfigError, match=r"bad.toml: unknown key `knn.k`"):
        load_config(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("[knn\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(broken)


def test_overrides_use_dotted_keys_and_are_validated():
    cfg = with_overrides(Config(), {"lstm.lookback": 10, "seed": 5})
    assert cfg.lstm.lookback == 10 and cfg.seed == 5
    with pytest.raises(ConfigError, match="knn.n_neighbors"):
        with_overrides(Config(), {"knn.n_neighbors": 0})


def test_config_hash_is_stable_and_changes_with_values():
    assert Config().hash() == Config().hash()
    assert Config().hash() != with_overrides(Config(), {"seed": 1}).hash()
