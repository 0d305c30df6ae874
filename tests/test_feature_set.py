"""User features ``module:function``: resolved, validated in one line, part of the model input."""

import sys
import textwrap

import pytest

from lstmknn.data.errors import DataError
from lstmknn.engine.config import ConfigError, FeaturesConfig, from_dict
from lstmknn.engine.feature_set import compute_custom, feature_frame, feature_set_id, resolve_one
from lstmknn.engine.walk_forward import _fold_cache_key, folds_for, prepare
from tests.helpers import SMALL

EX = "tests.feature_examples"


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write a module into a temporary current directory; return a function to add more."""
    monkeypatch.chdir(tmp_path)
    written = []

    def write(name: str, body: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)
    resolve_one.cache_clear()


def test_custom_columns_follow_the_built_ins(sp500):
    f = feature_frame(sp500.iloc[:200], FeaturesConfig(include=["ret_1"], custom=[f"{EX}:momentum_3"]))
    assert list(f.columns) == ["ret_1", "mom_3", "gap"]


def test_module_in_the_current_directory_is_imported(sp500, user_module):
    user_module("my_feats_cwd", """
        def spread(prices):
            return ((prices["high"] - prices["low"]) / prices["close"]).rename("spread")
    """)
    f = compute_custom(sp500.iloc[:50], ["my_feats_cwd:spread"])
    assert list(f.columns) == ["spread"] and f["spread"].notna().all()


@pytest.mark.parametrize(("ref", "message"), [
    ("no_such_module_x:f", "cannot import no_such_module_x"),
    (f"{EX}:missing", "has no function missing"),
    ("justaname", "expected \"module:function\""),
])
def test_bad_reference_is_a_config_error(ref, message):
    with pytest.raises(ConfigError, match=message):
        resolve_one(ref)


@pytest.mark.parametrize(("body", "message"), [
    ("return prices['close'].iloc[:-3].rename('x')", r"f: index does not match .*\(47 rows"),
    ("return prices['close'].astype(str).rename('x')", "column x is not numeric"),
    ("return (prices['close'] * 0 + 1.0).rename('x')", r"column x is constant"),
    ("s = prices['close'].pct_change(); s.iloc[20] = float('nan'); return s.rename('x')",
     "column x is NaN at 1999-02-02"),
    ("return (prices['close'] / 0).rename('x')", "column x is infinite"),
    ("return 3", "returned int"),
    ("raise KeyError('adj_close')", r"failed: KeyError: 'adj_close' \(bad_feats\.py:3\)"),
    ("return prices['close'].pct_change().rename('ret_1')", "ret_1 is already defined by the built-in"),
    ("import pandas as pd; return pd.concat([prices['close'].rename('x')] * 2, axis=1)",
     "column x appears twice"),
    ("return (prices['close'] * 1e300).rename('x')",
     r"column x is 1\.23e\+303 at 1999-01-04; feature values must stay within \+-1e\+15"),
    ("import sys; sys.exit(3)", r"f called sys.exit\(3\)"),
    ("import sys; sys.exit()", r"f called sys.exit\(None\)"),
    ("raise BaseException('boom')", r"failed: BaseException: boom \(bad_feats\.py:3\)"),
])
def test_bad_output_is_one_line_naming_the_function_and_column(sp500, user_module, body, message):
    name = user_module("bad_feats", f"""
        def f(prices):
            {body}
    """)
    with pytest.raises((DataError, ConfigError), match=message) as err:
        feature_frame(sp500.iloc[:50], FeaturesConfig(custom=[f"{name}:f"]))
    assert f"{name}:f" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("warmup", ["'abc'", "{'mom': 'abc'}", "-1", "True", "{1: 5}"])
def test_a_bad_warmup_declaration_is_one_config_line(user_module, warmup):
    name = user_module("bad_warmup", f"""
        def f(prices):
            return prices['close'].pct_change().rename('mom')
        f.warmup = {warmup}
    """)
    with pytest.raises(ConfigError, match=r"bad_warmup:f: attribute warmup must be a number"):
        resolve_one(f"{name}:f")


def test_what_a_feature_prints_goes_to_stderr_not_stdout(sp500, user_module, capsys):
    name = user_module("chatty", """
        print("importing chatty")

        def f(prices):
            print("computing", len(prices))
            return prices['close'].pct_change().rename('chat')
    """)
    compute_custom(sp500.iloc[:50], [f"{name}:f"])
    out, err = capsys.readouterr()
    assert out == ""
    assert "importing chatty" in err and "computing 50" in err


def test_a_module_that_exits_while_importing_is_one_config_line(user_module):
    name = user_module("exits", "import sys\nsys.exit(4)\n")
    with pytest.raises(ConfigError, match=r"importing exits called sys.exit\(4\)"):
        resolve_one(f"{name}:f")


def test_panel_aware_feature_sees_every_symbol(sp500):
    panel = {"a": sp500.iloc[:100], "b": sp500.iloc[:100] * 1.1}
    f = compute_custom(sp500.iloc[:100], [f"{EX}:relative_to_market"], panel)
    assert f["rel_5"].iloc[10:].abs().max() < 1e-12  # same returns as the median of the panel
    alone = compute_custom(sp500.iloc[:100], [f"{EX}:relative_to_market"])
    assert alone["rel_5"].iloc[10:].abs().min() > 0


def test_custom_features_reach_the_models_and_the_cache_key(sp500):
    prices = sp500.iloc[:420]
    plain = from_dict(SMALL)
    custom = from_dict({**SMALL, "features": {"custom": [f"{EX}:momentum_3"]}})
    p0, p1 = prepare(prices, plain), prepare(prices, custom)
    assert p1.features.shape[1] == p0.features.shape[1] + 2
    assert p1.windows[5].shape[-1] == p1.features.shape[1]
    fold = folds_for(p0, plain)[0]
    assert _fold_cache_key(p0, fold, plain) != _fold_cache_key(p1, fold, custom)
    assert feature_set_id(custom.features)["custom"][0][0] == f"{EX}:momentum_3"


def test_changing_a_custom_functions_source_changes_the_cache_key(sp500, user_module):
    name = user_module("edited_feats", "def f(prices):\n    return prices['close'].diff().rename('d')\n")
    before = feature_set_id(FeaturesConfig(custom=[f"{name}:f"]))
    resolve_one.cache_clear()
    sys.modules.pop(name)
    user_module(name, "def f(prices):\n    return prices['close'].diff(2).rename('d')\n")
    assert feature_set_id(FeaturesConfig(custom=[f"{name}:f"])) != before


def test_no_feature_at_all_is_a_config_error(sp500):
    with pytest.raises(ConfigError, match="no feature selected"):
        feature_frame(sp500.iloc[:50], FeaturesConfig(include=[]))


def test_lookahead_feature_fails_validation_with_a_hint(sp500):
    with pytest.raises(DataError, match="next_ret is NaN at .* usually reads rows after the bar"):
        compute_custom(sp500.iloc[:50], [f"{EX}:next_return"])
