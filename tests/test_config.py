import pytest

from lstmknn.engine.config import Config, ConfigError, from_dict, load_config, with_overrides


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


FLOAT_FIELDS = [
    ("execution", "cash"), ("execution", "commission"), ("execution", "commission_fixed"),
    ("execution", "slippage"), ("execution", "volume_cap"), ("signal", "scale"),
    ("signal", "threshold"), ("signal", "target_vol"), ("signal", "max_leverage"),
    ("signal", "min_change"), ("signal", "max_weight"), ("signal", "max_gross"),
    ("lstm", "lr"), ("lstm", "weight_decay"), ("lstm", "dropout"), ("lstm", "val_fraction"),
    ("knn", "validation_fraction"), ("fusion", "alpha"), ("fusion", "ridge_alpha"),
    ("regime", "quantile"), ("regime", "alpha_calm"), ("regime", "alpha_volatile"),
]


def test_every_float_field_is_listed_in_the_non_finite_test():
    import typing

    from lstmknn.engine.config import SECTIONS

    cfg = Config()
    floats = {(name, k) for name in SECTIONS
              for k, tp in typing.get_type_hints(type(getattr(cfg, name))).items()
              if "float" in str(tp)}
    assert floats == set(FLOAT_FIELDS)


@pytest.mark.parametrize(("section", "key"), FLOAT_FIELDS)
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_numbers_are_rejected_in_every_float_field(section, key, bad):
    with pytest.raises(ConfigError, match=rf"`{section}\.{key}` must be a finite number \(got"):
        from_dict({section: {key: bad}})


def test_non_finite_numbers_are_rejected_from_toml_and_from_python(tmp_path):
    from dataclasses import replace

    path = tmp_path / "inf.toml"
    path.write_text("[execution]\ncash = inf\n")
    with pytest.raises(ConfigError, match=r"inf.toml: `execution.cash` must be a finite number"):
        load_config(path)
    with pytest.raises(ConfigError, match="`lstm.lr` must be a finite number"):
        replace(Config(), lstm=replace(Config().lstm, lr=float("nan")))
    with pytest.raises(ConfigError, match="too large for a float"):
        from_dict({"execution": {"commission_fixed": 10**400}})


@pytest.mark.parametrize(
    ("key", "bad", "good"),
    [("mc_passes", 1001, 1000), ("mc_passes", -1, 0), ("threads", 257, 256), ("threads", -1, 0),
     ("hidden_size", 4097, 4096), ("batch_size", 0, 1), ("epochs", 10_001, 10_000),
     ("num_layers", 17, 16)],
)
def test_resource_fields_are_bounded_with_the_range_in_the_error(key, bad, good):
    assert getattr(from_dict({"lstm": {key: good}}).lstm, key) == good
    with pytest.raises(ConfigError, match=rf"`lstm\.{key}` must be in \[\d+, \d+\] \(got {bad}\)"):
        from_dict({"lstm": {key: bad}})


@pytest.mark.parametrize(
    ("key", "bad"),
    [("step", 9223372036854775807), ("train_window", 2**62), ("gap", 10**12), ("horizon", 10**9)],
)
def test_walk_forward_sizes_are_bounded_so_huge_ints_are_one_line(key, bad):
    with pytest.raises(ConfigError, match=rf"`walk_forward\.{key}` must be in \[\d+, \d+\] \(got {bad}\)"):
        from_dict({"walk_forward": {key: bad}})
    with pytest.raises(ConfigError, match=r"`lstm\.lookback` must be in \[1, 100000\]"):
        from_dict({"lstm": {"lookback": 10**12}})


