import pytest

from lstmknn.engine.folds import make_folds


@pytest.mark.parametrize("mode", ["rolling", "expanding"])
@pytest.mark.parametrize(("gap", "horizon"), [(0, 1), (3, 1), (0, 5), (2, 3)])
def test_train_never_overlaps_test_and_labels_are_known_at_decision(mode, gap, horizon):
    folds = make_folds(700, 30, 200, 21, mode=mode, gap=gap, horizon=horizon)
    assert folds
    for f in folds:
        assert f.train_end <= f.test_start
        # last training sample's label becomes known at close of train_end-1+horizon
        assert (f.train_end - 1) + horizon <= f.test_start - gap
        assert f.test_start - f.train_end == horizon - 1 + gap
        assert f.train_start >= 30
        if mode == "rolling":
            assert f.train_size == 200
        else:
            assert f.train_start == 30


def test_test_windows_tile_the_out_of_sample_span_without_gaps():
    folds = make_folds(700, 30, 200, 21)
    assert folds[0].test_start == 230
    for a, b in zip(folds, folds[1:], strict=False):
        assert a.test_end == b.test_start
    assert folds[-1].test_end == 700


def test_boundaries_do_not_depend_on_how_much_data_follows():
    short = make_folds(500, 30, 200, 21)
    long = make_folds(900, 30, 200, 21)
    for a, b in zip(short[:-1], long, strict=False):
        assert a == b
    last = short[-1]
    assert (last.train_start, last.train_end, last.test_start) == (
        long[last.index].train_start, long[last.index].train_end, long[last.index].test_start)
