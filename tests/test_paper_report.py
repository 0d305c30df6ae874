"""``lstmknn paper report --out``: marked, atomic, and never over a file lstmknn did not write."""

from __future__ import annotations

import pytest

from lstmknn.engine.cli import main
from lstmknn.engine.paper.report import REPORT_MARK, is_report
from tests.helpers import write_config


@pytest.fixture(scope="module")
def account(tmp_path_factory, sp500):
    from tests.helpers import write_csv

    d = tmp_path_factory.mktemp("report")
    csv = write_csv(sp500.iloc[:300], d / "spx.csv")
    args = ["--account", "acct", "--root", str(d / "accounts")]
    assert main(["paper", "init", *args, "--data", str(csv), "--config",
                 str(write_config(d / "small.toml"))]) == 0
    assert main(["paper", "step", *args, "--quiet"]) == 0
    return args, d


def report(args, capsys, *extra):
    capsys.readouterr()
    rc = main(["paper", "report", *args, "--fast", *extra])
    return rc, *capsys.readouterr()


def test_the_report_is_marked_as_an_lstmknn_report(account, tmp_path, capsys):
    args, d = account
    rc, out, _ = report(args, capsys)
    page = d / "accounts" / "acct" / "report" / "tearsheet.html"
    assert rc == 0 and str(page) in out and is_report(page)
    target = tmp_path / "mine.html"
    assert report(args, capsys, "--out", str(target))[0] == 0
    text = target.read_text()
    assert REPORT_MARK in text[:2000] and "lstmknn paper account acct" in text
    assert [p.name for p in tmp_path.iterdir()] == ["mine.html"]  # no temporary file left


def test_an_existing_lstmknn_report_is_replaced(account, tmp_path, capsys):
    args, _ = account
    target = tmp_path / "t.html"
    assert report(args, capsys, "--out", str(target))[0] == 0
    target.write_text(target.read_text().replace("</body>", "OLD</body>"))
    assert report(args, capsys, "--out", str(target))[0] == 0
    assert "OLD</body>" not in target.read_text() and is_report(target)


@pytest.mark.parametrize("kind", ["html", "text", "folder", "symlink"])
def test_report_out_refuses_a_path_that_is_not_an_lstmknn_report(account, tmp_path, capsys, kind):
    args, _ = account
    target = tmp_path / "index.html"
    mine = tmp_path / "mine.txt"
    mine.write_text("my notes\n")
    if kind == "html":
        target.write_text("<html><head><title>my page</title></head><body>hi</body></html>")
    elif kind == "text":
        target.write_text("precious\n")
    elif kind == "folder":
        target.mkdir()
    else:
        target.symlink_to(mine)
    before = target.read_bytes() if target.is_file() else None
    rc, _, err = report(args, capsys, "--out", str(target))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert ("symbolic link" if kind == "symlink" else "not an lstmknn report") in err
    if before is not None:
        assert target.read_bytes() == before
    assert mine.read_text() == "my notes\n"