def test_new_sections_default_to_the_old_behaviour_and_cost_rate_adds_both_costs():
    cfg = Config()
    assert cfg.features.include is None and cfg.features.custom == []
    assert (cfg.model.scope, cfg.model.label, cfg.model.cs_features, cfg.model.regime_source) == (
        "per_symbol", "raw", "none", "symbol")
    sg = cfg.signal
    assert (sg.sizing, sg.top_k, sg.bottom_k, sg.buffer, sg.max_replace, sg.weighting) == (
        "threshold", 10, 0, 0, 0, "equal")
    assert (sg.max_weight, sg.max_gross, sg.cost_aware) == (1.0, 1.0, True)
    costly = from_dict({"execution": {"commission": 0.001, "slippage": 0.0004}})
    assert costly.cost_rate == pytest.approx(0.0014)
    assert from_dict({"execution": {"commission": 0, "slippage": 0}}).cost_rate == 0


def test_new_fields_load_from_toml(tmp_path):
    path = tmp_path / "rank.toml"
    path.write_text(
        '[features]\ninclude = ["ret_1"]\ncustom = ["my_pkg.feats:momentum"]\n'
        '[model]\nscope = "pooled"\nlabel = "cs_rank"\ncs_features = "zscore"\n'
        'regime_source = "market"\n'
        '[signal]\nsizing = "rank"\ntop_k = 5\nbottom_k = 2\nbuffer = 1\nmax_replace = 3\n'
        'weighting = "forecast"\nmax_weight = 0.2\nmax_gross = 1.5\ncost_aware = false\n')
    cfg = load_config(path)
    assert cfg.features.include == ["ret_1"] and cfg.features.custom == ["my_pkg.feats:momentum"]
    assert (cfg.model.scope, cfg.model.label, cfg.model.cs_features) == ("pooled", "cs_rank", "zscore")
    assert cfg.model.regime_source == "market"
    assert (cfg.signal.sizing, cfg.signal.top_k, cfg.signal.bottom_k) == ("rank", 5, 2)
    assert (cfg.signal.buffer, cfg.signal.max_replace, cfg.signal.weighting) == (1, 3, "forecast")
    assert (cfg.signal.max_weight, cfg.signal.max_gross, cfg.signal.cost_aware) == (0.2, 1.5, False)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"model": {"label": "cs_rank"}}, "`model.label` = 'cs_rank' needs `model.scope` = 'pooled'"),
        ({"model": {"cs_features": "rank"}}, "`model.cs_features` = 'rank' needs `model.scope`"),
        ({"model": {"scope": "global"}}, "`model.scope` must be one of 'per_symbol', 'pooled'"),
        ({"signal": {"sizing": "top"}}, "`signal.sizing` must be one of"),
        ({"signal": {"top_k": 0}}, "`signal.top_k` must be in [1, 100000] (got 0)"),
        ({"signal": {"bottom_k": -1}}, "`signal.bottom_k` must be in [0, 100000] (got -1)"),
        ({"signal": {"max_weight": 0}}, "`signal.max_weight` must be in (0, 10] (got 0.0)"),
        ({"signal": {"max_gross": 11}}, "`signal.max_gross` must be in (0, 10] (got 11.0)"),
        ({"signal": {"weighting": "vol"}}, "`signal.weighting` must be one of 'equal', 'forecast'"),
        ({"signal": {"cost_aware": 1}}, "`signal.cost_aware` must be true or false"),
        ({"features": {"include": "ret_1"}}, "`features.include` must be a list of strings or none"),
        ({"features": {"custom": ["momentum"]}},
         "`features.custom[0]` must be a 'module:function' reference (got 'momentum')"),
        ({"features": {"include": ["a", "a"]}}, "`features.include` has duplicates (got ['a'])"),
        ({"features": {"include": []}}, "`features.include` is empty and `features.custom` names none"),
    ],
)
def test_bad_new_fields_are_errors_naming_the_field(raw, message):
    with pytest.raises(ConfigError) as err:
        from_dict(raw)
    assert message in str(err.value)


def test_an_empty_include_with_custom_features_is_valid():
    cfg = from_dict({"features": {"include": [], "custom": ["pkg.mod:fn"]}})
    assert cfg.features.include == [] and cfg.features.custom == ["pkg.mod:fn"]
